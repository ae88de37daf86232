"""``generate_demo``: write the whole embedded demo repository, deterministically from a seed.

Layout (see docs/demo.md)::

    OUT/manifest.json                 seed, sizes, generator version, injected problems
    OUT/dicom/<site>/...              CT series and DX/CR radiographs, site-specific nesting and naming,
                                      plus a few non-DICOM files (README.txt, Thumbs.db)
    OUT/clinical/clinical.csv         one row per patient (data dictionary variables)
    OUT/clinical/imaging_studies.csv  subjid, img_study_uid, img_modality, img_day, img_timepoint
    OUT/readings/reader_scores.csv    subjid, reader, item, score
    OUT/ground_truth/                 <SeriesInstanceUID>_lung.nrrd, <SeriesInstanceUID>_lesion.nrrd, truth.csv
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kicc_analysis.demo.clinical import ClinicalSimulation, inject_problems, simulate_clinical
from kicc_analysis.demo.cxr_readers import write_demo_cxr_readings
from kicc_analysis.demo.dicom_writer import (
    SITE_PROFILES,
    SiteProfile,
    demo_uid,
    radiograph_from_phantom,
    study_date,
    write_ct_series,
    write_ground_truth,
    write_radiograph,
)
from kicc_analysis.demo.finding_readers import write_demo_finding_readings
from kicc_analysis.demo.lobes import write_lobe_truth  # issue 15 (ctmask)
from kicc_analysis.demo.phantom import chest_phantom
from kicc_analysis.demo.readers import LOBES, simulate_readings
from kicc_analysis.errors import RepositoryError
from kicc_analysis.progress import progress_bar

__all__ = ["GENERATOR_VERSION", "DemoManifest", "generate_demo", "load_manifest"]

GENERATOR_VERSION = "1.1.0"  # 1.1.0: readings/ct_findings.csv (issue 20)
MANIFEST_KIND = "kicc-analysis demo repository"
_DEMO_ENTRIES = {"manifest.json", "dicom", "clinical", "readings", "ground_truth"}
# derived files kicc itself writes into a writable repository (scan index, cohort snapshots, quantification cache:
# kicc_analysis.cohort.cache_dir); kept when the demo is reused, removed with the demo it was derived from
_DERIVED_ENTRIES = {".kicc_cache"}

#: default (fast) and full-resolution CT grids: in-plane pixels and pixel size (mm); z covers 300 mm
DEFAULT_INPLANE = (128, 2.7)
FULL_INPLANE = (512, 0.7)
FULL_SLICE_MM = 1.25
Z_EXTENT_MM = 300.0


@dataclass(frozen=True)
class DemoManifest:
    """Content of ``manifest.json``.

    Attributes
    ----------
    out_dir : where the repository was written.
    seed, n_patients, full_resolution : generation parameters.
    generator_version : version of this generator (changes when outputs change).
    sizes : counts (patients, CT studies/series, radiographs, DICOM and non-DICOM files, sites).
    sites : number of patients per site.
    injected_problems : data-quality problems put into ``clinical/clinical.csv`` on purpose
        (``row`` 0-based, ``subjid``, ``variable``, ``problem``).
    non_dicom_files : paths (relative to OUT) of the non-DICOM files mixed into ``dicom/``.
    """

    out_dir: str
    seed: int
    n_patients: int
    full_resolution: bool
    generator_version: str = GENERATOR_VERSION
    kind: str = MANIFEST_KIND
    sizes: dict[str, int] = field(default_factory=dict)
    sites: dict[str, int] = field(default_factory=dict)
    injected_problems: list[dict[str, Any]] = field(default_factory=list)
    non_dicom_files: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        s = self.sizes
        return (
            f"KICC-19 demo repository at {self.out_dir} (seed {self.seed}, {self.n_patients} patients, "
            f"{s.get('n_sites', 0)} sites{', full resolution' if self.full_resolution else ''}): "
            f"{s.get('n_ct_studies', 0)} CT studies / {s.get('n_ct_series', 0)} CT series, "
            f"{s.get('n_radiographs', 0)} radiographs, {s.get('n_dicom_files', 0)} DICOM files, "
            f"{len(self.injected_problems)} injected data problems (see manifest.json)"
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("out_dir")
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], out_dir: str) -> DemoManifest:
        keys = {f for f in cls.__dataclass_fields__ if f != "out_dir"}
        return cls(out_dir=out_dir, **{k: v for k, v in data.items() if k in keys})


def load_manifest(out_dir: str | os.PathLike) -> DemoManifest:
    """Read ``OUT/manifest.json`` of a demo repository.

    Raises
    ------
    RepositoryError
        When the file is missing, unreadable or not a demo manifest.
    """
    path = Path(out_dir) / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RepositoryError(f"no demo manifest at {path} (expected a folder written by generate_demo)") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise RepositoryError(f"demo manifest {path} is unreadable: {exc}") from exc
    if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND:
        raise RepositoryError(f"{path} is not a kicc-analysis demo manifest (kind={data.get('kind')!r})")
    return DemoManifest.from_dict(data, str(Path(out_dir)))


# ----------------------------------------------------------------------------------------------------------------
# Per-site file layout
# ----------------------------------------------------------------------------------------------------------------
def _series_folder(root: Path, site: SiteProfile, subjid: str, pidx: int, k: int, sn: int, desc: str) -> Path:
    base = root / "dicom" / site.site
    if site.layout == "nested_dcm":
        return base / subjid / f"study_{k}" / f"series_{sn}"
    if site.layout == "bare_numbers":
        return base / subjid / f"{k}" / f"{sn}"
    if site.layout == "flat":
        return base / subjid
    if site.layout == "dicomdir_like":
        return base / f"PA{pidx:06d}" / f"ST{k:06d}" / f"SE{sn:06d}"
    if site.layout == "by_description":
        return base / subjid / f"{desc.replace(' ', '_')}_{k}"
    return base / subjid  # uid_names


def _file_namer(site: SiteProfile, k: int, sn: int, modality: str):
    def name(instance: int, sop_uid: str) -> str:
        if site.layout == "nested_dcm":
            return f"IM{instance:05d}.dcm"
        if site.layout == "bare_numbers":
            return f"{instance}"
        if site.layout == "flat":
            return f"IMG{k}{sn:02d}{instance:04d}.dcm"
        if site.layout == "dicomdir_like":
            return f"IM{instance:06d}"
        if site.layout == "by_description":
            return f"{instance:04d}.dcm"
        return f"{modality}.{sop_uid}.dcm"

    return name


# ----------------------------------------------------------------------------------------------------------------
# Planning (main process, deterministic) and writing (worker processes)
# ----------------------------------------------------------------------------------------------------------------
def _plan_patients(sim: ClinicalSimulation, seed: int, full: bool) -> list[dict[str, Any]]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    plans = []
    c, lat = sim.clinical, sim.latent
    for i in range(len(c)):
        row, lrow = c.iloc[i], lat.iloc[i]
        site = SITE_PROFILES[row["kicc_site"]]
        out_day = int(row["outco_day"])
        dead = int(row["outco_outcome"]) == 2
        sev = float(lrow["severity"])
        studies: list[dict[str, Any]] = []
        base_day = int(rng.choice([0, 0, 0, 1, 1, 2]))
        studies.append(
            {
                "modality": "CT",
                "day": base_day,
                "timepoint": 1,
                "opacity": float(lrow["opacity_pct"]),
                "cons": float(lrow["consolidation_fraction"]),
                "change": "baseline",
            }
        )
        p_fu = 1.0 / (1.0 + np.exp(-(-0.75 + 0.7 * sev)))
        if rng.random() < p_fu:
            fu_day = int(rng.integers(7, 22))
            if not (dead and fu_day >= out_day):
                worse = rng.random() < 1.0 / (1.0 + np.exp(-(0.9 * sev - 0.3)))
                factor = float(rng.uniform(1.3, 2.2)) if worse else float(rng.uniform(0.3, 0.8))
                base_op = float(lrow["opacity_pct"])
                if base_op == 0:
                    factor, worse = 1.0, False
                studies.append(
                    {
                        "modality": "CT",
                        "day": fu_day,
                        "timepoint": 2,
                        "opacity": round(min(80.0, base_op * factor), 2),
                        "cons": round(min(0.7, float(lrow["consolidation_fraction"]) + (0.1 if worse else 0.15)), 3),
                        "change": ("progression" if worse else "resolution") if base_op > 0 else "unchanged",
                    }
                )
        if rng.random() < 0.5:
            n_rx = int(rng.integers(1, 4))
            last = max(1, min(out_day - (1 if dead else 0), 21))
            days = sorted(int(d) for d in rng.integers(0, last + 1, n_rx))
            for d in days:
                # the radiograph shows the burden of the nearest CT
                near = min(studies[: (2 if len(studies) > 1 else 1)], key=lambda s: abs(s["day"] - d))
                studies.append(
                    {
                        "modality": site.radiograph_class,
                        "day": d,
                        "timepoint": 1 if d <= base_day + 1 else 2,
                        "opacity": near["opacity"],
                        "cons": near["cons"],
                        "change": "",
                    }
                )
        plans.append(
            {
                "index": i,
                "subjid": row["subjid"],
                "site": site.site,
                "sex": {1: "M", 2: "F"}.get(int(row["demog_sex"]), "O"),
                "age": f"{int(min(row['demog_age'], 120)):03d}Y",
                "admission": str(lrow["admission_date"])[:10],
                "body_scale": float(lrow["body_scale"]),
                "studies": studies,
                "seed": seed,
                "full": full,
                "patient_seed": int(np.random.SeedSequence([seed, 1000 + i]).generate_state(1)[0]),
                "table_z": [round(float(rng.uniform(-330.0, -290.0)), 2) for _ in studies],
            }
        )
    return plans


def _ct_grid(site: SiteProfile, full: bool, role: str) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    n_xy, px = FULL_INPLANE if full else DEFAULT_INPLANE
    if role == "soft_tissue":
        sz = float(site.soft_series_mm or 10.0)
    else:
        sz = FULL_SLICE_MM if full else site.slice_mm
    nz = int(round(Z_EXTENT_MM / sz))
    return (nz, n_xy, n_xy), (sz, px, px)


def _write_patient(plan: dict[str, Any], root_str: str) -> dict[str, Any]:
    """Write every study of one patient; returns inventory rows, truth rows and baseline lobe involvement."""
    root = Path(root_str)
    site = SITE_PROFILES[plan["site"]]
    subjid = plan["subjid"]
    patient = {"subjid": subjid, "sex": plan["sex"], "age": plan["age"]}
    admission = dt.date.fromisoformat(plan["admission"])
    pseed = plan["patient_seed"]
    inventory, truth, files = [], [], 0
    baseline_inv: dict[str, float] = {}
    for k, st in enumerate(plan["studies"], start=1):
        entropy = (plan["seed"], subjid, k)
        study = {
            "uid": demo_uid(*entropy, "study"),
            "date": study_date(admission, st["day"]),
            "time": f"{8 + (pseed + k) % 10:02d}{(pseed // 7 + 13 * k) % 60:02d}00",
            "accession": f"D{plan['seed'] % 1000:03d}{plan['index']:05d}{k}",
            "study_id": str(k),
            "description": "CT CHEST" if st["modality"] == "CT" else "CHEST PA",
        }
        inventory.append(
            {
                "subjid": subjid,
                "img_study_uid": study["uid"],
                "img_modality": st["modality"],
                "img_day": st["day"],
                "img_timepoint": st["timepoint"],
            }
        )
        common = {
            "lesions": "random" if st["opacity"] > 0 else None,
            "seed": pseed,
            "opacity_fraction": st["opacity"] / 100.0,
            "consolidation_fraction": st["cons"],
            "body_scale": plan["body_scale"],
        }
        if st["modality"] != "CT":
            ph = chest_phantom((50, 64, 96), (6.0, 5.39, 3.6), noise_hu=0.0, **common)
            pixels, spacing = radiograph_from_phantom(ph, 256, np.random.default_rng([pseed, k]))
            folder = _series_folder(root, site, subjid, plan["index"], k, 1, "CHEST PA")
            path = folder / _file_namer(site, k, 1, st["modality"])(1, demo_uid(*entropy, "sop"))
            write_radiograph(pixels, spacing, path, site=site, patient=patient, study=study, entropy=entropy)
            files += 1
            continue
        roles = [("lung", 2, site.lung_kernel, site.noise_hu)]
        if site.soft_series_mm is not None:
            roles.append(("soft_tissue", 3, site.soft_kernel, 8.0))
        for role, sn, kernel, noise in roles:
            shape, spacing = _ct_grid(site, plan["full"], role)
            ph = chest_phantom(shape, spacing, noise_hu=noise, noise_seed=pseed + 7919 * k + sn, **common)
            desc = f"{'LUNG' if role == 'lung' else 'MEDIASTINUM'} {spacing[0]:.1f} {kernel}"
            folder = _series_folder(root, site, subjid, plan["index"], k, sn, desc)
            ws = write_ct_series(
                ph,
                folder,
                site=site,
                patient=patient,
                study=study,
                series_number=sn,
                role=role,
                kernel=kernel,
                file_name=_file_namer(site, k, sn, "CT"),
                table_z_mm=plan["table_z"][k - 1],
                entropy=entropy,
            )
            files += len(ws.files)
            write_ground_truth(ph, ws.geometry, root / "ground_truth", ws.series_uid)
            write_lobe_truth(ph, ws.geometry, root / "ground_truth", ws.series_uid, role)  # issue 15 (ctmask): lobes
            v = ph.volumes_ml
            truth.append(
                {
                    "subjid": subjid,
                    "series_uid": ws.series_uid,
                    "study_uid": study["uid"],
                    "timepoint": st["timepoint"],
                    "img_day": st["day"],
                    "series_role": role,
                    "change": st["change"],
                    "slice_mm": spacing[0],
                    "lung_right_ml": round(v["lung_right"], 3),
                    "lung_left_ml": round(v["lung_left"], 3),
                    "lung_ml": round(v["lung_total"], 3),
                    "ggo_ml": round(v["ggo"], 3),
                    "consolidation_ml": round(v["consolidation"], 3),
                    "opacity_pct": round(v["opacity_pct"], 4),
                    "vessel_ml": round(v["vessel"], 3),
                    **_hu_bin_volumes(ph),
                    **{f"{lobe}_involvement": round(ph.lobe_involvement[lobe], 4) for lobe in LOBES},
                }
            )
            if role == "lung" and st["timepoint"] == 1 and not baseline_inv:
                baseline_inv = dict(ph.lobe_involvement)
    return {"inventory": inventory, "truth": truth, "files": files, "baseline_inv": baseline_inv}


#: quantification HU bins as specified for KICC-19 (the analysis layer owns the authoritative table; the demo, a lower
#: layer, must not import it): GGO -700 <= HU < -300, consolidation -300 <= HU <= +50
_GGO_BIN = (-700, -300)
_CONSOLIDATION_BIN = (-300, 50)


def _hu_bin_volumes(ph) -> dict[str, float]:
    """What an ideal HU-bin count inside the *true* lung mask measures (mL): separates segmentation error from the
    definition bias of bin counting (vessels and boundary voxels), see docs/demo.md."""
    lung = ph.lung_labels > 0
    hu = ph.hu
    vox_ml = float(np.prod(ph.spacing_mm)) / 1000.0
    ggo = int(((hu >= _GGO_BIN[0]) & (hu < _GGO_BIN[1]) & lung).sum())
    con = int(((hu >= _CONSOLIDATION_BIN[0]) & (hu <= _CONSOLIDATION_BIN[1]) & lung).sum())
    return {"hu_bin_ggo_ml": round(ggo * vox_ml, 3), "hu_bin_consolidation_ml": round(con * vox_ml, 3)}


def _check_out_dir(out: Path, seed: int, n_patients: int, full: bool, if_missing: bool) -> DemoManifest | None:
    """Return an existing matching manifest (if_missing), clear a previous demo, or refuse a foreign folder."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise RepositoryError(f"demo output {out} exists and is not a folder")
    entries = {p.name for p in out.iterdir()}
    if not entries:
        return None
    try:
        old = load_manifest(out)
    except RepositoryError as exc:
        raise RepositoryError(
            f"refusing to write the demo into {out}: the folder is not empty ({len(entries)} entries, e.g. "
            f"{sorted(entries)[:3]}) and is not a previous demo repository ({exc}). Choose an empty or new folder."
        ) from None
    same = (
        old.seed == seed
        and old.n_patients == n_patients
        and old.full_resolution == full
        and old.generator_version == GENERATOR_VERSION
    )
    if if_missing and same:
        return old  # nothing is written: files beside the demo (its cache, a user's notes) stay as they are
    foreign = entries - _DEMO_ENTRIES - _DERIVED_ENTRIES
    if foreign:
        raise RepositoryError(
            f"refusing to overwrite {out}: it holds a demo but also other files {sorted(foreign)[:5]}; "
            "move them away or choose another folder"
        )
    for name in (_DEMO_ENTRIES | _DERIVED_ENTRIES) & entries:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
    return None


