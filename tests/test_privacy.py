"""The one identifier detector: names (Latin, Hangul), resident registration numbers, phones, e-mails, birth dates."""

from __future__ import annotations

import doctest

import pandas as pd
import pytest
from conftest import shared_path

import kicc_analysis.privacy as privacy
from kicc_analysis.clinical_io import read_clinical_table
from kicc_analysis.dictionary import load_dictionary
from kicc_analysis.errors import PrivacyError
from kicc_analysis.privacy import (
    assert_no_identifiers,
    classify_column,
    find_identifier_columns,
    is_pseudonym,
    mask_identifier,
    scan_text,
)


def kinds(text: str) -> list[str]:
    return [f.kind for f in scan_text(text)]


def test_docstring_examples_run():
    assert doctest.testmod(privacy).failed == 0


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("주민등록번호 900101-1234568", "rrn"),
        ("RRN 9001011234568", "rrn"),
        ("외국인 020315-7654321", "rrn"),
        ("010-1234-5678", "phone"),
        ("01098765432", "phone"),
        ("tel 02-123-4567", "phone"),
        ("031-987-6543", "phone"),
        ("+82 10 1234 5678", "phone"),
        ("+44 20 7946 0958", "phone"),
        ("mail hong.gildong@hospital.co.kr", "email"),
        ("HONG^GILDONG", "person_name"),
        ("홍^길동", "person_name"),
        ("성명: 김민수", "person_name"),
        ("환자명 남궁민", "person_name"),
        ("Patient name: John Smith", "person_name"),
        ("DOB 1957-03-14", "date_of_birth"),
        ("생년월일: 1957년 3월 14일", "date_of_birth"),
        ("born 14/03/1957", "date_of_birth"),
    ],
)
def test_planted_identifiers_are_found(text, kind):
    assert kinds(text) == [kind]


@pytest.mark.parametrize(
    "text",
    [
        "KICC-S01-0042",
        "1.2.840.113619.2.55.3.604688119.969.1585730101.123",  # a DICOM UID with 13-digit runs
        "1.3.6.1.4.1.14519.5.2.1.9001011234568.1",
        "정상 소견. 고혈압 있음, 당뇨 없음. 이상 소견 없음",  # everyday Hangul words starting with a surname syllable
        "CRP 12.5 mg/L, WBC 8.3 10^9/L, SpO2 94 %",
        "admission 2020-03-01, CT 2020-03-02",  # dates without a birth label are not birth dates
        "age 54, day 13, 20200301",
        "9913321234567",  # 13 digits but no calendar date
        "S01 Centre A, reader R2",
    ],
)
def test_ordinary_content_is_not_flagged(text):
    assert scan_text(text) == []


def test_column_names_in_english_and_korean():
    for name, kind in [
        ("patient_name", "person_name"),
        ("환자명", "person_name"),
        ("성명", "person_name"),
        ("PatientName", "person_name"),
        ("RRN", "national_id"),
        ("주민등록번호", "national_id"),
        ("phone", "phone"),
        ("휴대폰", "phone"),
        ("연락처", "phone"),
        ("e-mail", "email"),
        ("birth_date", "date_of_birth"),
        ("DOB", "date_of_birth"),
        ("생년월일", "date_of_birth"),
        ("주소", "address"),
        ("MRN", "record_number"),
        ("등록번호", "record_number"),
    ]:
        finding = classify_column(name, [])
        assert finding is not None and finding.kind == kind, name
    for name in ["site_name", "subjid", "kicc_site", "labs_crp_mgl", "demog_age", "pres_date", "reader", "series_uid"]:
        assert classify_column(name, []) is None, name


