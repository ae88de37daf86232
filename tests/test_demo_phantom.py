"""Tests of the synthetic chest CT phantom (kicc_analysis.demo.phantom)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy import ndimage

from kicc_analysis.demo.phantom import LOBE_NAMES, ChestPhantom, Lesion, chest_phantom
from kicc_analysis.errors import ImagingError

SHAPE = (40, 96, 96)
SPACING = (7.5, 3.6, 3.6)  # same 345 x 345 x 300 mm field as the demo default, fewer voxels


@pytest.fixture(scope="module")
def covid() -> ChestPhantom:
    return chest_phantom(SHAPE, SPACING, lesions="random", seed=11, opacity_fraction=0.15, consolidation_fraction=0.3)


@pytest.fixture(scope="module")
def healthy() -> ChestPhantom:
    return chest_phantom(SHAPE, SPACING, lesions=None, seed=11)


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_types_and_shapes(covid: ChestPhantom) -> None:
    assert covid.hu.dtype == np.int16 and covid.hu.shape == SHAPE
    assert covid.lung_labels.dtype == np.uint8 and covid.lesion_labels.dtype == np.uint8
    assert set(np.unique(covid.lung_labels)) == {0, 1, 2}
    assert set(np.unique(covid.lesion_labels)) == {0, 1, 2}
    assert set(np.unique(covid.lobe_labels)) == {0, *LOBE_NAMES}
    assert covid.spacing_mm == SPACING
    assert covid.hu.min() >= -1024 and covid.hu.max() <= 3071


def test_deterministic_and_seed_dependent() -> None:
    a = chest_phantom(SHAPE, SPACING, lesions="random", seed=5)
    b = chest_phantom(SHAPE, SPACING, lesions="random", seed=5)
    c = chest_phantom(SHAPE, SPACING, lesions="random", seed=6)
    assert _sha(a.hu) == _sha(b.hu) and _sha(a.lesion_labels) == _sha(b.lesion_labels)
    assert _sha(a.hu) != _sha(c.hu)
    assert _sha(a.lesion_labels) != _sha(c.lesion_labels)
    # a different noise seed keeps the anatomy and the lesions but changes the pixels
    d = chest_phantom(SHAPE, SPACING, lesions="random", seed=5, noise_seed=99)
    assert _sha(d.lesion_labels) == _sha(a.lesion_labels) and _sha(d.hu) != _sha(a.hu)


def test_lung_volumes_plausible(healthy: ChestPhantom) -> None:
    v = healthy.volumes_ml
    # adult inspiratory CT lung volume is roughly 3-6 L; right lung larger than the left (heart on the left)
    assert 2500 < v["lung_total"] < 6500
    assert v["lung_right"] > v["lung_left"]
    assert v["lung_total"] == pytest.approx(v["lung_right"] + v["lung_left"])
    assert v["lesion_total"] == 0 and v["opacity_pct"] == 0
    vox_ml = np.prod(SPACING) / 1000
    assert v["lung_right"] == pytest.approx((healthy.lung_labels == 1).sum() * vox_ml)


def test_right_lung_has_smaller_x_index(healthy: ChestPhantom) -> None:
    x_right = np.nonzero(healthy.lung_labels == 1)[2].mean()
    x_left = np.nonzero(healthy.lung_labels == 2)[2].mean()
    assert x_right < SHAPE[2] / 2 < x_left


def test_lung_parenchyma_and_vessels_hu(healthy: ChestPhantom) -> None:
    lung = healthy.lung_labels > 0
    interior = ndimage.binary_erosion(lung, iterations=2)
    median = np.median(healthy.hu[interior])
    assert -880 < median < -820
    # vessels: some lung voxels are much denser than parenchyma, but few of them
    dense = (healthy.hu > -500) & lung
    assert 0.002 < dense.sum() / lung.sum() < 0.05


def test_trachea_is_air_and_not_lung(healthy: ChestPhantom) -> None:
    # upper-thorax slice: the trachea lies on the midline, about 15 mm behind the centre of the field
    z = int(SHAPE[0] * 0.85)
    row = int(round((SHAPE[1] - 1) / 2 + 15 / (345 / SHAPE[1])))
    col = (SHAPE[2] - 1) // 2
    patch = healthy.hu[z, row - 1 : row + 2, col - 1 : col + 2]
    assert patch.min() < -900
    assert not healthy.lung_labels[z, row - 1 : row + 2, col - 1 : col + 2].any()
    # the midline air column (trachea) runs through the upper slices and none of it is labelled lung
    mid = slice(col - 3, col + 4)
    upper = slice(int(SHAPE[0] * 0.7), SHAPE[0] - 1)
    air_mid = healthy.hu[upper, :, mid] < -900
    assert air_mid.any(axis=(1, 2)).all()
    assert not (air_mid & (healthy.lung_labels[upper, :, mid] > 0)).any()


def test_lesions_inside_lungs_and_target_volume(covid: ChestPhantom) -> None:
    lesion = covid.lesion_labels > 0
    assert not (lesion & (covid.lung_labels == 0)).any()
    v = covid.volumes_ml
    assert v["opacity_pct"] == pytest.approx(15.0, abs=0.2)
    assert v["consolidation"] / v["lesion_total"] == pytest.approx(0.3, abs=0.01)
    assert v["lesion_total"] == pytest.approx(v["ggo"] + v["consolidation"])
    # bilateral
    assert (lesion & (covid.lung_labels == 1)).sum() > 0 and (lesion & (covid.lung_labels == 2)).sum() > 0


def test_lesion_hu_inside_quantification_bins(covid: ChestPhantom) -> None:
    hu = covid.hu
    ggo = covid.lesion_labels == 1
    con = covid.lesion_labels == 2
    assert np.mean((hu[ggo] >= -700) & (hu[ggo] < -300)) > 0.97
    assert np.mean((hu[con] >= -300) & (hu[con] <= 50)) > 0.95
    assert -620 < hu[ggo].mean() < -480
    assert -80 < hu[con].mean() < 20
    # HU thresholding inside the true lung recovers the GGO volume within 5 %
    lung = covid.lung_labels > 0
    q_ggo = ((hu >= -700) & (hu < -300) & lung).sum()
    assert q_ggo / ggo.sum() == pytest.approx(1.0, abs=0.05)


def test_covid_pattern_posterior_basal_peripheral(covid: ChestPhantom) -> None:
    lung = covid.lung_labels > 0
    lesion = covid.lesion_labels > 0
    zl, yl, _ = np.nonzero(lung)
    zs, ys, _ = np.nonzero(lesion)
    assert ys.mean() > yl.mean()  # posterior (larger y index)
    assert zs.mean() < zl.mean()  # lower zone (smaller z index)
    depth = ndimage.distance_transform_edt(lung, sampling=SPACING)
    assert depth[lesion].mean() < 0.7 * depth[lung].mean()  # peripheral / sub-pleural
    inv = covid.lobe_involvement
    assert inv["RLL"] > inv["RUL"] and inv["LLL"] > inv["LUL"]


def test_progression_grows_same_lesions() -> None:
    small = chest_phantom(SHAPE, SPACING, lesions="random", seed=4, opacity_fraction=0.05)
    large = chest_phantom(SHAPE, SPACING, lesions="random", seed=4, opacity_fraction=0.20)
    s, lg = small.lesion_labels > 0, large.lesion_labels > 0
    assert (s & ~lg).sum() == 0
    assert lg.sum() > 3 * s.sum()


def test_explicit_lesions_volume_and_override() -> None:
    spacing = (2.5, 2.7, 2.7)
    shape = (120, 128, 128)
    ggo = Lesion(center_mm=(-20.0, 30.0, -80.0), radii_mm=(15.0, 15.0, 15.0), kind="ggo")
    con = Lesion(center_mm=(-20.0, 30.0, -80.0), radii_mm=(6.0, 6.0, 6.0), kind="consolidation")
    p = chest_phantom(shape, spacing, lesions=[ggo, con], seed=1, noise_hu=0.0)
    # reference-frame mm equals physical mm here (field 345 x 345 x 300 mm)
    expected_total = 4 / 3 * np.pi * 15.0**3 / 1000
    expected_con = 4 / 3 * np.pi * 6.0**3 / 1000
    assert p.volumes_ml["lesion_total"] == pytest.approx(expected_total, rel=0.1)
    assert p.volumes_ml["consolidation"] == pytest.approx(expected_con, rel=0.25)
    assert (p.lesion_labels > 0).sum() == ((p.lesion_labels > 0) & (p.lung_labels == 1)).sum()


def test_single_slice() -> None:
    p = chest_phantom((1, 128, 128), (5.0, 2.7, 2.7), lesions="random", seed=2, opacity_fraction=0.2)
    assert p.hu.shape == (1, 128, 128)
    assert (p.lung_labels == 1).any() and (p.lung_labels == 2).any()
    assert p.volumes_ml["opacity_pct"] == pytest.approx(20.0, abs=0.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (10, 128)}, "triples"),
        ({"shape": (10, 8, 8)}, "16 x 16"),
        ({"spacing_mm": (5.0, 0.0, 2.7)}, "positive"),
        ({"lesions": "many"}, "lesions must be"),
        ({"lesions": [("not", "a", "lesion")]}, "Lesion"),
        ({"lesions": "random", "opacity_fraction": 1.5}, "opacity_fraction"),
        ({"noise_hu": -1.0}, "noise_hu"),
    ],
)
def test_bad_input_raises(kwargs: dict, match: str) -> None:
    args = {"shape": (4, 32, 32), "spacing_mm": (5.0, 10.0, 10.0)}
    args.update(kwargs)
    with pytest.raises(ImagingError, match=match):
        chest_phantom(**args)
