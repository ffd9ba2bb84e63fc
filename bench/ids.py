"""External identifiers: throughput and memory, against the guide's own Python, in one run.

1. 1,000,000 rows: ``external_ids`` against the guide's ``generate_md5_hash`` applied row by row
   with ``DataFrame.apply`` (what an analyst would write first). Prints rows/s for each, the
   ratio (goal: at least 10x), and ``external_ids``' peak traced memory against the input
   DataFrame's size (goal: at most 2x).
2. The ``hash`` CLI on a 2,000,000-row CSV in a separate process: rows/s and peak RSS, against
   the file's size (bounded memory means peak RSS well below the file size).

Usage: python bench/ids.py [--rows 1000000] [--csv-rows 2000000]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
import re
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import pandas as pd

from impilo_nb import external_ids


def generate_md5_hash(email, phone):  # the guide's Python snippet, verbatim
    phone = re.sub(r"\D", "", phone)
    input_string = email.lower() + phone
    hash_object = hashlib.md5(input_string.encode())
    return hash_object.hexdigest()


def sample(rows: int, seed: int = 7) -> pd.DataFrame:
    rng = random.Random(seed)
    first = ["ana", "bruno", "chen", "dana", "emeka", "fatima", "göran", "hiro", "ilse", "jamal"]
    domains = ["example.org", "Example.com", "mail.example.net", "clinic.example"]
    emails = [f"{rng.choice(first).title()}.{n}@{rng.choice(domains)}" for n in range(rows)]
    phones = [f"+1 ({rng.randint(200, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}" for _ in range(rows)]
    return pd.DataFrame({"email": emails, "phone": phones})


def vectorised_vs_apply(rows: int) -> None:
    frame = sample(rows)
    input_bytes = frame.memory_usage(deep=True).sum()

    started = time.perf_counter()
    ids = external_ids(frame["email"], frame["phone"])
    fast_seconds = time.perf_counter() - started

    # Memory in a second run: tracing every allocation slows the code several times over.
    tracemalloc.start()
    external_ids(frame["email"], frame["phone"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    started = time.perf_counter()
    guide = frame.apply(lambda row: generate_md5_hash(row["email"], row["phone"]), axis=1)
    slow_seconds = time.perf_counter() - started

    assert (guide.to_numpy() == ids.to_numpy()).all(), "results differ"
    fast, slow = rows / fast_seconds, rows / slow_seconds
    print(f"1. {rows:,} rows (same ids from both)")
    print(f"   external_ids                                  {fast:>12,.0f} rows/s")
    print(f"   guide's function with DataFrame.apply(axis=1) {slow:>12,.0f} rows/s")
    print(f"   ratio {fast / slow:.1f}x (goal >= 10x)")
    print(
        f"   peak traced memory of external_ids {peak / 2**20:,.0f} MiB; input DataFrame {input_bytes / 2**20:,.0f} MiB; "
        f"ratio {peak / input_bytes:.2f} (goal <= 2)"
    )


def cli_on_large_csv(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source, out = Path(tmp) / "patients.csv", Path(tmp) / "ids.csv"
        rng = random.Random(11)
        with open(source, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["patient_ref", "email", "phone", "city"])
            for n in range(rows):
                writer.writerow([f"P{n:08d}", f"user{n}@example.org", f"0{rng.randint(10**8, 10**9 - 1)}", "Springfield"])
        size = source.stat().st_size
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "impilo_nb", "hash", "--in", str(source), "--out", str(out), "--quiet"],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds = time.perf_counter() - started
        print(f"\n2. CLI on a {rows:,}-row CSV ({size / 2**20:,.0f} MiB), separate process")
        print(f"   {done.stdout.strip()}")
        print(f"   wall time {seconds:.1f} s including start-up; compare peak RSS with the file size above")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--csv-rows", type=int, default=2_000_000)
    args = parser.parse_args()
    vectorised_vs_apply(args.rows)
    cli_on_large_csv(args.csv_rows)


if __name__ == "__main__":
    main()
