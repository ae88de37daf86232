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

from kicc_analysis.demo.clinical import PUBLISHED, ClinicalSimulation, inject_problems, simulate_clinical
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

__all__ = [
    "DEFAULT_PATIENTS",
    "GENERATOR_VERSION",
    "DemoManifest",
    "DemoPlan",
    "PatientPlan",
    "SeriesPlan",
    "StudyPlan",
    "generate_demo",
    "load_manifest",
    "plan_demo",
]

GENERATOR_VERSION = "2.2.0"  # 2.1.0: readings/ct_findings.csv (issue 20); 2.2.0: deid_problems option (issue 18)
#: default size: the published KICC-19 cohort (522 patients, 17 hospitals)
DEFAULT_PATIENTS = int(PUBLISHED["n_patients"])
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
    deid_problems : de-identification problems planted on request (``generate_demo(deid_problems=True)``; see
        :mod:`kicc_analysis.demo.deid_problems`): problem, audit rule, series UID, masked path. Empty by default.
    deid_problems_planted : whether they were asked for.
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
    deid_problems: list[dict[str, Any]] = field(default_factory=list)
    deid_problems_planted: bool = False

    def __str__(self) -> str:
        s = self.sizes
        return (
            f"KICC-19 demo repository at {self.out_dir} (seed {self.seed}, {self.n_patients} patients, "
            f"{s.get('n_sites', 0)} sites{', full resolution' if self.full_resolution else ''}): "
            f"{s.get('n_ct_studies', 0)} CT studies / {s.get('n_ct_series', 0)} CT series, "
            f"{s.get('n_radiographs', 0)} radiographs, {s.get('n_dicom_files', 0)} DICOM files, "
            f"{len(self.injected_problems)} injected data problems"
            + (f", {len(self.deid_problems)} planted de-identification problems" if self.deid_problems_planted else "")
            + " (see manifest.json)"
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
# The plan: patients -> studies -> series, decided in the main process before any pixel is made
# ----------------------------------------------------------------------------------------------------------------
#: scan counts per patient, from the published KICC-19 summary: CT in 89.1 % of patients (658 scans: 1.415 per
#: patient with CT, i.e. a follow-up CT in 41.5 % of them), radiographs in 95.2 % (1,475: 2.83 per patient)
CT_PATIENT_RATE = PUBLISHED["ct_patients"]
FOLLOWUP_CT_RATE = PUBLISHED["ct_scans"] / round(PUBLISHED["ct_patients"] * PUBLISHED["n_patients"]) - 1.0
RADIOGRAPH_PATIENT_RATE = PUBLISHED["radiograph_patients"]
RADIOGRAPHS_PER_PATIENT = PUBLISHED["radiograph_scans"] / PUBLISHED["n_patients"]
#: grid of the phantom that radiographs of patients without a CT are projected from (z, y, x voxels; mm)
RADIOGRAPH_PHANTOM = ((50, 64, 96), (6.0, 5.39, 3.6))


@dataclass(frozen=True)
class SeriesPlan:
    """One CT series to write: role (``lung`` or ``soft_tissue``), series number, kernel, noise (HU), grid."""

    role: str
    series_number: int
    kernel: str
    noise_hu: float
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]

    @property
    def description(self) -> str:
        return f"{'LUNG' if self.role == 'lung' else 'MEDIASTINUM'} {self.spacing_mm[0]:.1f} {self.kernel}"


@dataclass(frozen=True)
class StudyPlan:
    """One imaging study of a patient.

    Attributes
    ----------
    number : 1-based study index within the patient (part of every UID's entropy and of folder names).
    modality : ``CT``, ``DX`` or ``CR``.
    day : days since admission; ``timepoint`` 1 baseline, 2 follow-up.
    opacity_pct, consolidation_fraction : lesion burden the phantom is built with (% of lung; share of it that is
        consolidation). A radiograph shows the burden of the patient's nearest CT (or the baseline burden).
    change : ``baseline``, ``progression``, ``resolution``, ``unchanged`` (CT) or ``""`` (radiographs).
    study_uid : StudyInstanceUID (deterministic).
    series : CT series to write (empty for a radiograph: one image).
    source_ct : for a radiograph, ``number`` of the CT study whose phantom it is projected from, or ``None``.
    """

    number: int
    modality: str
    day: int
    timepoint: int
    opacity_pct: float
    consolidation_fraction: float
    change: str
    study_uid: str
    series: tuple[SeriesPlan, ...] = ()
    source_ct: int | None = None


