"""Choice of the radiograph to score in each radiograph study (CR/DX, and Secondary Capture with modality DX).

Rules, applied to the instance table of a repository scan (one row per DICOM file):

1. Candidates are single-frame CR/DX images (Secondary Capture objects whose Modality is DX or CR count too).
2. The view of each candidate (:func:`view_class`) is read from ViewPosition, else from the series description:
   ``PA``, ``AP``, ``lateral`` (LL, RL, LAT, LATERAL) or ``unknown``.
3. Preference, in order: frontal (PA, AP, unknown) before lateral; For Presentation before For Processing
   (DX SOP classes; CR and Secondary Capture count as for presentation); PA before AP before unknown; then the
   larger image (rows x columns), the lower series number, the lower instance number.
   For Processing objects carry raw detector values that are not meant to be shown, so their being PA does not
   outweigh a For Presentation AP image.
4. Every study gets one row with the chosen file and a ``reason`` naming the view and intent of the choice and why
   each other candidate lost.

Examples
--------
>>> view_class("PA"), view_class("", "CHEST LAT"), view_class("LL"), view_class("", "")
('PA', 'lateral', 'lateral', 'unknown')
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = ["FOR_PROCESSING_SOP_CLASSES", "RADIOGRAPH_SELECTION_COLUMNS", "select_radiographs", "view_class"]

#: DX/mammography/intra-oral For Processing SOP classes
FOR_PROCESSING_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray Image Storage - For Processing
    "1.2.840.10008.5.1.4.1.1.1.2.1",
    "1.2.840.10008.5.1.4.1.1.1.3.1",
}
RADIOGRAPH_SELECTION_COLUMNS = [
    "study_uid",
    "patient_id",
    "n_candidates",
    "sop_uid",
    "series_uid",
    "relpath",
    "view",
    "intent",
    "reason",
]
_LATERAL = re.compile(r"\b(LAT|LATERAL|LL|RL|LLD|RLD)\b")
_PA = re.compile(r"\bPA\b|POSTERO.?ANTERIOR")
_AP = re.compile(r"\bAP\b|ANTERO.?POSTERIOR|PORTABLE|SUPINE")
_VIEW_RANK = {"PA": 0, "AP": 1, "unknown": 2, "lateral": 3}


def view_class(view_position: object, description: object = "") -> str:
    """``PA``, ``AP``, ``lateral`` or ``unknown`` from ViewPosition, else from a series/study description."""
    view = (
        ""
        if view_position is None or (isinstance(view_position, float) and np.isnan(view_position))
        else str(view_position).strip().upper()
    )
    if view in ("PA", "AP"):
        return view
    if view in ("LL", "RL", "LAT", "LATERAL", "LLD", "RLD"):
        return "lateral"
    text = (
        ""
        if description is None or (isinstance(description, float) and np.isnan(description))
        else str(description).upper()
    )
    if _LATERAL.search(text):
        return "lateral"
    if _PA.search(text):
        return "PA"
    if _AP.search(text):
        return "AP"
    return "unknown"


def _intent(sop_class: object) -> str:
    return "for processing" if str(sop_class) in FOR_PROCESSING_SOP_CLASSES else "for presentation"


def select_radiographs(instances: pd.DataFrame) -> pd.DataFrame:
    """One row per radiograph study: the file to score and why.

    Parameters
    ----------
    instances : DataFrame
        Instance table of a repository scan (columns used: ``study_uid, modality, sop_uid, series_uid``;
        optional ``patient_id, relpath, view_position, series_description, sop_class_uid, rows, columns,
        series_number, instance_number, number_of_frames``).

    Returns
    -------
    DataFrame
        Columns :data:`RADIOGRAPH_SELECTION_COLUMNS`, one row per study with at least one CR/DX image.
    """
    frame = instances.copy()
    for column in ("patient_id", "relpath", "view_position", "series_description", "sop_class_uid"):
        if column not in frame.columns:
            frame[column] = ""
    for column in ("rows", "columns", "series_number", "instance_number", "number_of_frames"):
        if column not in frame.columns:
            frame[column] = np.nan
    frames = pd.to_numeric(frame["number_of_frames"], errors="coerce").astype(float).fillna(1)
    frame = frame[frame["modality"].astype(str).str.upper().isin(["CR", "DX"]) & (frames <= 1)].copy()
    if frame.empty:
        return pd.DataFrame(columns=RADIOGRAPH_SELECTION_COLUMNS)
    frame["view"] = [view_class(v, d) for v, d in zip(frame["view_position"], frame["series_description"], strict=True)]
    frame["intent"] = frame["sop_class_uid"].map(_intent)
    frame["_lateral"] = (frame["view"] == "lateral").astype(int)
    frame["_processing"] = (frame["intent"] == "for processing").astype(int)
    frame["_view"] = frame["view"].map(_VIEW_RANK)
    frame["_size"] = -(pd.to_numeric(frame["rows"], errors="coerce").fillna(0) * pd.to_numeric(
        frame["columns"], errors="coerce").fillna(0))  # fmt: skip
    frame["_series"] = pd.to_numeric(frame["series_number"], errors="coerce").astype(float).fillna(np.inf)
    frame["_instance"] = pd.to_numeric(frame["instance_number"], errors="coerce").astype(float).fillna(np.inf)
    order = ["_lateral", "_processing", "_view", "_size", "_series", "_instance", "sop_uid"]
    rows = []
    for study_uid, group in frame.sort_values(order, kind="stable").groupby("study_uid", sort=True):
        chosen = group.iloc[0]
        reason = f"{chosen['view']} view, {chosen['intent']}"
        losers = []
        for _, other in group.iloc[1:].iterrows():
            why = _why_lost(chosen, other)
            losers.append(f"{other['sop_uid'][-8:]}: {why}")
        if losers:
            reason += f"; preferred over {len(losers)} other(s): " + "; ".join(losers)
        else:
            reason += "; only radiograph of the study"
        rows.append(
            {
                "study_uid": study_uid,
                "patient_id": chosen["patient_id"],
                "n_candidates": len(group),
                "sop_uid": chosen["sop_uid"],
                "series_uid": chosen["series_uid"],
                "relpath": chosen["relpath"],
                "view": chosen["view"],
                "intent": chosen["intent"],
                "reason": reason,
            }
        )
    return pd.DataFrame(rows, columns=RADIOGRAPH_SELECTION_COLUMNS)


def _why_lost(chosen: pd.Series, other: pd.Series) -> str:
    if other["_lateral"] > chosen["_lateral"]:
        return "lateral view"
    if other["_processing"] > chosen["_processing"]:
        return "for processing"
    if other["_view"] > chosen["_view"]:
        return f"{other['view']} view (after {chosen['view']})"
    if other["_size"] > chosen["_size"]:
        return "smaller image"
    if other["_series"] > chosen["_series"] or other["_instance"] > chosen["_instance"]:
        return "later series/instance number"
    return "same rank (tie broken by SOP Instance UID)"
