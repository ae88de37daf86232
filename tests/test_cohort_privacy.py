"""No planted identifier reaches a derived file, a log or the console (issue 11, item 7).

Identifiers are planted in a Korean (CP949) clinical export -- Latin and Hangul names, resident registration
numbers, phones, e-mails, birth dates, under English and Korean column names and under an innocent name -- and
in the DICOM PatientID of unlinked studies. The cohort is built and every derived file written (cohort
snapshot, ``kicc cohort --out``, the validation report, the linkage problems, ``kicc scan --out`` tables);
each file, the captured stdout/stderr and the log records are byte-searched for every planted value in
UTF-8, CP949 and UTF-16.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from pydicom.uid import generate_uid
from test_cohort import _write_image

from kicc_analysis.cli import main
from kicc_analysis.cohort import build_cohort
from kicc_analysis.privacy import assert_no_identifiers

PSEUDONYMS = ["KICC-S01-0001", "KICC-S01-0002", "KICC-S02-0003"]
#: PatientIDs of studies with no clinical row: a name, an RRN, a phone, a hospital number with a name.
PLANTED_PATIENT_IDS = ["HONG^GILDONG", "9001011234568", "010-5555-7777", "김철수"]
PLANTED_CLINICAL = {
    "patient_name": ["John Smith", "Mary Watson", "Peter Parker"],
    "환자명": ["김민수", "이서연", "남궁민호"],
    "주민등록번호": ["570314-1234567", "881102-2345678", "400130-1456789"],
    "phone": ["010-2345-6789", "02-3456-7890", "+82 10 9876 5432"],
    "birth_date": ["1957-03-14", "1988-11-02", "1940-01-30"],
    "contact": ["minsu.kim@example.kr", "seoyeon@example.com", "mh.namgung@example.org"],
    "메모": ["보호자 010-1111-2222", "", "이상 없음"],  # an innocent name, an identifier inside
}


def planted_values() -> list[str]:
    values = [v for column in PLANTED_CLINICAL.values() for v in column if v and v != "이상 없음"]
    values += ["010-1111-2222"] + PLANTED_PATIENT_IDS + ["HONG", "GILDONG", "900101-1234568"]
    return values


@pytest.fixture()
def planted_repository(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("KICC_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "repo"
    for patient in PSEUDONYMS + PLANTED_PATIENT_IDS:
        study, series = generate_uid(), generate_uid()
        folder = root / "dicom" / f"p{abs(hash(patient)) % 10**8}"
        for i in range(3):
            _write_image(folder / f"{i}.dcm", patient, study, series, "CT", i, z=-2.0 * i)
    clinical = pd.DataFrame(
        {
            "subjid": PSEUDONYMS,
            "kicc_site": ["S01", "S01", "S02"],
            "나이": ["61", "47", "72"],  # Korean label of demog_age
            "성별": ["1", "2", "1"],
            "sever_national": ["2", "3", "4"],
            "sever_who_adm": ["4", "6", "9"],
            "outco_outcome": ["1", "2", "2"],
            "outco_day": ["12", "9", "3"],
            **PLANTED_CLINICAL,
        }
    )
    (root / "clinical").mkdir(parents=True)
    (root / "clinical" / "clinical.csv").write_bytes(clinical.to_csv(index=False).encode("cp949"))
    return root


def _contains(data: bytes, value: str) -> bool:
    for encoding in ("utf-8", "cp949", "utf-16-le"):
        try:
            if value.encode(encoding) in data:
                return True
        except UnicodeEncodeError:
            continue
    return False


def test_no_planted_identifier_in_any_derived_file_or_output(planted_repository, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    out.mkdir()
    build = build_cohort(planted_repository, workers=1)
    build.validation.to_csv(out / "data_quality_report.csv", index=False)
    build.linkage.to_csv(out / "linkage_problems.csv", index=False)
    print(build.describe())
    assert main(["cohort", str(planted_repository), "--workers", "1", "--out", str(out / "cohort.parquet")]) == 0
    assert main(["validate", str(planted_repository / "clinical" / "clinical.csv"), "--out", str(out / "v.csv")]) == 1
    index = tmp_path / "scan_index"
    assert main(["scan", str(planted_repository / "dicom"), "--index", str(index), "--out", str(out / "scan")]) == 0
    captured = capsys.readouterr()

    # the identifier columns are gone from the table, and reported by name only
    dropped = set(PLANTED_CLINICAL)
    assert dropped.isdisjoint(build.table.columns)
    assert set(build.dropped_identifiers) == dropped
    assert "demog_age" in build.table.columns and build.table["demog_age"].tolist() == [61, 47, 72]
    flagged = build.validation.loc[build.validation["problem"] == "identifier_column", "variable"]
    assert set(flagged) == dropped
    # the planted PatientIDs really are in the DICOM headers (in memory, where linkage needs them) ...
    assert set(PLANTED_PATIENT_IDS) <= set(build.inventory["subjid"])
    # ... and unlinked non-pseudonym PatientIDs are still reported, masked
    unlinked = build.linkage[build.linkage["problem"] == "images_without_clinical_row"]
    assert len(unlinked) == len(PLANTED_PATIENT_IDS)
    assert sorted(unlinked["subjid"]) == sorted(["H**********G", "9***********8", "0***********7", "***"])

    files = [p for p in out.rglob("*") if p.is_file()]
    snapshot_dir = Path(build.snapshot).parent
    # every derived file: the snapshot and everything else in the repository's cache (scan index included, whose
    # identifying columns are sealed), and the scan index written with --index
    files += [p for p in snapshot_dir.parent.rglob("*") if p.is_file()]
    files += [p for p in index.rglob("*") if p.is_file()]
    assert any("index" in p.parts for p in files if snapshot_dir.parent in p.parents)
    assert any(p.suffix == ".parquet" for p in files) and (out / "scan" / "studies.csv").is_file()
    texts = {str(p): p.read_bytes() for p in files}
    for p in files:
        if p.suffix == ".parquet":  # compressed columns: search the decoded table as well
            texts[f"{p} (decoded)"] = pd.read_parquet(p).to_csv().encode()
    texts["stdout"] = captured.out.encode()
    texts["stderr"] = captured.err.encode()
    texts["log"] = caplog.text.encode()
    leaks = [(where, value) for where, data in texts.items() for value in planted_values() if _contains(data, value)]
    assert leaks == []
    for where, data in texts.items():
        if where.endswith((".parquet", ".sealed")) or ".kicc-secret" in where:
            continue  # binary (compressed columns, ciphertext, a random key): searched for the planted values above
        assert_no_identifiers(data, known_values=planted_values(), where=where)
    assert "patient_name (person_name)" in captured.out and "dropped as direct identifiers" in captured.out
