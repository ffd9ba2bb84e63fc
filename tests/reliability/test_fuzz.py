"""Generated inputs: the sandbox API against its own OpenAPI document, the receiver against
random bodies and headers, and the models through JSON."""

from __future__ import annotations

import json
import math
import re
from urllib.parse import quote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import impilo_nb as nb
from impilo_nb.models import is_blank
from impilo_nb.sandbox.app import MAX_BODY_BYTES, MAX_DEPTH, MAX_TEXT_LENGTH
from tests.conftest import make_patient
from tests.reliability.conftest import size

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def fuzz_sandbox():
    with nb.Sandbox("fuzz-key", time_scale=0.001) as sandbox:
        yield sandbox


def test_sandbox_api_conforms_to_its_openapi(fuzz_sandbox, figures):
    schema = schemathesis.openapi.from_url(fuzz_sandbox.url + "/openapi.json")
    # Pinned, not left to a config file: the utf-8 codec is every code point except the lone
    # surrogates (schemathesis cannot send those; the raw hostile test below does), and NUL too.
    schema.config.generation.update(codec="utf-8", allow_x00=True)
    operations = [result.ok() for result in schema.get_all_operations()]
    cases, server_errors, failures = 0, 0, []
    session = requests.Session()
    for operation in operations:

        @settings(
            max_examples=size("fuzz_examples_per_operation"),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(operation.as_strategy())
        def run(case):
            nonlocal cases, server_errors
            cases += 1
            response = case.call(session=session, headers={"Impilo-API-Key": fuzz_sandbox.api_key})
            server_errors += response.status_code >= 500
            try:
                case.validate_response(response, checks=CHECKS)
            except Exception as exc:  # collect all, report at the end
                failures.append(f"{case.operation.method.upper()} {case.operation.path}: {str(exc)[:400]}")

        run()
    figures["API cases fuzzed (schemathesis)"] = f"{cases} over {len(operations)} operations"
    figures["API 5xx found"] = server_errors
    assert len(operations) >= 12
    assert server_errors == 0 and failures == [], "\n\n".join(failures[:5])


# -- the sandbox API against raw hostile requests: what schemathesis cannot send --------------
# schemathesis generates from the OpenAPI document and sends well-formed JSON of valid Unicode.
# These requests are written as bytes instead: lone surrogates as JSON escapes (and as raw
# bytes), NUL, text at and past MAX_TEXT_LENGTH, nesting to 50,000 levels, whole numbers beyond
# ±2**63 and 2**64 and past Python's 4,300-digit limit, NaN and Infinity, bodies over the size
# limit, and the same in query strings and path ids, against every operation the sandbox documents.

_API_CHARS = st.one_of(
    st.characters(exclude_categories=()),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
    st.sampled_from(["\x00", ",", "\ufeff", "\ufffd", "\U0010ffff", "%", "&", "="]),
)
_API_BAD_CHARS = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()) | st.sampled_from(
    ["\x00", "\ud800", "\udfff"]
)
api_bad_text = st.builds(
    lambda head, bad, tail: head + bad + tail, st.text(_API_CHARS, max_size=8), _API_BAD_CHARS, st.text(_API_CHARS, max_size=8)
)
api_long_text = st.builds(
    lambda char, n: char * n, _API_CHARS, st.sampled_from([MAX_TEXT_LENGTH - 1, MAX_TEXT_LENGTH, MAX_TEXT_LENGTH + 1])
)
api_text = st.text(_API_CHARS, max_size=30) | api_bad_text | api_long_text
_API_INT_EDGES = [2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**70, -(2**63), -(2**63) - 1, -(2**64)]
api_edge_numbers = st.one_of(
    st.sampled_from(_API_INT_EDGES),
    st.integers(min_value=2**63, max_value=2**300),
    st.integers(min_value=-(2**300), max_value=-(2**63) - 1),
    st.sampled_from([math.nan, math.inf, -math.inf, 1.7e308]),
)
api_values = st.recursive(
    st.none() | st.booleans() | st.integers() | api_edge_numbers | st.floats() | api_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(api_text, inner, max_size=4),
    max_leaves=10,
)

