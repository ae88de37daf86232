"""Reading clinical exports as Korean hospital systems write them: encodings, delimiters, XLSX cells, bad files."""

from __future__ import annotations

import codecs
import doctest
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from conftest import shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from openpyxl.utils.datetime import from_excel
from test_validation import clean_table

import kicc_analysis.clinical_io as clinical_io
from kicc_analysis.cli import main
from kicc_analysis.clinical_io import describe_read, detect_delimiter, detect_encoding, read_clinical_table
from kicc_analysis.dictionary import coerce_to_dictionary, load_dictionary, validate_clinical
from kicc_analysis.errors import ValidationError

#: Korean column labels a site's Excel sheet uses (the dictionary's aliases), for the clean table's variables.
KOREAN_HEADERS = {
    "subjid": "연구번호",
    "kicc_site": "기관",
    "demog_age": "나이",
    "demog_sex": "성별",
    "labs_crp_mgl": "CRP",
    "sever_who_adm": "입원시WHO척도",
    "outco_outcome": "최종결과",
    "outco_day": "추적일수",
    "inter_invent": "기계환기",
    "inter_invent_day": "기계환기시작일",
}


def korean_table() -> pd.DataFrame:
    return clean_table().rename(columns=KOREAN_HEADERS)


def _write(path: Path, text: str, encoding: str) -> Path:
    path.write_bytes(
        text.encode(encoding) if encoding != "utf-16-bom" else codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    )
    return path


def test_module_docstring_examples_run():
    assert doctest.testmod(clinical_io, optionflags=doctest.ELLIPSIS).failed == 0


@pytest.mark.parametrize(
    ("encoding", "delimiter", "reported"),
    [
        ("utf-8", ",", "utf-8"),
        ("utf-8-sig", ",", "utf-8-sig"),  # Excel "CSV UTF-8"
        ("cp949", ",", "cp949"),  # Korean Windows Excel "CSV (comma delimited)"
        ("euc-kr", ",", "cp949"),  # CP949 is a superset of EUC-KR
        ("utf-16-bom", "\t", "utf-16"),  # Excel "Unicode text": UTF-16 LE with BOM, tab-separated
        ("utf-16-le", "\t", "utf-16-le"),  # the same without BOM
    ],
)
def test_korean_export_in_every_encoding_is_read_and_validated(tmp_path, encoding, delimiter, reported):
    """Korean Excel exports (CP949, UTF-16) crashed validate with UnicodeDecodeError; Korean labels are aliases."""
    text = korean_table().to_csv(index=False, sep=delimiter, lineterminator="\r\n")
    path = _write(tmp_path / "clinical.csv", text, encoding)
    table = read_clinical_table(path)
    info = table.attrs["read"]
    assert (info["encoding"], info["delimiter"]) == (reported, delimiter)
    assert list(table.columns) == list(KOREAN_HEADERS.values())
    report = validate_clinical(path)
    assert report.empty, report.to_string()  # every Korean label maps to its variable, no header_typo
    typed = coerce_to_dictionary(table)
    assert list(typed.columns) == list(KOREAN_HEADERS)
    assert typed["demog_age"].tolist() == clean_table()["demog_age"].astype(int).tolist()


def test_cli_validate_reports_the_encoding_used(tmp_path, capsys):
    path = _write(tmp_path / "clinical.csv", korean_table().to_csv(index=False), "cp949")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "encoding cp949" in out and "delimiter ','" in out and "conforms" in out


def test_undecodable_bytes_name_the_line(tmp_path):
    path = tmp_path / "clinical.csv"
    path.write_bytes(b"subjid,demog_age\nKICC-S01-0001,\x81\n\x8d\n")
    with pytest.raises(ValidationError, match=r"clinical.csv: line 2: byte 0x81 .* not UTF-8, CP949"):
        read_clinical_table(path)


def test_encoding_detection_peers_agree():
    """Our detection agrees with Python's own codecs on what each byte string is."""
    korean = "성별,나이\n남,54\n"
    for encoding in ("utf-8", "cp949"):
        data = korean.encode(encoding)
        assert data.decode(detect_encoding(data)) == korean
    assert detect_encoding(codecs.BOM_UTF8 + b"a") == "utf-8-sig"


# ----------------------------------------------------------------- delimiters and decimal commas


def test_semicolon_export_with_decimal_commas(tmp_path):
    table = clean_table()
    table["labs_crp_mgl"] = table["labs_crp_mgl"].str.replace(".", ",", regex=False)
    path = tmp_path / "clinical.csv"
    path.write_text(table.to_csv(index=False, sep=";"), encoding="utf-8")
    read = read_clinical_table(path)
    assert read.attrs["read"]["delimiter"] == ";" and read.attrs["read"]["decimal"] == ","
    assert "decimal-comma numbers read with a decimal point" in describe_read(read)
    assert validate_clinical(path).empty
    typed = coerce_to_dictionary(read)
    assert typed["labs_crp_mgl"].tolist() == clean_table()["labs_crp_mgl"].astype(float).tolist()


