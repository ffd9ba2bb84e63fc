"""read_csv and suggest_columns (impilo_nb/_csvfiles.py, reached as nb.bulk.*): files as people have them."""

import codecs
import warnings
from pathlib import Path

import pandas as pd
import pytest

import impilo_nb as nb
from impilo_nb import _csvfiles
from impilo_nb.bulk import ColumnMapping, read_csv, suggest_columns

DATA = Path(__file__).parent / "data"
EVERYDAY = DATA / "patients_everyday.csv"  # ';', UTF-8 with a BOM, CRLF, a quoted cell over two lines
EVERYDAY_CP1252 = DATA / "patients_everyday_cp1252.csv"
SAMPLE = Path(__file__).parent.parent / "data" / "patients_sample.csv"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_each_separator_is_detected_and_recorded(tmp_path, sep):
    source = write(tmp_path / "p.csv", sep.join(["firstName", "phone", "zip"]) + "\n" + sep.join(["Ana", "007", "05470"]) + "\n")
    frame = read_csv(source)
    assert list(frame.columns) == ["firstName", "phone", "zip"] and frame.attrs["sep"] == sep
    assert frame.loc[2, "phone"] == "007" and frame.loc[2, "zip"] == "05470"  # text: leading zeros kept


def test_the_everyday_file_reads_with_line_numbers_and_its_format(tmp_path):
    frame = read_csv(EVERYDAY)
    assert frame.attrs["sep"] == ";" and frame.attrs["encoding"] == "utf-8-sig"
    assert frame.columns[0] == "First Name"  # the BOM is not part of the first header
    # Line 4 holds a note over two lines (4 and 5), so the next row is on line 6.
    assert frame.index.name == "line" and frame.index.tolist() == [2, 3, 4, 6, 7, 8]
    assert frame.loc[4, "Notes"] == "moved in May;\nnew address confirmed"
    assert frame.loc[3, "Notes"] == "interpreter: Spanish; bring forms"
    assert frame.loc[2, "Surname"] == "Müller" and frame.loc[2, "Zip"] == "05401"
    assert pd.isna(frame.loc[7, "Surname"]) and pd.isna(frame.loc[6, "Notes"])  # only empty cells are missing


def test_a_cp1252_file_is_read_as_cp1252_with_a_warning_naming_the_fallback():
    with pytest.warns(UserWarning, match="read as cp1252"):
        frame = read_csv(EVERYDAY_CP1252)
    assert frame.attrs["encoding"] == "cp1252" and frame.loc[3, "First Name"] == "José"
    assert frame.equals(read_csv(EVERYDAY)) and frame.index.tolist() == [2, 3, 4, 6, 7, 8]


def test_utf16_with_a_bom_is_read_too(tmp_path):
    source = tmp_path / "excel.txt"
    source.write_bytes(codecs.BOM_UTF16_LE + "Email\tPhone\r\nzoë@example.org\t555 0100\r\n".encode("utf-16-le"))
    frame = read_csv(source)
    assert frame.attrs == {"path": str(source), "sep": "\t", "encoding": "utf-16"} and frame.loc[2, "Email"] == "zoë@example.org"


def test_blank_lines_are_skipped_and_still_counted(tmp_path):
    source = write(tmp_path / "p.csv", "a,b\n1,2\n\n   \n3,4\n")
    frame = read_csv(source)
    assert frame.index.tolist() == [2, 5] and frame["a"].tolist() == ["1", "3"]


def test_an_explicit_separator_and_encoding_win(tmp_path):
    source = write(tmp_path / "p.csv", "a;b,c\n1;2,3\n", encoding="latin-1")
    frame = read_csv(source, sep=",", encoding="latin-1")
    assert list(frame.columns) == ["a;b", "c"] and frame.attrs["encoding"] == "latin-1"


def test_a_separator_that_cannot_be_told_is_refused_naming_what_was_seen_and_sep(tmp_path):
    source = write(tmp_path / "mixed.csv", "a;b,c\n1;2\n3,4\n")
    with pytest.raises(nb.ValidationError) as caught:
        read_csv(source)
    message = str(caught.value)
    assert "cannot tell the separator" in message and "1 × ','" in message and "1 × ';'" in message
    assert "sep=" in message and str(source) in message