#: A valid body per operation path, which the generated cases then spoil in one place. No
#: externalIdentifier: one body stored with it would make every later one a 409 duplicate.
_API_BASES = {
    "/api/v3/patient": make_patient(7, externalIdentifier=None, site={"name": "Clinic"}),
    "/api/v3/patient/{patientId}": make_patient(8, externalIdentifier=None, site={"name": "Clinic"}),
    "/api/v3/webhook": {"type": "patient.created", "url": "http://127.0.0.1:9/hook"},
    "/api/v3/webhook/{webhookId}": {"url": "http://127.0.0.1:9/moved"},
    "/api/v3/webhook-secret": {"secret": "fuzz-s3cret"},
}
_API_FIELDS = ["firstName", "lastName", "id", "externalIdentifier", "email", "dateOfBirth", "sex", "enrolled"]
_API_FIELDS += ["address.city", "address.zipCode", "site.id", "site.name", "site.address.country"]
_API_FIELDS += ["type", "url", "secret", "unknownField", "unknownField.deeper"]


def _api_spoiled(base: dict, path: str, value: object, escaped: bool) -> str:
    """``base`` as JSON text with ``value`` at the dotted ``path``: NaN and Infinity as the
    non-standard tokens json.dumps writes, lone surrogates as escapes or raw."""
    record = json.loads(json.dumps(base))
    target = record
    *parents, last = path.split(".")
    for part in parents:
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    target[last] = value
    return json.dumps(record, ensure_ascii=escaped)


def _api_with_raw(base: dict, name: str, raw: str) -> str:
    """``base`` as JSON text with the JSON text ``raw`` as its member ``name``."""
    rest = json.dumps({k: v for k, v in base.items() if k != name})[:-1]
    return f'{rest}{", " if len(rest) > 1 else ""}"{name}": {raw}}}'


def _api_nested(base: dict, name: str, levels: int, opener: str, inner: str, closed: bool) -> str:
    """``base`` with ``inner`` nested ``levels`` deep in member ``name`` (left open: not JSON)."""
    closer = {"[": "]", '{"k": ': "}", '["x", ': "]"}[opener]
    return _api_with_raw(base, name, opener * levels + inner + (closer * levels if closed else ""))


def _api_text_paths(record: dict, prefix: str = "") -> list[str]:
    """The dotted paths of a record's text (or null) fields, and of a member it does not have."""
    paths = [] if prefix else ["unknownField"]
    for key, value in record.items():
        if value is None or isinstance(value, str):
            paths.append(prefix + key)
        elif isinstance(value, dict):
            paths += _api_text_paths(value, f"{prefix}{key}.")
    return paths


def api_body_classes(path: str) -> dict[str, st.SearchStrategy[str]]:
    """Raw JSON bodies for the operation at ``path`` by class of hostility, each spoiling a
    valid body in one place (or replacing it)."""
    record = _API_BASES.get(path, {})
    base, fields, text_fields = st.just(record), st.sampled_from(_API_FIELDS), st.sampled_from(_api_text_paths(record))
    return {
        "Unicode": st.builds(_api_spoiled, base, text_fields, api_bad_text | api_long_text | api_text, st.booleans()),
        "numbers": st.builds(_api_spoiled, base, fields, api_edge_numbers, st.booleans())
        | st.builds(_api_with_raw, base, st.sampled_from(["id", "site"]), st.integers(4290, 20_000).map(lambda n: "-" + "9" * n)),
        "nesting": st.builds(
            _api_nested,
            base,
            st.sampled_from(["site", "address", "unknownField", "url", "firstName"]),
            st.sampled_from([MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 300, 600, 999, 1000, 5000, 50_000])
            | st.integers(1, 50_000),
            st.sampled_from(["[", '{"k": ', '["x", ']),
            st.sampled_from(["1", '"\\ud800"', "[]", str(2**70), "NaN"]),
            st.booleans() | st.just(True),
        ),
        "random JSON": st.builds(_api_spoiled, base, fields, api_values, st.booleans())
        | api_values.map(json.dumps)
        | st.builds(_api_spoiled, base, fields, st.just("x" * (MAX_BODY_BYTES + 1)), st.just(True)),
    }