@dataclass(frozen=True)
class PatientPlan:
    """Everything needed to write one patient's images, in a worker process (picklable, no pixels)."""

    index: int
    subjid: str
    site: str
    sex: str
    age: str
    admission: str
    body_scale: float
    seed: int
    full: bool
    patient_seed: int
    studies: tuple[StudyPlan, ...]
    table_z: tuple[float, ...]


@dataclass(frozen=True)
class DemoPlan:
    """The demo repository without pixels: clinical table, injected problems, and patients -> studies -> series.

    ``inventory`` is exactly ``clinical/imaging_studies.csv`` of the written demo, so scan counts, outcomes and the
    CT burden can be checked at full size without writing images (:func:`plan_demo`).
    """

    seed: int
    n_patients: int
    full_resolution: bool
    simulation: ClinicalSimulation
    clinical: pd.DataFrame
    injected_problems: list[dict[str, Any]]
    patients: tuple[PatientPlan, ...]

    @property
    def inventory(self) -> pd.DataFrame:
        rows = [
            {
                "subjid": p.subjid,
                "img_study_uid": st.study_uid,
                "img_modality": st.modality,
                "img_day": st.day,
                "img_timepoint": st.timepoint,
            }
            for p in self.patients
            for st in p.studies
        ]
        return pd.DataFrame(rows, columns=["subjid", "img_study_uid", "img_modality", "img_day", "img_timepoint"])


def _plan_dicts(plans: tuple[PatientPlan, ...]) -> list[dict[str, Any]]:
    """The plan in the mapping form ``cxr_readers`` reads (``studies`` with ``modality, day, opacity, cons``)."""
    return [
        {
            "subjid": p.subjid,
            "seed": p.seed,
            "patient_seed": p.patient_seed,
            "body_scale": p.body_scale,
            "studies": [
                {"modality": s.modality, "day": s.day, "opacity": s.opacity_pct, "cons": s.consolidation_fraction}
                for s in p.studies
            ],
        }
        for p in plans
    ]