def test_columns_judged_by_content():
    assert classify_column("memo", ["", "call 010-2222-3333"]).kind == "phone"
    assert classify_column("x1", ["900101-1234568", "850505-2345678"]).kind == "rrn"
    assert classify_column("who", ["김민수", "이서연", "박지훈", "최유진"]).kind == "person_name"
    assert classify_column("who", ["John Smith", "Mary Jones", "Ann Lee"]).kind == "person_name"
    assert classify_column("d", ["1957-03-14", "1988-11-02", "1940-01-30"]).kind == "date_of_birth"
    # repeated categories, admission dates, Korean remarks: not identifiers
    assert classify_column("ethnicity", ["White British", "White British", "Asian", "Asian", "White British"]) is None
    assert classify_column("admitted", ["2020-03-01", "2020-03-05", "2020-04-11"]) is None
    assert classify_column("비고", ["정상", "고혈압", "정상", "이상없음", "정상"]) is None
    assert classify_column("ids", ["KICC-S01-0001", "KICC-S01-0002"]) is None


def test_no_identifier_findings_in_the_demo_clinical_table(demo_repository):
    """False-positive check: the demo repository's clinical table holds pseudonyms, shifted dates and values only."""
    path = demo_repository / "clinical" / "clinical.csv"
    table = read_clinical_table(path)
    assert find_identifier_columns(table) == []
    assert scan_text(path.read_text(encoding="utf-8")) == []
    assert table["subjid"].map(is_pseudonym).all()


def test_no_identifier_findings_in_the_peer_exports():
    """False-positive check on NCCID's messy example export and the ISARIC dictionary's variable names."""
    raw = pd.read_csv(shared_path("reference", "clinical", "nccid_example_raw.csv"), dtype=str, keep_default_na=False)
    assert find_identifier_columns(raw) == []
    isaric = pd.read_csv(shared_path("reference", "clinical", "ISARIC_ARC.csv"), dtype=str, encoding="utf-8-sig")
    flagged = [v for v in isaric["Variable"].dropna() if classify_column(v, []) is not None]
    # ISARIC's own identifying fields are the only ones named like identifiers
    assert all(any(k in v for k in ("name", "dob", "birth", "phone", "mail", "address", "tel")) for v in flagged), (
        flagged
    )


def test_dictionary_pseudonym_format_is_the_one_checked():
    note = load_dictionary()["subjid"].note
    assert "KICC-Sxx-nnnn" in note
    assert is_pseudonym("KICC-S17-0001") and is_pseudonym(" KICC-S01-12000 ")
    for value in ["KICC-S1-0001", "kicc-s01-0001", "S01-0001", "12345678", "홍길동", None, 42]:
        assert not is_pseudonym(value), value


def test_masking_keeps_pseudonyms_and_hides_the_rest():
    assert mask_identifier("KICC-S01-0001") == "KICC-S01-0001"
    assert mask_identifier("9001011234568") == "9***********8"
    assert mask_identifier("010-1234-5678") == "0***********8"
    assert mask_identifier("AB") == "***"
    assert mask_identifier("김민수") == "***"
    assert mask_identifier("남궁민수") == "남**수"
    masked = privacy.mask_ids(pd.Series(["KICC-S01-0001", "HONG^GILDONG", None]))
    assert masked.tolist()[:2] == ["KICC-S01-0001", "H**********G"] and masked.isna().iloc[2]


def test_assert_no_identifiers_fails_closed():
    assert_no_identifiers("KICC-S01-0001 CRP 12 mg/L", known_values=["김민수"])
    with pytest.raises(PrivacyError, match=r"page.html: rrn at character 4") as caught:
        assert_no_identifiers("RRN 900101-1234568", where="page.html")
    assert "900101" not in str(caught.value)
    # a known value is found however the bytes were encoded
    for encoding in ("utf-8", "cp949", "utf-16-le"):
        with pytest.raises(PrivacyError, match="known identifying value"):
            assert_no_identifiers("patient 김민수 seen".encode(encoding), known_values=["김민수"])


def test_repeated_categories_in_a_large_table_are_not_names():
    """The distinctness criterion must see every row, not the distinct values only."""
    table = pd.DataFrame({"ethnicity": ["White British", "Black African", "Mixed Other"] * 3000})
    assert find_identifier_columns(table) == []
    names = pd.DataFrame({"who": [f"{a} {b}" for a in ("John", "Mary", "Ann") for b in ("Smith", "Jones", "Lee")]})
    assert [f.kind for f in find_identifier_columns(names)] == ["person_name"]


