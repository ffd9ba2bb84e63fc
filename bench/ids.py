"""External identifiers: throughput, exactness and memory, against plain Python, in one run.

1. 1,000,000 rows (10% with a non-ASCII email): ``external_ids`` against two baselines measured
   in the same run on the same rows, best of ``--repeats`` rounds taken in turns:
   - the list comprehension a competent analyst writes with ``hashlib``
     (``[md5((e.lower() + re.sub(r"\\D", "", p)).encode()).hexdigest() for e, p in ...]``), goal >= 3x;
   - the guide's ``generate_md5_hash`` applied row by row with ``DataFrame.apply`` (on the first
     100,000 rows: it is that slow), goal >= 10x.
   Also ``external_ids``' peak traced memory against the input DataFrame's size (goal <= 2x).
2. Exactness: ``external_ids`` against the scalar ``external_id`` on every committed test vector
   and on 1,000,000 random Unicode pairs (ASCII, accented, Greek sigma, Turkish I, CJK, emoji,
   astral letters, non-ASCII digits, empty, longer than one MD5 block, missing).
3. The ``hash`` CLI on a 2,000,000-row CSV in a separate process: rows/s and peak RSS, against
   the file's size (bounded memory means peak RSS well below the file size).

Only ratios are goals: absolute rows/s depend on the machine and on what else it is running.

Usage: python bench/ids.py [--rows 1000000] [--repeats 3] [--unicode-rows 1000000] [--csv-rows 2000000]
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

from impilo_nb import external_id, external_ids

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "data" / "external_id_vectors.tsv"


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


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def line(label: str, rate: float, note: str = "") -> None:
    print(f"   {label:<47}{rate:>12,.0f} rows/s   {note}".rstrip())


def throughput(rows: int, repeats: int) -> None:
    frame = sample(rows)
    input_bytes = frame.memory_usage(deep=True).sum()
    emails, phones = frame["email"].tolist(), frame["phone"].tolist()
    md5, sub = hashlib.md5, re.sub

    def listed():
        return [md5((e.lower() + sub(r"\D", "", p)).encode()).hexdigest() for e, p in zip(emails, phones, strict=True)]

    # Best of several rounds, the two taking turns: on a shared machine a round can lose the CPU
    # for a while, and the best round is the one closest to what the code itself costs.
    fast_seconds = list_seconds = float("inf")
    for _ in range(repeats):
        ids, seconds = timed(lambda: external_ids(frame["email"], frame["phone"]))
        fast_seconds = min(fast_seconds, seconds)
        baseline, seconds = timed(listed)
        list_seconds = min(list_seconds, seconds)
    assert ids.tolist() == baseline, "results differ"

    # DataFrame.apply is two orders of magnitude slower: it runs on a slice of the rows.
    part = frame.iloc[: min(rows, 100_000)]
    applied, apply_seconds = timed(lambda: part.apply(lambda row: generate_md5_hash(row["email"], row["phone"]), axis=1))
    assert applied.tolist() == baseline[: len(part)], "results differ"

    # Memory in a separate run: tracing every allocation slows the code several times over.
    tracemalloc.start()
    external_ids(frame["email"], frame["phone"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    fast, listing, applying = rows / fast_seconds, rows / list_seconds, len(part) / apply_seconds
    print(f"1. {rows:,} rows, best of {repeats} rounds (same ids from all three)")
    line("external_ids", fast)
    line("list comprehension with hashlib and re.sub", listing, f"ratio {fast / listing:.1f}x (goal >= 3x)")
    line("the guide's function with DataFrame.apply [*]", applying, f"ratio {fast / applying:.0f}x (goal >= 10x)")
    print(f"   [*] on the first {len(part):,} rows, once")
    print(
        f"   peak traced memory of external_ids {peak / 2**20:,.0f} MiB; input DataFrame {input_bytes / 2**20:,.0f} MiB; "
        f"ratio {peak / input_bytes:.2f} (goal <= 2)"
    )


def random_text(rng: random.Random, kind: str, digits: bool) -> str:
    """One email-ish or phone-ish value of the given kind (see ``exactness``)."""
    if kind == "ascii":
        return f"+1 ({rng.randint(200, 999)}) {rng.randint(100, 9999)}" if digits else f"User.{rng.randint(0, 10**6)}@Example.org"
    if kind == "empty":
        return ""
    if kind == "long":  # past one MD5 block
        return "".join(rng.choice("ABCxyz.-0123456789éΣ") for _ in range(rng.randint(40, 120)))
    if kind == "tricky":  # case mappings that change length or depend on context; non-ASCII digits
        pieces = ["İ", "I", "ẞ", "ß", "Σ", "ΟΔΥΣΣΕΑΣ", "ǅ", "ŉ", "Ꭰ", "Ა", "𐐀", "ﬃ", "٣", "３", "७", "𝟘", " ", "-", "7"]
        return "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
    # "any": code points from the whole range, surrogates left out (str.encode refuses them)
    return "".join(
        chr(rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0xD7FF), rng.randint(0xE000, 0x10FFFF)]))
        for _ in range(rng.randint(0, 20))
    )


def random_unicode_pairs(rows: int, seed: int) -> tuple[list[str | None], list[str | None]]:
    rng = random.Random(seed)
    kinds = ["ascii"] * 6 + ["empty", "long", "tricky", "tricky", "any", "any"]
    emails: list[str | None] = [None if rng.random() < 0.01 else random_text(rng, rng.choice(kinds), False) for _ in range(rows)]
    phones: list[str | None] = [None if rng.random() < 0.01 else random_text(rng, rng.choice(kinds), True) for _ in range(rows)]
    return emails, phones


def exactness(rows: int) -> None:
    vectors = pd.read_csv(VECTORS, sep="\t", comment="#", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    assert external_ids(vectors["email"], vectors["phone"]).tolist() == vectors["java_javascript"].tolist()
    emails, phones = random_unicode_pairs(rows, seed=14)
    got, seconds = timed(lambda: external_ids(pd.Series(emails, dtype=object), pd.Series(phones, dtype=object)))
    expected = [None if e is None or p is None else external_id(e, p) for e, p in zip(emails, phones, strict=True)]
    got_list = [None if pd.isna(value) else value for value in got.tolist()]
    wrong = sum(g != x for g, x in zip(got_list, expected, strict=True))
    non_ascii = sum(not (e or "").isascii() or not (p or "").isascii() for e, p in zip(emails, phones, strict=True))
    print(f"\n2. Exactness: all {len(vectors)} committed vectors equal; {rows:,} random Unicode pairs")
    print(f"   ({non_ascii:,} with non-ASCII text): {wrong} differ from external_id (goal 0); {rows / seconds:,.0f} rows/s")
    assert wrong == 0, f"{wrong} ids differ from the scalar path"


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
        print(f"\n3. CLI on a {rows:,}-row CSV ({size / 2**20:,.0f} MiB), separate process")
        print(f"   {done.stdout.strip()}")
        print(f"   wall time {seconds:.1f} s including start-up; compare peak RSS with the file size above")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--unicode-rows", type=int, default=1_000_000)
    parser.add_argument("--csv-rows", type=int, default=2_000_000)
    args = parser.parse_args()
    throughput(args.rows, args.repeats)
    exactness(args.unicode_rows)
    cli_on_large_csv(args.csv_rows)


if __name__ == "__main__":
    main()
