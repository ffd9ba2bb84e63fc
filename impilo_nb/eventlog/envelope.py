"""What a webhook delivery body may hold, and its two envelopes read into one event.

Both envelope shapes are accepted and normalised into one schema:

- Impilo's ``{"id": 57638473, "type": "patient.updated", "payload": {...}}``;
- the patient guide's ``{"event": "patient.updated", "data": {...}}``, which has no event id:
  its id is derived from the body's bytes, so an identical redelivery still de-duplicates.

Event ids are integers of at most 64 bits. An id that is not one (a string such as
``"evt_abc"``, or an integer beyond 64 bits) becomes the first 60 bits of the SHA-256 of its
text, which is stable and fits the column, so such an event is kept and a retry of it still
de-duplicates. Only ASCII digits with an optional leading minus read as an integer.

What a body may hold is checked in one place, ``parse_delivery`` (which ``EventLog.record_body``,
and so the receiver, goes through; your own app calling it gets the same protection). Refusals
raise ``InvalidDeliveryError`` with the HTTP status to answer and a reason naming where:

- nesting deeper than ``MAX_DEPTH`` levels of arrays and objects (the envelope is the first;
  an Impilo event uses four): 400, checked before parsing, so neither parsing, storing nor
  flattening into a frame can run into Python's recursion limit;
- a lone surrogate (``"\\ud800"`` without the other half of its UTF-16 pair) in any string or
  key: 400 ``lone surrogate (invalid Unicode) at payload.name``. It is not a character, cannot
  be stored or shown as UTF-8 text, so nothing faithful can be kept;
- an integer of more than ``MAX_INT_DIGITS`` digits: 400 (converting it would cost seconds).

A payload ``id`` beyond 64 bits leaves ``resource_id`` null; other integers beyond 64 bits
are kept as they are (in the stored JSON, and as Python ints in an object column of ``frame()``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidDeliveryError

__all__ = ["MAX_DEPTH", "InvalidDeliveryError", "NormalisedEvent", "normalise_delivery", "parse_delivery"]

#: Deepest nesting of arrays and objects a body may have, the envelope being level 1. Far below
#: Python's recursion limit (1000), which parsing, re-encoding and flattening all recurse against.
MAX_DEPTH = 64

#: Longest integer accepted in a body, in digits: Python's own default for text-to-int
#: conversion, whose cost grows with the square of the length.
MAX_INT_DIGITS = 4300

#: A 64-bit signed integer's range (SQLite's INTEGER, PostgreSQL's bigint): ids must fit it.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# A JSON string (what is inside it is not structure); with one bracket, a token of structure.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_TOKENS = re.compile(_STRING.pattern + r"|[\[\]{}]", re.DOTALL)
_NOT_BRACKET_BYTES = bytes(byte for byte in range(256) if byte not in b"[]{}")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_BYTE_DEPTH_STEP = {ord(char): step for char, step in _DEPTH_STEP.items()}
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Where a lone surrogate could come from in JSON text: itself (raw), or a \uD800-\uDFFF escape.
_SURROGATE_SOURCE = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")
_LONG_DIGITS = re.compile(f"[0-9]{{{MAX_INT_DIGITS + 1}}}")
_INT_LIMIT = 10**MAX_INT_DIGITS
_DECIMAL = re.compile(r"-?[0-9]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class NormalisedEvent:
    """A delivery in the log's one schema, whichever envelope it came in.

    Checked on construction, so ``record`` can bind it to SQLite whoever built it.
    """

    event_id: int
    type: str
    payload: Any
    resource_id: int | None
    envelope: str
    #: The order key for "newest": the envelope's own integer id (ids rise over time,
    #: docs/api-decisions.md#ordering); None when the id had to be derived from a hash.
    position: int | None = None

    def __post_init__(self) -> None:
        if not _is_int64(self.event_id):
            raise InvalidDeliveryError(422, f"event_id must be an integer of at most 64 bits, got {_preview(self.event_id)}.")
        if self.resource_id is not None and not _is_int64(self.resource_id):
            raise InvalidDeliveryError(422, f"resource_id must be None or a 64-bit integer, got {_preview(self.resource_id)}.")
        if not isinstance(self.type, str) or not self.type.strip():
            raise InvalidDeliveryError(422, f"The event type must be a non-empty string, got {_preview(self.type)}.")
        _check_values(self.type, ("type",))


def _is_int64(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX


def _preview(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters: reasons are stored, and a field may hold a megabyte."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's decimal conversion limit
        return f"an integer of {value.bit_length()} bits" if isinstance(value, int) else type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hash_id(text: str | bytes) -> int:
    data = text.encode() if isinstance(text, str) else text
    return int(hashlib.sha256(data).hexdigest()[:15], 16)


def _as_int(value: Any) -> int | None:
    """A 64-bit integer, from an int or from ASCII decimal text; None for anything else."""
    if isinstance(value, str):
        text = value.strip()
        digits = text.lstrip("-").lstrip("0") or "0"  # int() refuses over 4,300 digits, leading zeros too
        if not _DECIMAL.fullmatch(text) or len(digits) > 19:
            return None
        value = -int(digits) if text.startswith("-") else int(digits)
    return value if _is_int64(value) else None


def _event_id(raw_id: Any, body: bytes | str) -> int:
    """The stored id: the integer itself, else the hash of its text (of the body when there is none)."""
    if raw_id is None:
        return _hash_id(body)
    as_int = _as_int(raw_id)
    return as_int if as_int is not None else _hash_id(str(raw_id))


def _where(path: tuple[str | int, ...]) -> str:
    """A readable, ASCII-only location such as ``payload.tags[2]`` or ``payload["a b"]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and _NAME.fullmatch(part):
            text += f".{part}" if text else part
        else:
            key = str(part)
            shown = json.dumps(key[:40] + ("..." if len(key) > 40 else ""))  # escapes surrogates, controls
            text += f"[{shown}]"
    return text or "the top level"


