"""A synthetic scan index at cohort scale (tables only, no files, no pixel data).

:func:`synthetic_index` generates the flat per-file index a filesystem scan would have written for a repository of
``n_patients`` patients, ``n_series`` series and ``n_instances`` instances (default 20,000 / 100,000 / 1,000,000,
the scale of issue 21): each patient has CT studies (axial series of several kernels and a scout) and radiograph
studies. :func:`synthetic_scan` turns it into a :class:`~kicc_analysis.repository.RepositoryScan` with the same code
a real scan uses (:func:`build_instances`, :func:`build_series`, :func:`select_ct_series`, :func:`build_studies`),
and :func:`write_synthetic_clinical` writes a matching clinical table, so :func:`kicc_analysis.cohort.build_cohort`
can be measured at scale (``benchmarks/cohort_scale_benchmark.py``).

Example
-------
>>> from kicc_analysis.repository.synthetic_index import synthetic_index
>>> index = synthetic_index(n_patients=4, n_series=20, n_instances=200)
>>> len(index), index["series_uid"].nunique(), index["patient_id"].nunique()
(200, 20, 4)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .tables import FLAT_COLUMNS, INDEX_COLUMN_TYPES

__all__ = ["load_scan_tables", "save_scan_tables", "synthetic_index", "synthetic_scan", "write_synthetic_clinical"]

_ROOT = "1.2.826.0.1.3680043.8.498.78"
_CT = "1.2.840.10008.5.1.4.1.1.2"
_DX = "1.2.840.10008.5.1.4.1.1.1.1"


def synthetic_index(
    n_patients: int = 20_000, n_series: int = 100_000, n_instances: int = 1_000_000, *, seed: int = 0
) -> pd.DataFrame:
    """The flat scan index (columns :data:`FLAT_COLUMNS`) of a synthetic repository.

    Each patient gets ``n_series // n_patients`` series: one radiograph (DX, 1 instance) study, and CT studies of
    one axial series per kernel (``B30f``, ``B70f``) with the remaining instances spread over them (slice spacing
    = thickness = 1 mm); the CT studies are a baseline and follow-ups. Patient ids are ``SYN00001``...

    Parameters
    ----------
    n_patients, n_series, n_instances : int
        Sizes; ``n_series`` must be a multiple of ``n_patients`` of at least 3 per patient, and
        ``n_instances`` at least 10 per CT series.
    seed : int
        Seed of the random thicknesses and pixel spacings.
    """
    per_patient = n_series // n_patients
    if per_patient < 3 or per_patient * n_patients != n_series:
        raise ValueError(f"n_series ({n_series}) must be a multiple >= 3 of n_patients ({n_patients})")
    rng = np.random.default_rng(seed)
    # series layout: series 0 of each patient is a DX radiograph (1 instance); CT series in pairs (two kernels)
    series_patient = np.repeat(np.arange(n_patients), per_patient)
    series_rank = np.tile(np.arange(per_patient), n_patients)
    is_dx = series_rank == 0
    ct_rank = series_rank - 1  # 0, 1, 2, ... for CT series of the patient
    study_of_series = np.where(is_dx, 0, 1 + ct_rank // 2)  # CT study k holds CT series 2k-2, 2k-1
    n_ct = int((~is_dx).sum())
    ct_instances = n_instances - int(is_dx.sum())
    if ct_instances < 10 * n_ct:
        raise ValueError(f"n_instances ({n_instances}) too small for {n_ct} CT series of >= 10 slices")
    counts = np.ones(n_series, dtype=np.int64)
    base, extra = divmod(ct_instances, n_ct)
    ct_counts = np.full(n_ct, base, dtype=np.int64)
    ct_counts[:extra] += 1
    counts[~is_dx] = ct_counts
    # per instance
    s = np.repeat(np.arange(n_series), counts)
    start = np.repeat(np.cumsum(counts) - counts, counts)
    k = np.arange(len(s)) - start  # slice number within the series
    patient = series_patient[s]
    study = study_of_series[s]
    dx = is_dx[s]
    pid = np.char.add("SYN", np.char.zfill(np.char.mod("%d", patient + 1), 5))
    study_uid = np.char.add(np.char.add(f"{_ROOT}.1.", np.char.mod("%d", patient + 1)), np.char.mod(".%d", study))
    series_uid = np.char.add(f"{_ROOT}.2.", np.char.mod("%d", s + 1))
    sop_uid = np.char.add(np.char.add(f"{_ROOT}.3.", np.char.mod("%d", s + 1)), np.char.mod(".%d", k + 1))
    relpath = np.char.add(np.char.add(np.char.add(pid, "/"), np.char.mod("%d/", s + 1)), np.char.mod("%05d.dcm", k))
    kernel = np.where(dx, None, np.where(ct_rank[s] % 2 == 0, "B30f", "B70f")).astype(object)
    thickness = np.where(dx, np.nan, 1.0)
    spacing = np.round(rng.uniform(0.6, 0.8, n_series), 3)[s]
    n = len(s)
    frame = {
        "relpath": relpath.astype(object),
        "size": np.full(n, 526_000, dtype=np.int64),
        "mtime_ns": np.full(n, 1_600_000_000_000_000_000, dtype=np.int64),
        "ctime_ns": np.full(n, 1_600_000_000_000_000_000, dtype=np.int64),
        "parser": np.full(n, "fast", dtype=object),
        "transfer_syntax": np.full(n, "1.2.840.10008.1.2.1", dtype=object),
        "sop_class_uid": np.where(dx, _DX, _CT).astype(object),
        "sop_uid": sop_uid.astype(object),
        "study_date": np.full(n, "20200301", dtype=object),
        "modality": np.where(dx, "DX", "CT").astype(object),
        "manufacturer": np.full(n, "SIEMENS", dtype=object),
        "patient_id": pid.astype(object),
        "body_part": np.full(n, "CHEST", dtype=object),
        "slice_thickness": thickness,
        "kernel": kernel,
        "view_position": np.where(dx, "PA", None).astype(object),
        "study_uid": study_uid.astype(object),
        "series_uid": series_uid.astype(object),
        "series_number": (series_rank[s] + 1).astype(float),
        "instance_number": (k + 1).astype(float),
        "image_position_x": np.where(dx, np.nan, -180.0),
        "image_position_y": np.where(dx, np.nan, -180.0),
        "image_position_z": np.where(dx, np.nan, -k.astype(float)),
        "orient_rx": np.where(dx, np.nan, 1.0),
        "orient_ry": np.where(dx, np.nan, 0.0),
        "orient_rz": np.where(dx, np.nan, 0.0),
        "orient_cx": np.where(dx, np.nan, 0.0),
        "orient_cy": np.where(dx, np.nan, 1.0),
        "orient_cz": np.where(dx, np.nan, 0.0),
        "frame_of_reference_uid": np.char.add(f"{_ROOT}.4.", np.char.mod("%d", s + 1)).astype(object),
        "samples_per_pixel": np.ones(n),
        "photometric_interpretation": np.where(dx, "MONOCHROME1", "MONOCHROME2").astype(object),
        "number_of_frames": np.full(n, np.nan),
        "rows": np.where(dx, 2048.0, 512.0),
        "columns": np.where(dx, 2048.0, 512.0),
        "pixel_spacing_row": np.where(dx, 0.15, spacing),
        "pixel_spacing_col": np.where(dx, 0.15, spacing),
        "imager_spacing_row": np.where(dx, 0.15, np.nan),
        "imager_spacing_col": np.where(dx, 0.15, np.nan),
        "bits_allocated": np.full(n, 16.0),
        "pixel_representation": np.where(dx, 0.0, 1.0),
        "rescale_intercept": np.where(dx, np.nan, -1024.0),
        "rescale_slope": np.where(dx, np.nan, 1.0),
    }
    index = pd.DataFrame(frame)
    for column in FLAT_COLUMNS:
        if column not in index.columns:
            index[column] = np.nan if INDEX_COLUMN_TYPES[column] == "float" else None
    return index[list(FLAT_COLUMNS)]


def synthetic_scan(index: pd.DataFrame, root: str | Path = "/synthetic/dicom"):
    """A :class:`~kicc_analysis.repository.RepositoryScan` of ``index`` built by the scanner's own table code."""
    from .scan import _build_tables, _finish_scan

    root = Path(root)
    instances, series, skipped = _build_tables(root, index, [])
    tables = {"instances": instances, "series": series, "skipped": skipped}
    return _finish_scan(root, tables, len(index), 0, len(index), 0, None, [], 10, False)


