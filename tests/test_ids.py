import csv
import hashlib
import hmac
import io
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import impilo_nb as nb
from impilo_nb import _md5, ids
from impilo_nb.errors import ValidationError
from impilo_nb.ids import external_id, external_ids, hash_csv

VECTORS = Path(__file__).parent / "data" / "external_id_vectors.tsv"


def load_vectors() -> pd.DataFrame:
    return pd.read_csv(VECTORS, sep="\t", comment="#", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)


def reference(email: str, phone: str) -> str:
    """An independent reimplementation of the guide's Java/JavaScript rule."""
    kept = "".join(ch for ch in phone if ch in "0123456789")
    return hashlib.new("md5", bytes(email.lower() + kept, "utf-8")).hexdigest()


def test_there_are_enough_varied_vectors():
    vectors = load_vectors()
    assert len(vectors) >= 200
    assert (vectors["email"] == "").any() and (vectors["phone"] == "").any()
    assert vectors["email"].str.contains(r"[^\x00-\x7f]").any() and vectors["phone"].str.contains(r"[٠-٩]").any()
    assert (vectors["email"] != vectors["email"].str.strip()).any()


def test_every_vector_matches_java_and_javascript():
    vectors = load_vectors()
    got = [nb.external_id(e, p) for e, p in zip(vectors["email"], vectors["phone"], strict=True)]
    assert got == vectors["java_javascript"].tolist()


def test_vectorised_matches_the_vectors_too():
    vectors = load_vectors()
    assert nb.external_ids(vectors["email"], vectors["phone"]).tolist() == vectors["java_javascript"].tolist()


def test_the_guides_python_snippet_differs_only_on_non_ascii_digits():
    vectors = load_vectors()
    differs = vectors[vectors["java_javascript"] != vectors["guide_python"]]
    assert len(differs) > 0
    assert all(any(ch.isdigit() and not ch.isascii() for ch in phone) for phone in differs["phone"])


def test_guide_example():
    assert nb.external_id("example@example.com", "(123) 456-7890") == hashlib.md5(b"example@example.com1234567890").hexdigest()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.text(max_size=25))
def test_matches_an_independent_reimplementation(email, phone):
    expected = reference(email, phone)
    assert nb.external_id(email, phone) == expected
    assert nb.external_ids(pd.Series([email]), pd.Series([phone])).iloc[0] == expected


#: Pieces of text whose normalisation is easy to get wrong: case mappings that change the length
#: (İ, ẞ, ǅ, ŉ, ﬃ) or depend on the neighbours (Σ), letters outside the BMP (𐐀), scripts without
#: case (CJK), emoji with joiners, digits that are not ASCII (٣ ３ ७ 𝟘), the separator the
#: vectorised path joins with (NUL), and plain ASCII.
TRICKY = ["İ", "I", "ẞ", "ß", "Σ", "ΟΔΥΣΣΕΑΣ", "ǅ", "ŉ", "ﬃ", "Ꭰ", "Ა", "𐐀", "王小明", "👩‍⚕️", "٣", "３", "७", "𝟘", "\x00"]


def random_value(rng: random.Random, phone: bool) -> str | None:
    kind = rng.choice(["ascii", "ascii", "ascii", "accented", "tricky", "any", "long", "empty", "missing"])
    if kind == "ascii":
        return (
            f"+44 ({rng.randint(100, 999)}) {rng.randint(0, 10**6)}" if phone else f"Ana.Rivera{rng.randint(0, 999)}@Example.ORG"
        )
    if kind == "accented":
        return rng.choice(["+١ ٥٥٥ 0100", "０１２ 555"]) if phone else rng.choice(["Jörg@Örnek.DE", "ÉLODIE@exemple.fr"])
    if kind == "tricky":
        return "".join(rng.choice(TRICKY) for _ in range(rng.randint(1, 6)))
    if kind == "any":  # any code point but a surrogate (which str.encode refuses)
        return "".join(
            chr(rng.choice([rng.randint(1, 0xD7FF), rng.randint(0xE000, 0x10FFFF)])) for _ in range(rng.randint(1, 12))
        )
    if kind == "long":  # past one 64-byte MD5 block
        return "".join(rng.choice("AbC.-@0123456789é王") for _ in range(rng.randint(30, 90)))
    return "" if kind == "empty" else None


