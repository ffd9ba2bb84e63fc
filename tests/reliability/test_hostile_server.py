"""The client against generated hostile servers: random statuses, redirects within and across
origins, echoed secrets, wrong JSON shapes, bodies cut short, unreadable headers.

Whatever a server sends, the client must: raise only impilo_nb errors (never a pydantic,
requests or KeyError), never send the key to another origin, never show the key or the
webhook secret in an error, and never report a write done unless the server answered 2xx
with the record."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import impilo_nb as nb
from tests.hostile import HostileServer, raw
from tests.reliability.conftest import size

KEY = "hostile-fuzz-key-0123456789abcdef"
SECRET = "hostile-fuzz-secret-0123456789"
PATIENT = {"id": 7, "firstName": "Ana", "lastName": "Rivera"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
bodies = st.one_of(
    st.just(json.dumps(PATIENT).encode()),
    st.just(b""),
    st.binary(max_size=80),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.just(json.dumps(PATIENT).encode()),
    st.sampled_from([KEY, SECRET]).map(lambda s: json.dumps({"message": f"echo {s}", "fieldErrors": [{"field": s,
                                                                                                       "message": s}]}).encode()),
    st.sampled_from([KEY, SECRET]).map(lambda s: f"<html><title>{s}</title></html>".encode()),
    st.just(b'{"content": [1, "x", {"id": 7, "firstName": "A", "lastName": "B"}], "page": 1, "size": 3, "total": 3,'
            b' "first": true, "last": true}'),
)
answers = st.fixed_dictionaries(
    {
        "status": st.sampled_from([200, 201])
        | st.sampled_from([200, 201, 204, 301, 302, 303, 307, 308, 304, 400, 401, 404, 409, 429, 500, 502, 503])
        | st.integers(100, 599),
        "body": bodies,
        "location": st.sampled_from([None, "same", "other", "relative", "garbage"]),
        "retry_after": st.sampled_from([None, "0", "1.5", "soon", "-3", "nan", "Wed, 21 Oct 2015 07:28:00 GMT"]),
        "cut": st.sampled_from([False, False, False, True]),
    }
)
operations = st.sampled_from(["get", "create", "update", "patch", "list", "find", "hooks", "secret", "logs"])


def call(client: nb.ImpiloClient, operation: str):
    patients = client.patients
    return {
        "get": lambda: patients.get(7),
        "create": lambda: patients.create({"firstName": "Ana", "lastName": "Rivera"}),
        "update": lambda: patients.update(7, {"firstName": "Ana", "lastName": "Rivera"}),
        "patch": lambda: patients.patch(7, {"email": "a@example.org"}),
        "list": lambda: list(patients.list()),
        "find": lambda: patients.find_by_external_id("crm-1"),
        "hooks": lambda: list(client.webhooks.list()),
        "secret": lambda: client.webhook_secret.create(SECRET),
        "logs": lambda: client.webhooks.logs(),
    }[operation]()


def test_the_client_keeps_its_promises_against_any_server(figures):
    outcomes = {"returned": 0, "ImpiloError": 0}
    with HostileServer(lambda seen: raw(200, PATIENT)) as elsewhere:
        state: dict = {}

        def respond(seen):
            answer = state["answer"]
            if len(state.setdefault("sent", [])) > 8:  # a redirect loop: end it
                return raw(500, b"loop")
            state["sent"].append(seen)
            headers = {}
            location = {"same": state["url"] + "/api/v3/x", "other": elsewhere.url + "/steal", "relative": "/api/v3/y",
                        "garbage": "ht!tp://\x7f"}.get(answer["location"] or "")
            if location:
                headers["Location"] = location
            if answer["retry_after"]:
                headers["Retry-After"] = answer["retry_after"]
            body = answer["body"]
            return raw(answer["status"], body, headers=headers, length=len(body) + 50 if answer["cut"] else None)

        with HostileServer(respond) as api:
            state["url"] = api.url
            client = nb.ImpiloClient(base_url=api.url, api_key=KEY, max_retries=1, timeout=5)

            @settings(max_examples=size("hostile_server_cases"), deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(answers, operations)
            def run(answer, operation):
                state.update(answer=answer, sent=[])
                try:
                    result = call(client, operation)
                except nb.ImpiloError as exc:
                    outcomes["ImpiloError"] += 1
                    for text in (str(exc), repr(exc), getattr(exc, "message", "")):
                        assert KEY not in text and SECRET not in text, text
                else:
                    outcomes["returned"] += 1
                    # Success only on a 2xx whose record is real.
                    assert 200 <= answer["status"] < 300 or answer["location"] in ("same", "relative"), answer
                    if operation in ("create", "update", "patch", "get"):
                        assert result.id is not None
                assert all(s.headers.get("Impilo-API-Key") == KEY for s in state["sent"])

            run()
        assert elsewhere.seen == [], "a request went to another origin"
    total = sum(outcomes.values())
    figures["hostile-server cases (client)"] = (
        f"{total} ({outcomes['returned']} answered, {outcomes['ImpiloError']} impilo_nb errors, 0 other exceptions)"
    )
    figures["key sent to another origin"] = 0
    figures["secrets in client error texts"] = 0
