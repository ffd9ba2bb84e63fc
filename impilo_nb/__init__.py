"""impilo_nb: work with the Impilo patient API from JupyterLab.

import impilo_nb as nb
client = nb.connect()       # $IMPILO_BASE_URL, else an embedded offline sandbox
client.patients.create({"firstName": "Ana", "lastName": "Rivera"})

``nb.Sandbox`` (with ``nb.Chaos``) and ``nb.widgets`` load on first use and need the ``[sandbox]`` and ``[widgets]``
extras; without them, using either raises a ``ConfigurationError`` that names the extra.
"""

# Private aliases: every public name here is the package's API (tests/test_exported_members.py).
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from . import bulk, reports, sync
from ._connect import connect, embedded_sandbox
from ._version import __version__
from .client import ImpiloClient
from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    FieldError,
    ImpiloError,
    InternalServerError,
    InvalidDeliveryError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RedirectError,
    UnexpectedResponseError,
    UnprocessableEntityError,
    ValidationError,
)
from .eventlog import EventLog
from .ids import external_id, external_ids, id_hazards, id_hazards_frame
from .models import (
    WEBHOOK_TYPES,
    Address,
    Change,
    Page,
    Patient,
    PatientPatch,
    Site,
    Webhook,
    WebhookEvent,
    WebhookSecret,
    patient_changes,
)
from .receiver import WebhookReceiver

if _TYPE_CHECKING:  # what the lazy names below are, for type checkers and editors
    from . import widgets
    from .sandbox import Chaos, Sandbox

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "Address",
    "EventLog",
    "InvalidDeliveryError",
    "AuthenticationError",
    "BadRequestError",
    "Change",
    "Chaos",
    "ConfigurationError",
    "ConflictError",
    "FieldError",
    "ImpiloClient",
    "ImpiloError",
    "InternalServerError",
    "NotFoundError",
    "Page",
    "Patient",
    "PatientPatch",
    "PermissionDeniedError",
    "RateLimitError",
    "RedirectError",
    "Sandbox",
    "Site",
    "UnexpectedResponseError",
    "UnprocessableEntityError",
    "ValidationError",
    "WEBHOOK_TYPES",
    "Webhook",
    "WebhookEvent",
    "WebhookReceiver",
    "WebhookSecret",
    "__version__",
    "bulk",
    "connect",
    "embedded_sandbox",
    "external_id",
    "external_ids",
    "id_hazards",
    "id_hazards_frame",
    "patient_changes",
    "reports",
    "sync",
    "widgets",
]


def __getattr__(name: str) -> _Any:
    # Loaded on first use: ipywidgets needs a front end, and the sandbox (FastAPI) is only for
    # those who run one; docs/architecture.md#layering keeps the sandbox out of the import graph.
    # Each checks for its extra first (widgets/__init__.py, _connect.sandbox_class).
    import importlib

    if name == "widgets":
        return importlib.import_module(".widgets", __name__)
    if name == "Sandbox":
        from ._connect import sandbox_class

        return sandbox_class()
    if name == "Chaos":  # a plain dataclass, but only the sandbox uses it: it loads with it
        from ._connect import sandbox_class

        sandbox_class()  # checks the [sandbox] extra first, naming it
        from .sandbox import Chaos

        return Chaos
    raise AttributeError(f"module 'impilo_nb' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazily loaded names too, so tab completion in a notebook offers them.
    return sorted({*globals(), "Chaos", "Sandbox", "widgets"})