def test_decimal_comma_in_a_comma_file_is_named_in_the_report(tmp_path):
    table = clean_table()
    table.loc[3, "labs_crp_mgl"] = "12,5"
    path = tmp_path / "clinical.csv"
    table.to_csv(path, index=False)  # pandas quotes the cell
    report = validate_clinical(path)
    hit = report[(report["row"] == 3) & (report["variable"] == "labs_crp_mgl")]
    assert hit["problem"].tolist() == ["not_numeric"] and "decimal comma" in hit["detail"].iloc[0]


def test_delimiter_detection():
    assert detect_delimiter("a;b;c\n1;2,5;3\n4;5;6\n") == ";"
    assert detect_delimiter("a\tb\n1\t2\n") == "\t"
    assert detect_delimiter("a|b\n1|2\n") == "|"
    assert detect_delimiter('a,b\n"1;2",3\n') == ","


# ----------------------------------------------------------------- XLSX cells


def _workbook(path: Path, rows: list[list[object]]) -> Path:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def test_xlsx_date_cells_and_serial_dates_are_dates(tmp_path):
    """Real date cells were read as 'YYYY-MM-DD 00:00:00' and rejected; serial numbers are converted like Excel."""
    table = clean_table(n=4)
    rows = [[*table.columns, "pres_date"]]
    admissions = [datetime(2120, 3, 1), datetime(2120, 3, 2, 14, 30), 43909, "2120-03-04"]
    for i, record in enumerate(table.itertuples(index=False)):
        rows.append([int(v) if str(v).isdigit() else v for v in record] + [admissions[i]])
    path = _workbook(tmp_path / "clinical.xlsx", rows)
    read = read_clinical_table(path)
    assert read["pres_date"].tolist() == ["2120-03-01", "2120-03-02 14:30:00", "43909", "2120-03-04"]
    assert read["demog_age"].tolist() == table["demog_age"].tolist()  # whole numbers without ".0"
    assert "2 date cells read as YYYY-MM-DD" in describe_read(read)
    report = validate_clinical(path)
    assert set(report["problem"]) == {"invalid_date", "excel_serial_date"}
    assert report.loc[report["problem"] == "excel_serial_date", "severity"].tolist() == ["warning"]
    shown = report.loc[report["problem"] == "invalid_date", "value"].iloc[0]
    assert shown == "<redacted; shape 9999-99-99 99:99:99>"  # why it failed, not what it was
    typed = coerce_to_dictionary(read)
    assert typed["pres_date"].iloc[0] == pd.Timestamp("2120-03-01")
    assert typed["pres_date"].iloc[2] == pd.Timestamp(from_excel(43909))  # openpyxl's Excel calendar
    assert pd.isna(coerce_to_dictionary(read, excel_serial_dates=False)["pres_date"].iloc[2])


def test_nccid_serial_date_convention_is_an_option(tmp_path):
    """The NCCID cleaning pipeline leaves the serial 43909 empty; excel_serial_dates=False reproduces that."""
    raw = pd.read_csv(shared_path("reference", "clinical", "nccid_example_raw.csv"), dtype=str, keep_default_na=False)
    cleaned = pd.read_csv(shared_path("reference", "clinical", "nccid_example_cleaned.csv"), dtype=str)
    dictionary = load_dictionary(Path(__file__).parent / "data" / "nccid_dictionary.csv")
    row = raw.index[raw["Date of admission"] == "43909"][0]
    assert pd.isna(cleaned.loc[row, "date_of_admission"])
    peer = coerce_to_dictionary(raw, dictionary, forms=None, excel_serial_dates=False)
    ours = coerce_to_dictionary(raw, dictionary, forms=None)
    column = [c for c in peer.columns if c.lower().replace(" ", "_") == "date_of_admission"][0]
    assert pd.isna(peer.loc[row, column])
    assert ours.loc[row, column] == pd.Timestamp("2020-03-19")


