"""CT series selection rules, kernel classes and plane naming (small literal tables)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kicc_analysis.repository import kernel_class, select_ct_series
from kicc_analysis.repository.tables import plane_of


@pytest.mark.parametrize(
    ("kernel", "expected"),
    [
        ("LUNG", "lung"),
        ("STANDARD", "soft"),
        ("SOFT", "soft"),
        ("BONEPLUS", "sharp"),
        ("B70f", "sharp"),
        ("I70f\\2", "sharp"),
        ("B30f", "soft"),
        ("Br38f\\3", "soft"),
        ("Br64d\\3", "sharp"),
        ("Bl57d\\3", "lung"),
        ("FC52", "lung"),
        ("FC86", "lung"),
        ("FC08", "soft"),
        ("L", "lung"),
        ("YB", "lung"),
        ("C", "soft"),
        ("D", "sharp"),
        (None, "unknown"),
        ("", "unknown"),
        ("MYSTERY", "unknown"),
    ],
)
def test_kernel_class(kernel, expected):
    assert kernel_class(kernel) == expected


def _series(**overrides) -> dict:
    row = {
        "series_uid": "1.2.3.1",
        "study_uid": "1.2.3",
        "patient_id": "KICC-S01-0001",
        "modality": "CT",
        "series_number": 1,
        "kernel": "STANDARD",
        "image_type": "ORIGINAL\\PRIMARY\\AXIAL",
        "plane": "axial",
        "is_localizer": False,
        "n_frames_max": 1,
        "n_slices": 200,
        "slice_thickness": 1.0,
        "slice_spacing": 1.0,
        "complete": True,
        "issues": None,
    }
    row.update(overrides)
    return row


def _select(*rows, **kwargs) -> pd.Series:
    sel = select_ct_series(pd.DataFrame(list(rows)), **kwargs)
    assert len(sel) == 1
    return sel.iloc[0]


def test_thinnest_wins_over_kernel_by_default():
    thin_soft = _series(series_uid="1.2.3.1", slice_thickness=0.625, kernel="STANDARD", series_number=2)
    thick_lung = _series(series_uid="1.2.3.2", slice_thickness=1.25, kernel="LUNG", series_number=3)
    chosen = _select(thin_soft, thick_lung)
    assert chosen["series_uid"] == "1.2.3.1" and chosen["n_eligible"] == 2
    assert "beat series #3" in chosen["reason"]
    # option: kernel before thickness
    assert _select(thin_soft, thick_lung, kernel_first=True)["series_uid"] == "1.2.3.2"


def test_same_thickness_lung_kernel_preferred_then_original_then_more_slices():
    soft = _series(series_uid="a", kernel="B30f", series_number=2)
    lung = _series(series_uid="b", kernel="Bl57d", series_number=5)
    sharp = _series(series_uid="c", kernel="B70f", series_number=4)
    assert _select(soft, lung, sharp)["series_uid"] == "b"
    assert _select(soft, sharp)["series_uid"] == "c"
    derived = _series(series_uid="d", kernel="B70f", image_type="DERIVED\\SECONDARY\\AXIAL")
    assert _select(derived, sharp)["series_uid"] == "c"
    short = _series(series_uid="e", n_slices=150)
    long = _series(series_uid="f", n_slices=300, series_number=9)
    assert _select(short, long)["series_uid"] == "f"


def test_ineligible_series_and_reasons():
    rows = [
        _series(series_uid="loc", is_localizer=True, slice_thickness=0.5),
        _series(series_uid="cor", plane="coronal", slice_thickness=0.5),
        _series(series_uid="gap", complete=False, issues="gap: 1 missing between -10.00 and -8.00 mm"),
        _series(series_uid="few", n_slices=3),
        _series(series_uid="mf", n_frames_max=300),
    ]
    chosen = _select(*rows)
    assert chosen["series_uid"] is None and chosen["n_eligible"] == 0
    reason = chosen["reason"]
    for text in ("localizer", "not axial (plane coronal)", "incomplete: gap", "too few slices (3 < 10)", "multi-frame"):
        assert text in reason
    assert _select(*rows, min_slices=3)["series_uid"] == "few"


def test_one_row_per_ct_study_and_radiographs_ignored():
    rows = [
        _series(series_uid="s1", study_uid="st1"),
        _series(series_uid="s2", study_uid="st2", slice_thickness=5.0),
        _series(series_uid="x1", study_uid="st3", modality="CR", plane=None, n_slices=1),
    ]
    sel = select_ct_series(pd.DataFrame(rows))
    assert sel["study_uid"].tolist() == ["st1", "st2"]
    assert sel["series_uid"].tolist() == ["s1", "s2"]
    assert select_ct_series(pd.DataFrame()).empty


def test_plane_of():
    tilt = np.deg2rad(20)
    normals = np.array(
        [
            [0, 0, 1],
            [0, 0, -1],
            [0, 1, 0],
            [1, 0, 0],
            [0, np.sin(tilt), np.cos(tilt)],  # 20 degree gantry tilt: still axial
            [0, np.sqrt(0.5), np.sqrt(0.5)],  # 45 degrees: oblique
            [np.nan, np.nan, np.nan],
        ]
    )
    assert plane_of(normals).tolist() == ["axial", "axial", "coronal", "sagittal", "axial", "oblique", None]
