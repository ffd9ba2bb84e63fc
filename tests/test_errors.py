import json

import pytest
import requests

from impilo_nb import errors


def fake_response(status: int, body: str, content_type: str = "application/json", headers: dict | None = None):
    response = requests.Response()
    response.status_code = status
    response._content = body.encode()
    response.headers.update({"Content-Type": content_type, **(headers or {})})
    response.reason = {400: "Bad Request", 404: "Not Found", 502: "Bad Gateway", 418: "I'm a teapot"}.get(status, "")
    request = requests.Request("POST", "https://api.test/api/v3/patient").prepare()
    response.request = request
    return response


def test_json_error_body_gives_message_field_errors_and_request_id():
    body = json.dumps(
        {
            "status": 400,
            "error": "Bad Request",
            "message": "Validation failed.",
            "fieldErrors": [{"field": "firstName", "message": "required"}],
        }
    )
    err = errors.error_from_response(fake_response(400, body, headers={"X-Request-Id": "req_1"}))
    assert isinstance(err, errors.BadRequestError)
    assert (err.status_code, err.message, err.request_id) == (400, "Validation failed.", "req_1")
    assert err.field_errors == [errors.FieldError("firstName", "required")]
    assert str(err).startswith("Request req_1: 400 Validation failed. (POST https://api.test/api/v3/patient)")
    assert "firstName: required" in str(err)


def test_html_error_page_gives_its_title():
    page = "<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"
    err = errors.error_from_response(fake_response(502, page, "text/html"))
    assert isinstance(err, errors.InternalServerError)
    assert err.message == "502 Bad Gateway"


def test_plain_text_and_empty_bodies():
    assert errors.error_from_response(fake_response(404, "no such thing", "text/plain")).message == "no such thing"
    empty = errors.error_from_response(fake_response(404, ""))
    assert isinstance(empty, errors.NotFoundError) and empty.message == "Not Found"


def test_long_text_is_shortened():
    err = errors.error_from_response(fake_response(400, "x" * 5000, "text/plain"))
    assert len(err.message) == errors.MAX_MESSAGE_CHARS


def test_401_says_what_to_do():
    err = errors.error_from_response(fake_response(401, '{"message": "Invalid key"}'))
    assert isinstance(err, errors.AuthenticationError) and "IMPILO_API_KEY" in str(err)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
        (409, errors.ConflictError),
        (422, errors.UnprocessableEntityError),
        (429, errors.RateLimitError),
        (500, errors.InternalServerError),
        (503, errors.InternalServerError),
        (418, errors.APIStatusError),
    ],
)
def test_each_status_has_its_class(status, cls):
    assert type(errors.error_from_response(fake_response(status, "{}"))) is cls


def test_tree():
    assert issubclass(errors.APITimeoutError, errors.APIConnectionError)
    assert issubclass(errors.APIConnectionError, errors.APIError)
    assert issubclass(errors.APIStatusError, errors.APIError)
    assert issubclass(errors.APIError, errors.ImpiloError)
    assert issubclass(errors.ValidationError, (errors.ImpiloError, ValueError))
    assert issubclass(errors.ConfigurationError, (errors.ImpiloError, ValueError))