# ----------------------------------------------------------------- files that cannot be read


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "ragged_long.csv",
            "subjid,demog_age\nKICC-S01-0001,54\nKICC-S01-0002,61,extra\n",
            r"line 3: 3 fields where the header has 2",
        ),
        (
            "ragged_short.csv",
            "subjid,demog_age,demog_sex\nKICC-S01-0001,54,1\nKICC-S01-0002,61\n",
            r"line 3: 2 fields where the header has 3",
        ),
        ("header_only.csv", "subjid,demog_age,demog_sex\n", r"header \(3 columns\) but no data rows"),
        ("blank.csv", "\n\n", r"is empty"),
        (
            "misnamed.xlsx",
            "subjid,demog_age\nKICC-S01-0001,54\n",
            r"not an XLSX workbook.*a CSV named .xlsx; rename it to .csv",
        ),
        (
            "legacy.xlsx",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100),
            r"legacy .xls workbook or a password-protected",
        ),
        ("workbook.csv", b"PK\x03\x04" + bytes(100), r"spreadsheet workbook named .csv"),
        ("notes.json", "{}", r"unsupported file type"),
    ],
)
def test_unreadable_files_give_one_line_errors(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValidationError, match=message) as caught:
        read_clinical_table(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kicc validate: error:")


def test_empty_and_header_only_workbooks(tmp_path):
    empty = _workbook(tmp_path / "empty.xlsx", [])
    with pytest.raises(ValidationError, match=r"empty.xlsx, sheet 'Sheet': no cells"):
        read_clinical_table(empty)
    header = _workbook(tmp_path / "header.xlsx", [["subjid", "demog_age"]])
    with pytest.raises(ValidationError, match=r"header.xlsx has a header \(2 columns\) but no data rows"):
        read_clinical_table(header)


def test_header_only_table_is_not_reported_as_conforming():
    with pytest.raises(ValidationError, match="no data rows"):
        validate_clinical(clean_table().head(0))


def test_empty_rows_are_ignored_and_counted(tmp_path):
    path = tmp_path / "clinical.csv"
    text = clean_table(n=3).to_csv(index=False)
    path.write_text(text + "," * (clean_table().shape[1] - 1) + "\n" + " ," * (clean_table().shape[1] - 1) + "\n")
    table = read_clinical_table(path)
    assert len(table) == 3 and "2 empty rows ignored" in describe_read(table)


def test_out_into_a_missing_folder_fails_before_any_work(tmp_path, capsys):
    path = tmp_path / "clinical.csv"
    clean_table().to_csv(path, index=False)
    assert main(["validate", str(path), "--out", str(tmp_path / "nowhere" / "report.csv")]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "does not exist" in err and err.count("\n") == 1
    assert main(["cohort", str(tmp_path), "--out", str(tmp_path / "nowhere" / "cohort.parquet")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------- property: any bytes, one kind of error

_CELLS = st.sampled_from(
    ["KICC-S01-0001", "54", "12,5", "나이", "성별", "", " ", '"a,b"', "2020-03-01", "\t", ";", "<0.5"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.lists(_CELLS, min_size=0, max_size=5), min_size=0, max_size=6),
    sep=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp949", "utf-16"]),
    suffix=st.sampled_from([".csv", ".xlsx", ".txt"]),
    noise=st.binary(max_size=8),
)
def test_any_export_reads_or_fails_with_one_clear_line(tmp_path, rows, sep, encoding, suffix, noise):
    """Whatever the bytes, reading gives a text table or one ValidationError line naming the file; never a crash."""
    text = "\n".join(sep.join(row) for row in rows)
    path = tmp_path / f"clinical{suffix}"
    path.write_bytes(text.encode(encoding) + noise)
    try:
        table = read_clinical_table(path)
    except ValidationError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    else:
        assert len(table) > 0 and all(isinstance(v, str) for v in table.to_numpy().ravel())
        assert table.attrs["read"]["n_rows"] == len(table)


@pytest.mark.parametrize("noise", [b"\t\x01\r\x01", b"a\rb,c\r\n\x00\r"])
def test_lone_carriage_returns_read_or_fail_with_one_line(tmp_path, noise):
    # hypothesis found: a lone CR inside an unquoted field raised _csv.Error out of the ragged-line check
    path = tmp_path / "clinical.csv"
    path.write_bytes(b"subjid,age\nKICC-S01-0001," + noise)
    try:
        table = read_clinical_table(path)
    except ValidationError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    else:
        assert len(table) > 0


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_duplicate_column_headers_are_one_line_errors(tmp_path, suffix):
    # pandas would rename the second "age" to "age.1" silently; hypothesis found a header of repeated pseudonyms
    # that crashed with InvalidIndexError
    rows = [["subjid", "age", "age"], ["KICC-S01-0001", "40", "41"]]
    path = tmp_path / f"clinical{suffix}"
    if suffix == ".csv":
        path.write_text("\n".join(",".join(r) for r in rows), encoding="utf-8")
    else:
        import openpyxl

        book = openpyxl.Workbook()
        for row in rows:
            book.active.append(row)
        book.save(path)
    with pytest.raises(ValidationError) as info:
        read_clinical_table(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "'age' appears twice (columns 2 and 3)" in message


def test_data_lines_longer_than_the_header_are_ragged_not_an_index(tmp_path):
    # hypothesis (CI, 2026-12-06): a one-column header over two-field lines made pandas use the first column as the
    # index, and a non-unique index crashed later with InvalidIndexError
    path = tmp_path / "clinical.csv"
    path.write_text("KICC-S01-0001\nKICC-S01-0001,KICC-S01-0001\nKICC-S01-0001,\t", encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        read_clinical_table(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "line 2: 2 fields where the header has 1" in message