# How JSON text goes on the wire: UTF-8, with a raw lone surrogate as its invalid three-byte
# form; or UTF-16, which is not UTF-8 at all.
_API_ENCODINGS = st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16"])

_API_TIMESTAMPS = st.builds(
    lambda day, offset: day + offset,
    st.sampled_from(["0001-01-01T00:00:00", "9999-12-31T23:59:59.999999", "0001-01-01", "9999-12-31"]),
    st.sampled_from(["", "Z", "+14:00", "-14:00", "+05:00", "-00:01"]),
)
_API_ALMOST_NUMBERS = st.sampled_from(["", "1,2", "١", "1_0", " 1", "+1", "1e3", "-0", "0x1", "1.0", "NaN", "Infinity"])


# Long query values in ASCII: the length is what matters, and requests percent-encodes a long
# non-ASCII URL one character at a time in Python, which would dominate the run time.
_API_QUERY_TEXT = st.one_of(
    st.text(_API_CHARS, max_size=30), api_bad_text, st.sampled_from([MAX_TEXT_LENGTH, MAX_TEXT_LENGTH + 1]).map("x".__mul__)
)


def _api_query_values(schema: dict) -> st.SearchStrategy[str]:
    """Hostile values for a query parameter with this JSON schema, and hostile text for any."""
    text = json.dumps(schema)
    if '"date' in text:
        typed = _API_TIMESTAMPS
    elif '"integer"' in text:
        typed = api_edge_numbers.map(str) | st.integers().map(str) | _API_ALMOST_NUMBERS
    else:
        typed = _API_ALMOST_NUMBERS
    return typed | _API_QUERY_TEXT


def api_queries(parameters: list[dict]) -> st.SearchStrategy[str]:
    """Query strings over an operation's parameters (repeated, too) and one it does not know;
    surrogates percent-encoded as their invalid UTF-8 bytes."""
    pairs = [st.tuples(st.just(p["name"]), _api_query_values(p.get("schema", {}))) for p in parameters if p["in"] == "query"]
    pairs.append(st.tuples(st.just("unknownParam"), _API_QUERY_TEXT))

    def encode(items: list[tuple[str, str]]) -> str:
        return "&".join(
            f"{quote(k, safe='', errors='surrogatepass')}={quote(v, safe='', errors='surrogatepass')}" for k, v in items
        )

    return st.lists(st.one_of(pairs), max_size=4).map(encode)


# Half the time an id that exists (the first patients and webhooks), so PUT and PATCH reach the store.
_API_PATH_IDS = st.sampled_from(["1", "2"]) | st.sampled_from(
    ["3", "0", "-1", str(2**63), str(2**64), "9" * 5000, "%00", "%ED%A0%80", "1,2", "1e3"]
)

#: The listings whose first pages hold whatever the last case may have stored.
_API_LISTINGS = [
    "/api/v3/patient?size=250",  # the low ids, which PUT and PATCH target
    "/api/v3/patient?size=250&sortDescending=true",  # the newest, which POST created
    "/api/v3/webhook",
    "/api/v3/webhook/logs?size=250",
]


