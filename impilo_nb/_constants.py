"""Named defaults, explained once here."""

#: Seconds to wait for a connection and for each read. Impilo answers in well under a second;
#: ten leaves room for a slow network without hanging a notebook cell for minutes.
DEFAULT_TIMEOUT = 10.0

#: An answer's whole body must arrive within this many timeouts of its headers: each read has
#: ``timeout``, and the sum is bounded too, so a server sending a byte every few seconds cannot
#: hold a cell for ever.
BODY_TIMEOUTS = 3

#: How many times a failed request is retried (so up to 1 + 3 attempts).
DEFAULT_MAX_RETRIES = 3

#: Exponential backoff: the n-th retry waits a random time in [0, min(cap, base * 2**n)]
#: ("full jitter"), so many workers hitting one limit do not retry in lock-step.
DEFAULT_BACKOFF_BASE = 0.5
DEFAULT_BACKOFF_CAP = 8.0

#: A server's Retry-After is honoured up to this many seconds; beyond it we give up instead
#: of freezing a notebook for an hour.
MAX_RETRY_AFTER = 60.0

#: Connections kept open per host; the bulk importer allows at most this many workers.
DEFAULT_POOL_SIZE = 32

#: Page size used when iterating over every page (the API's maximum).
MAX_PAGE_SIZE = 250

#: The API's own default page size.
DEFAULT_PAGE_SIZE = 15

#: Header that carries the API key; the docs show no Bearer form.
API_KEY_HEADER = "Impilo-API-Key"

#: Header that carries the raw webhook secret on every delivery.
WEBHOOK_SECRET_HEADER = "Impilo-Webhook-Secret"

#: Environment variables read by ``ImpiloClient`` and ``connect()``.
ENV_BASE_URL = "IMPILO_BASE_URL"
ENV_API_KEY = "IMPILO_API_KEY"

#: The line ``connect()`` prints on stderr when it starts the embedded sandbox (once per process).
#: A report leaves it out: its title block already names the server.
EMBEDDED_NOTICE = (
    f"impilo_nb: no {ENV_BASE_URL} set, so connect() started an embedded sandbox; its data is lost when the "
    f"kernel stops. Set {ENV_BASE_URL} (and {ENV_API_KEY}) for the real platform."
)

#: Environment variable the receiver CLI reads its secret from.
ENV_WEBHOOK_SECRET = "IMPILO_WEBHOOK_SECRET"

#: Retry-schedule multiplier for the sandboxes a person watches (``connect()``'s embedded one
#: and ``make lab``'s): retries after 9, 18 and 36 s instead of 15, 30 and 60 minutes, so a
#: failed delivery can be seen and its retry awaited in one sitting. Override with
#: $IMPILO_SANDBOX_TIME_SCALE (1 for the real schedule).
DEMO_TIME_SCALE = 0.01
ENV_SANDBOX_TIME_SCALE = "IMPILO_SANDBOX_TIME_SCALE"

#: Set to 1 to make ``connect()``'s embedded sandbox answer with only the fields Impilo documents
#: (``sandbox/documented.py``), as the real platform would: the notebooks are tested that way too.
ENV_SANDBOX_DOCUMENTED_ONLY = "IMPILO_SANDBOX_DOCUMENTED_ONLY"

#: The embedded sandbox's default API key.
SANDBOX_API_KEY = "sandbox-key"

#: Where servers listen unless told otherwise: this machine only.
DEFAULT_HOST = "127.0.0.1"

#: The largest answer body the client reads (after gzip is undone), in bytes. A full page of 250
#: patients is well under 1 MiB; the cap stops a broken or hostile server (or a gzip bomb) from
#: filling a notebook's memory.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024

#: Seconds between a failed webhook delivery and its retries: 15, 30 and 60 minutes, so four
#: attempts in all (docs/api-decisions.md#retry-schedule). The sandbox sends on it (scaled by
#: ``time_scale``); ``sync.check`` reads the delivery log by it.
WEBHOOK_RETRY_DELAYS = (15 * 60, 30 * 60, 60 * 60)