def test_vectorised_ids_equal_the_scalar_path_on_random_unicode():
    rng = random.Random(20_000)
    emails = [random_value(rng, phone=False) for _ in range(20_000)]
    phones = [random_value(rng, phone=True) for _ in range(20_000)]
    got = nb.external_ids(pd.Series(emails, dtype=object), pd.Series(phones, dtype=object)).tolist()
    expected = [pd.NA if e is None or p is None else nb.external_id(e, p) for e, p in zip(emails, phones, strict=True)]
    assert got == expected
    assert sum(not (e or "").isascii() for e in emails) > 5_000 and sum(id_ is pd.NA for id_ in got) > 3_000


def test_a_capital_sigma_at_either_end_of_an_email_is_lowered_as_on_its_own():
    # The vectorised path lowers a whole batch at once; Σ's lower case depends on its neighbours
    # (final ς or medial σ), also across case-ignorable characters (' and U+0301), so the rows
    # around it must not change it.
    emails = pd.Series(["ΑΣ", "Β", "Σ", "ΑΣ'", "'Β", "ΑΣ\u0301", "\u0301Σ", "ΟΔΥΣΣΕΑΣ@x.gr", "aΣ@b.org", "ΣA"])
    phones = pd.Series(["1"] * len(emails))
    expected = [reference(e, p) for e, p in zip(emails, phones, strict=True)]
    assert "ΑΣΒ".lower()[:2] != "ΑΣ".lower()  # the neighbour would matter if they were one text
    assert nb.external_ids(emails, phones).tolist() == expected


def test_an_email_with_hundreds_of_non_ascii_bytes_is_still_lowered():
    # 128 capital É are 256 UTF-8 bytes: a count of them kept in one byte would wrap to 0.
    emails = pd.Series(["É" * 128 + "@X.org", "Ö" * 300, "A@b.org"])
    phones = pd.Series(["1", "2", "3"])
    assert nb.external_ids(emails, phones).tolist() == [reference(e, p) for e, p in zip(emails, phones, strict=True)]


def test_a_value_holding_the_separator_is_hashed_as_typed():
    # The vectorised path joins values with NUL; a batch with a NUL inside a value goes value by value.
    emails = pd.Series(["a\x00@b.org", "Plain@Example.org", "\x00"])
    phones = pd.Series(["5\x005", "+1 555", "\x00"])
    expected = [reference(e, p) for e, p in zip(emails, phones, strict=True)]
    assert nb.external_ids(emails, phones).tolist() == expected
    assert nb.external_ids(emails, pd.Series(["1", "2", "3"])).iloc[0] == reference("a\x00@b.org", "1")
    assert nb.external_ids(pd.Series(["a", "b", "c"]), phones).iloc[0] == reference("a", "5\x005")


def test_a_lone_surrogate_in_a_phone_is_dropped_like_any_other_non_digit():
    # Text read with errors="surrogateescape" can hold one; neither path may fail on it or keep it.
    phones = pd.Series(["55\udcff5", "1"])
    assert nb.external_ids(pd.Series(["a@b.org", "c@d.org"]), phones).iloc[0] == reference("a@b.org", "555")
    assert nb.external_id("a@b.org", "55\udcff5") == reference("a@b.org", "555")


