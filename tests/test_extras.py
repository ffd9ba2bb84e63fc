"""The package as pip installs it: optional features name their extra when it is missing, the
extras declare what those features import, requirements.txt pins all of it, and the wheel ships
py.typed.

A missing extra is simulated by setting the module to ``None`` in ``sys.modules``, which is how
Python itself blocks an import, so no second environment is needed here.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import impilo_nb as nb
from impilo_nb import _connect
from impilo_nb.__main__ import main
from impilo_nb._extras import EXTRAS, missing_modules, require

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRA_REQUIREMENTS = PYPROJECT["project"]["optional-dependencies"]
TEST_TOOLS = {"pytest", "hypothesis", "schemathesis", "playwright", "nbval", "ruff", "mypy", "coverage"}
TEST_TOOLS |= {"pytest-timeout", "pytest-xdist"}


def block(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``import module`` fail for this test, as when the module is not installed."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def assert_names_extra(message: str, extra: str) -> None:
    assert f"[{extra}] extra" in message
    assert f"pip install 'impilo_nb[{extra}]'" in message


# --- The message -------------------------------------------------------------------------


def test_require_names_the_extra_the_missing_modules_and_the_command(monkeypatch):
    block(monkeypatch, "papermill", "bs4")
    with pytest.raises(nb.ConfigurationError) as raised:
        require("reports")
    message = str(raised.value)
    assert_names_extra(message, "reports")
    assert "missing: papermill, bs4" in message
    assert message.startswith("The report command (impilo-nb report, build_report) needs impilo_nb's [reports] extra")


def test_require_passes_when_everything_is_installed():
    for extra in EXTRAS:
        require(extra)  # this environment has every extra (requirements.txt)


def test_looking_for_a_module_does_not_import_it():
    code = "import sys, impilo_nb._extras as x; print(x.missing_modules(('matplotlib',)), 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["[]", "False"]


def test_a_module_not_installed_at_all_is_missing():
    assert missing_modules(("impilo_nb_no_such_module", "json")) == ["impilo_nb_no_such_module"]


# --- Each feature, where it is loaded ------------------------------------------------------


def test_sandbox_without_its_extra(monkeypatch):
    block(monkeypatch, "fastapi")
    with pytest.raises(nb.ConfigurationError) as raised:
        nb.Sandbox  # noqa: B018  (the lazy attribute is what is tested)
    assert_names_extra(str(raised.value), "sandbox")


def test_connect_without_a_base_url_needs_the_sandbox_extra(monkeypatch):
    monkeypatch.setattr(_connect, "_sandbox", None)  # as in a process that has not started one
    block(monkeypatch, "fastapi")
    with pytest.raises(nb.ConfigurationError) as raised:
        nb.connect()
    assert_names_extra(str(raised.value), "sandbox")


def test_widgets_without_their_extra(monkeypatch):
    block(monkeypatch, "ipywidgets")
    # Forget any earlier import, so nb.widgets loads the subpackage again (monkeypatch restores it).
    # vars(), not hasattr(): hasattr would call the lazy __getattr__ and import it.
    monkeypatch.delitem(sys.modules, "impilo_nb.widgets", raising=False)
    if "widgets" in vars(nb):
        monkeypatch.delattr(nb, "widgets")
    with pytest.raises(nb.ConfigurationError) as raised:
        nb.widgets  # noqa: B018
    assert_names_extra(str(raised.value), "widgets")


def test_timeline_chart_without_matplotlib(monkeypatch, tmp_path):
    block(monkeypatch, "matplotlib")
    with nb.EventLog(tmp_path / "events.db") as log, pytest.raises(nb.ConfigurationError) as raised:
        log.plot_timeline()
    assert_names_extra(str(raised.value), "widgets")


def test_build_report_without_its_extra(monkeypatch, tmp_path):
    block(monkeypatch, "nbconvert")
    with pytest.raises(nb.ConfigurationError) as raised:
        nb.reports.build_report(ROOT / "notebooks" / "04_external_ids.ipynb", tmp_path)
    assert_names_extra(str(raised.value), "reports")


@pytest.mark.parametrize(
    ("argv", "blocked", "extra"),
    [
        (["report", "notebooks/04_external_ids.ipynb", "--out", "{tmp}"], "papermill", "reports"),
        (["sandbox", "--port", "0", "--db", "{tmp}/sandbox.db"], "fastapi", "sandbox"),
    ],
)
def test_cli_says_which_extra_to_install_without_a_traceback(monkeypatch, capsys, tmp_path, argv, blocked, extra):
    block(monkeypatch, blocked)
    monkeypatch.chdir(ROOT)
    code = main([arg.format(tmp=tmp_path) for arg in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "Traceback" not in err
    assert_names_extra(err, extra)
    assert not list(tmp_path.iterdir())  # nothing was run or written


def test_import_impilo_nb_needs_only_the_core(tmp_path):
    """With every optional module blocked, the package still imports and its core works."""
    optional = sorted({module for extra in EXTRAS.values() for module in extra.modules})
    code = (
        f"import sys\nfor name in {optional!r}: sys.modules[name] = None\n"
        "import impilo_nb as nb\nprint(nb.external_id('example@example.com', '(123) 456-7890'))\n"
        f"log = nb.EventLog({str(tmp_path / 'e.db')!r}); print(len(log.frame()))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["874aa79c933a3d5b514fc7cd79fd17b3", "0"]


# --- One source of truth per fact: pyproject.toml, _extras.EXTRAS, requirements.txt ------------


def _declared(extra: str) -> set[str]:
    """Distribution names an extra brings, following its references to other extras."""
    names: set[str] = set()
    for line in EXTRA_REQUIREMENTS[extra]:
        requirement = Requirement(line)
        if _normal(requirement.name) == "impilo-nb":
            for nested in requirement.extras:
                names |= _declared(nested)
        else:
            names.add(_normal(requirement.name))
    return names


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_extras_checked_are_the_extras_declared():
    assert set(EXTRAS) == set(EXTRA_REQUIREMENTS) - {"all"}
    assert _declared("all") == set().union(*(_declared(extra) for extra in EXTRAS))


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_each_module_an_extra_checks_comes_from_a_distribution_it_declares(extra):
    providers = importlib.metadata.packages_distributions()
    for module in EXTRAS[extra].modules:
        assert {_normal(d) for d in providers[module]} & _declared(extra), f"[{extra}] declares no provider of {module}"


def test_requirements_txt_pins_every_declared_dependency_within_its_range():
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[_normal(name)] = version
    declared = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    declared += [Requirement(r) for rs in EXTRA_REQUIREMENTS.values() for r in rs if not r.startswith("impilo_nb[")]
    for requirement in declared:
        pin = pins.get(_normal(requirement.name))
        assert pin is not None, f"requirements.txt does not pin {requirement.name}"
        assert requirement.specifier.contains(pin), f"requirements.txt pins {requirement.name}=={pin}, outside {requirement}"


def test_the_wheel_ships_py_typed_and_its_metadata_declares_the_extras_and_no_test_tool(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(ROOT / "impilo_nb", source / "impilo_nb", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("impilo_nb-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert "impilo_nb/py.typed" in archive.namelist()
        metadata = next(archive.read(n).decode() for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    assert {line.split(": ")[1] for line in metadata.splitlines() if line.startswith("Provides-Extra:")} == {
        "sandbox",
        "widgets",
        "reports",
        "dashboard",
        "postgres",
        "all",
    }
    requires = [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert not {_normal(Requirement(line).name) for line in requires} & TEST_TOOLS
