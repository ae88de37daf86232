"""MONAI datalist JSON: ``training``, ``validation`` and ``test`` lists of ``{"image", "label"?, targets...}``.

The layout ``monai.data.load_decathlon_datalist`` reads: a JSON object whose keys are list names, each item a dict
with ``image`` (and ``label`` for segmentation) as paths relative to the JSON's folder; other keys (targets,
``case_id``, ``fold``) are passed through. Images are NIfTI (``images/<case>.nii.gz``), labels ``labels/<case>.nii.gz``.
"""

from __future__ import annotations

import math

import pandas as pd

LISTS = {"train": "training", "validation": "validation", "test": "test"}


def paths(cases: pd.DataFrame, *, segmentation: bool) -> pd.DataFrame:
    """``image`` (and ``label``) relative paths of each case."""
    cases = cases.assign(image=[f"images/{c}.nii.gz" for c in cases["case_id"]])
    if segmentation:
        cases = cases.assign(label=[f"labels/{c}.nii.gz" for c in cases["case_id"]])
    return cases


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    if value is pd.NA:
        return None
    return value


def datalist(cases: pd.DataFrame, targets: list[str]) -> dict[str, list[dict]]:
    """The datalist: one list per split, items in ``case_id`` order, missing targets as ``null``."""
    keys = [
        "case_id",
        *(["image"] if "image" in cases else []),
        *(["label"] if "label" in cases else []),
        *targets,
        *(["fold"] if "fold" in cases else []),
    ]
    out: dict[str, list[dict]] = {name: [] for name in LISTS.values()}
    for row in cases.sort_values("case_id").to_dict("records"):
        out[LISTS[row["split"]]].append({key: _clean(row[key]) for key in keys})
    return out