def test_ids_at_every_message_length_around_one_md5_block():
    # 55 bytes is the longest message one 64-byte block holds; 56 and up take hashlib.
    emails = pd.Series(["E" * n for n in range(70)] + ["é" * n for n in range(40)])
    phones = pd.Series(["1-2" * (n % 5) for n in range(110)])
    expected = [reference(e, p) for e, p in zip(emails, phones, strict=True)]
    assert nb.external_ids(emails, phones).tolist() == expected


def test_batches_and_chunks_keep_every_row_in_place(monkeypatch):
    monkeypatch.setattr(ids, "CHUNK_ROWS", 7)
    monkeypatch.setattr(_md5, "BATCH_ROWS", 3)
    frame = pd.DataFrame(
        {"email": [f"U{n}@X.org" for n in range(40)], "phone": [str(n) for n in range(40)]}, index=range(100, 140)
    )
    frame.loc[[105, 120], "phone"] = None
    result = nb.external_ids(frame, "phone")
    assert result.index.equals(frame.index) and result.isna().sum() == 2
    assert result[139] == reference("U39@X.org", "39") and result[106] == reference("U6@X.org", "6")


def test_the_input_columns_are_left_untouched():
    emails = pd.Series(["A@b.org", None, np.nan], dtype=object)
    phones = pd.Series(["1", "2", "3"], dtype="string")
    nb.external_ids(emails, phones)
    assert emails.iloc[1] is None and np.isnan(emails.iloc[2]) and phones.tolist() == ["1", "2", "3"]


def test_the_md5_engine_matches_hashlib_on_random_bytes_split_anywhere():
    rng = random.Random(5)
    messages = [rng.randbytes(n) for n in range(130)] + [rng.randbytes(rng.randint(0, 70)) for _ in range(3_000)]
    cuts = [rng.randint(0, len(m)) for m in messages]
    heads, tails = [m[:c] for m, c in zip(messages, cuts, strict=True)], [m[c:] for m, c in zip(messages, cuts, strict=True)]
    # The heads back to back; the tails with junk between them, which must never be read.
    heads_part = _md5.Pieces.back_to_back(b"".join(heads), np.array([len(h) for h in heads], dtype=np.int64))
    padded = [b"junk" + t for t in tails]
    starts = np.cumsum([0] + [len(p) for p in padded[:-1]]) + 4
    tails_part = _md5.Pieces(b"".join(padded), starts, np.array([len(t) for t in tails], dtype=np.int64))
    assert _md5.hexdigests([heads_part, tails_part], len(messages)) == [hashlib.md5(m).hexdigest() for m in messages]
    assert _md5.hexdigests([_md5.Pieces.back_to_back(b"", np.zeros(0, dtype=np.int64))], 0) == []


def test_the_md5_engine_refuses_pieces_that_do_not_fit():
    with pytest.raises(ValueError, match="for 3 rows"):
        _md5.hexdigests([_md5.Pieces.back_to_back(b"ab", np.array([1, 1], dtype=np.int64))], 3)
    with pytest.raises(ValueError, match="outside its 2 bytes"):
        _md5.hexdigests([_md5.Pieces(b"ab", np.array([0, 1]), np.array([1, 2]))], 2)


def test_missing_values_give_a_missing_id_never_an_error():
    ids = nb.external_ids(pd.Series(["a@b.org", None, "c@d.org", pd.NA]), pd.Series([None, "123", "456", "7"]))
    assert ids.isna().tolist() == [True, True, False, True]
    assert ids.iloc[2] == nb.external_id("c@d.org", "456") and str(ids.dtype) == "string"


def test_numbers_are_refused_by_both_functions_naming_the_rows_and_the_fix():
    # read_csv without dtype=str turns "4295559847" into 4295559847.0: its id would be silently wrong.
    frame = pd.read_csv(io.StringIO("email,phone\na@b.org,4295559847\nc@d.org,\ne@f.org,5550100123\n"))
    assert frame["phone"].dtype == "float64"
    with pytest.raises(nb.ValidationError) as caught:
        nb.external_ids(frame["email"], frame["phone"])
    (problem,) = caught.value.field_errors
    assert problem.field == "phone" and "2 of 3" in problem.message
    assert "row 0: 4295559847.0 (a number)" in problem.message and "row 2: 5550100123.0" in problem.message
    assert "dtype=str" in problem.message and "leading zeros" in problem.message
    with pytest.raises(nb.ValidationError) as caught:
        nb.external_id("a@b.org", 4295559847.0)
    assert caught.value.field_errors[0].field == "phone" and "dtype=str" in str(caught.value)


