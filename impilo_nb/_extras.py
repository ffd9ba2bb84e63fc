"""The optional features, the extra that installs each, and the one check that says so.

``pip install impilo_nb`` brings the core: the client, external ids, the event log, the
webhook receiver, bulk import. Five features need more and are declared as extras in
``pyproject.toml`` (``[sandbox]``, ``[widgets]``, ``[reports]``, ``[dashboard]``, ``[postgres]``; ``[all]`` is every one). Each is
loaded only when used, and the code that loads it calls ``require`` first, so a missing extra is
one ``ConfigurationError`` that names the pip command, rather than a ``ModuleNotFoundError`` from
deep inside a third-party import.

``EXTRAS`` names the modules to look for; ``pyproject.toml`` names the distributions that
provide them and their version floors (``tests/test_extras.py`` checks that the two agree).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass

from .errors import ConfigurationError

__all__ = ["EXTRAS", "Extra", "missing_modules", "require"]


@dataclass(frozen=True)
class Extra:
    """One optional feature: what a user calls it by, and the top-level modules it needs."""

    feature: str  # the subject of "... needs impilo_nb's [extra] extra"
    modules: tuple[str, ...]


#: Extra name -> the feature it enables and the modules that show it is installed.
EXTRAS: dict[str, Extra] = {
    "sandbox": Extra("The embedded sandbox (nb.Sandbox, connect() without IMPILO_BASE_URL, impilo-nb sandbox)", ("fastapi",)),
    "widgets": Extra(
        "Showing widgets and charts (nb.widgets, EventLog.plot_timeline)", ("ipywidgets", "matplotlib", "itables", "anywidget")
    ),
    "reports": Extra(
        "The report command (impilo-nb report, build_report)",
        ("papermill", "nbclient", "nbconvert", "nbformat", "bs4", "ipykernel"),
    ),
    "dashboard": Extra("The dashboard (make dashboard, scripts/dashboard)", ("voila",)),
    "postgres": Extra("An event log on PostgreSQL (EventLog('postgresql://...'), receiver --db postgresql://...)", ("psycopg",)),
}


def missing_modules(modules: tuple[str, ...]) -> list[str]:
    """Those of ``modules`` (top-level names) that cannot be imported here; none is imported.

    Only whether a module is installed is looked up (``find_spec``), so checking costs nothing
    even for slow imports such as matplotlib, and a name set to ``None`` in ``sys.modules``
    (how Python, and the tests, block an import) counts as missing.
    """
    return [name for name in modules if not _installed(name)]


def _installed(name: str) -> bool:
    if name in sys.modules:  # already imported, or blocked with None
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


def require(extra: str, *modules: str) -> None:
    """Raise ``ConfigurationError`` naming ``extra`` unless its modules are installed.

    ``modules`` narrows the check to what the caller is about to import (default: every module
    of the extra). Call it just before importing an optional feature.

    Raises:
        ConfigurationError: a module is missing; the message says which extra to install and how.
    """
    spec = EXTRAS[extra]
    absent = missing_modules(modules or spec.modules)
    if absent:
        names = ", ".join(absent)
        raise ConfigurationError(
            f"{spec.feature} needs impilo_nb's [{extra}] extra, which is not installed here (missing: {names}). "
            f"Install it with: pip install 'impilo_nb[{extra}]'"
        )
