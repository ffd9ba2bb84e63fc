"""External identifiers derived from email and phone, as the patient-management guide shows.

The rule, exactly as the guide's Java and JavaScript snippets compute it:

    md5_hex( utf8( lower(email) + phone with every character except ASCII 0-9 removed ) )

- ``lower`` is Unicode lower-casing with no locale (Java's ``toLowerCase()`` in a non-Turkish
  locale, JavaScript's ``toLowerCase()``, Python's ``str.lower()``: they agree on every test
  vector, final sigma and dotted capital I included).
- Only ASCII digits survive in the phone. Java's ``\\D`` and JavaScript's ``/\\D/`` are ASCII-only;
  Python's ``\\D`` is Unicode-aware, so the guide's *Python* snippet keeps digits such as ``٣``
  or ``３`` and produces a different id for such phones. This module matches Java and JavaScript.
- Nothing is trimmed: a stray space changes the id (``id_hazards`` reports it).

``tests/data/external_id_vectors.tsv`` holds 260 pairs computed by the guide's own snippets.

**Plain or keyed?** A plain MD5 of email + phone is a pseudonym, not a secret: anyone who can
guess an email and a phone number can compute it and look the patient up. Use the plain form
when the id must match what another system computes from the guide. Where you choose the
scheme yourself, pass ``key=`` for HMAC-SHA256: without the key the id cannot be recomputed
from guessed inputs. Keep the key out of notebooks and version control.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from typing import Any

import pandas as pd

from .errors import FieldError, ValidationError

__all__ = ["external_id", "external_ids", "id_hazards", "id_hazards_frame"]

_NOT_ASCII_DIGIT = re.compile(r"[^0-9]")

#: Fewer ASCII digits than this in a phone number makes ids easy to guess or to collide.
MIN_PHONE_DIGITS = 7


def _key_bytes(key: str | bytes | None) -> bytes | None:
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, bytes) or len(key) < 16:
        raise ValidationError(
            "key", [FieldError("key", "A key must be at least 16 bytes (str or bytes); use secrets.token_hex(32).")]
        )
    return key


def _identifier_input(email: str, phone: str) -> bytes:
    return (email.lower() + _NOT_ASCII_DIGIT.sub("", phone)).encode("utf-8")


def external_id(email: str, phone: str, *, key: str | bytes | None = None) -> str:
    """The external identifier for one email and phone (see the module docstring).

    Args:
        email: used lower-cased, untrimmed.
        phone: only its ASCII digits are used.
        key: when given, HMAC-SHA256 with this key instead of plain MD5.

    Returns:
        32 lowercase hex characters (MD5), or 64 with a key.
    """
    for name, value in (("email", email), ("phone", phone)):
        if not isinstance(value, str):
            raise ValidationError("external_id", [FieldError(name, f"Must be a string, got {type(value).__name__}.")])
    data = _identifier_input(email, phone)
    secret = _key_bytes(key)
    if secret is not None:
        return hmac.new(secret, data, hashlib.sha256).hexdigest()
    return hashlib.md5(data).hexdigest()


def external_ids(
    emails: pd.Series | pd.DataFrame,
    phones: pd.Series | str | None = None,
    *,
    email_col: str | None = None,
    key: str | bytes | None = None,
) -> pd.Series:
    """External identifiers for whole columns: ``external_ids(df.email, df.phone)``.

    Or pass a DataFrame and the two column names: ``external_ids(df, "phone", email_col="email")``
    (the email column defaults to ``"email"``). A row with a missing email or phone gets a
    missing id (``<NA>``), never an exception. Returns a string Series aligned with the input.
    """
    if isinstance(emails, pd.DataFrame):
        frame = emails
        phone_col = phones if isinstance(phones, str) else "phone"
        email_col = email_col or "email"
        for col in (email_col, phone_col):
            if col not in frame.columns:
                raise ValidationError("external_ids", [FieldError(col, f"No such column; columns are {list(frame.columns)}.")])
        emails, phones = frame[email_col], frame[phone_col]
    if not isinstance(emails, pd.Series) or not isinstance(phones, pd.Series):
        raise ValidationError("external_ids", [FieldError(None, "Pass two Series, or a DataFrame and column names.")])
    if len(emails) != len(phones):
        raise ValidationError("external_ids", [FieldError(None, f"{len(emails)} emails but {len(phones)} phones.")])
    secret = _key_bytes(key)
    missing = emails.isna().to_numpy() | phones.isna().to_numpy()
    # Vectorised text work in pandas, then one tight loop for the hash (hashlib has no batch API).
    joined = emails.astype("string").str.lower() + phones.astype("string").str.replace(_NOT_ASCII_DIGIT, "", regex=True)
    values = joined.to_numpy(dtype=object, na_value=None)
    if secret is None:
        md5 = hashlib.md5
        digests = [None if m else md5(v.encode("utf-8")).hexdigest() for v, m in zip(values, missing, strict=True)]
    else:
        digests = [
            None if m else hmac.new(secret, v.encode("utf-8"), hashlib.sha256).hexdigest()
            for v, m in zip(values, missing, strict=True)
        ]
    return pd.Series(digests, index=emails.index, dtype="string", name="externalIdentifier")


def id_hazards(email: Any, phone: Any) -> list[str]:
    """Reasons the id for this email and phone may differ between systems, or be weak.

    An empty list means no known hazard. Each reason is a sentence a person can act on.
    """
    hazards: list[str] = []
    if not isinstance(email, str) or not email:
        hazards.append("The email is empty: every patient without one shares ids more easily.")
        email = ""
    if not isinstance(phone, str) or not phone:
        hazards.append("The phone is empty.")
        phone = ""
    if email != email.strip():
        hazards.append(
            "The email has leading or trailing spaces; the guide does not trim them, so other systems may see another id."
        )
    if phone != phone.strip():
        hazards.append("The phone has leading or trailing spaces (harmless to the id, but a sign of untidy data).")
    if email and not email.isascii():
        hazards.append(
            "The email has non-ASCII characters: lower-casing and encoding them depends on the platform "
            "(Java's getBytes() uses the platform charset, locales differ), so check the other system's id."
        )
    if "I" in email:
        hazards.append("The email has a capital I: Java in a Turkish locale lower-cases it to 'ı', giving another id.")
    other_digits = sorted({ch for ch in phone if unicodedata.category(ch) == "Nd" and not ("0" <= ch <= "9")})
    if other_digits:
        hazards.append(
            f"The phone has non-ASCII digits ({''.join(other_digits)}): Java and JavaScript drop them "
            "(as this toolkit does), the guide's Python snippet keeps them."
        )
    ascii_digits = len(_NOT_ASCII_DIGIT.sub("", phone))
    if phone and ascii_digits < MIN_PHONE_DIGITS:
        hazards.append(f"The phone has only {ascii_digits} ASCII digits: ids are easy to guess and may collide.")
    if email.strip() and not _looks_like_email(email.strip()):
        hazards.append("The email does not look like an email address.")
    return hazards


def id_hazards_frame(frame: pd.DataFrame, *, email_col: str = "email", phone_col: str = "phone") -> pd.DataFrame:
    """Hazards per row: the input's email and phone, ``hazard_count`` and ``hazards`` (joined text).

    Rows with no hazard have count 0 and an empty text, so ``result[result.hazard_count > 0]``
    lists the rows to look at.
    """
    for col in (email_col, phone_col):
        if col not in frame.columns:
            raise ValidationError("id_hazards_frame", [FieldError(col, f"No such column; columns are {list(frame.columns)}.")])
    found = [
        id_hazards(e if isinstance(e, str) else None, p if isinstance(p, str) else None)
        for e, p in zip(frame[email_col], frame[phone_col], strict=True)
    ]
    return pd.DataFrame(
        {
            email_col: frame[email_col],
            phone_col: frame[phone_col],
            "hazard_count": pd.Series([len(h) for h in found], index=frame.index, dtype="Int64"),
            "hazards": pd.Series([" | ".join(h) for h in found], index=frame.index, dtype="string"),
        }
    )


def _looks_like_email(text: str) -> bool:
    import email_validator

    try:
        email_validator.validate_email(text, check_deliverability=False)
    except email_validator.EmailNotValidError:
        return False
    return True