def test_a_stray_number_among_text_is_refused_too_and_emails_are_checked_alike():
    emails = pd.Series(["a@b.org", 7, None], index=["x", "y", "z"], name="mail")
    phones = pd.Series(["555", b"555", np.int64(5550100)], index=["x", "y", "z"], dtype=object)
    with pytest.raises(nb.ValidationError) as caught:
        nb.external_ids(emails, phones)
    problems = {fe.field: fe.message for fe in caught.value.field_errors}
    assert "row 'y': 7 (a number)" in problems["mail"]
    assert "row 'y': b'555' (bytes)" in problems["phone"] and "row 'z': 5550100 (a number)" in problems["phone"]
    with pytest.raises(nb.ValidationError):
        nb.external_id(7, "555")


def test_missing_values_of_any_kind_stay_missing_whatever_the_column_type():
    ids = nb.external_ids(pd.Series(["a@b.org", "c@d.org", "e@f.org"]), pd.Series([np.nan, pd.NaT, "1"], dtype=object))
    assert ids.isna().tolist() == [True, True, False]
    all_missing = nb.external_ids(pd.Series(["a@b.org"]), pd.Series([np.nan]))  # float64, like an empty CSV column
    assert all_missing.isna().all()
    categories = pd.Series(["555", None], dtype="category")
    assert nb.external_ids(pd.Series(["a@b.org", "a@b.org"]), categories).tolist() == [nb.external_id("a@b.org", "555"), pd.NA]


def test_dataframe_form_and_index_alignment():
    frame = pd.DataFrame({"mail": ["A@b.org", "c@d.org"], "phone": ["1", "2"]}, index=[10, 20])
    ids = nb.external_ids(frame, "phone", email_col="mail")
    assert ids.index.tolist() == [10, 20] and ids[10] == nb.external_id("A@b.org", "1")
    with pytest.raises(nb.ValidationError):
        nb.external_ids(frame, "telephone", email_col="mail")


def test_series_with_different_indexes_are_refused_not_paired_by_position():
    emails = pd.Series(["a@b.org", "c@d.org"], index=[0, 1])
    phones = pd.Series(["5550001", "5550002"], index=[1, 0])  # phones.sort_values() or another frame's column
    with pytest.raises(nb.ValidationError, match="different indexes"):
        nb.external_ids(emails, phones)
    aligned = nb.external_ids(emails, phones.reindex(emails.index))
    assert aligned.tolist() == [nb.external_id("a@b.org", "5550002"), nb.external_id("c@d.org", "5550001")]


def test_bad_arguments_are_clear():
    with pytest.raises(nb.ValidationError):
        nb.external_id(None, "1")
    with pytest.raises(nb.ValidationError, match="Is missing"):
        nb.external_id("a@b.org", float("nan"))
    with pytest.raises(nb.ValidationError):
        nb.external_ids(pd.Series(["a"]), pd.Series(["1", "2"]))


def test_keyed_mode_is_hmac_sha256():
    key = "k" * 32
    expected = hmac.new(key.encode(), b"a@b.org123", hashlib.sha256).hexdigest()
    assert nb.external_id("A@b.org", "1-2-3", key=key) == expected
    assert nb.external_ids(pd.Series(["A@b.org"]), pd.Series(["1-2-3"]), key=key).iloc[0] == expected
    assert nb.external_id("A@b.org", "1-2-3", key=key) != nb.external_id("A@b.org", "1-2-3", key="j" * 32)
    with pytest.raises(nb.ValidationError):
        nb.external_id("a", "1", key="short")


