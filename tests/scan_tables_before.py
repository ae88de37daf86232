"""Oracle for tests/test_cohort_scale.py: ``build_instances`` and ``build_studies`` as they were before they were
vectorised for the 1,000,000-instance index (issue 21 §3; kicc_analysis/repository/tables.py at commit 1b84a5d),
kept verbatim so the vectorised versions can be checked equal to them on messy inputs."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from kicc_analysis.repository.header import NATIVE_TRANSFER_SYNTAXES
from kicc_analysis.repository.tables import _INT_COLUMNS, SOP_CLASS_MODALITY, STUDY_COLUMNS, _hash, plane_of


def build_instances(files: pd.DataFrame, root: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn readable files of the index into the instance table; return (instances, duplicate files).

    ``duplicates`` has columns ``relpath, size, series_uid, reason`` for files whose SOP Instance UID was already
    seen in another file (first by path kept).
    """
    df = files.drop(columns=["error", "ctime_ns", "header_hash"]).copy()  # index-only columns
    df.insert(0, "path", [os.path.join(root, p) for p in df["relpath"]])
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
    folder = df["relpath"].map(os.path.dirname)
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
    it = df["image_type"].fillna("").str.upper()
    df["is_localizer"] = it.str.contains("LOCALIZER") | it.str.contains("SCOUT") | it.str.contains("TOPOGRAM")

    # Duplicate SOP instances: keep the first by path.
    df = df.sort_values("relpath", kind="stable").reset_index(drop=True)
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


def build_studies(series: pd.DataFrame, selection: pd.DataFrame) -> pd.DataFrame:
    """One row per study: modalities present, counts, and the CT series chosen for quantification."""
    if series.empty:
        return pd.DataFrame(columns=list(STUDY_COLUMNS))
    g = series.groupby("study_uid", sort=True)
    out = g[["patient_id", "study_date"]].first()
    pairs = series[["study_uid", "modality"]].dropna().drop_duplicates().sort_values(["study_uid", "modality"])
    out["modalities"] = pairs.groupby("study_uid")["modality"].agg(",".join).reindex(out.index, fill_value="")
    out["n_series"] = g.size()
    out["n_instances"] = g["n_instances"].sum()
    out["n_ct_series"] = (series["modality"] == "CT").groupby(series["study_uid"]).sum().astype(int)
    out = out.reset_index()
    sel = selection.set_index("study_uid") if not selection.empty else None
    out["selected_series_uid"] = out["study_uid"].map(sel["series_uid"]) if sel is not None else None
    out["selection_reason"] = out["study_uid"].map(sel["reason"]) if sel is not None else None
    return out[list(STUDY_COLUMNS)]
