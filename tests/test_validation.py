"""Clinical-table validation: every problem class real hospital exports show is detected and reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path

from kicc_analysis.dictionary import (
    PROBLEM_CLASSES,
    REPORT_COLUMNS,
    coerce_to_dictionary,
    date_formats,
    load_dictionary,
    read_clinical_table,
    validate_clinical,
)
from kicc_analysis.errors import ValidationError

NCCID_DICTIONARY = Path(__file__).parent / "data" / "nccid_dictionary.csv"


def clean_table(n: int = 12, seed: int = 3) -> pd.DataFrame:
    """A small conforming table (all cells as text, as read from an export)."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "subjid": [f"KICC-S0{1 + i % 3}-{i:04d}" for i in range(n)],
            "kicc_site": [f"S0{1 + i % 3}" for i in range(n)],
            "demog_age": rng.integers(20, 90, n).astype(str),
            "demog_sex": rng.choice(["1", "2"], n),
            "labs_crp_mgl": np.round(rng.lognormal(3, 0.6, n), 1).astype(str),
            "sever_who_adm": rng.choice(["4", "5", "6"], n),
            "outco_outcome": rng.choice(["1", "2", "3"], n),
            "outco_day": rng.integers(1, 40, n).astype(str),
            "inter_invent": rng.choice(["0", "1"], n),
        }
    )
    table["inter_invent_day"] = np.where(table["inter_invent"] == "1", "3", "")
    return table


def problems(report: pd.DataFrame, variable: str | None = None, row: int | None = None) -> set[str]:
    selected = report
    if variable is not None:
        selected = selected[selected["variable"] == variable]
    if row is not None:
        selected = selected[selected["row"] == row]
    return set(selected["problem"])


def test_conforming_table_gives_empty_report():
    report = validate_clinical(clean_table())
    assert list(report.columns) == REPORT_COLUMNS
    assert report.empty, report.to_string()


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("labs_crp_mgl", "12 mg/L", "unit_in_value"),
        ("labs_crp_mgl", "<0.5", "censored_value"),
        ("labs_crp_mgl", "[67] - 2020-06-06", "embedded_value"),
        ("labs_crp_mgl", "raised", "not_numeric"),
        ("labs_crp_mgl", "-3", "out_of_range"),
        ("demog_age", "65.889", "not_integer"),
        ("demog_age", "199", "out_of_range"),
        ("demog_sex", "Male", "label_instead_of_code"),
        ("demog_sex", "t", "invalid_code"),
        ("demog_sex", "   ", "blank_value"),
        ("outco_outcome", "", "missing_required"),
        ("inter_invent_day", "5", "branching_inconsistent"),
    ],
)
def test_each_cell_problem_is_reported_on_its_row(variable, value, expected):
    table = clean_table()
    table.loc[4, variable] = value
    if variable == "inter_invent_day":
        table.loc[4, "inter_invent"] = "0"
    report = validate_clinical(table)
    assert expected in problems(report, variable, row=4)
    hit = report[(report["row"] == 4) & (report["problem"] == expected)].iloc[0]
    assert hit["subjid"] == table.loc[4, "subjid"]
    assert expected in PROBLEM_CLASSES


def test_out_of_range_suggests_the_unit_that_makes_it_plausible():
    table = clean_table()
    table["vital_highesttem_c"] = "37.0"
    table.loc[2, "vital_highesttem_c"] = "101.3"
    report = validate_clinical(table)
    detail = report[(report["row"] == 2) & (report["problem"] == "out_of_range")]["detail"].iloc[0]
    assert "[degF]" in detail and "38.5" in detail


def test_column_level_problems():
    table = clean_table().rename(columns={"labs_crp_mgl": "Labs_CRP_mgl"}).drop(columns=["outco_day"])
    table["LABS CRP MGL"] = "3"
    table["favourite_colour"] = "blue"
    report = validate_clinical(table)
    assert "header_typo" in problems(report, "Labs_CRP_mgl")
    assert "duplicate_column" in problems(report, "LABS CRP MGL")
    assert "missing_column" in problems(report, "outco_day")
    assert problems(report, "favourite_colour") == {"unknown_column"}


def test_duplicate_pseudonyms_are_reported_on_every_row():
    table = clean_table()
    table.loc[7, "subjid"] = table.loc[3, "subjid"]
    report = validate_clinical(table)
    dup = report[report["problem"] == "duplicate_id"]
    assert sorted(dup["row"].tolist()) == [3, 7]


def test_wrong_unit_at_one_site_is_detected_from_its_distribution():
    """CRP sent in mg/dL by one site (values 10x lower) is flagged for that site only."""
    table = clean_table(n=60)
    s02 = table["kicc_site"] == "S02"
    table.loc[s02, "labs_crp_mgl"] = (table.loc[s02, "labs_crp_mgl"].astype(float) / 10).round(2).astype(str)
    report = validate_clinical(table)
    mismatch = report[report["problem"] == "unit_mismatch"]
    assert len(mismatch) == 1
    assert mismatch["value"].iloc[0] == "site S02"
    assert "mg/dL" in mismatch["detail"].iloc[0]