@pytest.mark.parametrize(
    ("email", "phone", "words"),
    [
        ("", "5550100123", "email is empty"),
        ("a@b.org", "", "phone is empty"),
        (" a@b.org", "5550100123", "leading or trailing spaces"),
        ("jörg@b.org", "5550100123", "non-ASCII characters"),
        ("Ian@b.org", "5550100123", "Turkish"),
        ("a@b.org", "٥٥٥٠١٠٠", "non-ASCII digits (٠١٥)"),
        ("a@b.org", "12-34", "only 4 ASCII digits"),
        ("not-an-email", "5550100123", "does not look like an email"),
    ],
)
def test_hazards(email, phone, words):
    assert any(words in hazard for hazard in nb.id_hazards(email, phone))


def test_a_clean_pair_has_no_hazard():
    assert nb.id_hazards("ana.rivera@example.org", "+1 (555) 010-0100") == []


def test_hazards_frame_reports_per_row():
    frame = pd.DataFrame({"email": ["ok@example.org", " bad@example.org", None], "phone": ["5550100123", "5550100123", "1"]})
    report = nb.id_hazards_frame(frame)
    assert report["hazard_count"].tolist()[0] == 0 and report["hazard_count"].tolist()[1] == 1
    assert report["hazard_count"].tolist()[2] >= 2 and "email is empty" in report["hazards"].iloc[2]


def write_csv(path: Path, rows: int) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "email", "phone"])
        for n in range(rows):
            writer.writerow([n, f"User{n}@Example.org" if n % 10 else "", f"0{n:09d}"])


def test_hash_csv_streams_in_chunks_and_keeps_every_column(tmp_path):
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_csv(source, 2500)
    summary = hash_csv(source, out, chunk_rows=1000, progress=False)
    assert (summary.rows, summary.missing) == (2500, 250)
    result = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(result.columns) == ["id", "email", "phone", "externalIdentifier"] and len(result) == 2500
    assert result.loc[1, "phone"] == "0000000001"  # read as text: leading zeros kept
    assert result.loc[1, "externalIdentifier"] == nb.external_id("User1@Example.org", "0000000001")
    assert result.loc[0, "externalIdentifier"] == ""  # empty email: no id


def test_hash_csv_hashes_the_text_in_the_file_even_where_pandas_would_see_numbers(tmp_path):
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text("email,phone\na@b.org,4295559847\nc@d.org,\ne@f.org,00441234567\n")
    assert pd.read_csv(source)["phone"].dtype == "float64"  # what an untyped read would hash
    assert hash_csv(source, out, progress=False).missing == 1
    ids = pd.read_csv(out, dtype=str, keep_default_na=False)["externalIdentifier"].tolist()
    assert ids == [nb.external_id("a@b.org", "4295559847"), "", nb.external_id("e@f.org", "00441234567")]


def test_hash_csv_refuses_bad_input(tmp_path):
    with pytest.raises(nb.ValidationError):
        hash_csv(tmp_path / "missing.csv", tmp_path / "out.csv")
    source = tmp_path / "in.csv"
    write_csv(source, 3)
    with pytest.raises(nb.ValidationError):
        hash_csv(source, source)
    with pytest.raises(nb.ValidationError):
        hash_csv(source, tmp_path / "out.csv", phone_col="tel")