def _top_k(score: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros(len(score), dtype=bool)
    if k > 0:
        out[np.argsort(-score, kind="stable")[:k]] = True
    return out


def _ct_series(site: SiteProfile, full: bool) -> tuple[SeriesPlan, ...]:
    roles = [("lung", 2, site.lung_kernel, site.noise_hu)]
    if site.soft_series_mm is not None:
        roles.append(("soft_tissue", 3, site.soft_kernel, 8.0))
    out = []
    for role, sn, kernel, noise in roles:
        shape, spacing = _ct_grid(site, full, role)
        out.append(SeriesPlan(role, sn, kernel, noise, shape, spacing))
    return tuple(out)


def _plan_patients(sim: ClinicalSimulation, seed: int, full: bool) -> tuple[PatientPlan, ...]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    c, lat = sim.clinical, sim.latent
    n = len(c)
    sev = lat["severity"].to_numpy(float)
    out_days = c["outco_day"].to_numpy(int)
    dead_all = c["outco_outcome"].to_numpy(int) == 2
    # who is imaged, and how often: exact counts at every size (published rates), sicker patients more often
    has_ct = _top_k(0.6 * sev + rng.normal(0.0, 1.0, n), int(round(CT_PATIENT_RATE * n)))
    fu_eligible = has_ct & ~(dead_all & (out_days < 5))
    n_fu = min(int(round(FOLLOWUP_CT_RATE * has_ct.sum())), int(fu_eligible.sum()))
    has_fu = _top_k(np.where(fu_eligible, 0.7 * sev + rng.logistic(0.0, 1.0, n), -np.inf), n_fu)
    has_rx = _top_k(0.4 * sev + rng.normal(0.0, 1.0, n), int(round(RADIOGRAPH_PATIENT_RATE * n)))
    extra = max(0, int(round(RADIOGRAPHS_PER_PATIENT * n)) - int(has_rx.sum()))
    weight = np.where(has_rx, np.exp(0.5 * sev), 0.0)
    n_rx = has_rx.astype(int)
    if extra and weight.sum() > 0:
        n_rx = n_rx + rng.multinomial(extra, weight / weight.sum())

    plans = []
    for i in range(n):
        row, lrow = c.iloc[i], lat.iloc[i]
        site = SITE_PROFILES[row["kicc_site"]]
        subjid = row["subjid"]
        out_day, dead = int(out_days[i]), bool(dead_all[i])
        base_op, base_cons = float(lrow["opacity_pct"]), float(lrow["consolidation_fraction"])
        studies: list[dict[str, Any]] = []
        base_day = int(rng.choice([0, 0, 0, 1, 1, 2]))
        if has_ct[i]:
            studies.append({"modality": "CT", "day": base_day, "timepoint": 1, "opacity": base_op,
                            "cons": base_cons, "change": "baseline"})  # fmt: skip
        if has_fu[i]:
            hi = min(21, out_day - 1) if dead else 21
            fu_day = max(base_day + 1, int(rng.integers(min(7, hi), hi + 1)))
            worse = rng.random() < 1.0 / (1.0 + np.exp(-(0.9 * sev[i] - 0.3)))
            factor = float(rng.uniform(1.3, 2.2)) if worse else float(rng.uniform(0.3, 0.8))
            if base_op == 0:
                factor, worse = 1.0, False
            studies.append(
                {
                    "modality": "CT",
                    "day": fu_day,
                    "timepoint": 2,
                    "opacity": round(min(80.0, base_op * factor), 2),
                    "cons": round(min(0.7, base_cons + (0.1 if worse else 0.15)), 3),
                    "change": ("progression" if worse else "resolution") if base_op > 0 else "unchanged",
                }
            )
        cts = list(enumerate(studies, start=1))
        if n_rx[i]:
            last = max(1, min(out_day - (1 if dead else 0), 28))
            days = sorted(int(d) for d in rng.integers(0, last + 1, int(n_rx[i])))
            if rng.random() < 0.8:
                days[0] = 0  # the admission film
            for d in days:
                # the radiograph shows the burden of the nearest CT (projected from that CT's phantom)
                near = min(cts, key=lambda kv: abs(kv[1]["day"] - d)) if cts else None
                studies.append(
                    {
                        "modality": site.radiograph_class,
                        "day": d,
                        "timepoint": 1 if d <= base_day + 1 else 2,
                        "opacity": near[1]["opacity"] if near else base_op,
                        "cons": near[1]["cons"] if near else base_cons,
                        "change": "",
                        "source_ct": near[0] if near else None,
                    }
                )
        study_plans = tuple(
            StudyPlan(
                number=k,
                modality=st["modality"],
                day=int(st["day"]),
                timepoint=int(st["timepoint"]),
                opacity_pct=float(st["opacity"]),
                consolidation_fraction=float(st["cons"]),
                change=st["change"],
                study_uid=demo_uid(seed, subjid, k, "study"),
                series=_ct_series(site, full) if st["modality"] == "CT" else (),
                source_ct=st.get("source_ct"),
            )
            for k, st in enumerate(studies, start=1)
        )
        plans.append(
            PatientPlan(
                index=i,
                subjid=subjid,
                site=site.site,
                sex={1: "M", 2: "F"}.get(int(row["demog_sex"]), "O"),
                age=f"{int(min(row['demog_age'], 120)):03d}Y",
                admission=str(lrow["admission_date"])[:10],
                body_scale=float(lrow["body_scale"]),
                seed=seed,
                full=full,
                patient_seed=int(np.random.SeedSequence([seed, 1000 + i]).generate_state(1)[0]),
                studies=study_plans,
                table_z=tuple(round(float(rng.uniform(-330.0, -290.0)), 2) for _ in studies),
            )
        )
    return tuple(plans)


def plan_demo(n_patients: int = DEFAULT_PATIENTS, seed: int = 19, full_resolution: bool = False) -> DemoPlan:
    """Everything :func:`generate_demo` decides before writing pixels (fast: no phantom is built).

    Parameters
    ----------
    n_patients : number of patients (>= 1).
    seed : the demo's seed (same plan as ``generate_demo(..., seed=seed)``).
    full_resolution : plan the full-resolution CT grids.

    Returns
    -------
    DemoPlan: the clinical table as written (with the injected problems), the list of problems, the clean
    simulation (``simulation.latent`` holds the baseline CT burden) and patients -> studies -> series.

    Examples
    --------
    >>> plan = plan_demo(12, seed=3)
    >>> len(plan.patients), plan.inventory.columns.tolist()[:3]
    (12, ['subjid', 'img_study_uid', 'img_modality'])
    """
    if int(n_patients) < 1:
        raise RepositoryError(f"generate_demo: n_patients must be >= 1, got {n_patients!r}")
    seed = int(seed)
    sim = simulate_clinical(int(n_patients), np.random.default_rng(np.random.SeedSequence([seed, 1])))
    clinical, problems = inject_problems(sim.clinical, np.random.default_rng(np.random.SeedSequence([seed, 2])))
    patients = _plan_patients(sim, seed, bool(full_resolution))
    return DemoPlan(seed, int(n_patients), bool(full_resolution), sim, clinical, problems, patients)


def _ct_grid(site: SiteProfile, full: bool, role: str) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    n_xy, px = FULL_INPLANE if full else DEFAULT_INPLANE
    if role == "soft_tissue":
        sz = float(site.soft_series_mm or 10.0)
    else:
        sz = FULL_SLICE_MM if full else site.slice_mm
    nz = int(round(Z_EXTENT_MM / sz))
    return (nz, n_xy, n_xy), (sz, px, px)


def _write_patient(plan: PatientPlan, root_str: str) -> dict[str, Any]:
    """Write every study of one patient; returns inventory rows, truth rows and baseline lobe involvement."""
    root = Path(root_str)
    site = SITE_PROFILES[plan.site]
    subjid = plan.subjid
    patient = {"subjid": subjid, "sex": plan.sex, "age": plan.age}
    admission = dt.date.fromisoformat(plan.admission)
    pseed = plan.patient_seed
    truth, radiographs, files = [], [], 0
    baseline_inv: dict[str, float] = {}
    ct_phantoms: dict[int, Any] = {}  # study number -> lung-series phantom (radiographs are projected from it)
    for st in plan.studies:
        k = st.number
        entropy = (plan.seed, subjid, k)
        study = {
            "uid": st.study_uid,
            "date": study_date(admission, st.day),
            "time": f"{8 + (pseed + k) % 10:02d}{(pseed // 7 + 13 * k) % 60:02d}00",
            "accession": f"D{plan.seed % 1000:03d}{plan.index:05d}{k}",
            "study_id": str(k),
            "description": "CT CHEST" if st.modality == "CT" else "CHEST PA",
        }
        common = {
            "lesions": "random" if st.opacity_pct > 0 else None,
            "seed": pseed,
            "opacity_fraction": st.opacity_pct / 100.0,
            "consolidation_fraction": st.consolidation_fraction,
            "body_scale": plan.body_scale,
        }
        if st.modality != "CT":
            ph = ct_phantoms.get(st.source_ct) if st.source_ct is not None else None
            if ph is None:
                ph = chest_phantom(*RADIOGRAPH_PHANTOM, noise_hu=0.0, **common)
            pixels, spacing = radiograph_from_phantom(ph, 256, np.random.default_rng([pseed, k]))
            folder = _series_folder(root, site, subjid, plan.index, k, 1, "CHEST PA")
            path = folder / _file_namer(site, k, 1, st.modality)(1, demo_uid(*entropy, "sop"))
            write_radiograph(pixels, spacing, path, site=site, patient=patient, study=study, entropy=entropy)
            files += 1
            radiographs.append(
                {
                    "subjid": subjid,
                    "study_uid": st.study_uid,
                    "modality": st.modality,
                    "img_day": st.day,
                    "source_ct_study_uid": plan.studies[st.source_ct - 1].study_uid if st.source_ct else "",
                    "opacity_pct": round(float(ph.volumes_ml["opacity_pct"]), 4),
                    **{f"{lobe}_involvement": round(ph.lobe_involvement[lobe], 4) for lobe in LOBES},
                }
            )
            continue
        for sp in st.series:
            ph = chest_phantom(
                sp.shape, sp.spacing_mm, noise_hu=sp.noise_hu, noise_seed=pseed + 7919 * k + sp.series_number, **common
            )
            folder = _series_folder(root, site, subjid, plan.index, k, sp.series_number, sp.description)
            ws = write_ct_series(
                ph,
                folder,
                site=site,
                patient=patient,
                study=study,
                series_number=sp.series_number,
                role=sp.role,
                kernel=sp.kernel,
                file_name=_file_namer(site, k, sp.series_number, "CT"),
                table_z_mm=plan.table_z[k - 1],
                entropy=entropy,
            )
            files += len(ws.files)
            write_ground_truth(ph, ws.geometry, root / "ground_truth", ws.series_uid)
            write_lobe_truth(ph, ws.geometry, root / "ground_truth", ws.series_uid, sp.role)  # issue 15 (ctmask): lobes
            v = ph.volumes_ml
            truth.append(
                {
                    "subjid": subjid,
                    "series_uid": ws.series_uid,
                    "study_uid": st.study_uid,
                    "timepoint": st.timepoint,
                    "img_day": st.day,
                    "series_role": sp.role,
                    "change": st.change,
                    "slice_mm": sp.spacing_mm[0],
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
            if sp.role == "lung":
                ct_phantoms[k] = ph
                if st.timepoint == 1 and not baseline_inv:
                    baseline_inv = dict(ph.lobe_involvement)
    return {"truth": truth, "radiographs": radiographs, "files": files, "baseline_inv": baseline_inv}


_RADIOGRAPH_TRUTH_COLUMNS = [
    "subjid",
    "study_uid",
    "modality",
    "img_day",
    "source_ct_study_uid",
    "opacity_pct",
    *(f"{lobe}_involvement" for lobe in LOBES),
]

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


def _check_out_dir(
    out: Path, seed: int, n_patients: int, full: bool, if_missing: bool, deid_problems: bool = False
) -> DemoManifest | None:
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
        and old.deid_problems_planted == deid_problems
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
    n_patients: int = DEFAULT_PATIENTS,
    seed: int = 19,
    full_resolution: bool = False,
    show_progress: bool | None = None,
    *,
    if_missing: bool = False,
    workers: int | None = None,
    deid_problems: bool = False,
) -> DemoManifest:
    """Write the embedded demo repository (deterministic from ``seed``).

    Parameters
    ----------
    out_dir : destination folder: new, empty, or a previous demo (which is replaced).
    n_patients : number of patients (>= 1), spread over 17 sites S01-S17 of different sizes (the six largest
        first: every one of S01-S06 has a patient when ``n_patients >= 6``). Default: the published 522.
    seed : everything (clinical values, anatomy, lesions, noise, UIDs) follows from it.
    full_resolution : 512 x 512 CT slices of 0.7 mm, 1.25 mm apart (slow, large) instead of the default
        128 x 128 x 2.7 mm with 4-6 mm slices.
    show_progress : progress bar (default: on unless ``KICC_NO_PROGRESS`` is set).
    if_missing : if ``out_dir`` already holds a demo with the same seed, size and resolution, return its manifest
        without writing anything.
    workers : processes writing CTs (default: 2 when there are more than 10 patients, else 1; full-resolution
        phantoms need ~1.2 GB each, so keep 1-2).
    deid_problems : plant five de-identification problems for the audit to find (a series without Patient
        Identity Removed, a name in a description, text burned into a radiograph, an identifier in a file name,
        dates shifted inconsistently; :mod:`kicc_analysis.demo.deid_problems`), listed in the manifest. Off by
        default: the clean demo is what every other analysis expects.

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
    existing = _check_out_dir(out, int(seed), int(n_patients), bool(full_resolution), if_missing, bool(deid_problems))
    if existing is not None:
        return existing
    out.mkdir(parents=True, exist_ok=True)
    seed = int(seed)
    plan = plan_demo(int(n_patients), seed, bool(full_resolution))
    plans = plan.patients

    n_workers = workers if workers is not None else (min(2, os.cpu_count() or 1) if n_patients > 10 else 1)
    results: list[dict[str, Any]] = []
    bar = progress_bar(total=len(plans), show=show_progress, desc="demo patients", unit="patient")
    try:
        if n_workers <= 1:
            for p in plans:
                results.append(_write_patient(p, str(out)))
                bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
                futures = [pool.submit(_write_patient, p, str(out)) for p in plans]
                for fut in futures:
                    results.append(fut.result())
                    bar.update(1)
    finally:
        bar.close()

    # --- tables ------------------------------------------------------------------------------------------------
    (out / "clinical").mkdir(exist_ok=True)
    (out / "readings").mkdir(exist_ok=True)
    (out / "ground_truth").mkdir(exist_ok=True)
    plan.clinical.to_csv(out / "clinical" / "clinical.csv", index=False, lineterminator="\n")
    inventory = plan.inventory
    inventory.to_csv(out / "clinical" / "imaging_studies.csv", index=False, lineterminator="\n")
    truth = pd.DataFrame([r for res in results for r in res["truth"]])
    truth.to_csv(out / "ground_truth" / "truth.csv", index=False, lineterminator="\n")
    radiographs = pd.DataFrame([r for res in results for r in res["radiographs"]], columns=_RADIOGRAPH_TRUTH_COLUMNS)
    radiographs.to_csv(out / "ground_truth" / "radiographs.csv", index=False, lineterminator="\n")
    # readers score the baseline CT: patients without a CT have no reading
    with_ct = [bool(res["baseline_inv"]) for res in results]
    cases = plan.simulation.latent.loc[with_ct, ["subjid", "opacity_pct", "consolidation_fraction"]].copy()
    for lobe in LOBES:
        cases[lobe] = [res["baseline_inv"][lobe] for res in results if res["baseline_inv"]]
    readings = simulate_readings(cases, np.random.default_rng(np.random.SeedSequence([seed, 3])))
    readings.to_csv(out / "readings" / "reader_scores.csv", index=False, lineterminator="\n")
    # issue 17 hook: 3 readers' Brixia scores (demo/cxr_readers.py)
    write_demo_cxr_readings(out, _plan_dicts(plans), seed)
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

    planted_deid = []
    if deid_problems:
        from kicc_analysis.demo.deid_problems import plant_deid_problems

        planted_deid = plant_deid_problems(out / "dicom")

    n_ct_series = int(len(truth))
    is_ct = inventory["img_modality"] == "CT"
    sizes = {
        "n_patients": int(n_patients),
        "n_sites": int(plan.clinical["kicc_site"].nunique()),
        "n_patients_with_ct": int(inventory.loc[is_ct, "subjid"].nunique()),
        "n_patients_with_radiographs": int(inventory.loc[~is_ct, "subjid"].nunique()),
        "n_ct_studies": int((inventory["img_modality"] == "CT").sum()),
        "n_ct_series": n_ct_series,
        "n_ct_followup_studies": int(((inventory["img_modality"] == "CT") & (inventory["img_timepoint"] == 2)).sum()),
        "n_radiographs": int((inventory["img_modality"] != "CT").sum()),
        "n_dicom_files": int(sum(res["files"] for res in results)),
        "n_non_dicom_files": len(non_dicom),
        "n_ground_truth_files": 2 * n_ct_series + 2,
    }
    manifest = DemoManifest(
        out_dir=str(out),
        seed=seed,
        n_patients=int(n_patients),
        full_resolution=bool(full_resolution),
        sizes=sizes,
        sites={k: int(v) for k, v in plan.clinical["kicc_site"].value_counts().sort_index().items()},
        injected_problems=plan.injected_problems,
        non_dicom_files=[str(p.relative_to(out)) for p in non_dicom],
        deid_problems=planted_deid,
        deid_problems_planted=bool(deid_problems),
    )
    (out / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
    return manifest
