"""Instance -> series -> study tables from the per-file header records of a scan.

Conventions
-----------
* Positions and spacings are in mm, in the DICOM patient coordinate system (LPS).
* ``slice_position`` (mm) is the projection of Image Position (Patient) on the slice normal
  (row cosine x column cosine): slices of a series are ordered and gaps measured along it.
* A series has a *gap* when two consecutive distinct slice positions are more than 1.5 x the median
  spacing apart; ``n_missing_slices`` is the sum over gaps of ``round(gap / median) - 1``. Spacing that
  deviates from the median by more than 10 % (but is not a gap) is reported as irregular.
* Missing UIDs (anonymisers sometimes empty them) are replaced by stable synthetic keys, recorded in
  the ``uid_note`` column and the series ``issues``:

  - SOP Instance UID: the file meta Media Storage SOP Instance UID, else ``kicc-sop-<hash of path>``;
  - Series Instance UID: ``kicc-series-<hash>`` of (folder, Frame of Reference UID, series number,
    series description, rows, columns, modality);
  - Study Instance UID: ``kicc-study-<hash>`` of (patient id, study date, parent of the folder).

* Files sharing one SOP Instance UID: the first by path is kept, the others are reported in
  ``skipped`` with the path of the kept copy.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .header import IMAGE_SOP_CLASSES, NATIVE_TRANSFER_SYNTAXES

__all__ = [
    "FLAT_COLUMNS",
    "SOP_CLASS_MODALITY",
    "INDEX_COLUMN_TYPES",
    "INT_INDEX_COLUMNS",
    "TEXT_COLUMNS",
    "build_instances",
    "build_series",
    "build_studies",
    "plane_of",
]

#: Columns of one file in the index, in order, with their storage type: "text", "int" (exact integers) or
#: "float" (numbers that may be missing; header fields with several values are split into numbers).
INDEX_COLUMN_TYPES: dict[str, str] = {
    "relpath": "text",
    "size": "int",
    "mtime_ns": "int",
    "ctime_ns": "int",
    "error": "text",
    "header_hash": "text",
    "parser": "text",
    "media_sop_class_uid": "text",
    "media_sop_uid": "text",
    "transfer_syntax": "text",
    "specific_character_set": "text",
    "image_type": "text",
    "sop_class_uid": "text",
    "sop_uid": "text",
    "study_date": "text",
    "modality": "text",
    "manufacturer": "text",
    "study_description": "text",
    "series_description": "text",
    "patient_id": "text",
    "body_part": "text",
    "slice_thickness": "float",
    "spacing_between_slices": "float",
    "imager_spacing_row": "float",
    "imager_spacing_col": "float",
    "kernel": "text",
    "view_position": "text",
    "study_uid": "text",
    "series_uid": "text",
    "series_number": "float",
    "acquisition_number": "float",
    "instance_number": "float",
    "image_position_x": "float",
    "image_position_y": "float",
    "image_position_z": "float",
    "orient_rx": "float",
    "orient_ry": "float",
    "orient_rz": "float",
    "orient_cx": "float",
    "orient_cy": "float",
    "orient_cz": "float",
    "frame_of_reference_uid": "text",
    "samples_per_pixel": "float",
    "photometric_interpretation": "text",
    "number_of_frames": "float",
    "rows": "float",
    "columns": "float",
    "pixel_spacing_row": "float",
    "pixel_spacing_col": "float",
    "bits_allocated": "float",
    "pixel_representation": "float",
    "pixel_padding_value": "float",
    "rescale_intercept": "float",
    "rescale_slope": "float",
}
FLAT_COLUMNS: tuple[str, ...] = tuple(INDEX_COLUMN_TYPES)
TEXT_COLUMNS: frozenset[str] = frozenset(c for c, kind in INDEX_COLUMN_TYPES.items() if kind == "text")
INT_INDEX_COLUMNS: frozenset[str] = frozenset(c for c, kind in INDEX_COLUMN_TYPES.items() if kind == "int")

#: Modality implied by the SOP Class when the Modality attribute is absent (sparse headers).
SOP_CLASS_MODALITY: dict[str, str] = IMAGE_SOP_CLASSES

_GAP_FACTOR = 1.5
#: Two slices closer than this along the normal (mm) share one position.
_SAME_POSITION = 0.01
_INT_COLUMNS = (
    "series_number",
    "acquisition_number",
    "instance_number",
    "samples_per_pixel",
    "number_of_frames",
    "rows",
    "columns",
    "bits_allocated",
    "pixel_representation",
    "pixel_padding_value",
)
_IRREGULAR = 0.10


def _dirnames(paths: pd.Series) -> pd.Series:
    """``os.path.dirname`` of every path, vectorised with pyarrow (the same strings; rows it cannot decide, such as
    ``a//b`` or ``/x``, and text pyarrow cannot hold go through ``os.path.dirname``)."""
    values = paths.to_numpy(dtype=object)
    try:
        arr = pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError):
        return pd.Series([os.path.dirname(p) for p in values], index=paths.index, dtype=object)
    heads = pc.replace_substring_regex(arr, pattern="^[^/]*$|/[^/]*$", replacement="")
    odd = pc.or_(pc.ends_with(heads, "/"), pc.starts_with(arr, "/"))
    out = heads.to_numpy(zero_copy_only=False).astype(object)
    for i in np.flatnonzero(odd.to_numpy(zero_copy_only=False)):
        out[i] = os.path.dirname(values[i])
    return pd.Series(out, index=paths.index, dtype=object)