@pytest.mark.parametrize(
    ("content", "kwargs", "words"),
    [
        (b"", {}, "empty"),
        (b"a,b\n1,2\n1,2,3,4\n", {}, "line 3 has 4 cells on ',' but the header names 2"),
        (b"a,b\n\x81\x8d,1\n", {}, "neither UTF-8 nor cp1252 (line 2)"),
        ("a,b\n".encode("utf-16-le"), {}, "UTF-16 without a byte order mark"),
        (b"a,b\n", {"sep": ";;"}, "one character"),
        (b"a,b\n", {"encoding": "klingon"}, "unknown encoding"),
        (b"a,b\n\xe9,1\n", {"encoding": "utf-8"}, "line 2 is not utf-8"),
    ],
)
def test_unreadable_files_are_refused_with_the_way_out(tmp_path, content, kwargs, words):
    source = tmp_path / "bad.csv"
    source.write_bytes(content)
    with pytest.raises(nb.ValidationError) as caught:
        read_csv(source, **kwargs)
    assert words in str(caught.value) and str(source) in str(caught.value)


def test_a_missing_file_or_a_non_path_is_refused(tmp_path):
    with pytest.raises(nb.ValidationError, match="No such file"):
        read_csv(tmp_path / "nope.csv")
    with pytest.raises(nb.ValidationError, match="file path"):
        read_csv(42)


def test_everyday_headers_map_to_api_fields_and_every_other_column_is_listed():
    frame = read_csv(EVERYDAY)
    mapping = suggest_columns(frame)
    assert dict(mapping) == {
        "First Name": "firstName", "Surname": "lastName", "DOB": "dateOfBirth", "Gender": "sex", "E-mail": "email",
        "Phone": "phoneNumber", "Street": "address.lineOne", "Town": "address.city", "State": "address.state",
        "Zip": "address.zipCode", "Country": "address.country",
    }
    assert mapping.ignored == ["Notes"] and mapping.conflicts == {}
    text = repr(mapping)
    assert "'First Name'" in text and "-> firstName" in text and "ignored (kept, not sent): 'Notes'" in text
    page = mapping._repr_html_()
    assert ">CSV column</th><th style=\"text-align:left\">API field</th>" in page and "<td>Notes</td><td><em>ignored" in page


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("first_name", "firstName"), ("FIRST NAME", "firstName"), ("Given name", "firstName"), ("Family name", "lastName"),
        ("Last Name", "lastName"), ("Date of Birth", "dateOfBirth"), ("Birthdate", "dateOfBirth"), ("Mobile", "phoneNumber"),
        ("Cell", "phoneNumber"), ("Telephone", "phoneNumber"), ("Email Address", "email"), ("Postcode", "address.zipCode"),
        ("Postal Code", "address.zipCode"), ("address.zip_code", "address.zipCode"), ("Address 1", "address.lineOne"),
        ("Province", "address.state"), ("Sex", "sex"), ("External ID", "externalIdentifier"), ("site.id", "site.id"),
        ("Notes", None), ("Note", None), ("Name", None),
    ],
)
def test_header_names_are_compared_without_case_spaces_or_punctuation(header, field):
    assert _csvfiles.field_for(header) == field


def test_the_api_names_map_to_themselves_on_the_sample():
    frame = read_csv(SAMPLE)
    mapping = suggest_columns(frame)
    assert all(column == field for column, field in mapping.items()) and mapping.ignored == []
    assert mapping.apply(frame).equals(frame)


def test_two_columns_for_one_field_are_flagged_and_refused_until_one_is_dropped():
    frame = pd.DataFrame({"Name": ["A"], "Phone": ["1"], "Mobile": ["2"], "Surname": ["B"]})
    mapping = suggest_columns(frame)
    assert mapping.conflicts == {"phoneNumber": ["Phone", "Mobile"]} and "also named by another column" in repr(mapping)
    with pytest.raises(nb.ValidationError) as caught:
        mapping.apply(frame)
    assert "del mapping['Mobile']" in str(caught.value)
    del mapping["Mobile"]
    assert list(mapping.apply(frame).columns) == ["Name", "phoneNumber", "Mobile", "lastName"]


def test_the_user_corrects_the_mapping_by_overrides_or_by_hand():
    frame = pd.DataFrame({"Name": ["A"], "Cell 2": ["555"], "Surname": ["B"], "Town": ["Clinic town"]})
    mapping = suggest_columns(frame, overrides={"Cell 2": "phoneNumber", "Name": "first_name", "Town": None})
    assert dict(mapping) == {"Name": "firstName", "Cell 2": "phoneNumber", "Surname": "lastName"} and mapping.ignored == ["Town"]
    mapping["Town"] = "address.city"
    assert mapping.apply(frame).columns.tolist() == ["firstName", "phoneNumber", "lastName", "address.city"]


@pytest.mark.parametrize(
    ("overrides", "words"),
    [({"Nope": "email"}, "No such column"), ({"Name": "colour"}, "not an API field"), ({"Nope": None}, "No such column")],
)
def test_bad_overrides_are_refused_naming_the_columns_or_fields(overrides, words):
    with pytest.raises(nb.ValidationError, match=words):
        suggest_columns(pd.DataFrame({"Name": ["A"]}), overrides=overrides)


