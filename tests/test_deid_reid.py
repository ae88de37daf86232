"""The encrypted re-identification table: written only where asked, opaque without the key, exact with it."""

from __future__ import annotations

import base64

import pandas as pd
import pydicom
import pytest
from deid_synth import make_repository

from kicc_analysis.cli import main
from kicc_analysis.deid.deidentify import deidentify_repository
from kicc_analysis.deid.keys import DeidError, load_key, new_key_file, pseudonym
from kicc_analysis.deid.reid import MAGIC, read_reid_table


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reid")
    planted = make_repository(folder, n_patients=2)
    key = new_key_file(folder / "key")
    reid = folder / "private" / "reid.enc"
    run = deidentify_repository(planted.root, folder / "out", key, "S03", workers=1, reid_table=reid, show=False)
    return planted, key, reid, run, folder


def test_ciphertext_holds_no_original_identifier(written):
    planted, _, reid, run, _ = written
    assert run.reid_table == reid and reid.stat().st_mode & 0o077 == 0  # owner only
    data = reid.read_bytes()
    assert data.startswith(MAGIC)
    token = base64.urlsafe_b64decode(data[len(MAGIC) :].strip())
    originals = {*planted.local_ids, *planted.uids} | {t for t in planted.tokens if len(t) >= 6}
    assert not [v for v in originals if v.encode("utf-8") in data or v.encode("utf-8") in token]


def test_round_trip_exact(written):
    planted, key, reid, _, _ = written
    table = read_reid_table(reid, key)
    inputs = [pydicom.dcmread(p, stop_before_pixels=True) for p in planted.files]
    studies = {(str(ds.PatientID), str(ds.StudyInstanceUID), str(ds.AccessionNumber)) for ds in inputs}
    # one row per study and accession number (the generator plants a new accession number in every file)
    assert len(table) == len(studies) and table["study_instance_uid"].nunique() == 4
    k = load_key(key)
    rows = zip(table["local_patient_id"], table["study_instance_uid"], table["accession_number"], strict=True)
    assert set(rows) == studies
    assert (table["pseudonym"] == [pseudonym(k, "S03", i) for i in table["local_patient_id"]]).all()
    # the new study UIDs are the ones in the output
    out_studies = {
        str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in (written[4] / "out").rglob("*.dcm")
    }
    assert set(table["new_study_instance_uid"]) == out_studies
    assert table.columns.tolist()[:3] == ["site", "local_patient_id", "pseudonym"]


def test_wrong_key_fails_with_one_line(written, tmp_path, capsys):
    _, _, reid, _, _ = written
    other = new_key_file(tmp_path / "other")
    with pytest.raises(DeidError, match="cannot be decrypted with key file") as caught:
        read_reid_table(reid, other)
    assert "\n" not in str(caught.value)
    assert main(["reidentify-table", str(reid), "--key", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "wrong key" in err
    damaged = tmp_path / "damaged.enc"
    damaged.write_bytes(reid.read_bytes()[:-20] + b"AAAA\n")
    with pytest.raises(DeidError, match="wrong key, or the file was altered"):
        read_reid_table(damaged, written[1])


def test_refused_inside_out_or_in(written, tmp_path):
    planted, key, *_ = written
    with pytest.raises(DeidError, match="inside OUT"):
        deidentify_repository(planted.root, tmp_path / "o", key, "S03", reid_table=tmp_path / "o" / "r.enc")
    with pytest.raises(DeidError, match="inside IN"):
        deidentify_repository(planted.root, tmp_path / "o", key, "S03", reid_table=planted.root / "r.enc")
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_cli_writes_and_decrypts(written, tmp_path, capsys):
    planted, key, *_ = written
    reid = tmp_path / "r.enc"
    args = ["deidentify", str(planted.root), str(tmp_path / "o"), "--key", str(key), "--site", "S03"]
    assert main([*args, "--reid-table", str(reid), "--no-ocr"]) == 0
    assert "re-identification table" in capsys.readouterr().out
    assert main(["reidentify-table", str(reid), "--key", str(key)]) == 0
    printed = capsys.readouterr().out
    assert "16 rows (2 patients)" in printed and not any(i in printed for i in planted.local_ids)
    assert main(["reidentify-table", str(reid), "--key", str(key), "--out", str(tmp_path / "r.csv")]) == 0
    assert pd.read_csv(tmp_path / "r.csv", dtype=str)["local_patient_id"].isin(planted.local_ids).all()


def test_resumed_run_writes_the_whole_table(written, tmp_path):
    import json
    import shutil

    planted, key, reid, _, folder = written
    partial = tmp_path / "partial"
    shutil.copytree(folder / "out", partial)
    manifest = json.loads((partial / "manifest.json").read_text())
    (partial / "manifest.json").unlink()
    done = [e for e in manifest["files"] if e["output"]][:5]
    (partial / "manifest.partial.jsonl").write_text("\n".join(json.dumps(e) for e in done) + "\n", encoding="utf-8")
    again = tmp_path / "again.enc"
    run = deidentify_repository(planted.root, partial, key, "S03", workers=1, reid_table=again, show=False)
    assert run.resumed == 5
    assert read_reid_table(again, key).equals(read_reid_table(reid, key))
