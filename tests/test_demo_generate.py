"""Tests of the embedded demo repository (kicc_analysis.demo.generate_demo and its parts)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import UID
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from kicc_analysis.demo import generate_demo, load_manifest
from kicc_analysis.demo.clinical import CLINICAL_COLUMNS, LAB_COLUMNS, simulate_clinical
from kicc_analysis.demo.dicom_writer import SITE_PROFILES, demo_uid, write_ct_series
from kicc_analysis.demo.phantom import chest_phantom
from kicc_analysis.demo.readers import LOBES, READERS, lobe_score, simulate_readings
from kicc_analysis.errors import RepositoryError

N = 6  # one patient in each of the six largest sites S01-S06 (the six original site habits)
SEED = 5
CT = "1.2.840.10008.5.1.4.1.1.2"
DX = "1.2.840.10008.5.1.4.1.1.1.1"
CR = "1.2.840.10008.5.1.4.1.1.1"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "repo"
    generate_demo(out, n_patients=N, seed=SEED, show_progress=False)
    return out


@pytest.fixture(scope="module")
def demo_same_seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo_same") / "repo"
    # two worker processes: the output must not depend on how patients are spread over processes
    generate_demo(out, n_patients=N, seed=SEED, show_progress=False, workers=2)
    return out


@pytest.fixture(scope="module")
def headers(demo: Path) -> dict[str, pydicom.Dataset]:
    """Every DICOM header of the demo (pixel data not loaded), keyed by relative path."""
    manifest = load_manifest(demo)
    out = {}
    for path in sorted((demo / "dicom").rglob("*")):
        rel = str(path.relative_to(demo))
        if path.is_dir() or rel in manifest.non_dicom_files:
            continue
        out[rel] = pydicom.dcmread(path, stop_before_pixels=True)
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------------------------
# layout, manifest, determinism
# ---------------------------------------------------------------------------------------------------------------
def test_layout_and_manifest(demo: Path) -> None:
    for rel in (
        "manifest.json",
        "clinical/clinical.csv",
        "clinical/imaging_studies.csv",
        "readings/reader_scores.csv",
        "ground_truth/truth.csv",
    ):
        assert (demo / rel).is_file(), rel
    m = load_manifest(demo)
    assert m.seed == SEED and m.n_patients == N and not m.full_resolution
    assert m.sizes["n_sites"] == 6 and sum(m.sites.values()) == N
    n_dicom = sum(1 for rel in _tree(demo / "dicom") if f"dicom/{rel}" not in m.non_dicom_files)
    assert m.sizes["n_dicom_files"] == n_dicom
    truth = pd.read_csv(demo / "ground_truth" / "truth.csv")
    assert m.sizes["n_ct_series"] == len(truth)
    assert len(list((demo / "ground_truth").glob("*.nrrd"))) == 2 * len(truth)


def test_deterministic_bytes(demo: Path, demo_same_seed: Path) -> None:
    assert _tree(demo) == _tree(demo_same_seed)
    for rel in ("clinical/clinical.csv", "readings/reader_scores.csv", "ground_truth/truth.csv", "manifest.json"):
        assert _sha(demo / rel) == _sha(demo_same_seed / rel), rel
    some_dicom = [r for r in _tree(demo) if r.startswith("dicom/S0") and "Thumbs" not in r][::37]
    for rel in some_dicom:
        a = pydicom.dcmread(demo / rel)
        b = pydicom.dcmread(demo_same_seed / rel)
        assert hashlib.sha256(a.PixelData).hexdigest() == hashlib.sha256(b.PixelData).hexdigest()
        assert _sha(demo / rel) == _sha(demo_same_seed / rel)
    # a different seed changes the clinical values, the pixels and the UIDs (checked on the building blocks, which
    # is what generate_demo assembles, to keep the test fast)
    a = simulate_clinical(N, np.random.default_rng(np.random.SeedSequence([SEED, 1]))).clinical
    b = simulate_clinical(N, np.random.default_rng(np.random.SeedSequence([SEED + 1, 1]))).clinical
    assert not a.drop(columns=["subjid", "kicc_site"]).equals(b.drop(columns=["subjid", "kicc_site"]))
    assert demo_uid(SEED, "KICC-S01-0001", 1, "study") != demo_uid(SEED + 1, "KICC-S01-0001", 1, "study")
    clinical = pd.read_csv(demo / "clinical" / "clinical.csv")
    assert clinical["demog_bmi"].tolist() == a["demog_bmi"].tolist()


def test_out_dir_guard_and_if_missing(demo: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("precious")
    with pytest.raises(RepositoryError, match="not a previous demo"):
        generate_demo(foreign, n_patients=2, seed=1, show_progress=False)
    assert (foreign / "thesis.docx").read_text() == "precious"
    before = (demo / "manifest.json").stat().st_mtime_ns
    m = generate_demo(demo, n_patients=N, seed=SEED, show_progress=False, if_missing=True)
    assert m.seed == SEED and (demo / "manifest.json").stat().st_mtime_ns == before
    with pytest.raises(RepositoryError, match="n_patients"):
        generate_demo(tmp_path / "x", n_patients=0)


def test_if_missing_keeps_the_demo_and_its_cache(tmp_path: Path) -> None:
    # a second `make study` finds the demo with the cache that the first run wrote into it (.kicc_cache)
    out = tmp_path / "repo"
    generate_demo(out, n_patients=1, seed=1, show_progress=False)
    cached = out / ".kicc_cache" / "quantification" / "series.parquet"
    cached.parent.mkdir(parents=True)
    cached.write_text("cached")
    before = (out / "manifest.json").stat().st_mtime_ns
    m = generate_demo(out, n_patients=1, seed=1, show_progress=False, if_missing=True)
    assert m.seed == 1 and (out / "manifest.json").stat().st_mtime_ns == before
    assert cached.read_text() == "cached"
    # a different demo replaces the old one and the cache derived from it; a user's file still blocks it
    generate_demo(out, n_patients=1, seed=2, show_progress=False)
    assert load_manifest(out).seed == 2 and not (out / ".kicc_cache").exists()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RepositoryError, match="other files"):
        generate_demo(out, n_patients=1, seed=3, show_progress=False)
    assert (out / "notes.txt").read_text() == "mine" and load_manifest(out).seed == 2


def test_regenerates_over_previous_demo(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    generate_demo(out, n_patients=1, seed=1, show_progress=False)
    m = generate_demo(out, n_patients=2, seed=2, show_progress=False)
    assert load_manifest(out).seed == 2 and m.n_patients == 2
    assert len(pd.read_csv(out / "clinical" / "clinical.csv")) == 2


# ---------------------------------------------------------------------------------------------------------------
# DICOM validity
# ---------------------------------------------------------------------------------------------------------------
def test_dicom_headers_valid(demo: Path, headers: dict[str, pydicom.Dataset]) -> None:
    clinical = pd.read_csv(demo / "clinical" / "clinical.csv")
    subjids = set(clinical["subjid"])
    sop_uids = [h.SOPInstanceUID for h in headers.values()]
    assert len(sop_uids) == len(set(sop_uids))
    for rel, h in headers.items():
        assert h.SOPClassUID in (CT, DX, CR), rel
        for uid in (h.SOPInstanceUID, h.SeriesInstanceUID, h.StudyInstanceUID):
            assert UID(uid).is_valid, (rel, uid)
        assert h.file_meta.MediaStorageSOPInstanceUID == h.SOPInstanceUID
        assert h.PatientID in subjids and str(h.PatientName) == h.PatientID
        assert h.PatientBirthDate == "" and h.PatientIdentityRemoved == "YES"
        if h.SOPClassUID == CT:
            assert h.Modality == "CT" and h.RescaleType == "HU"
            assert [float(v) for v in h.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
            if h.PixelRepresentation == 0:
                assert float(h.RescaleIntercept) == -1024
            else:
                assert float(h.RescaleIntercept) == 0
        else:
            assert (h.Modality, h.SOPClassUID) in (("DX", DX), ("CR", CR))
            assert h.PhotometricInterpretation == ("MONOCHROME1" if h.Modality == "CR" else "MONOCHROME2")
            assert (h.Rows, h.Columns) == (256, 256)
    kernels = {str(h.ConvolutionKernel) for h in headers.values() if h.SOPClassUID == CT}
    assert {"B70f", "LUNG", "B30f"} <= kernels
    assert any(int(h.PixelRepresentation) == 0 for h in headers.values() if h.SOPClassUID == CT)
    assert any(h.get("PixelPaddingValue") == -2048 for h in headers.values())


def test_study_dates_match_imaging_inventory(demo: Path, headers: dict[str, pydicom.Dataset]) -> None:
    inv = pd.read_csv(demo / "clinical" / "imaging_studies.csv")
    dates = {h.StudyInstanceUID: dt.datetime.strptime(h.StudyDate, "%Y%m%d").date() for h in headers.values()}
    assert set(inv["img_study_uid"]) == set(dates)
    inv["date"] = inv["img_study_uid"].map(dates)
    # StudyDate - img_day is the (shifted) admission date: one value per patient
    inv["admission"] = [d - dt.timedelta(days=int(k)) for d, k in zip(inv["date"], inv["img_day"], strict=True)]
    assert (inv.groupby("subjid")["admission"].nunique() == 1).all()
    clinical = pd.read_csv(demo / "clinical" / "clinical.csv").set_index("subjid")
    pres = pd.to_datetime(clinical["pres_date"]).dt.date
    assert (inv["admission"] == inv["subjid"].map(pres)).all()  # StudyDate = pres_date + img_day
    assert all(d.year >= 2100 for d in inv["date"])  # shifted, obviously fictional dates
    assert set(inv["img_modality"]) <= {"CT", "DX", "CR"}
    baseline = inv[(inv["img_modality"] == "CT") & (inv["img_timepoint"] == 1)]
    with_ct = inv.loc[inv["img_modality"] == "CT", "subjid"].unique()
    # every patient with a CT has a baseline CT; 89.1 % of patients have a CT (published), here round(0.891 * 6) = 5
    assert sorted(baseline["subjid"]) == sorted(with_ct) and len(with_ct) == round(0.891 * N)
    assert load_manifest(demo).sizes["n_patients_with_ct"] == len(with_ct)


def test_series_geometry_matches_ground_truth(demo: Path, headers: dict[str, pydicom.Dataset]) -> None:
    truth = pd.read_csv(demo / "ground_truth" / "truth.csv")
    folder_of = {h.SeriesInstanceUID: (demo / rel).parent for rel, h in headers.items()}
    reader = sitk.ImageSeriesReader()
    for row in truth.drop_duplicates("subjid").itertuples():
        lung = sitk.ReadImage(str(demo / "ground_truth" / f"{row.series_uid}_lung.nrrd"))
        files = reader.GetGDCMSeriesFileNames(str(folder_of[row.series_uid]), row.series_uid)
        assert files, f"series {row.series_uid} not found"
        reader.SetFileNames(files)
        img = reader.Execute()
        assert img.GetSize() == lung.GetSize()
        np.testing.assert_allclose(img.GetSpacing(), lung.GetSpacing(), atol=1e-4)
        np.testing.assert_allclose(img.GetOrigin(), lung.GetOrigin(), atol=1e-6)
        hu = sitk.GetArrayFromImage(img)
        lung_arr = sitk.GetArrayFromImage(lung)
        lesion_arr = sitk.GetArrayFromImage(
            sitk.ReadImage(str(demo / "ground_truth" / f"{row.series_uid}_lesion.nrrd"))
        )
        assert np.median(hu[(lung_arr > 0) & (lesion_arr == 0)]) < -750
        assert not ((lesion_arr > 0) & (lung_arr == 0)).any()
        if (lesion_arr == 1).any():
            assert -700 < np.median(hu[lesion_arr == 1]) < -400


@pytest.mark.parametrize("site_code", sorted(SITE_PROFILES))
def test_written_series_reads_back_as_phantom_hu(site_code: str, tmp_path: Path) -> None:
    site = SITE_PROFILES[site_code]
    ph = chest_phantom((8, 48, 48), (5.0, 7.2, 7.2), lesions="random", seed=3, opacity_fraction=0.2)
    study = {
        "uid": demo_uid("t", site_code),
        "date": "21200105",
        "time": "101500",
        "accession": "T1",
        "study_id": "1",
        "description": "CT CHEST",
    }
    ws = write_ct_series(
        ph,
        tmp_path,
        site=site,
        patient={"subjid": "KICC-S01-0001", "sex": "F", "age": "060Y"},
        study=study,
        series_number=2,
        role="lung",
        kernel=site.lung_kernel,
        file_name=lambda i, u: f"x{i:03d}",
        table_z_mm=-250.0,
        entropy=("t", site_code),
    )
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path), ws.series_uid))
    img = reader.Execute()
    hu = sitk.GetArrayFromImage(img)
    assert hu.shape == ph.hu.shape
    assert img.GetOrigin()[2] == pytest.approx(-250.0)
    if site.padding is None:
        np.testing.assert_array_equal(hu, ph.hu)
    else:
        inside = hu != site.padding
        assert 0.6 < inside.mean() < 0.9  # circular field of view
        np.testing.assert_array_equal(hu[inside], ph.hu[inside])
    # the byte-level fast writer equals pydicom's own encoder
    first = Path(ws.files[0])
    ds = pydicom.dcmread(first)
    ds.save_as(tmp_path / "ref.dcm", enforce_file_format=True)
    assert (tmp_path / "ref.dcm").read_bytes() == first.read_bytes()


def test_non_dicom_files_present(demo: Path) -> None:
    m = load_manifest(demo)
    assert m.non_dicom_files
    for rel in m.non_dicom_files:
        with pytest.raises(pydicom.errors.InvalidDicomError):
            pydicom.dcmread(demo / rel)


def test_soft_tissue_series_shares_study(demo: Path) -> None:
    truth = pd.read_csv(demo / "ground_truth" / "truth.csv")
    soft = truth[truth["series_role"] == "soft_tissue"]
    assert not soft.empty  # sites S01 and S04 send a second thick series
    for row in soft.itertuples():
        lung = truth[(truth["study_uid"] == row.study_uid) & (truth["series_role"] == "lung")].iloc[0]
        assert row.slice_mm > lung.slice_mm
        assert row.opacity_pct == pytest.approx(lung.opacity_pct, abs=2.0)


# ---------------------------------------------------------------------------------------------------------------
# ground truth and clinical table
# ---------------------------------------------------------------------------------------------------------------
def test_truth_matches_simulated_burden(demo: Path) -> None:
    sim = simulate_clinical(N, np.random.default_rng(np.random.SeedSequence([SEED, 1])))
    truth = pd.read_csv(demo / "ground_truth" / "truth.csv")
    base = truth[(truth["timepoint"] == 1) & (truth["series_role"] == "lung")].set_index("subjid")
    base["lesion_ml"] = base["ggo_ml"] + base["consolidation_ml"]
    target = sim.latent.set_index("subjid")["opacity_pct"].loc[base.index]
    np.testing.assert_allclose(base["opacity_pct"], target, atol=0.05)
    assert ((base["lung_ml"] > 2000) & (base["lung_ml"] < 6500)).all()
    np.testing.assert_allclose(base["lung_ml"], base["lung_right_ml"] + base["lung_left_ml"], atol=0.01)
    # an ideal HU-bin count inside the true lung finds the GGO within 5 %; vessels only add to the consolidation bin
    lesioned = base[base["ggo_ml"] > 20]
    np.testing.assert_allclose(lesioned["hu_bin_ggo_ml"], lesioned["ggo_ml"], rtol=0.05)
    excess = base["hu_bin_consolidation_ml"] - base["consolidation_ml"]
    assert (excess > 0).all() and (excess < 1.5 * base["vessel_ml"] + 0.02 * base["lesion_ml"]).all()
    fu = truth[(truth["timepoint"] == 2) & (truth["series_role"] == "lung")]
    for row in fu.itertuples():
        b = base.loc[row.subjid]
        if row.change == "progression":
            assert row.opacity_pct > b.opacity_pct
        elif row.change == "resolution":
            assert row.opacity_pct < b.opacity_pct


def test_clinical_table_columns_and_codes(demo: Path) -> None:
    c = pd.read_csv(demo / "clinical" / "clinical.csv")
    assert list(c.columns) == list(CLINICAL_COLUMNS)
    assert c["subjid"].str.fullmatch(r"KICC-S(0[1-9]|1[0-7])-\d{4}").all()
    assert (c["subjid"].str[5:8] == c["kicc_site"]).all()
    assert set(c["demog_sex"]) <= {1, 2, 99}
    for col in ("comor_smoking", "comor_hypertensi", "comor_diabetes", "inter_suppleo2", "crito_icu"):
        assert set(c[col]) <= {0, 1, 99}
    assert set(c["outco_outcome"]) <= {1, 2, 3, 4}


def test_injected_problems_are_listed_and_only_those(demo: Path) -> None:
    m = load_manifest(demo)
    raw = pd.read_csv(demo / "clinical" / "clinical.csv", dtype=str, keep_default_na=False)
    kinds = {p["problem"].split(":")[0] for p in m.injected_problems}
    assert {"free text in numeric field", "implausible value"} <= kinds
    for p in m.injected_problems:
        assert raw.at[p["row"], "subjid"] == p["subjid"]
        cell = raw.at[p["row"], p["variable"]]
        if p["problem"].startswith("free text"):
            assert cell == "<0.05"
        elif p["problem"].startswith("implausible"):
            assert float(cell) == 199
        else:
            assert cell == ""
    listed_missing = {(p["row"], p["variable"]) for p in m.injected_problems if p["problem"].startswith("missing")}
    actual_missing = {(r, col) for col in LAB_COLUMNS for r in np.nonzero((raw[col] == "").to_numpy())[0]}
    assert listed_missing == actual_missing


@pytest.fixture(scope="module")
def big_sim():
    return simulate_clinical(1500, np.random.default_rng(2024))


def test_clinical_rates_and_distributions(big_sim) -> None:
    c = big_sim.clinical
    # published KICC-19: mean age 52.3 (range 11-97), 45.8 % men; O2 23.4 %, ICU 9.4 %, MV 7.3 %, death 4.0 %
    # (HFNC and ECMO are not published: 9 % and 1.5 %); the full-size check is tests/test_demo_calibration.py
    assert 50 < c["demog_age"].mean() < 55 and 14 < c["demog_age"].std() < 22
    assert c["demog_age"].between(11, 97).all()
    assert 0.41 < (c["demog_sex"] == 1).mean() < 0.51
    rates = {
        "inter_suppleo2": 0.234,
        "inter_hfno": 0.09,
        "crito_icu": 0.094,
        "inter_invent": 0.073,
        "inter_ecmo": 0.015,
    }
    for col, rate in rates.items():
        assert c[col].mean() == pytest.approx(rate, abs=0.005), col
    assert (c["outco_outcome"] == 2).mean() == pytest.approx(0.04, abs=0.005)
    assert (c["outco_outcome"] == 1).mean() > 0.75


def test_severity_correlations(big_sim) -> None:
    c, lat = big_sim.clinical, big_sim.latent
    assert stats.spearmanr(lat["opacity_pct"], c["sever_who_worst"]).statistic > 0.3
    assert stats.spearmanr(c["demog_age"], c["outco_outcome"] == 2).statistic > 0.1
    assert stats.spearmanr(c["labs_lymphocyte_109l"], c["sever_who_worst"]).statistic < -0.15
    for lab in ("labs_crp_mgl", "labs_ldh", "labs_ddimer_mgl"):
        assert stats.spearmanr(c[lab], c["sever_who_worst"]).statistic > 0.2, lab
    assert stats.spearmanr(lat["opacity_pct"], c["vital_spo2room"]).statistic < -0.2


def test_interventions_monotone_and_days_ordered(big_sim) -> None:
    c = big_sim.clinical
    assert (c.loc[c["inter_ecmo"] == 1, "inter_invent"] == 1).all()
    assert (c.loc[c["inter_invent"] == 1, "crito_icu"] == 1).all()
    assert (c.loc[c["crito_icu"] == 1, "inter_suppleo2"] == 1).all()
    for flag, day in (
        ("inter_suppleo2", "inter_suppleo2_day"),
        ("inter_hfno", "inter_hfno_day"),
        ("inter_invent", "inter_invent_day"),
        ("inter_ecmo", "inter_ecmo_day"),
        ("crito_icu", "crito_icu_day"),
    ):
        assert c.loc[c[flag] == 0, day].isna().all()
        assert c.loc[c[flag] == 1, day].notna().all()
        assert (c.loc[c[flag] == 1, day] <= c.loc[c[flag] == 1, "outco_day"]).all()
    both = c.dropna(subset=["crito_icu_day", "inter_invent_day"])
    assert (both["crito_icu_day"] <= both["inter_invent_day"]).all()
    both = c.dropna(subset=["inter_invent_day", "inter_ecmo_day"])
    assert (both["inter_invent_day"] < both["inter_ecmo_day"]).all()
    dead = c[c["outco_outcome"] == 2]
    assert (dead["sever_who_worst"] == 10).all() and (c.loc[c["outco_outcome"] != 2, "sever_who_worst"] < 10).all()
    assert (c["sever_who_adm"] <= c["sever_who_worst"]).all()
    # competing risks: death and discharge are exclusive events with times; 3/4 are censored follow-up times
    assert (c["outco_day"] > 0).all()
    assert dead["outco_day"].median() > 5


# ---------------------------------------------------------------------------------------------------------------
# readers
# ---------------------------------------------------------------------------------------------------------------
def test_lobe_score_categories() -> None:
    # the cut-offs of kicc_analysis.scores (Pan et al. 2020: "1, < 5 %; 2, 5 %-25 %"), so exactly 5 % scores 2
    np.testing.assert_array_equal(
        lobe_score([0.0, 0.01, 0.05, 0.051, 0.25, 0.3, 0.5, 0.6, 0.75, 0.9]), [0, 1, 2, 2, 2, 3, 3, 4, 4, 5]
    )


def test_reader_scores_file(demo: Path) -> None:
    r = pd.read_csv(demo / "readings" / "reader_scores.csv")
    assert list(r.columns) == ["subjid", "reader", "item", "score"]
    assert set(r["reader"]) == {"R1", "R2", "R3"}
    assert set(r["item"]) == {*LOBES, "suspicion"}
    n_with_ct = load_manifest(demo).sizes["n_patients_with_ct"]
    assert r["subjid"].nunique() == n_with_ct and len(r) == n_with_ct * 3 * 6  # readers read the baseline CTs
    lobe = r[r["item"] != "suspicion"]
    assert lobe["score"].between(0, 5).all()
    assert r.loc[r["item"] == "suspicion", "score"].between(1, 5).all()


def test_reader_disagreement_realistic() -> None:
    rng = np.random.default_rng(8)
    sim = simulate_clinical(70, rng)
    rows = []
    for i, lat in enumerate(sim.latent.itertuples()):
        ph = chest_phantom(
            (16, 32, 32),
            (18.75, 10.8, 10.8),
            lesions="random" if lat.opacity_pct > 0 else None,
            seed=i % 8,  # few anatomies (cached smooth fields keep this fast), many different burdens
            opacity_fraction=lat.opacity_pct / 100,
            consolidation_fraction=lat.consolidation_fraction,
            noise_hu=0.0,
        )
        rows.append({"subjid": lat.subjid, "opacity_pct": lat.opacity_pct,
                     "consolidation_fraction": lat.consolidation_fraction, **ph.lobe_involvement})  # fmt: skip
    scores = simulate_readings(pd.DataFrame(rows), np.random.default_rng(3))
    lobes = scores[scores["item"] != "suspicion"].pivot_table(
        index=["subjid", "item"], columns="reader", values="score"
    )
    kappa = {}
    for a, b in (("R1", "R2"), ("R1", "R3"), ("R2", "R3")):
        kappa[a + b] = cohen_kappa_score(lobes[a], lobes[b], weights="quadratic")
        assert 0.4 < kappa[a + b] < 0.9, (a, b, kappa[a + b])
    assert kappa["R1R2"] > kappa["R1R3"]  # the less experienced reader agrees least
    # reader bias: R2 over-calls, R3 under-calls relative to R1
    assert lobes["R2"].mean() > lobes["R1"].mean() > lobes["R3"].mean()
    assert [r.name for r in READERS] == ["R1", "R2", "R3"]


def test_manifest_json_is_plain(demo: Path) -> None:
    data = json.loads((demo / "manifest.json").read_text())
    assert data["kind"] == "kicc-analysis demo repository"
    assert "out_dir" not in data  # relocatable: the folder can be moved
    assert all(set(p) == {"row", "subjid", "variable", "problem"} for p in data["injected_problems"])
    assert os.fspath(load_manifest(demo).out_dir) == os.fspath(demo)
    text = str(load_manifest(demo))
    assert f"seed {SEED}" in text and f"{N} patients" in text and "injected" in text
