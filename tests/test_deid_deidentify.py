"""kicc deidentify / deidentify-table on the seeded leaky repository: nothing planted survives, references hold."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pydicom
import pytest
from deid_synth import left_in, make_repository

from kicc_analysis.cli import main
from kicc_analysis.deid.deidentify import deidentify_repository, deidentify_table, verify_output
from kicc_analysis.deid.keys import DeidError, load_key, new_key_file, pseudonym

UID = re.compile(r"^(0|[1-9]\d*)(\.(0|[1-9]\d*))+$")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deid")
    planted = make_repository(folder)
    key = new_key_file(folder / "key")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in planted.root.rglob("*") if p.is_file()}
    out = folder / "out"
    result = deidentify_repository(planted.root, out, key, "S03", show=False)
    table = deidentify_table(planted.table, folder / "clinical_deid.csv", key, site="S03")
    return planted, key, out, result, table, before, folder


def _blob(out: Path) -> bytes:
    parts = []
    for p in sorted(out.rglob("*")):
        parts.append(str(p.relative_to(out)).encode("utf-8"))
        if p.is_file():
            parts.append(p.read_bytes())
    return b"\n".join(parts)


def _datasets(folder: Path) -> dict[Path, pydicom.Dataset]:
    return {p: pydicom.dcmread(p) for p in sorted(folder.rglob("*.dcm"))}


def test_no_planted_identifier_in_any_output_byte_or_path(run):
    planted, _, out, result, _, _, folder = run
    assert result.written == len(planted.files) and not result.problems
    blob = _blob(out) + (folder / "clinical_deid.csv").read_bytes()
    assert not left_in(planted.tokens, blob)
    assert not [u for u in planted.uids if u.encode() in blob]


def test_input_never_modified(run):
    planted, *_, before, _ = run
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in planted.root.rglob("*") if p.is_file()}
    assert after == before


def test_referential_integrity_and_valid_uids(run):
    planted, _, out, *_ = run
    inputs, outputs = _datasets(planted.root), _datasets(out)
    sops = {str(ds.SOPInstanceUID) for ds in outputs.values()}
    in_sops = {str(ds.SOPInstanceUID) for ds in inputs.values()}
    resolved_in = sum(
        1
        for ds in inputs.values()
        for e in ds.iterall()
        if e.keyword == "ReferencedSOPInstanceUID" and e.value in in_sops
    )
    n_refs = 0
    for ds in outputs.values():
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        for elem in ds.iterall():
            if elem.VR == "UI" and elem.value:
                for uid in elem.value if isinstance(elem.value, list | pydicom.multival.MultiValue) else [elem.value]:
                    assert UID.match(str(uid)) and len(str(uid)) <= 64, (elem.keyword, uid)
                    assert str(uid) not in planted.uids
            if elem.keyword == "ReferencedSOPInstanceUID" and elem.value in sops:
                n_refs += 1
    assert n_refs == resolved_in >= len(outputs)  # every reference that resolved in the input still resolves
    # SOP Class and Transfer Syntax kept; one output per input instance
    assert sorted(str(d.SOPClassUID) for d in outputs.values()) == sorted(str(d.SOPClassUID) for d in inputs.values())
    assert {str(d.file_meta.TransferSyntaxUID) for d in outputs.values()} == {
        str(d.file_meta.TransferSyntaxUID) for d in inputs.values()
    }


def test_dates_shifted_per_patient_with_intervals_kept(run):
    planted, key, out, *_ = run
    by_study: dict[str, dict[str, str]] = {}
    for ds in _datasets(planted.root).values():
        by_study.setdefault(str(ds.PatientID), {})[str(ds.StudyInstanceUID)] = str(ds.StudyDate)
    shifted: dict[str, list[str]] = {}
    for ds in _datasets(out).values():
        shifted.setdefault(str(ds.PatientID), []).append(str(ds.StudyDate))
        assert str(ds.PatientAge) in ("090Y", "054Y")  # 95 years capped at 90
    for local_id, studies in by_study.items():
        p = pseudonym(load_key(key), "S03", local_id)
        originals = sorted({date.fromisoformat(f"{d[:4]}-{d[4:6]}-{d[6:]}") for d in studies.values()})
        new = sorted({date.fromisoformat(f"{d[:4]}-{d[4:6]}-{d[6:]}") for d in shifted[p]})
        assert len(new) == len(originals) == 2
        assert new[1] - new[0] == originals[1] - originals[0]
        assert new[0] != originals[0]


def test_clinical_pseudonyms_equal_dicom_ones(run):
    planted, _, out, _, table, *_ = run
    dicom_ids = {str(ds.PatientID) for ds in _datasets(out).values()}
    assert set(table["subjid"]) == dicom_ids
    assert {"patient_name", "rrn", "phone", "birth_date"}.isdisjoint(table.columns)
    assert table["notes"].str.contains(r"\*\*\*").all()
    assert table["admission_date"].str.match(r"^\d{4}-\d{2}-\d{2}$").all()  # three input formats, shifted


def test_empty_patient_name_and_id_get_the_pseudonym():
    from pydicom.dataset import Dataset

    from kicc_analysis.deid.deidentify import deidentify_dataset

    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.StudyDate = "", "12345678", "20200301"
    buffer = pydicom.filebase.DicomBytesIO()
    pydicom.dcmwrite(buffer, ds, implicit_vr=False, little_endian=True)
    read = pydicom.dcmread(pydicom.filebase.DicomBytesIO(buffer.getvalue()), force=True)  # raw elements, as read
    out, pseudo = deidentify_dataset(read, b"k" * 32, "S03")
    assert str(out.PatientName) == pseudo == out.PatientID


def test_public_text_element_written_as_un_is_still_cleaned(tmp_path):
    ds = pydicom.examples.ct
    ds.PatientName = "HONG^GILDONG"
    ds.StudyDescription = "CHEST GILDONG"  # Clean Descriptors: cleaned, kept
    ds.PatientComments = "PATIENT GILDONG "  # Basic Profile: removed
    buffer = pydicom.filebase.DicomBytesIO()
    ds.save_as(buffer)
    data = buffer.getvalue()
    for text in (b"CHEST GILDONG ", b"PATIENT GILDONG "):  # re-encode both as UN (pydicom writes their own VR)
        short = (b"LO" if text.startswith(b"CHEST") else b"LT") + len(text).to_bytes(2, "little") + text
        assert data.count(short) == 1
        data = data.replace(short, b"UN\0\0" + len(text).to_bytes(4, "little") + text)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "un.dcm").write_bytes(data)
    read = pydicom.dcmread(tmp_path / "in" / "un.dcm")
    assert read.get_item(0x00081030).VR == "UN" and str(read.StudyDescription) == "CHEST GILDONG"
    new_key_file(tmp_path / "key")
    deidentify_repository(tmp_path / "in", tmp_path / "out", tmp_path / "key", "S01", workers=1, show=False)
    written = next((tmp_path / "out").rglob("*.dcm"))
    assert b"GILDONG" not in written.read_bytes()
    assert str(pydicom.dcmread(written).StudyDescription) == "CHEST *******"


def test_same_key_byte_identical_output(run, tmp_path):
    planted, key, out, *_ = run
    again = tmp_path / "again"
    deidentify_repository(planted.root, again, key, "S03", workers=1, show=False)  # the fixture used a pool
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first == second


def test_resume_after_interruption(run, tmp_path):
    planted, key, out, *_ = run
    partial = tmp_path / "partial"
    shutil.copytree(out, partial)
    manifest = json.loads((partial / "manifest.json").read_text())
    (partial / "manifest.json").unlink()
    written = [e for e in manifest["files"] if e["output"]]
    lines = [json.dumps(e, sort_keys=True) for e in written[:10]]
    (partial / "manifest.partial.jsonl").write_text("\n".join(lines) + '\n{"cut', encoding="utf-8")
    for e in written[10:]:
        (partial / e["output"]).unlink()
    result = deidentify_repository(planted.root, partial, key, "S03", show=False)
    assert result.resumed == 10 and result.written == len(written) - 10
    assert verify_output(partial, key) == []
    assert (partial / "manifest.json").read_bytes() == (out / "manifest.json").read_bytes()


def test_verify_detects_tampering(run, tmp_path):
    planted, key, out, *_ = run
    assert verify_output(out, key) == []
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    victim = next(copy.rglob("*.dcm"))
    victim.write_bytes(victim.read_bytes() + b"\0\0")
    problems = verify_output(copy, key)
    assert len(problems) == 1 and "differs" in problems[0]
    other = new_key_file(tmp_path / "other")
    assert any("fingerprint" in p for p in verify_output(out, other))
    assert main(["deidentify", str(out), "--key", str(key), "--verify"]) == 0


def test_refuses_out_inside_in_and_key_under_out(run, tmp_path):
    planted, key, *_ = run
    with pytest.raises(DeidError, match="inside IN"):
        deidentify_repository(planted.root, planted.root / "out", key, "S03")
    out = tmp_path / "o"
    out.mkdir()
    (out / "k").write_bytes(b"x" * 40)
    with pytest.raises(DeidError, match="key file"):
        deidentify_repository(planted.root, out, out / "k", "S03")
    (tmp_path / "short").write_bytes(b"x" * 5)
    with pytest.raises(DeidError, match="at least 32"):
        deidentify_repository(planted.root, tmp_path / "o2", tmp_path / "short", "S03")


def test_burned_in_annotation_quarantined_when_text_cannot_be_read(tmp_path):
    ds = pydicom.examples.ct
    ds.BurnedInAnnotation = "YES"
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "a.dcm")
    new_key_file(tmp_path / "key")
    result = deidentify_repository(tmp_path / "in", tmp_path / "out", tmp_path / "key", "S01", ocr=False, show=False)
    assert result.quarantined == 1 and result.written == 0
    assert not list((tmp_path / "out").rglob("*.dcm"))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["files"][0]["reason"] == "burned-in annotation YES, text not read (OCR off)"


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (Debian dicom3tools) not installed")
def test_dciodvfy_no_new_errors(run):
    planted, _, out, *_ = run

    def errors(path: Path) -> set[str]:
        text = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, errors="replace").stderr
        return {re.sub(r"\d+", "N", line) for line in text.splitlines() if line.startswith("Error")}

    source = pydicom.examples.get_path("ct")
    clean_in = errors(Path(source))
    target = out.parent / "ct_out"
    shutil.copy(source, out.parent / "ct_in.dcm") if not (out.parent / "ct_in.dcm").exists() else None
    (out.parent / "ct_repo").mkdir(exist_ok=True)
    shutil.copy(source, out.parent / "ct_repo" / "ct.dcm")
    deidentify_repository(out.parent / "ct_repo", target, out.parent / "key", "S01", show=False)
    clean_out = errors(next(target.rglob("*.dcm")))
    assert clean_out <= clean_in, sorted(clean_out - clean_in)


def test_cli_deidentify_and_table(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    pydicom.examples.ct.save_as(tmp_path / "in" / "ct.dcm")
    new_key_file(tmp_path / "key")
    key = str(tmp_path / "key")
    assert main(["deidentify", str(tmp_path / "in"), str(tmp_path / "out"), "--key", key, "--site", "S07"]) == 0
    assert "1 files written" in capsys.readouterr().out
    (tmp_path / "t.csv").write_text(
        "patient_id,name,visit\n" + f"{pydicom.examples.ct.PatientID},홍길동,2020-03-01\n", encoding="utf-8"
    )
    assert (
        main(["deidentify-table", str(tmp_path / "t.csv"), str(tmp_path / "t_out.csv"), "--key", key, "--site", "S07"])
        == 0
    )
    written = (tmp_path / "t_out.csv").read_text(encoding="utf-8")
    dicom_id = str(pydicom.dcmread(next((tmp_path / "out").rglob("*.dcm"))).PatientID)
    assert dicom_id in written and "홍길동" not in written and "2020-03-01" not in written
    assert main(["deidentify", str(tmp_path / "in"), str(tmp_path / "in" / "o"), "--key", key, "--site", "S07"]) == 2