def test_sandbox_answers_raw_hostile_requests_without_5xx(fuzz_sandbox, figures):
    spec = requests.get(fuzz_sandbox.url + "/openapi.json", timeout=10).json()
    operations = [(method.upper(), path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]
    counts = {"cases": 0, "2xx": 0, "4xx": 0, "5xx": 0}
    try:
        for method, path, operation in operations:
            fuzz_sandbox_operation(fuzz_sandbox, method, path, operation, counts)
    finally:
        figures["API raw hostile cases (hypothesis)"] = (
            f"{counts['cases']} over {len(operations)} operations ({counts['2xx']} accepted, {counts['4xx']} refused)"
        )
        figures["API raw hostile cases: 5xx"] = counts["5xx"]
    assert len(operations) >= 14 and counts["5xx"] == 0


def fuzz_sandbox_operation(sandbox, method: str, path: str, operation: dict, counts: dict[str, int]) -> None:
    """Generated raw requests to one operation, each class of body its share; an operation
    without a body gets twice the share if it has query parameters, else half (only its path id
    varies). Never a 5xx, and after each request every listing of patients and webhooks still
    answers 200."""
    session = requests.Session()
    headers = {"Impilo-API-Key": sandbox.api_key, "Content-Type": "application/json"}
    examples = size("sandbox_raw_fuzz_examples")
    classes = api_body_classes(path) if method in ("POST", "PUT", "PATCH") else {"query only": st.just("")}
    if "query only" in classes:
        has_query = any(p["in"] == "query" for p in operation.get("parameters", []))
        examples = examples * 2 if has_query else max(1, examples // 2)
    for texts in classes.values():

        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(texts, _API_ENCODINGS, api_queries(operation.get("parameters", [])), _API_PATH_IDS)
        def run(text, encoding, query, path_id):
            url = sandbox.url + re.sub(r"\{\w+\}", path_id, path) + (f"?{query}" if query else "")
            body = text.encode(encoding, "surrogatepass") if text else b""
            status = session.request(method, url, data=body, headers=headers, timeout=30).status_code
            counts["cases"] += 1
            counts["5xx" if status >= 500 else "4xx" if status >= 400 else "2xx"] += 1
            assert status < 500, (status, method, url[:300], body[:300])
            listed = {
                listing: session.get(sandbox.url + listing, headers=headers, timeout=30).status_code for listing in _API_LISTINGS
            }
            assert set(listed.values()) == {200}, (listed, "after", method, url[:300], body[:300])

        run()


@pytest.fixture(scope="module")
def fuzz_receiver(tmp_path_factory):
    with nb.WebhookReceiver(tmp_path_factory.mktemp("rx") / "log.db", secret="fuzz-secret") as receiver:
        yield receiver


# Every code point: st.characters() leaves the surrogates out unless they are asked for, and a
# JSON body can carry one as an escape ("\ud800"), which is exactly what needs testing. Lists,
# not st.text: text() merges the alphabet into one range, where 2,048 surrogates are rarely drawn.
any_char = st.characters() | st.characters(categories=["Cs"])
any_text = st.lists(any_char, max_size=20).map("".join)
# Every code point but the surrogates: what a valid body may hold, so some of them get stored.
valid_text = st.text(max_size=20)

# Integers at and beyond the edges: 32/53/64 bits (SQLite, pandas Int64), up to Python's
# 4,300-digit text conversion limit (the raw bodies in `long_numbers` go past it).
_EDGES = [2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**63 + 1, 2**64 - 1, 2**64, 2**70, 10**4299]
big_ints = st.one_of(
    st.integers(),
    st.sampled_from(_EDGES + [-edge for edge in _EDGES] + [-(2**63) - 1]),
    st.integers(min_value=2**63, max_value=2**300),
    st.integers(min_value=-(2**300), max_value=-(2**63) - 1),
)
# Ids as text: the log reads decimal strings as integers, so try every way to be almost one.
numeric_text = big_ints.map(str) | st.text(st.sampled_from("0123456789-+_. \t²٣४𝟗"), min_size=1, max_size=25)


def json_values(text):
    """Any JSON value whose strings and keys are drawn from ``text``."""
    scalars = st.none() | st.booleans() | big_ints | st.floats() | text | numeric_text
    return st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=12
    )


def envelopes(text):
    """Both envelope shapes, with ids, types and payloads (``payload.id`` often) of every kind."""
    values = json_values(text)
    payloads = st.builds(
        lambda extra, with_id: {**extra, **with_id},
        st.dictionaries(text, values, max_size=4),
        st.fixed_dictionaries({}, optional={"id": big_ints | numeric_text | values}),
    )
    return st.one_of(
        st.fixed_dictionaries(
            {"type": text | values}, optional={"id": big_ints | numeric_text | values, "payload": payloads | values}
        ),
        st.fixed_dictionaries({"event": text | values}, optional={"data": payloads | values}),
    )


# How a JSON value goes on the wire: escaped ASCII (lone surrogates as "\udXXX" escapes), raw
# UTF-8 (surrogates as their invalid three-byte forms), or UTF-16, which json.loads also detects.
_ENCODINGS = [
    lambda value: json.dumps(value).encode(),
    lambda value: json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"),
    lambda value: json.dumps(value, ensure_ascii=False).encode("utf-16", "surrogatepass"),
]


def encoded(values):
    return st.builds(lambda value, encode: encode(value), values, st.sampled_from(_ENCODINGS))


_OPENERS = {"list": ("[", "]"), "object": ('{"k": ', "}"), "list after an item": ('["x", ', "]"), "key": ('{"": 1, "v": ', "}")}
_PLACES = {
    "root": "{}",
    "payload": '{{"id": 1, "type": "fuzz.deep", "payload": {}}}',
    "payload.id": '{{"id": 1, "type": "fuzz.deep", "payload": {{"id": {}}}}}',
    "type": '{{"id": 2, "type": {}}}',
    "id": '{{"id": {}, "type": "fuzz.deep"}}',
    "guide data": '{{"event": "fuzz.deep", "data": {}}}',
    "a string": '"{}"',  # brackets that are no structure
    "a string in the payload": '{{"id": 3, "type": "fuzz.deep", "payload": {{"s": "{}"}}}}',
}


def _deep_body(levels: int, shape: list[str], place: str, closed: bool, inner: str) -> bytes:
    repeat = max(1, levels // len(shape))
    opens = "".join(_OPENERS[kind][0] for kind in shape) * repeat
    closes = "".join(_OPENERS[kind][1] for kind in reversed(shape)) * repeat if closed else ""
    return _PLACES[place].format(opens + inner + closes).encode()


deep_bodies = st.builds(
    _deep_body,
    levels=st.sampled_from([63, 64, 65, 999, 1000, 1001, 3000, 5000, 100_000]) | st.integers(1, 100_000),
    shape=st.lists(st.sampled_from(list(_OPENERS)), min_size=1, max_size=4),
    place=st.sampled_from(list(_PLACES)),
    closed=st.booleans() | st.just(True),
    inner=st.sampled_from(["1", '"\\ud800"', "[]", str(2**70), '"[[[{{{"']),
)

# Out-of-range integers in each place they are read (id, type, payload.id) and anywhere else;
# `long_numbers` are the ones json.dumps cannot even write (past 4,300 digits).
beyond_64_bits = st.one_of(
    st.sampled_from([2**63, 2**64, 2**70, -(2**63) - 1, -(2**70)]),
    st.integers(min_value=2**63),
    st.integers(max_value=-(2**63) - 1),
)
_anywhere = st.recursive(
    big_ints, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
)
big_int_envelopes = st.one_of(
    st.fixed_dictionaries({"id": beyond_64_bits | big_ints, "type": st.just("fuzz.int")}, optional={"payload": _anywhere}),
    st.fixed_dictionaries({"id": numeric_text, "type": st.just("fuzz.int")}),
    st.fixed_dictionaries({"id": st.integers(), "type": st.just("fuzz.int"), "payload": st.builds(dict, id=beyond_64_bits)}),
    st.fixed_dictionaries({"id": st.integers(), "type": big_ints | beyond_64_bits}),
    st.fixed_dictionaries({"type": st.just("fuzz.int"), "payload": _anywhere}),
)
long_numbers = st.builds(
    lambda digits, place: _PLACES[place].format("-" * (digits % 2) + "9" * digits).encode(),
    st.integers(4290, 20_000),
    st.sampled_from(list(_PLACES)),
)

# Header values requests will send: Latin-1, no CR/LF, no leading or trailing whitespace.
header_values = st.text(st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=40).map(str.strip)
# Framing headers are left to requests: a random Content-Length would desynchronise the connection.
_FRAMING = ("content-length", "transfer-encoding", "host", "connection", "expect")
header_names = st.sampled_from(["Impilo-Webhook-Secret", "Content-Type", "Content-Encoding", "Accept", "Impilo-API-Key"]) | (
    st.from_regex(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,20}", fullmatch=True).filter(lambda name: name.lower() not in _FRAMING)
)
headers = st.dictionaries(header_names, header_values, max_size=4)

bodies = st.binary(max_size=300) | st.lists(any_char, max_size=300).map(lambda c: "".join(c).encode("utf-8", "surrogatepass"))

valid_events = st.integers().map(lambda n: json.dumps({"id": n, "type": "fuzz.headers", "payload": {"id": n}}).encode())

#: One class of input each, as (bodies, headers, whether the right secret is sent); every class
#: gets its share of the examples and its own figure.
RECEIVER_FUZZ_CLASSES = {
    "random bytes and text": (bodies, st.just({}), st.just(True)),
    "envelopes, full Unicode incl. surrogates": (
        encoded(envelopes(valid_text) | envelopes(any_text) | json_values(any_text)),
        st.just({}),
        st.just(True),
    ),
    "deep nesting (to 100,000 levels)": (deep_bodies, st.just({}), st.just(True)),
    "integers beyond 64 bits / 4,300 digits": (encoded(big_int_envelopes) | long_numbers, st.just({}), st.just(True)),
    "random headers": (valid_events | bodies | encoded(envelopes(valid_text)), headers, st.booleans()),
}


def fuzz_one_class(receiver, session, name, strategies, examples) -> dict[str, int]:
    """Post ``examples`` generated requests of one class; 2xx or 4xx only, and every 2xx stored."""
    seen = {"2xx": 0, "4xx": 0}

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(*strategies)
    def run(body, extra_headers, with_secret):
        sent = {**extra_headers, **({"Impilo-Webhook-Secret": "fuzz-secret"} if with_secret else {})}
        response = session.post(receiver.url, data=body, headers=sent, timeout=30)
        assert 200 <= response.status_code < 500, (name, response.status_code, response.text[:300], body[:120], sent)
        if response.status_code < 300:  # a 2xx means committed: it is in the log already
            assert receiver.log.get(nb.eventlog.parse_delivery(body).event_id) is not None, (name, body[:120])
        seen["2xx" if response.status_code < 300 else "4xx"] += 1

    run()
    return seen


def test_receiver_answers_random_input_with_2xx_or_4xx_and_stays_up(fuzz_receiver, figures):
    session = requests.Session()
    per_class = max(20, size("receiver_fuzz_examples") // len(RECEIVER_FUZZ_CLASSES))
    refused = 0
    for name, strategies in RECEIVER_FUZZ_CLASSES.items():
        seen = fuzz_one_class(fuzz_receiver, session, name, strategies, per_class)
        refused += seen["4xx"]
        figures[f"receiver fuzz: {name}"] = f"{sum(seen.values())} ({seen['2xx']} accepted, {seen['4xx']} refused, 0 5xx)"
    health = session.get(fuzz_receiver.url.replace("/webhooks/impilo", "/health"), timeout=5)
    assert health.status_code == 200 and refused > 0
    log = fuzz_receiver.log
    assert len(log.frame()) == len(log) and not log.rejections().empty  # what was kept reads back


# Names that show something: a name of only spaces or invisible characters (a soft hyphen, a
# zero-width space) counts as missing (models.is_blank), so it would not round-trip.
names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=30).filter(
    lambda text: not is_blank(text)
)
addresses = st.fixed_dictionaries(
    {"lineOne": names, "city": names, "state": names, "zipCode": names, "country": names},
    optional={"lineTwo": names, "note": names},
)
patients = st.fixed_dictionaries(
    {"firstName": names, "lastName": names},
    optional={
        "id": st.integers(1, 2**63 - 1),
        "externalIdentifier": names,
        "phoneNumber": names,
        "dateOfBirth": st.dates(min_value=nb.models.EARLIEST_BIRTH_DATE, max_value=__import__("datetime").date(2020, 1, 1)),
        "sex": st.sampled_from(nb.models.SEX_VALUES),
        "enrolled": st.booleans(),
        "archived": st.booleans(),
        "address": addresses,
        "site": st.fixed_dictionaries({}, optional={"name": names, "active": st.booleans(), "address": addresses}),
        "email": st.from_regex(r"[a-z][a-z0-9]{0,6}([._][a-z0-9]{1,6})?@[a-z]{2,10}\.(org|com|io)", fullmatch=True),
    },
)


@settings(max_examples=200, deadline=None)
@given(patients)
def test_patients_round_trip_through_json(record):
    patient = nb.Patient.model_validate(record)
    again = nb.Patient.model_validate(json.loads(json.dumps(patient.to_api())))
    assert again == patient
    assert nb.Patient.from_api(json.loads(json.dumps(patient.to_api()))) == patient