def _joined(root: str, paths: pd.Series) -> np.ndarray:
    """``os.path.join(root, p)`` of every path ``p`` (vectorised; an absolute ``p`` stays as it is)."""
    values = paths.to_numpy(dtype=object)
    prefix = root if root == "" or root.endswith("/") else root + "/"
    try:
        out = (prefix + pd.Series(values, dtype=object)).to_numpy(dtype=object)
    except TypeError:
        return np.array([os.path.join(root, p) for p in values], dtype=object)
    for i, p in enumerate(values):
        if p.startswith("/"):
            out[i] = os.path.join(root, p)
    return out


_LOCALIZER_WORDS = ("LOCALIZER", "SCOUT", "TOPOGRAM")


def _is_localizer(image_type: pd.Series) -> pd.Series:
    """True where Image Type names a localizer (LOCALIZER, SCOUT or TOPOGRAM, any case), decided once per distinct
    value (a repository has a few dozen Image Types for 10^6 files)."""
    codes, values = pd.factorize(image_type)  # missing -> -1
    if not all(isinstance(v, str) for v in values):
        it = image_type.fillna("").str.upper()
        return it.str.contains("LOCALIZER") | it.str.contains("SCOUT") | it.str.contains("TOPOGRAM")
    flags = np.array([any(w in v.upper() for w in _LOCALIZER_WORDS) for v in values] + [False], dtype=bool)
    return pd.Series(flags[codes], index=image_type.index)


def _hash(*parts: object) -> str:
    text = "\x1f".join("" if p is None or (isinstance(p, float) and np.isnan(p)) else str(p) for p in parts)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


def plane_of(normal: np.ndarray) -> np.ndarray:
    """Name the acquisition plane of each slice normal (n x 3): axial, coronal, sagittal, oblique or None.

    The plane is the patient axis closest to the normal when it is within ~37 degrees
    (|cosine| >= 0.8; tilted-gantry axial CT stays axial), else ``"oblique"``.
    """
    out = np.full(len(normal), None, dtype=object)
    a = np.abs(normal)
    ok = np.isfinite(a).all(axis=1) & (a.sum(axis=1) > 0)
    axis = np.argmax(np.where(np.isfinite(a), a, -1), axis=1)
    names = np.array(["sagittal", "coronal", "axial"], dtype=object)
    strong = a[np.arange(len(a)), axis] >= 0.8 if len(a) else np.zeros(0, bool)
    out[ok & strong] = names[axis[ok & strong]]
    out[ok & ~strong] = "oblique"
    return out


