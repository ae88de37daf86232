"""kicc audit: every planted identifier found, clean files clean, real and odd DICOM audited without a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from deid_synth import left_in, make_repository

from kicc_analysis.cli import main
from kicc_analysis.deid.audit import audit_repository, audit_table, masked_name
from kicc_analysis.deid.deidentify import deidentify_repository
from kicc_analysis.deid.keys import new_key_file
from kicc_analysis.deid.report import write_report

KEY = b"audit-test-key-" * 3


def _unmask(planted, shown: str) -> str:
    """The planted file a masked report path stands for (the test knows the names it planted)."""
    for name in planted.leaky_paths:
        shown = shown.replace(masked_name(name, KEY), name)
    return shown


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return make_repository(tmp_path_factory.mktemp("deid_audit"))


@pytest.fixture(scope="module")
def audited(planted):
    return audit_repository(planted.root, key=KEY, workers=1, ocr=False, show=False)


def test_finds_every_planted_header_identifier(planted, audited):
    found = set(zip(audited.findings["file"], audited.findings["element_path"], strict=True))
    found = {(_unmask(planted, f), e) for f, e in found}
    missed = sorted(planted.header - found)
    assert len(planted.header) > 10_000  # every non-keep row, private block, 3-level sequences, DICOMDIR
    assert not missed, f"{len(missed)} of {len(planted.header)} planted header values missed, e.g. {missed[:3]}"
    findings = audited.findings.assign(file=[_unmask(planted, f) for f in audited.findings["file"]])
    severities = findings.set_index(["file", "element_path"])["severity"]
    assert (severities.loc[sorted(planted.header)] == "high").groupby(level=[0, 1]).any().all()


def test_finds_identifiers_in_file_and_folder_names(planted, audited):
    path_findings = audited.findings[audited.findings["rule"].str.startswith("path")]
    assert {masked_name(p, KEY) for p in planted.leaky_paths} <= set(path_findings["element_path"])
    assert not any(p in f for p in planted.leaky_paths for f in audited.findings["file"])  # shown masked


def test_finds_every_planted_table_identifier(planted, audited):
    table = audited.findings[audited.findings["file"] == "clinical/clinical.csv"]
    flagged_columns = set(table["keyword"])
    assert planted.table_columns <= flagged_columns
    # the notes cells: flagged one by one, or their whole column flagged
    assert "notes" in flagged_columns


def test_private_sequences_uids_and_identity_removed(audited):
    rules = set(audited.findings["rule"])
    assert {"private_tag", "uid_not_replaced", "uid_timestamp", "identity_not_removed", "date_inconsistent"} <= rules
    deep = audited.findings["element_path"].str.count(r"\[") >= 3
    assert deep.any()


def test_report_masks_values_and_writes_every_format(planted, audited, tmp_path):
    paths = write_report(audited, tmp_path / "report")
    assert {p.name for p in paths.values()} == {
        "findings.jsonl",
        "findings.csv",
        "review.csv",
        "summary.txt",
        "audit.html",
    }
    first = json.loads(paths["jsonl"].read_text(encoding="utf-8").splitlines()[0])
    assert {"file", "element_path", "vr", "rule", "severity", "preview", "value_hash", "bbox"} <= set(first)
    body = b"".join(p.read_bytes() for p in paths.values())
    leaked = left_in(planted.tokens, body)
    assert not leaked, f"{len(leaked)} planted values written unmasked to the report"
    review = audited.review
    assert {"tag", "keyword", "vr", "annex_e", "distinct", "examples"} <= set(review.columns)
    assert (review.set_index("keyword").loc["PatientID", "distinct"]) == len(planted.local_ids)


def test_clean_output_has_no_findings(planted, tmp_path):
    key = new_key_file(tmp_path / "key")
    out = tmp_path / "out"
    deidentify_repository(planted.root, out, key, "S03", show=False)
    result = audit_repository(out, workers=1, ocr=False, show=False)
    real = result.findings[result.findings["severity"] != "info"]
    assert result.n_dicom == len(planted.files)
    assert len(real) <= 0.01 * result.n_dicom, real.head().to_string()


def test_cli_exit_status(planted, tmp_path, capsys):
    assert main(["audit", str(planted.root), "--out", str(tmp_path / "r"), "--workers", "1", "--no-ocr"]) == 1
    assert "high" in capsys.readouterr().out
    assert (tmp_path / "r" / "audit.html").is_file()


def test_table_free_text(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "subjid,comment,contact\nKICC-S01-0001,정상 소견,\nKICC-S01-0002,검사 후 귀가 이름: 김민수,010-2345-6789\n",
        encoding="utf-8",
    )
    rows = audit_table(path, KEY)
    assert sorted(r["rule"] for r in rows) == ["table_column:phone", "table_text:person_name"]
    assert "김민수" not in json.dumps(rows, ensure_ascii=False)


def test_parallel_equals_serial(planted, audited, monkeypatch):
    from kicc_analysis.deid import audit as audit_module

    started = []
    real_pool = audit_module.ProcessPoolExecutor

    def spy(*args, **kwargs):
        started.append(kwargs.get("max_workers"))
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(audit_module, "POOL_MIN_FILES", 2)  # the planted repository is smaller than a real one
    monkeypatch.setattr(audit_module, "ProcessPoolExecutor", spy)
    parallel = audit_repository(planted.root, key=KEY, workers=2, ocr=False, show=False)
    assert started == [2]  # the pool really ran
    assert len(parallel.findings) == len(audited.findings)
    assert set(parallel.findings["value_hash"]) == set(audited.findings["value_hash"])


def test_default_is_one_process_for_a_small_repository(planted, audited, monkeypatch):
    from kicc_analysis.deid import audit as audit_module

    monkeypatch.setattr(audit_module, "POOL_MIN_FILES", 2)
    monkeypatch.setattr(audit_module, "ProcessPoolExecutor", lambda *a, **k: pytest.fail("pool started"))
    default = audit_repository(planted.root, key=KEY, ocr=False, show=False)  # fewer than PARALLEL_MIN_FILES
    assert set(default.findings["value_hash"]) == set(audited.findings["value_hash"])
    assert audit_module.default_workers(audit_module.PARALLEL_MIN_FILES) == 2


@pytest.mark.parametrize("folder", ["ct", "cxr"])
def test_real_dicom_audited_without_crash(shared_dir, folder):
    result = audit_repository(shared_dir / "data" / folder, workers=2, ocr=False, show=False)
    assert result.n_dicom > 0
    assert "unreadable_element" not in set(result.findings["rule"])
    assert (result.findings["rule"] == "identity_not_removed").sum() <= result.n_dicom


def test_pydicom_test_files_audited_without_crash():
    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    result = audit_repository(folder, workers=1, ocr=False, show=False)
    assert result.n_files >= 50 and result.n_dicom >= 30
    not_dicom = result.findings.loc[result.findings["rule"].isin(["not_dicom", "table_unreadable"]), "file"]
    assert result.n_dicom + not_dicom.nunique() >= result.n_files - 5  # a few odd files yield no finding at all


def _reference_walk(ds, prefix=""):
    """Every element converted by pydicom, as the audit read them before its raw-value cache."""
    from kicc_analysis.deid.audit import _tag_text, _value_text

    for tag in list(ds.keys()):
        try:
            elem = ds[tag]
        except Exception:
            elem = ds.get_item(tag)
        vr = str(elem.VR or "")
        if vr == "SQ":
            items = list(elem.value or [])
            yield prefix, int(tag), vr, ""
            for i, item in enumerate(items):
                yield from _reference_walk(item, f"{prefix}{_tag_text(int(tag))}[{i}]>")
        else:
            yield prefix, int(tag), vr, _value_text(elem)


def test_raw_value_walk_reads_what_pydicom_converts(planted):
    import warnings

    from kicc_analysis.deid import audit as audit_module

    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    paths = sorted(folder.rglob("*.dcm")) + planted.files[:4]
    compared = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            try:
                fast = pydicom.dcmread(path, stop_before_pixels=True)
                slow = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:
                continue
            for _ in range(2):  # the second pass reads every value from the cache
                walked = [(p, t, vr, text) for p, t, vr, text, _ in audit_module._walk(fast)]
                assert walked == list(_reference_walk(slow)), path.name
            compared += 1
    assert compared >= 60