def test_hash_command_line(tmp_path):
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_csv(source, 50)
    done = subprocess.run(
        [sys.executable, "-m", "impilo_nb", "hash", "--in", str(source), "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "50 rows (5 without an id)" in done.stdout and "peak RSS" in done.stdout
    assert len(pd.read_csv(out)) == 50


def test_hash_command_line_keyed_reads_the_key_from_the_environment(tmp_path):
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_csv(source, 3)
    env = {"PATH": "/usr/bin:/bin", "MY_KEY": "k" * 32}
    subprocess.run(
        [sys.executable, "-m", "impilo_nb", "hash", "--in", str(source), "--out", str(out), "--quiet", "--key-env", "MY_KEY"],
        check=True,
        env=env,
        capture_output=True,
    )
    assert pd.read_csv(out, dtype=str)["externalIdentifier"].iloc[1] == nb.external_id(
        "User1@Example.org", "0000000001", key="k" * 32
    )
    missing = subprocess.run(
        [sys.executable, "-m", "impilo_nb", "hash", "--in", str(source), "--out", str(out), "--key-env", "NOT_SET"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "NOT_SET" in missing.stderr



@pytest.mark.parametrize("email, phone", [("a\ud800@x.org", "555"), ("\udc80", "5")])
def test_an_email_that_is_not_valid_unicode_is_refused_naming_the_row(email, phone):
    with pytest.raises(ValidationError) as one:
        external_id(email, phone)
    assert "lone surrogate" in str(one.value)
    with pytest.raises(ValidationError) as many:
        external_ids(pd.Series(["ok@x.org", email], index=[10, 11]), pd.Series(["1", phone], index=[10, 11]))
    assert "row 11" in str(many.value) and "row 10" not in str(many.value)


EVERYDAY = Path(__file__).parent / "data" / "patients_everyday.csv"
SAMPLE = Path(__file__).parent.parent / "data" / "patients_sample.csv"


def test_hash_csv_finds_the_columns_by_name_and_keeps_the_files_separator_and_encoding(tmp_path):
    out = tmp_path / "out.csv"
    assert hash_csv(EVERYDAY, out, progress=False).rows == 6  # ';', BOM, "E-mail" and "Phone" headers
    written = out.read_bytes()
    assert written.startswith(b"\xef\xbb\xbfFirst Name;Surname;") and written.count(b"\xef\xbb\xbf") == 1
    result = nb.bulk.read_csv(out)
    assert result.attrs["sep"] == ";" and result.loc[4, "Notes"] == "moved in May;\nnew address confirmed"
    assert result.loc[2, "externalIdentifier"] == nb.external_id("zoe.muller@example.org", "+1 (802) 555-0143")


def test_hash_csv_reads_the_api_names_of_the_projects_own_sample(tmp_path):
    out = tmp_path / "out.csv"
    assert hash_csv(SAMPLE, out, progress=False).rows == 500
    first = pd.read_csv(out, dtype=str, keep_default_na=False).iloc[0]
    assert first["externalIdentifier"] == nb.external_id(first["email"], first["phoneNumber"])


@pytest.mark.parametrize(
    ("header", "kwargs", "words"),
    [
        ("email,fax", {}, "no phone column; its columns are: email, fax; pass phone_col='NAME' (on the command line: --phone"),
        ("email,Phone,Mobile", {}, "has 2 phone columns (Phone, Mobile); pass phone_col='NAME'"),
        ("mail_addr,phone", {}, "has no email column; its columns are: mail_addr, phone"),
        ("email,phone", {"phone_col": "tel"}, "has no column 'tel'; its columns are: email, phone."),
    ],
)
def test_hash_csv_column_errors_name_the_file_and_its_columns_before_any_progress_bar(tmp_path, capsys, header, kwargs, words):
    source = tmp_path / "in.csv"
    source.write_text(header + "\n" + ",".join(["x"] * (header.count(",") + 1)) + "\n")
    with pytest.raises(ValidationError) as caught:
        hash_csv(source, tmp_path / "out.csv", progress=True, **kwargs)
    assert words in str(caught.value) and str(source) in str(caught.value) and "hash_csv is not valid" not in str(caught.value)
    assert "hashing" not in capsys.readouterr().err and not (tmp_path / "out.csv").exists()


def test_hash_csv_an_explicit_phone_column_wins_over_two_candidates(tmp_path):
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text("email;Phone;Mobile\na@b.org;555 0100;555 0199\n")
    hash_csv(source, out, phone_col="Mobile", progress=False)
    assert nb.bulk.read_csv(out).loc[2, "externalIdentifier"] == nb.external_id("a@b.org", "555 0199")


# --- Hostile and careless input to hash_csv (attack on issue 15) ----------------------------


def test_hash_csv_refuses_rows_one_cell_wider_instead_of_shifting_every_cell(tmp_path):
    # pandas would take the first column for an index: the email read from the phone's cell.
    source = tmp_path / "wide.csv"
    source.write_text("email,phone\nana@example.org,555 0100,extra\n")
    out = tmp_path / "out.csv"
    with pytest.raises(ValidationError, match="more cells than the header's 2 names"):
        hash_csv(source, out, progress=False)
    assert not out.exists()  # no half-written copy left behind


@pytest.mark.parametrize(
    ("destination", "words"),
    [("missing/out.csv", "does not exist; create it first"), (".", "is a folder; give a file name")],
)
def test_hash_csv_says_where_it_cannot_write_before_reading(tmp_path, destination, words):
    source = tmp_path / "in.csv"
    source.write_text("email,phone\nana@example.org,5550100\n")
    with pytest.raises(ValidationError, match=words):
        hash_csv(source, tmp_path / destination, progress=False)


@pytest.mark.parametrize("chunk_rows", [0, -5, True, 2.5])
def test_hash_csv_refuses_a_chunk_size_that_is_not_a_positive_whole_number(tmp_path, chunk_rows):
    source = tmp_path / "in.csv"
    source.write_text("email,phone\nana@example.org,5550100\n")
    with pytest.raises(ValidationError, match="chunk_rows: Rows per chunk must be a whole number"):
        hash_csv(source, tmp_path / "out.csv", chunk_rows=chunk_rows, progress=False)


def test_hash_csv_refuses_an_encoding_the_file_is_not_in_naming_the_line(tmp_path):
    source = tmp_path / "in.csv"
    source.write_bytes("email,phone\nJosé@example.org,5550100\n".encode("cp1252"))
    for encoding in ("utf-8", "utf-16"):
        with pytest.raises(ValidationError, match=f"line \\d is not {encoding}"):
            hash_csv(source, tmp_path / "out.csv", encoding=encoding, progress=False)


def test_hash_csv_obeys_and_skips_excels_sep_line(tmp_path):
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text("sep=;\nE-mail;Mobile\nana@example.org;555 0100\n")
    assert hash_csv(source, out, progress=False).rows == 1
    expected = external_id("ana@example.org", "555 0100")
    assert out.read_text().splitlines() == ["E-mail;Mobile;externalIdentifier", f"ana@example.org;555 0100;{expected}"]


def test_hash_csv_sees_a_hard_link_to_the_input_as_the_input(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("email,phone\nana@example.org,5550100\n")
    (tmp_path / "link.csv").hardlink_to(source)
    with pytest.raises(ValidationError, match="is the input file itself"):
        hash_csv(source, tmp_path / "link.csv", progress=False)
    assert source.read_text() == "email,phone\nana@example.org,5550100\n"


def test_hash_csv_interrupted_midway_leaves_no_half_written_copy(tmp_path, monkeypatch):
    source = tmp_path / "in.csv"
    source.write_text("email,phoneNumber\n" + "".join(f"p{n}@example.org,555-01{n:02d}\n" for n in range(30)))
    calls = []

    def interrupted(emails, phones, secret):  # Ctrl-C while the second chunk is hashed
        calls.append(len(emails))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return [None] * len(emails)

    monkeypatch.setattr(nb.ids, "_hash_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        nb.ids.hash_csv(source, tmp_path / "out.csv", chunk_rows=10, progress=False)
    assert len(calls) == 2 and not (tmp_path / "out.csv").exists()