def build_instances(files: pd.DataFrame, root: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn readable files of the index into the instance table; return (instances, duplicate files).

    ``duplicates`` has columns ``relpath, size, series_uid, reason`` for files whose SOP Instance UID was already
    seen in another file (first by path kept).
    """
    df = files.drop(columns=["error", "ctime_ns", "header_hash"])  # index-only columns (drop returns a copy)
    df.insert(0, "path", _joined(root, df["relpath"]))
    df["mtime"] = pd.to_datetime(df["mtime_ns"], unit="ns", utc=True)
    for col in _INT_COLUMNS:
        df[col] = df[col].round().astype("Int64")
    notes = pd.Series([""] * len(df), index=df.index, dtype=object)

    # Modality from the SOP Class when the attribute is missing.
    sop_class = df["sop_class_uid"].fillna(df["media_sop_class_uid"])
    missing_mod = df["modality"].isna()
    if missing_mod.any():
        df.loc[missing_mod, "modality"] = sop_class[missing_mod].map(SOP_CLASS_MODALITY)
        notes[missing_mod] += "Modality absent, taken from SOP Class; "
    df["sop_class_uid"] = sop_class

    # UIDs: fall back on stable synthetic keys.
    folder = _dirnames(df["relpath"]) if df[["series_uid", "study_uid"]].isna().any(axis=None) else None
    miss = df["sop_uid"].isna()
    if miss.any():
        df.loc[miss, "sop_uid"] = df.loc[miss, "media_sop_uid"]
        still = df["sop_uid"].isna()
        df.loc[still, "sop_uid"] = ["kicc-sop-" + _hash(p) for p in df.loc[still, "relpath"]]
        notes[miss] += "SOP Instance UID absent, synthesised; "
    miss = df["series_uid"].isna()
    if miss.any():
        sub = df.loc[miss]
        df.loc[miss, "series_uid"] = [
            "kicc-series-"
            + _hash(f, r.frame_of_reference_uid, r.series_number, r.series_description, r.rows, r.columns, r.modality)
            for f, r in zip(folder[miss], sub.itertuples(index=False), strict=True)
        ]
        notes[miss] += "Series Instance UID absent, grouped by folder + frame of reference + series number; "
    miss = df["study_uid"].isna()
    if miss.any():
        df.loc[miss, "study_uid"] = [
            "kicc-study-" + _hash(pid, date, os.path.dirname(f))
            for pid, date, f in zip(df.loc[miss, "patient_id"], df.loc[miss, "study_date"], folder[miss], strict=True)
        ]
        notes[miss] += "Study Instance UID absent, grouped by patient id + study date + parent folder; "
    df["uid_note"] = notes.str.rstrip("; ").replace("", None)
    # the file-meta copies are folded into sop_class_uid / sop_uid above (they stay in the file index)
    df = df.drop(columns=["media_sop_class_uid", "media_sop_uid"])

    # Geometry: slice normal, plane, position along the normal.
    r = df[["orient_rx", "orient_ry", "orient_rz"]].to_numpy(dtype=float)
    c = df[["orient_cx", "orient_cy", "orient_cz"]].to_numpy(dtype=float)
    n = np.cross(r, c)
    df["normal_x"], df["normal_y"], df["normal_z"] = n[:, 0], n[:, 1], n[:, 2]
    df["plane"] = plane_of(n)
    p = df[["image_position_x", "image_position_y", "image_position_z"]].to_numpy(dtype=float)
    df["slice_position"] = np.einsum("ij,ij->i", p, n)
    ts = df["transfer_syntax"]
    df["compressed"] = ts.notna() & ~ts.isin(NATIVE_TRANSFER_SYNTAXES)
    df["is_localizer"] = _is_localizer(df["image_type"])

    # Duplicate SOP instances: keep the first by path.
    if not df["relpath"].is_monotonic_increasing:  # the scanner's index is sorted already: skip the string sort
        df = df.sort_values("relpath", kind="stable")
    df = df.reset_index(drop=True)
    dup = df.duplicated("sop_uid", keep="first")
    duplicates = pd.DataFrame(columns=["relpath", "size", "series_uid", "reason"])
    if dup.any():
        first = df.loc[~dup].set_index("sop_uid")["relpath"]
        d = df.loc[dup]
        duplicates = pd.DataFrame(
            {
                "relpath": d["relpath"].to_numpy(),
                "size": d["size"].to_numpy(),
                "series_uid": d["series_uid"].to_numpy(),
                "reason": [
                    f"duplicate SOP instance: SOP Instance UID {u} is also in {first[u]} (kept)" for u in d["sop_uid"]
                ],
            }
        )
        df = df.loc[~dup].reset_index(drop=True)
    return df, duplicates


_ORIENT = ["orient_rx", "orient_ry", "orient_rz", "orient_cx", "orient_cy", "orient_cz"]

SERIES_COLUMNS = (
    "series_uid",
    "study_uid",
    "patient_id",
    "modality",
    "manufacturer",
    "series_number",
    "series_description",
    "body_part",
    "kernel",
    "image_type",
    "plane",
    "is_localizer",
    "n_instances",
    "n_slices",
    "n_frames_max",
    "rows",
    "columns",
    "pixel_spacing_row",
    "pixel_spacing_col",
    "slice_thickness",
    "slice_spacing",
    "spacing_min",
    "spacing_max",
    "position_min",
    "position_max",
    "coverage_mm",
    "n_missing_slices",
    "has_gap",
    "n_duplicate_positions",
    "consistent",
    "complete",
    "transfer_syntax",
    "compressed",
    "folder",
    "study_date",
    "issues",
)


def _series_order(df: pd.DataFrame) -> np.ndarray:
    """Row order of ``df.sort_values(["series_uid", "slice_position", "relpath"], kind="stable",
    na_position="last")``, computed with ``np.lexsort`` on integer codes (no sort of the 10^6 path strings when
    they are already in order, as the instance table's are)."""
    series_code = pd.factorize(df["series_uid"], sort=True)[0]
    series_code[series_code < 0] = series_code.max() + 1  # a missing UID sorts last, as in sort_values
    position = df["slice_position"].to_numpy(dtype=float)
    missing = np.isnan(position)
    relpath = df["relpath"]
    if relpath.is_monotonic_increasing and not relpath.hasnans:
        path_rank = np.arange(len(df))
    else:
        path_rank = pd.factorize(relpath, sort=True)[0]
        path_rank[path_rank < 0] = path_rank.max() + 1
    # np.lexsort: the last key is the primary one; it is stable
    return np.lexsort((path_rank, np.where(missing, 0.0, position), missing, series_code))


def build_series(instances: pd.DataFrame, duplicates: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per series: description, geometry (mm), slice count, gaps, compression and issues.

    Descriptive columns (modality, kernel, body part...) take the first non-empty value of the series'
    files; ``slice_thickness`` and pixel spacings (mm) are medians. Slices are distinct positions along the
    slice normal (closer than 0.01 mm = same position). ``complete`` is True for a multi-slice series with
    one geometry (image size, orientation, pixel spacing), every file positioned, no gap, no duplicate
    position and regular spacing; single-image series (radiographs) have ``n_slices`` 1 and
    ``complete`` False. All computations are vectorised (group-bys), so tables of 10^5-10^6 files
    build in seconds.
    """
    if instances.empty:
        return pd.DataFrame(columns=list(SERIES_COLUMNS))
    df = instances[
        [
            "series_uid",
            "study_uid",
            "patient_id",
            "modality",
            "manufacturer",
            "series_number",
            "series_description",
            "body_part",
            "kernel",
            "image_type",
            "plane",
            "is_localizer",
            "number_of_frames",
            "rows",
            "columns",
            "pixel_spacing_row",
            "pixel_spacing_col",
            "imager_spacing_row",
            "imager_spacing_col",
            "slice_thickness",
            "transfer_syntax",
            "compressed",
            "relpath",
            "study_date",
            "uid_note",
            "slice_position",
            *_ORIENT,
        ]
    ].copy()
    df["folder"] = _dirnames(df["relpath"])
    df = df.iloc[_series_order(df)].reset_index(drop=True)
    g = df.groupby("series_uid", sort=True)
    out = g[
        [
            "study_uid",
            "patient_id",
            "modality",
            "manufacturer",
            "series_number",
            "series_description",
            "body_part",
            "kernel",
            "image_type",
            "plane",
            "rows",
            "columns",
            "transfer_syntax",
            "folder",
            "study_date",
        ]
    ].first()
    out["is_localizer"] = g["is_localizer"].any()
    out["compressed"] = g["compressed"].any()
    out["n_instances"] = g.size()
    out["n_frames_max"] = g["number_of_frames"].max().fillna(1).astype(int)
    med = g[["pixel_spacing_row", "pixel_spacing_col", "imager_spacing_row", "imager_spacing_col", "slice_thickness"]]
    med = med.median()
    out["pixel_spacing_row"] = med["pixel_spacing_row"]
    out["pixel_spacing_col"] = med["pixel_spacing_col"]
    out["slice_thickness"] = med["slice_thickness"]
    use_imager = out["pixel_spacing_row"].isna() & med["imager_spacing_row"].notna()
    out.loc[use_imager, "pixel_spacing_row"] = med.loc[use_imager, "imager_spacing_row"]
    out.loc[use_imager, "pixel_spacing_col"] = med.loc[use_imager, "imager_spacing_col"]

    # Consistency of geometry within each series.
    n_sizes = g[["rows", "columns"]].nunique().max(axis=1)
    rounded = df[[*_ORIENT, "pixel_spacing_row", "pixel_spacing_col"]].round(4)
    rounded["series_uid"] = df["series_uid"]
    nun = rounded.groupby("series_uid", sort=True).nunique()
    n_orient = nun[_ORIENT].max(axis=1)
    n_spacing = nun[["pixel_spacing_row", "pixel_spacing_col"]].max(axis=1)
    out["consistent"] = (n_sizes <= 1) & (n_orient <= 1) & (n_spacing <= 1)
    n_ts = g["transfer_syntax"].nunique()
    out.loc[n_ts > 1, "transfer_syntax"] = "mixed"
    n_folders = g["folder"].nunique()
    for uid in n_folders.index[n_folders > 1]:
        out.loc[uid, "folder"] = os.path.commonpath(list(df.loc[df["series_uid"] == uid, "folder"].unique())) or "."

    # Slice positions: distinct positions along the normal, sorted within each series.
    pos = df["slice_position"].to_numpy(dtype=float)
    sid = df["series_uid"].to_numpy()
    finite = np.isfinite(pos)
    same_series = np.r_[False, sid[1:] == sid[:-1]]
    step = np.r_[np.nan, np.diff(pos)]
    new_pos = finite & ~(same_series & (step <= _SAME_POSITION))
    df["_new"] = new_pos
    df["_finite"] = finite
    df["_volumetric"] = df["modality"].isin(["CT", "MR", "PT"])
    g = df.groupby("series_uid", sort=True)
    n_pos = g["_new"].sum()
    n_finite = g["_finite"].sum()
    volumetric = g["_volumetric"].any()
    out["n_slices"] = np.where((n_finite > 0) | volumetric, n_pos, out["n_instances"])
    out["n_duplicate_positions"] = n_finite - n_pos
    out["position_min"] = g["slice_position"].min()
    out["position_max"] = g["slice_position"].max()
    out["coverage_mm"] = out["position_max"] - out["position_min"]
    n_unpositioned = out["n_instances"] - n_finite

    u = df.loc[new_pos, ["series_uid", "slice_position"]].reset_index(drop=True)
    us = u["series_uid"].to_numpy()
    d = np.r_[np.nan, np.diff(u["slice_position"].to_numpy())]
    d[np.r_[True, us[1:] != us[:-1]]] = np.nan
    u["d"] = d
    gu = u.groupby("series_uid", sort=True)["d"]
    median = gu.median().reindex(out.index)
    out["slice_spacing"] = median
    u["med"] = u["series_uid"].map(median)
    u["gap"] = u["d"] > _GAP_FACTOR * u["med"]
    u["missing"] = np.where(u["gap"], np.maximum(np.round(u["d"] / u["med"]) - 1, 1), 0)
    u["irregular"] = ~u["gap"] & (np.abs(u["d"] - u["med"]) > _IRREGULAR * u["med"])
    regular = u.loc[~u["gap"]].groupby("series_uid", sort=True)["d"]
    out["spacing_min"] = gu.min()
    out["spacing_max"] = gu.max()
    gu2 = u.groupby("series_uid", sort=True)
    out["n_missing_slices"] = gu2["missing"].sum().reindex(out.index, fill_value=0).astype(int)
    out["has_gap"] = gu2["gap"].any().reindex(out.index, fill_value=False).astype(bool)
    irregular = gu2["irregular"].any().reindex(out.index, fill_value=False).astype(bool)
    reg_min, reg_max = regular.min().reindex(out.index), regular.max().reindex(out.index)
    out["complete"] = (
        (out["n_slices"] >= 2)
        & ~out["has_gap"]
        & (out["n_duplicate_positions"] == 0)
        & out["consistent"]
        & ~irregular
        & (n_unpositioned == 0)
    )

    # Issues in words (loops only over the series that have one).
    issues: dict[str, list[str]] = {uid: [] for uid in out.index}
    for uid in out.index[n_sizes > 1]:
        issues[uid].append(f"{int(n_sizes[uid])} different image sizes")
    for uid in out.index[n_orient > 1]:
        issues[uid].append("different orientations")
    for uid in out.index[n_spacing > 1]:
        issues[uid].append("different pixel spacings")
    for uid in out.index[(n_unpositioned > 0) & ((n_finite > 0) | volumetric)]:
        issues[uid].append(f"{int(n_unpositioned[uid])} files without image position/orientation")
    for uid in out.index[out["n_duplicate_positions"] > 0]:
        issues[uid].append(f"{int(out.loc[uid, 'n_duplicate_positions'])} duplicate slice positions")
    gaps = u.loc[u["gap"]]
    prev = u["slice_position"].shift(1)
    gap_text: dict[str, list[str]] = {}
    for i, row in gaps.iterrows():
        gap_text.setdefault(row["series_uid"], []).append(
            f"{int(row['missing'])} missing between {prev[i]:.2f} and {row['slice_position']:.2f} mm"
        )
    for uid, texts in gap_text.items():
        issues[uid].append("gap: " + ", ".join(texts))
    for uid in out.index[irregular]:
        issues[uid].append(f"irregular spacing ({reg_min[uid]:.3f}..{reg_max[uid]:.3f} mm, median {median[uid]:.3f})")
    for uid in out.index[use_imager]:
        issues[uid].append("pixel spacing from Imager Pixel Spacing (at the detector, not magnification-corrected)")
    noted = df.loc[df["uid_note"].notna(), ["series_uid", "uid_note"]].drop_duplicates()
    for uid, note in noted.itertuples(index=False):
        issues[uid].append(str(note))
    if duplicates is not None and not duplicates.empty and "series_uid" in duplicates:
        for uid, k in duplicates["series_uid"].value_counts().items():
            if uid in issues:
                issues[uid].append(f"{k} duplicate SOP instance file(s) skipped")
    out["issues"] = [("; ".join(issues[uid]) or None) for uid in out.index]

    out = out.reset_index()
    for col in ("series_number", "rows", "columns", "n_missing_slices", "n_duplicate_positions", "n_slices"):
        out[col] = pd.array(out[col], dtype="Int64")
    for col in ("is_localizer", "compressed", "consistent", "complete", "has_gap"):
        out[col] = out[col].astype(bool)
    return out[list(SERIES_COLUMNS)]


STUDY_COLUMNS = (
    "study_uid",
    "patient_id",
    "study_date",
    "modalities",
    "n_series",
    "n_instances",
    "n_ct_series",
    "selected_series_uid",
    "selection_reason",
)


def build_studies(series: pd.DataFrame, selection: pd.DataFrame) -> pd.DataFrame:
    """One row per study: modalities present, counts, and the CT series chosen for quantification."""
    if series.empty:
        return pd.DataFrame(columns=list(STUDY_COLUMNS))
    g = series.groupby("study_uid", sort=True)
    out = g[["patient_id", "study_date"]].first()
    pairs = series[["study_uid", "modality"]].dropna().drop_duplicates().sort_values(["study_uid", "modality"])
    # ",".join per study, in Python only for the studies with several modalities
    one = ~pairs["study_uid"].duplicated(keep=False)
    joined = pairs.loc[one].set_index("study_uid")["modality"].astype(object)
    if not one.all():
        several = pairs.loc[~one].groupby("study_uid")["modality"].agg(",".join)
        joined = pd.concat([joined, several]).sort_index()
    out["modalities"] = joined.reindex(out.index, fill_value="")
    out["n_series"] = g.size()
    out["n_instances"] = g["n_instances"].sum()
    out["n_ct_series"] = (series["modality"] == "CT").groupby(series["study_uid"]).sum().astype(int)
    out = out.reset_index()
    sel = selection.set_index("study_uid") if not selection.empty else None
    out["selected_series_uid"] = out["study_uid"].map(sel["series_uid"]) if sel is not None else None
    out["selection_reason"] = out["study_uid"].map(sel["reason"]) if sel is not None else None
    return out[list(STUDY_COLUMNS)]