def test_dates_are_never_echoed_in_the_report():
    table = clean_table()
    table["pres_date"] = "2020-03-01"
    table.loc[1, "pres_date"] = "31/03/2020"
    table.loc[2, "pres_date"] = "43909"
    table.loc[3, "labs_crp_mgl"] = "[67] - 2020-06-06"
    report = validate_clinical(table)
    assert {"date_format", "excel_serial_date", "mixed_date_formats"} <= set(report["problem"])
    assert not report["value"].astype(str).str.contains(r"\d{4}-\d{2}-\d{2}|\d{2}/\d{2}/\d{4}|43909").any()


def test_date_format_recognition():
    assert date_formats("2020-03-31") == {"YYYY-MM-DD"}
    assert date_formats("31/03/2020") == {"DD/MM/YYYY"}
    assert date_formats("3/31/20") == {"MM/DD/YY"}
    assert date_formats("05/05/2020") == {"DD/MM/YYYY", "MM/DD/YYYY"}
    assert date_formats("[Text]") == set()


def test_coercion_loses_only_reported_cells():
    """Every value that becomes missing in the typed table is listed in the report."""
    table = clean_table()
    table.loc[1, "labs_crp_mgl"] = "10L"
    table.loc[2, "demog_age"] = "199"
    table.loc[3, "demog_sex"] = "Male"
    typed = coerce_to_dictionary(table)
    report = validate_clinical(table)
    assert str(typed["demog_age"].dtype) == "Int64" and typed["labs_crp_mgl"].dtype == float
    for column in ["labs_crp_mgl", "demog_age", "demog_sex"]:
        lost = typed.index[typed[column].isna() & table[column].str.strip().ne("")]
        reported = set(report.loc[report["variable"] == column, "row"].dropna().astype(int))
        assert set(lost) <= reported, (column, set(lost), reported)
    assert len(typed) == len(table)


