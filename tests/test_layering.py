"""The package's shape, as docs/architecture.md draws it: imports go one way, the sandbox and the
front-end libraries stay out of ``import impilo_nb``, and no function grows past a screen."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "impilo_nb"

#: Lower layers first; a module may import from its own layer or below, never above.
LAYERS = [
    {"_constants", "_version", "_time", "_md5", "errors", "fields"},
    {"models", "transport", "_extras"},
    {"frames", "responses", "ids", "eventlog", "serving", "testing", "_csvfiles"},
    {"resources", "client", "receiver"},
    {"bulk", "reports", "_report_run", "_report_mask", "_report_html", "_report_rendering",
     "_report_title", "_report_tables", "widgets", "sync", "sandbox", "dashboard"},
    {"_connect", "__init__", "__main__"},  # the entry points: they may start a sandbox
]

#: The longest function the package allows, in lines (docstring included).
MAX_FUNCTION_LINES = 60


def top_module(path: Path) -> str:
    """``impilo_nb/eventlog/sqlite.py`` -> ``eventlog``: the unit the layers speak of."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_modules(path: Path) -> set[str]:
    """The package modules ``path`` imports at run time (``if TYPE_CHECKING:`` blocks excluded),
    named as in ``LAYERS`` (``from ..eventlog.store import X`` -> ``eventlog``)."""
    tree = ast.parse(path.read_text())
    skip = {id(node) for block in ast.walk(tree) if _is_type_checking(block) for node in ast.walk(block)}
    package = ["impilo_nb", *path.relative_to(PACKAGE).parts[:-1]]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package[: len(package) - (node.level - 1)]
        elif (node.module or "").split(".")[0] == "impilo_nb":
            base = []
        else:
            continue
        module = (node.module or "").split(".") if node.module else []
        for alias in node.names:
            full = [*base, *module] if module else [*base, alias.name]
            if len(full) > 1:
                found.add(full[1])
    return found


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def layer_of(module: str) -> int:
    return next(number for number, layer in enumerate(LAYERS) if module in layer)


def test_every_module_has_a_layer():
    modules = {top_module(path) for path in PACKAGE.rglob("*.py")}
    unplaced = {m for m in modules if not any(m in layer for layer in LAYERS)}
    assert not unplaced, f"place these in LAYERS (and in docs/architecture.md): {sorted(unplaced)}"


def test_imports_only_go_down():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        here = top_module(path)
        for target in imported_modules(path):
            if target != here and layer_of(target) > layer_of(here):
                upward.append(f"{path.relative_to(PACKAGE.parent)} imports {target}")
    assert not upward, "\n".join(sorted(upward))


def test_nothing_but_connect_the_cli_and_init_imports_the_sandbox():
    importers = {
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if top_module(path) != "sandbox" and "sandbox" in imported_modules(path)
    }
    assert importers <= {"impilo_nb/_connect.py", "impilo_nb/__main__.py", "impilo_nb/__init__.py"}, importers


def test_import_impilo_nb_loads_no_server_front_end_or_report_library():
    heavy = ["fastapi", "ipywidgets", "matplotlib", "papermill", "nbconvert", "impilo_nb.sandbox", "impilo_nb.widgets"]
    code = f"import sys, impilo_nb; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "\n".join(long)