def test_embedded_images_are_not_scanned_as_text():
    page = '<img src="data:image/png;base64,iVBORw0KGgo01012345678AAAA9001011234568==">KICC-S01-0001'
    assert scan_text(page) != []  # the digit runs do look like a phone and an RRN ...
    assert_no_identifiers(page)  # ... but a renderer's embedded image is not text
    with pytest.raises(PrivacyError):
        assert_no_identifiers(page + " 010-2222-3333")


# ----------------------------------------------------------------------------------------------------------------------
# Short fields: file and folder names, DICOM descriptions (fail closed: no context to tell a name from a word)


@pytest.mark.parametrize(
    ("field", "kind"),
    [
        ("홍길동_12345678", "person_name"),  # a Korean PACS export folder: name and hospital ID
        ("김민수", "person_name"),
        ("Hong_Gildong", "person_name"),
        ("Gildong Hong", "person_name"),
        ("HONG^GILDONG", "person_name"),
        ("900101-1234568.dcm", "rrn"),
        ("Kim_010-2345-6789.dcm", "phone"),
    ],
)
def test_field_findings_flag_identifiers_in_names(field, kind):
    assert kind in [f.kind for f in privacy.field_findings(field)]


@pytest.mark.parametrize(
    "field", ["흉부 CT", "IM00001.dcm", "SE000003", "CHEST_CT", "LUNG 1.0 B70f", "1.2.840.113619.2.55.3.604688119"]
)
def test_field_findings_leave_ordinary_names(field):
    assert privacy.field_findings(field) == []


def test_known_values_short_ones_only_as_whole_tokens():
    assert privacy.field_findings("P_77_x", known_values=["77"])[0].kind == "known_value"
    assert privacy.field_findings("IM0077", known_values=["77"]) == []  # 2 characters: not inside a word
    assert privacy.field_findings("A20419573B", known_values=["20419573"])[0].kind == "known_value"
    assert privacy.field_findings("KICC-S01-0001", known_values=["KICC-S01-0001"]) == []  # a pseudonym is not masked


def test_mask_path_masks_components_and_keys_keep_two_patients_apart():
    key = bytes(range(32))
    a = privacy.mask_path("S01/홍길동_20419573/CT/1.dcm", key=key)
    b = privacy.mask_path("S01/홍길순_20419574/CT/1.dcm", key=key)
    assert a.split("/")[0] == "S01" and a.split("/")[2:] == ["CT", "1.dcm"]
    assert "길동" not in a and "20419573" not in a and a != b  # same mask, different keyed tags
    assert privacy.mask_path("S01/홍길동_20419573/CT/1.dcm", key=key) == a  # stable under one key
    assert privacy.mask_path(None) is None


def test_mask_field_masks_in_place_and_keeps_the_rest():
    masked = privacy.mask_field("CT 홍길동 900101-1234568 B70f")
    assert masked.startswith("CT ") and masked.endswith(" B70f")
    assert "길동" not in masked and "900101-1234568" not in masked
    assert privacy.mask_field("LUNG 1.0 B70f") == "LUNG 1.0 B70f"


def test_digit_runs_inside_hex_digests_are_not_identifiers():
    # a SHA-256 / cohort_version can contain 13 digits that read as a valid RRN or 11 that read as a mobile number
    digest = "3f" + "9001011234568" + "a0c1e" + "01012345678" + "b7"
    assert scan_text(f"cohort_version {digest}") == []
    assert classify_column("sha256", [digest]) is None
    # the same digits standing alone, or beside upper-case letters (not a digest), are still identifiers
    assert [f.kind for f in scan_text("9001011234568")] == ["rrn"]
    assert [f.kind for f in scan_text("ID9001011234568 tel 01012345678")] == ["rrn", "phone"]
    assert classify_column("notes", ["9001011234568"]).kind == "rrn"
