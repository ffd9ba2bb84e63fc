"""The sandbox's state in one SQLite file: patients (and, later, webhooks and their log).

Records are stored as the JSON the API returns; filters read them with SQLite's JSON functions.
One connection behind a lock: the sandbox is for one analyst, so simplicity beats concurrency.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DuplicateExternalIdentifier", "PatientQuery", "SandboxStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    external_identifier TEXT UNIQUE,
    data TEXT NOT NULL
);
"""

_SORT_COLUMNS = {
    "firstName": "lower(json_extract(data, '$.firstName'))",
    "lastName": "lower(json_extract(data, '$.lastName'))",
    "patientId": "id",
}


class DuplicateExternalIdentifier(Exception):
    """Another patient already has this external identifier."""

    def __init__(self, external_identifier: str, existing_id: int):
        self.external_identifier = external_identifier
        self.existing_id = existing_id
        super().__init__(f"externalIdentifier {external_identifier!r} is already used by patient {existing_id}")


@dataclass
class PatientQuery:
    """The List Patients filters, already parsed (see impilo-api.md §2.4)."""

    ids: Sequence[int] = ()
    site_ids: Sequence[int] = ()
    external_identifiers: Sequence[str] = ()
    email: str | None = None
    name: str | None = None
    archived: bool | None = None
    enrolled: bool | None = None
    date_of_birth_min: str | None = None
    date_of_birth_max: str | None = None
    postal_code: str | None = None
    country: str | None = None
    sort: str = "patientId"
    sort_descending: bool = False

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []

        def any_of(column: str, values: Sequence[Any]) -> None:
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            args.extend(values)

        if self.ids:
            any_of("id", self.ids)
        if self.site_ids:
            any_of("json_extract(data, '$.site.id')", self.site_ids)
        if self.external_identifiers:
            any_of("external_identifier", self.external_identifiers)
        if self.email is not None:
            clauses.append("lower(json_extract(data, '$.email')) = lower(?)")
            args.append(self.email)
        if self.name:
            # Case-insensitive substring of "first last" (the docs leave matching open).
            clauses.append(
                "lower(json_extract(data, '$.firstName') || ' ' || json_extract(data, '$.lastName')) LIKE ? ESCAPE '\\'"
            )
            escaped = self.name.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{escaped}%")
        for flag, value in (("archived", self.archived), ("enrolled", self.enrolled)):
            if value is not None:
                clauses.append(f"coalesce(json_extract(data, '$.{flag}'), 0) = ?")
                args.append(int(value))
        if self.date_of_birth_min:
            clauses.append("json_extract(data, '$.dateOfBirth') >= ?")
            args.append(self.date_of_birth_min)
        if self.date_of_birth_max:
            clauses.append("json_extract(data, '$.dateOfBirth') <= ?")
            args.append(self.date_of_birth_max)
        if self.postal_code is not None:
            clauses.append("json_extract(data, '$.address.zipCode') = ?")
            args.append(self.postal_code)
        if self.country is not None:
            clauses.append("lower(json_extract(data, '$.address.country')) = lower(?)")
            args.append(self.country)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args

    def order_by(self) -> str:
        direction = "DESC" if self.sort_descending else "ASC"
        column = _SORT_COLUMNS[self.sort]
        return f" ORDER BY {column} {direction}, id {direction}"


class SandboxStore:
    """Patients in a SQLite file, safe to call from the server's worker threads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create_patient(self, data: dict[str, Any]) -> dict[str, Any]:
        """Store a new patient (``data`` without id); return it with its id."""
        with self._lock:
            self._check_unique(data.get("externalIdentifier"), None)
            cursor = self._db.execute(
                "INSERT INTO patients (external_identifier, data) VALUES (?, '{}')", (data.get("externalIdentifier"),)
            )
            record = {"id": cursor.lastrowid, **{k: v for k, v in data.items() if k != "id"}}
            self._db.execute("UPDATE patients SET data = ? WHERE id = ?", (json.dumps(record), record["id"]))
            return record

    def get_patient(self, patient_id: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM patients WHERE id = ?", (patient_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def replace_patient(self, patient_id: int, data: dict[str, Any]) -> tuple[dict[str, Any], bool] | None:
        """Replace a patient's record; return (record, changed) or None when it does not exist."""
        with self._lock:
            old = self.get_patient(patient_id)
            if old is None:
                return None
            record = {**data, "id": patient_id}
            self._check_unique(record.get("externalIdentifier"), patient_id)
            self._db.execute(
                "UPDATE patients SET external_identifier = ?, data = ? WHERE id = ?",
                (record.get("externalIdentifier"), json.dumps(record), patient_id),
            )
            return record, record != old

    def list_patients(self, query: PatientQuery, *, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
        """One page (1-based) of matching patients, and the total count of matches."""
        where, args = query.where()
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM patients{where}", args).fetchone()[0]
            rows = self._db.execute(
                f"SELECT data FROM patients{where}{query.order_by()} LIMIT ? OFFSET ?", [*args, size, (page - 1) * size]
            ).fetchall()
        return [json.loads(row[0]) for row in rows], total

    def _check_unique(self, external_identifier: str | None, own_id: int | None) -> None:
        if external_identifier is None:
            return
        row = self._db.execute("SELECT id FROM patients WHERE external_identifier = ?", (external_identifier,)).fetchone()
        if row and row[0] != own_id:
            raise DuplicateExternalIdentifier(external_identifier, row[0])