def generate_demo(
    out_dir: str | os.PathLike,
    n_patients: int = 120,
    seed: int = 19,
    full_resolution: bool = False,
    show_progress: bool | None = None,
    *,
    if_missing: bool = False,
    workers: int | None = None,
) -> DemoManifest:
    """Write the embedded demo repository (deterministic from ``seed``).

    Parameters
    ----------
    out_dir : destination folder: new, empty, or a previous demo (which is replaced).
    n_patients : number of patients (>= 1), spread over six sites S01-S06.
    seed : everything (clinical values, anatomy, lesions, noise, UIDs) follows from it.
    full_resolution : 512 x 512 CT slices of 0.7 mm, 1.25 mm apart (slow, large) instead of the default
        128 x 128 x 2.7 mm with 4-6 mm slices.
    show_progress : progress bar (default: on unless ``KICC_NO_PROGRESS`` is set).
    if_missing : if ``out_dir`` already holds a demo with the same seed, size and resolution, return its manifest
        without writing anything.
    workers : processes writing CTs (default: 2 when there are more than 10 patients, else 1; full-resolution
        phantoms need ~1.2 GB each, so keep 1-2).

    Returns
    -------
    DemoManifest (also written to ``out_dir/manifest.json``).

    Raises
    ------
    RepositoryError
        When ``out_dir`` is a non-empty folder that is not a previous demo, or ``n_patients < 1``.
    """
    if int(n_patients) < 1:
        raise RepositoryError(f"generate_demo: n_patients must be >= 1, got {n_patients!r}")
    out = Path(out_dir)
    existing = _check_out_dir(out, int(seed), int(n_patients), bool(full_resolution), if_missing)
    if existing is not None:
        return existing
    out.mkdir(parents=True, exist_ok=True)
    seed = int(seed)
    sim = simulate_clinical(int(n_patients), np.random.default_rng(np.random.SeedSequence([seed, 1])))
    plans = _plan_patients(sim, seed, bool(full_resolution))

    n_workers = workers if workers is not None else (min(2, os.cpu_count() or 1) if n_patients > 10 else 1)
    results: list[dict[str, Any]] = []
    bar = progress_bar(total=len(plans), show=show_progress, desc="demo patients", unit="patient")
    try:
        if n_workers <= 1:
            for plan in plans:
                results.append(_write_patient(plan, str(out)))
                bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
                futures = [pool.submit(_write_patient, plan, str(out)) for plan in plans]
                for fut in futures:
                    results.append(fut.result())
                    bar.update(1)
    finally:
        bar.close()

    # --- tables ------------------------------------------------------------------------------------------------
    (out / "clinical").mkdir(exist_ok=True)
    (out / "readings").mkdir(exist_ok=True)
    (out / "ground_truth").mkdir(exist_ok=True)
    clinical, problems = inject_problems(sim.clinical, np.random.default_rng(np.random.SeedSequence([seed, 2])))
    clinical.to_csv(out / "clinical" / "clinical.csv", index=False, lineterminator="\n")
    inventory = pd.DataFrame([r for res in results for r in res["inventory"]])
    inventory.to_csv(out / "clinical" / "imaging_studies.csv", index=False, lineterminator="\n")
    truth = pd.DataFrame([r for res in results for r in res["truth"]])
    truth.to_csv(out / "ground_truth" / "truth.csv", index=False, lineterminator="\n")
    cases = sim.latent[["subjid", "opacity_pct", "consolidation_fraction"]].copy()
    for lobe in LOBES:
        cases[lobe] = [res["baseline_inv"].get(lobe, 0.0) for res in results]
    readings = simulate_readings(cases, np.random.default_rng(np.random.SeedSequence([seed, 3])))
    readings.to_csv(out / "readings" / "reader_scores.csv", index=False, lineterminator="\n")
    write_demo_cxr_readings(out, plans, seed)  # issue 17 hook: 3 readers' Brixia scores (demo/cxr_readers.py)
    write_demo_finding_readings(out, cases, seed)  # issue 20 hook: CT findings, RSNA, CO-RADS (finding_readers.py)

    # --- a few non-DICOM files in the DICOM tree ---------------------------------------------------------------
    non_dicom = []
    readme = out / "dicom" / "README.txt"
    readme.write_text(
        "KICC-19 demo repository: synthetic CT and radiographs, not patient data.\n"
        "Folder layouts differ by site on purpose.\n",
        encoding="utf-8",
    )
    non_dicom.append(readme)
    first_site_dir = sorted(p for p in (out / "dicom").iterdir() if p.is_dir())[0]
    first_patient = sorted(p for p in first_site_dir.iterdir() if p.is_dir())[0]
    thumbs = first_patient / "Thumbs.db"
    thumbs.write_bytes(bytes(np.random.default_rng(seed).integers(0, 256, 512, dtype=np.uint8)))
    non_dicom.append(thumbs)

    n_ct_series = int(len(truth))
    sizes = {
        "n_patients": int(n_patients),
        "n_sites": int(sim.clinical["kicc_site"].nunique()),
        "n_ct_studies": int((inventory["img_modality"] == "CT").sum()),
        "n_ct_series": n_ct_series,
        "n_ct_followup_studies": int(((inventory["img_modality"] == "CT") & (inventory["img_timepoint"] == 2)).sum()),
        "n_radiographs": int((inventory["img_modality"] != "CT").sum()),
        "n_dicom_files": int(sum(res["files"] for res in results)),
        "n_non_dicom_files": len(non_dicom),
        "n_ground_truth_files": 2 * n_ct_series + 1,
    }
    manifest = DemoManifest(
        out_dir=str(out),
        seed=seed,
        n_patients=int(n_patients),
        full_resolution=bool(full_resolution),
        sizes=sizes,
        sites={k: int(v) for k, v in sim.clinical["kicc_site"].value_counts().sort_index().items()},
        injected_problems=problems,
        non_dicom_files=[str(p.relative_to(out)) for p in non_dicom],
    )
    (out / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
    return manifest
