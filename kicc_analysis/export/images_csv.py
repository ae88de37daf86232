"""Radiographs as 16-bit PNG (or NIfTI) files with a CSV of targets.

``images/<case>.png``: unsigned 16-bit grey, 0-65535 = the display values 0-1 of
:func:`kicc_analysis.radiography.load_radiograph` (Modality LUT, VOI LUT and polarity applied; 65535 = white).
``targets.csv``: one row per image: ``case_id, subjid, split, timepoint, img_day, image`` and the targets
(``brixia`` reader-mean Brixia total 0-18, age in years, sex, oxygen / ICU / ventilation 0-1, ``death`` 0-1).
"""

from __future__ import annotations

import pandas as pd

IMAGE_ENDINGS = {"png": ".png", "nifti": ".nii.gz"}


def paths(cases: pd.DataFrame, image_format: str = "png") -> pd.DataFrame:
    """``image`` relative path of each case."""
    ending = IMAGE_ENDINGS[image_format]
    return cases.assign(image=[f"images/{c}{ending}" for c in cases["case_id"]])


def targets_table(cases: pd.DataFrame, targets: list[str]) -> pd.DataFrame:
    """The ``targets.csv`` table, in ``case_id`` order."""
    columns = ["case_id", "subjid", "split", "timepoint", "img_day", *(["image"] if "image" in cases else []), *targets]
    return cases.sort_values("case_id")[columns].reset_index(drop=True)