def save_scan_tables(scan, folder: str | Path) -> None:
    """Write a scan's tables to ``folder`` in the scanner's table-cache format (Arrow IPC, one file per table)."""
    from .scan import _save_tables
    from .sealed import cache_secret

    Path(folder).mkdir(parents=True, exist_ok=True)
    tables = {key: getattr(scan, key) for key in ("instances", "series", "studies", "skipped", "selection")}
    secret = cache_secret(folder, create=True)
    if secret is None:
        raise OSError(f"no cache secret could be made in {folder}")
    problem = _save_tables(Path(folder), "synthetic", "", tables, secret)
    if problem:
        raise OSError(problem)


def load_scan_tables(folder: str | Path, root: str | Path = "/synthetic/dicom"):
    """Load tables written by :func:`save_scan_tables` the way a re-scan of an unchanged tree loads its cache
    (sealed columns unsealed, ``path`` rebuilt from ``root``)."""
    from pyarrow import feather

    from .scan import _STRING_MAPPER, _TABLES, SEALED_SUFFIX, RepositoryScan, _join_root
    from .sealed import cache_secret, unseal_table

    secret = cache_secret(folder)
    tables = {}
    for key in _TABLES:
        clear = feather.read_table(Path(folder) / f"{key}.arrow", memory_map=True)
        sealed = (Path(folder) / f"{key}{SEALED_SUFFIX}").read_bytes()
        table = unseal_table(clear, sealed, secret) if secret is not None else None
        if table is None:
            raise OSError(f"scan tables in {folder} cannot be unsealed (secret missing or another one)")
        if table.schema.metadata.get(b"kicc_path_from_root") == b"1":
            table = table.add_column(0, "path", _join_root(Path(root), table.column("relpath")))
        mapper = _STRING_MAPPER if key == "instances" else None
        tables[key] = table.to_pandas(split_blocks=True, types_mapper=mapper)
    n = len(tables["instances"])
    return RepositoryScan(
        root=Path(root),
        instances=tables["instances"],
        series=tables["series"],
        studies=tables["studies"],
        skipped=tables["skipped"],
        selection=tables["selection"],
        n_files=n,
        n_read=0,
        n_reused=n,
    )


def write_synthetic_clinical(repository: str | Path, n_patients: int = 20_000, *, seed: int = 0) -> Path:
    """Write ``clinical/clinical.csv`` (``subjid, demog_age, demog_sex``) for the patients of :func:`synthetic_index`."""
    rng = np.random.default_rng(seed)
    path = Path(repository) / "clinical" / "clinical.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(
        {
            "subjid": [f"SYN{i:05d}" for i in range(1, n_patients + 1)],
            "demog_age": rng.integers(20, 95, n_patients),
            "demog_sex": rng.integers(1, 3, n_patients),
        }
    )
    table.to_csv(path, index=False)
    return path