def _check_depth(text: str) -> None:
    """Refuse JSON text nesting deeper than ``MAX_DEPTH`` before it is parsed: the parser recurses.

    Brackets inside strings do not count. Up to the parser's first error (where it stops) the
    count is exactly its depth; after it, the count only adds refusals of text that is no JSON.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    # UTF-8 never uses an ASCII byte inside a multi-byte character, so deleting bytes is safe.
    brackets = _STRING.sub("", text).encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKET_BYTES)
    if max(itertools.accumulate(map(_BYTE_DEPTH_STEP.__getitem__, brackets)), default=0) <= MAX_DEPTH:
        return
    depth = 0
    for token in _TOKENS.finditer(text):  # again, one token at a time, only to say where
        char = token.group()
        depth += _DEPTH_STEP.get(char, 0)
        if depth > MAX_DEPTH:
            raise InvalidDeliveryError(
                400,
                f"The body nests arrays and objects more than {MAX_DEPTH} levels deep (level {depth} opens at"
                f" character {token.start()}). Send at most {MAX_DEPTH} levels; an Impilo event needs four.",
            )


def _check_values(data: Any, root: tuple[str | int, ...] = ()) -> None:
    """Refuse nesting past ``MAX_DEPTH``, lone surrogates in any string or key and integers
    past ``MAX_INT_DIGITS`` digits, naming where.

    Iterative, so data of any depth is walked safely (it may come from a caller, not the parser).
    """
    if isinstance(data, str) and (found := _SURROGATE.search(data)):
        raise _lone_surrogate(found.group(), root, in_key=False)
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, root)] if isinstance(data, (dict, list)) else []
    while stack:
        value, path = stack.pop()
        if len(path) - len(root) >= MAX_DEPTH:
            reason = f"The body nests arrays and objects more than {MAX_DEPTH} levels deep, at {_where(path)}."
            raise InvalidDeliveryError(400, reason)
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            if isinstance(key, str) and not key.isascii() and (found := _SURROGATE.search(key)):
                raise _lone_surrogate(found.group(), (*path, key), in_key=True)
            if isinstance(item, str):
                if not item.isascii() and (found := _SURROGATE.search(item)):
                    raise _lone_surrogate(found.group(), (*path, key), in_key=False)
            elif isinstance(item, int) and not -_INT_LIMIT < item < _INT_LIMIT:
                raise InvalidDeliveryError(400, f"An integer of more than {MAX_INT_DIGITS} digits at {_where((*path, key))}.")
            elif isinstance(item, (dict, list)):
                stack.append((item, (*path, key)))


def _lone_surrogate(char: str, path: tuple[str | int, ...], *, in_key: bool) -> InvalidDeliveryError:
    escape = f"\\u{ord(char):04x}"
    return InvalidDeliveryError(
        400,
        f"lone surrogate (invalid Unicode) at {_where(path)}{' (in the key)' if in_key else ''}: {escape} is one half of"
        " a UTF-16 pair without the other, so it is no character and cannot be stored as text."
        " Send the character itself, or both halves of its pair (such as \\ud83d\\ude00).",
    )


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise InvalidDeliveryError(
            400, f"The body holds an integer of {len(digits.lstrip('-'))} digits; at most {MAX_INT_DIGITS} are accepted."
        )
    return int(digits)


def parse_delivery(body: bytes | str) -> NormalisedEvent:
    """Parse, check and normalise a raw delivery body: the one gate in front of the log.

    ``InvalidDeliveryError`` (400/422) says what is wrong and where; see the module docstring for
    what is refused and why. ``EventLog.record_body`` stores only what passes.
    """
    try:
        # What json.loads does with bytes (UTF-8, -16 or -32), done here to check the text first.
        text = body if isinstance(body, str) else body.decode(json.detect_encoding(body), "surrogatepass")
    except UnicodeDecodeError as exc:
        raise InvalidDeliveryError(400, f"The body is not JSON: it is not UTF-8 text ({exc}).") from None
    _check_depth(text)
    try:
        # A Python call per integer costs; only text with a long run of digits needs the check.
        data = json.loads(text, parse_int=_parse_int if _LONG_DIGITS.search(text) else None)
    except InvalidDeliveryError:
        raise
    except ValueError as exc:
        raise InvalidDeliveryError(400, f"The body is not JSON: {exc}.") from None
    if _SURROGATE_SOURCE.search(text) and not _is_valid_unicode(data):
        _check_values(data)  # finds the lone surrogate and says where
    return _normalise(data, body)


def _is_valid_unicode(data: Any) -> bool:
    """Whether every string and key encodes as UTF-8: one pass in C, where walking costs per value."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # keeps surrogates as they are, so encode() fails
    except UnicodeEncodeError:
        return False
    return True


def normalise_delivery(data: Any, body: bytes) -> NormalisedEvent:
    """Read either envelope shape into a ``NormalisedEvent``; ``InvalidDeliveryError`` if neither fits.

    ``data`` is the parsed body; it is checked as ``parse_delivery`` checks it (depth, lone
    surrogates), so parsed data from anywhere is safe to record.
    """
    _check_values(data)
    return _normalise(data, body)


def _normalise(data: Any, body: bytes | str) -> NormalisedEvent:
    if not isinstance(data, dict):
        raise InvalidDeliveryError(400, f"Expected a JSON object, got a JSON {type(data).__name__}.")
    position = None
    if "type" in data:
        type_, payload, envelope = data["type"], data.get("payload"), "impilo"
        event_id = _event_id(data.get("id"), body)
        position = _as_int(data.get("id"))
    elif "event" in data:
        type_, payload, envelope = data["event"], data.get("data"), "guide"
        event_id = _hash_id(body)
    else:
        raise InvalidDeliveryError(422, "No event type: expected a 'type' (or the guide's 'event') field.")
    resource_id = _as_int(payload.get("id")) if isinstance(payload, dict) else None
    return NormalisedEvent(event_id, type_, payload, resource_id, envelope, position)