def test_apply_keeps_the_line_numbers_and_attrs_and_refuses_another_frame():
    frame = read_csv(EVERYDAY)
    renamed = suggest_columns(frame).apply(frame)
    assert renamed.index.tolist() == frame.index.tolist() and renamed.attrs["sep"] == ";"
    assert renamed.loc[4, "address.city"] == "Austin" and "Notes" in renamed.columns
    with pytest.raises(nb.ValidationError, match="Not in this frame"):
        suggest_columns(frame).apply(frame.drop(columns=["DOB"]))
    assert isinstance(suggest_columns(frame), ColumnMapping)


def test_suggest_columns_refuses_what_is_not_a_frame():
    with pytest.raises(nb.ValidationError, match="DataFrame"):
        suggest_columns([["a"]])


def test_the_everyday_names_are_each_one_field_only():
    names = _csvfiles._field_names()  # raises if one everyday name were given to two fields
    assert names["phone"] == "phoneNumber" and names["zip"] == "address.zipCode"


def test_no_warning_for_a_utf8_file():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_csv(SAMPLE)


# --- Hostile and careless files (attack on issue 15) -----------------------------------------


def test_excels_sep_line_is_obeyed_and_skipped_and_lines_still_count_it(tmp_path):
    source = write(tmp_path / "excel.csv", "\ufeffsep=;\r\nFirst Name;Surname\r\nAna;Rivera, Jr\r\n")
    frame = read_csv(source)
    assert list(frame.columns) == ["First Name", "Surname"] and frame.attrs["sep"] == ";"
    assert frame.index.tolist() == [3] and frame.loc[3, "Surname"] == "Rivera, Jr"


def test_a_title_above_the_header_is_named_as_such(tmp_path):
    source = write(tmp_path / "title.csv", "Patients export 2024\nfirstName,lastName\nAna,Rivera\n")
    with pytest.raises(nb.ValidationError, match=r"line 1 holds one cell \('Patients export 2024'\).*title above the header"):
        read_csv(source)


def test_a_header_naming_a_column_twice_warns_that_the_copy_is_renamed(tmp_path):
    source = write(tmp_path / "dup.csv", "Phone,Phone,firstName\n555 0100,555 0101,Ana\n")
    with pytest.warns(UserWarning, match=r"names 'Phone' 2 times; the copies are read as 'Phone.1'"):
        frame = read_csv(source)
    assert frame.loc[2, "Phone.1"] == "555 0101"


@pytest.mark.parametrize("encoding", ["rot13", "base64", "hex"])
def test_a_codec_that_is_not_a_text_encoding_is_refused_with_a_message(tmp_path, encoding):
    source = write(tmp_path / "p.csv", "a,b\n1,2\n")
    with pytest.raises(nb.ValidationError, match="encoding.*try 'utf-8'"):
        read_csv(source, encoding=encoding)
    with pytest.raises(nb.ValidationError, match="encoding.*try 'utf-8'"):
        _csvfiles.detect_format(source, encoding=encoding)


def test_a_folder_is_named_a_folder_not_a_missing_file(tmp_path):
    with pytest.raises(nb.ValidationError, match="is a folder, not a file"):
        read_csv(tmp_path)


def test_deleting_an_ignored_column_keeps_it_ignored_and_an_unknown_one_is_named(tmp_path):
    mapping = suggest_columns(pd.DataFrame({"First Name": ["Ana"], "Notes": ["x"]}))
    del mapping["Notes"]  # already ignored: no bare KeyError
    assert mapping.ignored == ["Notes"]
    with pytest.raises(nb.ValidationError, match="Nope: No such column; the columns are: First Name, Notes"):
        del mapping["Nope"]


def test_a_frame_with_a_repeated_column_name_is_refused_with_names_to_use():
    frame = pd.DataFrame([["1", "2", "Ana"]], columns=["Phone", "Phone", "firstName"])
    with pytest.raises(nb.ValidationError, match=r"Phone: .*more than once.*\['Phone', 'Phone 2', 'firstName'\]"):
        suggest_columns(frame)


@pytest.mark.parametrize(
    ("columns", "mapped", "field"), [("First Name", {}, "columns"), (3, {}, "columns"), (["a"], [("a", "email")], "mapped")]
)
def test_a_column_mapping_built_by_hand_refuses_what_is_not_columns_and_a_mapping(columns, mapped, field):
    with pytest.raises(nb.ValidationError) as caught:
        ColumnMapping(columns, mapped)
    assert caught.value.field_errors[0].field == field
