"""Write data/patients_sample.csv: 500 synthetic patients (no real people), some deliberately bad.

Deterministic (fixed seed), so re-running it reproduces the committed file. Columns use the
wire names that client.patients.frame() returns; externalIdentifier is left for the notebook
to derive from email + phone. Bad rows: missing names, impossible or badly written dates,
malformed emails, an unknown sex, missing emails (no identifier can be derived).
Usage: python scripts/make_sample_data.py
"""

import csv
import random
from pathlib import Path

FIRST = [
    "Ana",
    "Bruno",
    "Chen",
    "Dana",
    "Emeka",
    "Fatima",
    "Göran",
    "Hiro",
    "Ilse",
    "Jamal",
    "Kofi",
    "Lena",
    "Mateo",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoë",
]
LAST = [
    "Rivera",
    "Okafor",
    "Li",
    "Haddad",
    "Kowalski",
    "Nakamura",
    "Silva",
    "Müller",
    "Osei",
    "Petrov",
    "Garcia",
    "Nguyen",
    "Khan",
    "Larsen",
    "Moreau",
    "Rossi",
    "Sato",
    "Tanaka",
    "Walsh",
    "Yilmaz",
]
CITIES = [
    ("Springfield", "IL", "627"),
    ("Portland", "OR", "972"),
    ("Austin", "TX", "787"),
    ("Madison", "WI", "537"),
    ("Burlington", "VT", "054"),
    ("Boulder", "CO", "803"),
]
STREETS = ["Elm Road", "Oak Avenue", "Maple Street", "Cedar Lane", "Birch Way", "Pine Court"]
COLUMNS = [
    "firstName",
    "lastName",
    "dateOfBirth",
    "sex",
    "email",
    "phoneNumber",
    "enrolled",
    "address.lineOne",
    "address.city",
    "address.state",
    "address.zipCode",
    "address.country",
]

# Deliberate mistakes, applied to these row numbers.
BAD = {
    7: ("lastName", ""),
    41: ("firstName", ""),
    88: ("dateOfBirth", "1987-02-30"),
    123: ("dateOfBirth", "02/03/1987"),
    150: ("email", "x@"),
    199: ("email", "nobody.example.org"),
    230: ("sex", "f"),
    277: ("dateOfBirth", "2999-01-01"),
    301: ("email", ""),
    356: ("lastName", ""),
    402: ("email", "two@@example.org"),
    444: ("address.zipCode", ""),
}


def rows(count: int = 500, seed: int = 2026):
    rng = random.Random(seed)
    for n in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, state, zip_prefix = rng.choice(CITIES)
        row = {
            "firstName": first,
            "lastName": last,
            "dateOfBirth": f"{rng.randint(1935, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "sex": rng.choice(["female", "male", "other", "unknown"]),
            "email": f"{first.lower()}.{last.lower()}.{n}@example.org",
            "phoneNumber": f"+1 ({rng.randint(201, 989)}) 555-{rng.randint(0, 9999):04d}",
            "enrolled": rng.choice(["true", "false"]),
            "address.lineOne": f"{rng.randint(1, 999)} {rng.choice(STREETS)}",
            "address.city": city,
            "address.state": state,
            "address.zipCode": f"{zip_prefix}{rng.randint(0, 99):02d}",
            "address.country": "USA",
        }
        if n in BAD:
            column, value = BAD[n]
            row[column] = value
        yield row


if __name__ == "__main__":
    path = Path(__file__).resolve().parent.parent / "data" / "patients_sample.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows())
    print(f"wrote {path}")