def test_unreadable_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(ValidationError, match="not found"):
        read_clinical_table(tmp_path / "absent.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValidationError, match="empty"):
        read_clinical_table(empty)
    other = tmp_path / "table.json"
    other.write_text("{}")
    with pytest.raises(ValidationError, match="unsupported file type"):
        read_clinical_table(other)


def test_xlsx_export_is_read_as_text(tmp_path):
    table = clean_table()
    table.loc[0, "labs_crp_mgl"] = "10L"
    path = tmp_path / "clinical.xlsx"
    table.to_excel(path, index=False)
    report = validate_clinical(path)
    assert problems(report, "labs_crp_mgl", row=0) == {"unit_in_value"}


# ----------------------------------------------------------------- the peer database's real export


@pytest.fixture(scope="module")
def nccid_report() -> pd.DataFrame:
    raw = shared_path("reference", "clinical", "nccid_example_raw.csv")
    return validate_clinical(
        raw, load_dictionary(NCCID_DICTIONARY), forms=None, id_column="Pseudonym", site_column="SubmittingCentre"
    )


def _cell(report: pd.DataFrame, subjid: str, variable: str) -> set[str]:
    return set(report[(report["subjid"] == subjid) & (report["variable"] == variable)]["problem"])


def test_nccid_export_every_problem_class_is_found(nccid_report):
    """The problem classes NCCID documents (schema compliance sheet) are each detected in its raw example."""
    report = nccid_report
    # header typos, including the typo'd duplicate of an existing column
    assert {"header_typo", "duplicate_column"} <= problems(report, "PMH h1pertension")
    assert "header_typo" in problems(report, "CXR severity 3")
    # mixed date formats (DD/MM/YYYY vs M/D/YY), text-wrapped dates and spreadsheet serials
    assert "mixed_date_formats" in problems(report, "Date of admission")
    assert "mixed_date_formats" in problems(report, "SwabDate")
    assert _cell(report, "Patient3", "Date of admission") == {"embedded_value"}
    assert _cell(report, "Patient8", "Date of admission") == {"excel_serial_date"}
    # units inside values and values at another unit scale
    assert _cell(report, "Patient1", "FiO2") == {"unit_in_value"}
    assert (
        "plausible if given in"
        in report[(report["subjid"] == "Patient4") & (report["variable"] == "FiO2")]["detail"].iloc[0]
    )
    # free text in numeric and coded fields
    assert _cell(report, "Patient10", "FiO2") == {"not_numeric"}
    assert _cell(report, "Patient3", "Systolic BP") == {"embedded_value"}
    assert _cell(report, "Patient3", "PMH h1pertension") == {"invalid_code"}
    assert _cell(report, "Patient6", "1st RT-PCR result") == {"invalid_code"}
    assert _cell(report, "Patient8", "COVID CODE") == {"invalid_code"}
    # values outside the allowed codes, verbose categories, non-round ages, implausible values
    assert _cell(report, "Patient5", "PMH hypertension") == {"invalid_code"}
    assert _cell(report, "Patient2", "Ethnicity") == {"invalid_code"}
    assert _cell(report, "Patient7", "Age") == {"not_integer"}
    assert _cell(report, "Patient5", "Temperature on admission") == {"out_of_range"}
    assert _cell(report, "Patient4", "Temperature on admission") == {"blank_value"}


def test_nccid_cleaned_values_are_those_we_flagged(nccid_report):
    """Where the peer's cleaning pipeline changed or dropped a value, our report has flagged that cell."""
    raw = pd.read_csv(shared_path("reference", "clinical", "nccid_example_raw.csv"), dtype=str, keep_default_na=False)
    cleaned = pd.read_csv(
        shared_path("reference", "clinical", "nccid_example_cleaned.csv"), dtype=str, keep_default_na=False
    )
    pairs = {
        "Temperature on admission": "temperature_on_admission",
        "Ferritin": "ferritin",
        "Systolic BP": "systolic_bp",
        "FiO2": "fio2",
    }
    checked = 0
    for raw_column, clean_column in pairs.items():
        for row in range(len(raw)):
            before, after = raw.loc[row, raw_column].strip(), cleaned.loc[row, clean_column].strip()
            if before and before != after and not _numbers_equal(before, after):
                checked += 1
                assert _cell(nccid_report, raw.loc[row, "Pseudonym"], raw_column), (raw_column, row)
    assert checked >= 8


def _numbers_equal(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def test_site_specific_units_from_the_peer_database_are_detected():
    """For each lab whose unit varied between NCCID sites, a site using that unit is flagged in our table."""
    units = pd.read_excel(shared_path("reference", "clinical", "NCCID_site_specific_units.xlsx"), dtype=str)
    units = units.set_index(units.columns[0])
    variables = {"D-dimer": "labs_ddimer_mgl", "Troponin I": "labs_tropi_ngl"}
    dictionary = load_dictionary()
    for analyte, variable in variables.items():
        var = dictionary[variable]
        observed = {str(u).strip().lower().replace("µ", "u") for u in units.loc[analyte].dropna()}
        alternatives = [a for a in var.alternative_units if a.unit.lower() in observed]
        assert alternatives, f"{analyte}: NCCID sites used {observed}; our dictionary should list one as an alternative"
        alt = alternatives[0]
        table = clean_table(n=60)
        rng = np.random.default_rng(1)
        canonical = rng.lognormal(np.log((var.minimum or 0) + 1), 0.4, len(table))
        s03 = (table["kicc_site"] == "S03").to_numpy()
        table[variable] = np.where(s03, canonical / alt.factor, canonical).round(4).astype(str)
        report = validate_clinical(table, dictionary)
        flagged = report[(report["problem"] == "unit_mismatch") & (report["variable"] == variable)]
        assert flagged["value"].tolist() == ["site S03"], analyte


# ----------------------------------------------------------------- per distinct value, identifiers


def test_problems_found_per_distinct_value_map_back_to_every_row():
    """The validator works on each column's distinct values; every row holding a bad value is still reported."""
    table = clean_table(n=12)
    table.loc[1, "labs_crp_mgl"] = "10L"
    table.loc[2, "demog_age"] = "199"
    table.loc[3, "demog_sex"] = "Male"
    table.loc[4, "outco_outcome"] = " "
    table.loc[5, "inter_invent_day"] = "4"
    table.loc[5, "inter_invent"] = "0"
    small = validate_clinical(table)
    copies = 40
    big = pd.concat([table] * copies, ignore_index=True)
    big["subjid"] = [f"KICC-S01-{i:05d}" for i in range(len(big))]
    report = validate_clinical(big)
    row_level = small[small["row"].notna()]
    assert len(report[report["row"].notna()]) == copies * len(row_level)
    for copy in (0, 17, copies - 1):
        shifted = report[report["row"].between(copy * len(table), (copy + 1) * len(table) - 1)]
        got = sorted(zip(shifted["row"] - copy * len(table), shifted["variable"], shifted["problem"], strict=True))
        assert got == sorted(zip(row_level["row"], row_level["variable"], row_level["problem"], strict=True))


def test_identifiers_are_never_echoed_in_the_report():
    table = clean_table()
    table.loc[2, "demog_age"] = "900101-1234568"
    table.loc[3, "labs_crp_mgl"] = "call 010-2345-6789"
    table["patient_name"] = [f"Name{i} Surname" for i in range(len(table))]
    table["환자명"] = [
        "김민수",
        "이서연",
        "박지훈",
        "최유진",
        "정하늘",
        "강민준",
        "조서윤",
        "윤도현",
        "장수아",
        "임하준",
        "한지우",
        "오세훈",
    ]
    report = validate_clinical(table)
    assert report.loc[(report["row"] == 2) & (report["variable"] == "demog_age"), "value"].tolist() == [
        "<redacted: rrn>"
    ]
    assert report.loc[(report["row"] == 3), "value"].tolist() == ["<redacted: phone>"]
    assert set(report.loc[report["problem"] == "identifier_column", "variable"]) == {"patient_name", "환자명"}
    text = report.to_csv()
    assert "1234568" not in text and "2345-6789" not in text and "김민수" not in text
