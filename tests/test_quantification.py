"""Tests of kicc_analysis.quantification: bins, opacity labels, per-region metrics, severity."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from kicc_analysis.errors import AnalysisError
from kicc_analysis.quantification import (
    HU_BIN_PRESETS,
    display_to_hu,
    get_bins,
    quantify,
    segment_opacities,
    severity_score,
)


def _image(array: np.ndarray, spacing=(2.0, 2.0, 2.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    return image


def test_severity_score_edges():
    assert [severity_score(p) for p in (0, 0.1, 4.99, 5, 25, 25.1, 50, 75, 75.1, 100)] == [0, 1, 1, 2, 2, 3, 3, 4, 5, 5]
    assert severity_score(np.nan) == 0


def test_bins_presets_and_validation():
    assert get_bins()["ggo"] == (-700.0, -300.0)
    assert get_bins("lung_ct_analyzer")["consolidation"] == (-400.0, 0.0)
    assert set(HU_BIN_PRESETS) == {"default", "lung_ct_analyzer", "po_pho"}
    with pytest.raises(AnalysisError, match="unknown HU bin preset"):
        get_bins("nope")
    with pytest.raises(AnalysisError, match="missing"):
        get_bins({"ggo": (-700, -300)})
    with pytest.raises(AnalysisError, match="low < high"):
        get_bins({"ggo": (-300, -700), "consolidation": (-300, 50)})


def test_quantify_known_volumes():
    # 2 mm voxels = 0.008 mL; right lung 10x10x9 block, left the same; known GGO/consolidation blocks
    hu = np.full((9, 20, 30), -850, dtype=np.int16)
    labels = np.zeros(hu.shape, dtype=np.uint8)
    labels[:, 5:15, 2:12] = 1
    labels[:, 5:15, 18:28] = 2
    hu[0:3, 5:15, 2:12] = -500  # right lower third: GGO, 300 voxels
    hu[0:3, 5:10, 18:28] = 0  # left lower third: consolidation block 5x10x3 = 150 voxels
    image, lungs = _image(hu), _image(labels)
    table = quantify(image, lungs).set_index("region")
    voxel = 0.008
    assert table.loc["both", "volume_ml"] == pytest.approx(1800 * voxel)
    assert table.loc["right", "ggo_ml"] == pytest.approx(300 * voxel)
    assert table.loc["left", "consolidation_ml"] == pytest.approx(150 * voxel)
    assert table.loc["right_lower", "ggo_pct"] == pytest.approx(100.0)
    assert table.loc["left_lower", "consolidation_pct"] == pytest.approx(50.0)
    assert table.loc["right_lower", "severity_score"] == 5
    assert table.loc["left_lower", "severity_score"] == 3
    assert table.loc["right_upper", "severity_score"] == 0
    assert table["severity_total"].iloc[0] == 8
    assert table.loc["both", "opacity_pct"] == pytest.approx(100 * 450 / 1800)
    assert table.loc["right_upper", "mean_hu"] == pytest.approx(-850)
    assert set(table.index) == {"both", "right", "left"} | {
        f"{s}_{z}" for s in ("right", "left") for z in ("upper", "middle", "lower")
    }


def test_quantify_rejects_mismatched_grid():
    with pytest.raises(AnalysisError, match="share the grid"):
        quantify(_image(np.zeros((3, 4, 4), np.int16)), _image(np.zeros((3, 4, 5), np.uint8)))


def test_vessel_filter_removes_thin_tubes_not_blobs():
    hu = np.full((3, 40, 40), -850, dtype=np.int16)
    labels = np.ones(hu.shape, dtype=np.uint8)
    hu[:, 20, 2:38] = 40  # 1-voxel vessel
    hu[:, 5:15, 5:15] = 20  # 10x10 consolidation
    opac = sitk.GetArrayFromImage(segment_opacities(_image(hu), _image(labels)))
    assert (opac[:, 5:15, 5:15] == 2).all()
    assert (opac[:, 20, 20:38] == 0).all()
    raw = sitk.GetArrayFromImage(segment_opacities(_image(hu), _image(labels), remove_vessels=False))
    assert (raw[:, 20, 2:38] == 2).all()


def test_two_d_slice_quantification_without_zones():
    hu = np.full((30, 30), -850, dtype=np.int16)
    hu[10:20, 10:20] = -500
    labels = np.ones(hu.shape, dtype=np.uint8)
    table = quantify(_image(hu, (1.0, 1.0)), _image(labels, (1.0, 1.0)))
    assert list(table.region) == ["both", "right", "left"]
    assert table.set_index("region").loc["both", "ggo_pct"] == pytest.approx(100 * 100 / 900)
    assert np.isnan(table.severity_total.iloc[0])


def test_display_to_hu_roundtrip_with_quantify():
    display = np.full((20, 20), 100.0)  # lung window -600/1500: 100 -> -761 HU (aerated)
    display[5:10, 5:10] = 170.0  # -> -350 HU (GGO)
    hu = display_to_hu(display, level=-600, width=1500)
    table = quantify(_image(hu, (1.0, 1.0)), _image(np.ones(hu.shape, np.uint8), (1.0, 1.0)))
    assert table.set_index("region").loc["both", "ggo_ml"] == pytest.approx(25 / 1000)


phantom = pytest.importorskip("kicc_analysis.demo.phantom")


@pytest.mark.parametrize("seed", [0, 1])
def test_phantom_opacity_volumes_within_5_percent_on_truth_mask(seed):
    ph = phantom.chest_phantom(lesions="random", seed=seed)
    image = _image(ph.hu, tuple(float(s) for s in ph.spacing_mm[::-1]))
    lungs = _image(ph.lung_labels, tuple(float(s) for s in ph.spacing_mm[::-1]))
    table = quantify(image, lungs).set_index("region")
    assert table.loc["both", "ggo_ml"] == pytest.approx(ph.volumes_ml["ggo"], rel=0.05)
    # 3-D Frangi vessel removal: vessels no longer counted as consolidation (lungs-1.1 opening: +11 / +15 %)
    assert table.loc["both", "consolidation_ml"] == pytest.approx(ph.volumes_ml["consolidation"], rel=0.05)
    assert table.loc["both", "volume_ml"] == pytest.approx(ph.volumes_ml["lung_total"], rel=1e-6)


@pytest.fixture(scope="module")
def phantom_on_our_mask():
    from kicc_analysis.segmentation import segment_lungs

    out = []
    for seed in (0, 3):
        ph = phantom.chest_phantom(lesions="random", seed=seed)
        image = _image(ph.hu, tuple(float(s) for s in ph.spacing_mm[::-1]))
        out.append((ph, quantify(image, segment_lungs(image).labels).set_index("region")))
    return out


def test_phantom_ggo_volume_within_5_percent_on_our_mask(phantom_on_our_mask):
    for ph, table in phantom_on_our_mask:
        assert table.loc["both", "ggo_ml"] == pytest.approx(ph.volumes_ml["ggo"], rel=0.05)


@pytest.mark.xfail(
    reason="lungs-1.6: -36 % (seed 0) / -28 % (seed 3). The mask misses 32-44 % of the consolidation (basal / "
    "dependent consolidation with no aerated lung below it). lungs-1.5 passed (-3.8 % / -1.5 %) only because about "
    "800 dense non-lung voxels per phantom (pericardial fat, hilar vessels, chest-wall rim) were counted as "
    "consolidation; the lungs-1.6 halo gate removes most of them (see docs/ct.md 'Known limitations')",
    strict=True,
)
def test_phantom_consolidation_volume_within_5_percent_on_our_mask(phantom_on_our_mask):
    for ph, table in phantom_on_our_mask:
        assert table.loc["both", "consolidation_ml"] == pytest.approx(ph.volumes_ml["consolidation"], rel=0.05)


def test_phantom_consolidation_on_our_mask_is_not_made_of_non_lung_tissue():
    # lungs-1.6 halo gate: what our mask counts as consolidation lies in the lung. lungs-1.5: 815 voxels of seed 0
    # outside the true lung (34 % of the true consolidation: pericardial fat ring, hilar vessels, chest-wall rim);
    # lungs-1.6: 90 (3.8 %)
    from kicc_analysis.segmentation import segment_lungs

    ph = phantom.chest_phantom(lesions="random", seed=0)
    image = _image(ph.hu, tuple(float(s) for s in ph.spacing_mm[::-1]))
    opacities = sitk.GetArrayFromImage(segment_opacities(image, segment_lungs(image).labels))
    outside = ((opacities == 2) & (ph.lung_labels == 0)).sum()
    assert outside <= 0.1 * (ph.lesion_labels == 2).sum()


def test_lesion_free_phantom_has_no_consolidation_on_our_mask():
    # specificity on healthy anatomy: lungs-1.5 counted 31 mL of pericardial fat, hilar vessels and chest-wall rim as
    # consolidation on this lesion-free phantom (true mask: 2.5 mL of partial-volume vessel); lungs-1.6: 4.2 mL
    from kicc_analysis.segmentation import segment_lungs

    ph = phantom.chest_phantom(lesions=None, seed=0)
    spacing = tuple(float(s) for s in ph.spacing_mm[::-1])
    image = _image(ph.hu, spacing)
    ours = quantify(image, segment_lungs(image).labels).set_index("region").loc["both"]
    truth = quantify(image, _image(ph.lung_labels, spacing)).set_index("region").loc["both"]
    assert ours.consolidation_ml <= truth.consolidation_ml + 5.0
    assert ours.consolidation_pct < 0.25


def test_vessel_filter_3d_removes_tubes_keeps_blobs():
    # 1 mm voxels: a 4 mm-wide vessel running across the slices and a 16 mm consolidation ball, in aerated lung
    hu = np.full((40, 48, 48), -850, dtype=np.int16)
    zz, yy, xx = np.mgrid[0:40, 0:48, 0:48]
    tube = (yy - 12) ** 2 + (xx - 12) ** 2 <= 4  # along z, radius 2 mm
    hu[tube] = 40
    blob = (zz - 20) ** 2 + (yy - 32) ** 2 + (xx - 32) ** 2 <= 64
    hu[blob] = -20
    hu = ndimage.gaussian_filter(hu.astype(np.float32), 0.7).round().astype(np.int16)  # partial volume, as in CT
    blob &= hu > -300
    tube &= hu > -300
    labels = np.ones(hu.shape, dtype=np.uint8)
    image, lungs = _image(hu, (1.0, 1.0, 1.0)), _image(labels, (1.0, 1.0, 1.0))
    opac = sitk.GetArrayFromImage(segment_opacities(image, lungs))
    assert (opac[blob] == 2).mean() > 0.95
    assert (opac[tube] == 2).mean() < 0.15  # at most an edge voxel per slice (objectness on a 2 mm grid)
    raw = sitk.GetArrayFromImage(segment_opacities(image, lungs, remove_vessels=False))
    assert (raw[tube] == 2).all()


def test_density_statistics_match_numpy_and_scipy():
    from scipy import stats

    rng = np.random.default_rng(7)
    hu = rng.normal(-800, 120, size=(6, 20, 20)).round().astype(np.int16)
    labels = np.ones(hu.shape, dtype=np.uint8)
    row = quantify(_image(hu), _image(labels)).set_index("region").loc["both"]
    values = hu.ravel().astype(float)
    assert row.mean_hu == pytest.approx(values.mean())
    for q in (10, 25, 50, 75, 90):
        assert row[f"hu_p{q}"] == pytest.approx(np.percentile(values, q))
    assert row["skewness"] == pytest.approx(stats.skew(values))
    assert row["kurtosis"] == pytest.approx(stats.kurtosis(values))


def test_quantify_rejects_nan_inside_lung():
    hu = np.full((3, 8, 8), -850.0, dtype=np.float32)
    hu[1, 4, 4] = np.nan
    with pytest.raises(AnalysisError, match="non-finite"):
        quantify(_image(hu), _image(np.ones(hu.shape, np.uint8)))


def test_quantify_empty_lung_gives_nan_not_error():
    table = quantify(_image(np.zeros((3, 8, 8), np.int16)), _image(np.zeros((3, 8, 8), np.uint8)))
    both = table.set_index("region").loc["both"]
    assert both.volume_ml == 0 and np.isnan(both.opacity_pct) and both.severity_score == 0


def test_opacity_regions_include_aerated_specks_and_drop_vessels():
    # 1 mm pixels: aerated lung (-850) with a 30 x 30 mm GGO patch whose pixels alternate -850 / -450 (mean -650,
    # a voxel-wise threshold labels only half of it), a 40 HU vessel 2 mm wide and a 12 mm consolidation disk
    from kicc_analysis.quantification import segment_opacity_regions

    hu = np.full((120, 120), -850.0, dtype=np.float32)
    yy, xx = np.mgrid[0:120, 0:120]
    patch = (yy >= 20) & (yy < 50) & (xx >= 20) & (xx < 50)
    hu[patch & ((yy + xx) % 2 == 0)] = -450.0
    hu[80:82, 10:110] = 40.0  # vessel
    disk = (yy - 40) ** 2 + (xx - 90) ** 2 <= 36
    hu[disk] = 0.0
    lungs = np.ones(hu.shape, dtype=np.uint8)
    regions = sitk.GetArrayFromImage(segment_opacity_regions(_image(hu, (1.0, 1.0)), _image(lungs, (1.0, 1.0))))
    voxelwise = sitk.GetArrayFromImage(segment_opacities(_image(hu, (1.0, 1.0)), _image(lungs, (1.0, 1.0))))
    inner = patch & (yy >= 23) & (yy < 47) & (xx >= 23) & (xx < 47)
    assert (regions[inner] > 0).mean() > 0.95  # the whole patch is one region
    assert (voxelwise[inner] > 0).mean() < 0.6
    assert (regions[disk] > 0).all()
    assert (regions[(yy - 40) ** 2 + (xx - 90) ** 2 <= 9] == 2).all()  # consolidation core (rim: local mean < -300)
    assert (regions[78:84, 10:110] > 0).mean() < 0.05  # the vessel is no lesion
    assert (regions[~patch & ~disk & (np.abs(yy - 81) > 4)] > 0).mean() < 0.02  # aerated lung stays clear


def _branching_vessels_and_ggo(spacing_mm: float = 0.7, n: int = 512) -> tuple[np.ndarray, ...]:
    """Synthetic lung slice (HU): aerated -850 with a bright (+40 HU) branching vessel tree (a 7 mm trunk from the
    medial side, 4 and 3 mm branches, obliquely oriented) and a 40 mm hazy GGO patch (-600 HU) with a 3 mm vessel
    crossing it; blurred (1 pixel) and noisy (20 HU). Returns hu, lungs, vessels (outside the patch), patch core."""
    yy, xx = np.mgrid[0:n, 0:n] * spacing_mm

    def bar(p: tuple[float, float], q: tuple[float, float], width: float) -> np.ndarray:
        d = np.subtract(q, p)
        t = np.clip(((yy - p[0]) * d[0] + (xx - p[1]) * d[1]) / float(d @ d), 0.0, 1.0)
        return np.hypot(yy - p[0] - t * d[0], xx - p[1] - t * d[1]) <= width / 2

    tree = [((180, 340), (180, 250), 7.0), ((180, 250), (120, 180), 4.0), ((180, 250), (250, 170), 4.0)]
    tree += [((120, 180), (80, 120), 3.0), ((120, 180), (140, 90), 3.0), ((250, 170), (300, 110), 3.0)]
    vessels = np.zeros((n, n), dtype=bool)
    for p, q, width in tree:
        vessels |= bar(p, q, width)
    hu = np.full((n, n), -850.0, dtype=np.float32)
    hu[vessels] = 40.0
    patch = np.hypot(yy - 60, xx - 270) <= 20
    hu[patch] = -600.0
    hu[bar((30, 270), (90, 270), 3.0)] = 40.0
    hu = ndimage.gaussian_filter(hu, 1.0) + np.random.default_rng(0).normal(0, 20, hu.shape).astype(np.float32)
    lungs = ((xx > 20) & (xx < 345) & (yy > 20) & (yy < 340)).astype(np.uint8)
    return hu, lungs, vessels & ~patch, np.hypot(yy - 60, xx - 270) <= 16


def test_opacity_regions_find_ggo_patch_but_not_branching_vessels():
    from kicc_analysis.quantification import segment_opacity_regions

    hu, lungs, vessels, core = _branching_vessels_and_ggo()
    image, lung_image = _image(hu, (0.7, 0.7)), _image(lungs, (0.7, 0.7))
    regions = sitk.GetArrayFromImage(segment_opacity_regions(image, lung_image))
    assert (regions[core] > 0).mean() > 0.95  # the hazy patch (and the vessel through it) is one lesion
    assert (regions[vessels] > 0).mean() < 0.05  # the vessel tree is no lesion
    near = ndimage.binary_dilation(vessels, iterations=5) & (lungs > 0) & ~ndimage.binary_dilation(core, iterations=20)
    assert (regions[near] > 0).mean() < 0.05  # nor is the lung around it
    # quant-1.1 rule (only bright structures narrower than 5 mm discounted): the 7 mm trunk is lesion
    legacy = sitk.GetArrayFromImage(
        segment_opacity_regions(image, lung_image, tube_scales_mm=(), vessel_width_mm=5.0, consolidation_hu=-300.0)
    )
    assert (legacy[vessels] > 0).mean() > 0.2


def test_opacity_regions_keep_small_ggo_nodule_but_not_vessel_segments():
    # quant-1.3 small-lesion rule: a 10 mm hazy nodule (79 mm^2, below the 150 mm^2 component minimum) is kept as GGO;
    # the hilar vessel tree and short thick vessel stubs (7 mm wide, 17 mm long; small components made mostly of
    # tube pixels) are still no lesion
    from kicc_analysis.quantification import segment_opacity_regions

    hu, lungs, vessels, core = _branching_vessels_and_ggo()
    yy, xx = np.mgrid[0 : hu.shape[0], 0 : hu.shape[1]] * 0.7
    nodule = np.hypot(yy - 300, xx - 300) <= 5.0
    hu[nodule] = -600.0 + np.random.default_rng(1).normal(0, 20, int(nodule.sum()))
    stubs = [
        (np.abs((yy - y0) - (xx - x0)) <= 3.5 * np.sqrt(2)) & (np.abs(yy - y0 + xx - x0) <= 12)
        for y0, x0 in ((60, 60), (300, 60), (300, 200))
    ]
    any_stub = np.any(stubs, axis=0)
    near_stub = ndimage.binary_dilation(any_stub, iterations=10)
    hu[near_stub] = ndimage.gaussian_filter(np.where(any_stub, 40.0, -850.0), 1.0)[near_stub]
    image, lung_image = _image(hu, (0.7, 0.7)), _image(lungs, (0.7, 0.7))
    regions = sitk.GetArrayFromImage(segment_opacity_regions(image, lung_image))
    assert (regions[np.hypot(yy - 300, xx - 300) <= 3.5] == 1).all()  # the nodule is a GGO lesion
    assert (regions[core] > 0).mean() > 0.95
    assert (regions[vessels | any_stub] > 0).mean() < 0.05  # vessel tree and stubs are no lesion
    near = ndimage.binary_dilation(vessels | any_stub, iterations=5) & ~ndimage.binary_dilation(core, iterations=20)
    assert (regions[near & (lungs > 0)] > 0).mean() < 0.05
    # without the rule (small components dropped below 150 mm^2, quant-1.2) the nodule is missed
    legacy = sitk.GetArrayFromImage(segment_opacity_regions(image, lung_image, small_min_area_mm2=150.0))
    assert (legacy[nodule] > 0).mean() < 0.05
    # without the vessel-pixel criterion a stub becomes a small lesion
    lax = sitk.GetArrayFromImage(segment_opacity_regions(image, lung_image, small_max_tube_fraction=1.0))
    assert max((lax[stub] > 0).mean() for stub in stubs) > 0.5


def test_opacity_regions_edge_relative_to_region_contrast():
    # quant-1.3: a blurred dense nodule (16 mm, +30 HU, Gaussian sigma 3 mm) has a wide halo of mildly raised
    # density; its region edge follows its own contrast (0.2 x its 90th-percentile excess), so the halo is trimmed,
    # while a hazy GGO patch (excess about 250 HU: cut-off stays at the 100 HU lesion level) keeps its extent
    from kicc_analysis.quantification import segment_opacity_regions

    yy, xx = np.mgrid[0:200, 0:200].astype(float)
    nodule = np.hypot(yy - 100, xx - 60) <= 8
    patch = np.hypot(yy - 100, xx - 150) <= 15
    hu = ndimage.gaussian_filter(np.where(nodule, 30.0, -850.0).astype(np.float32), 3.0)
    hu[patch] = -600.0
    hu += np.random.default_rng(0).normal(0, 15, hu.shape).astype(np.float32)
    image, lungs = _image(hu, (1.0, 1.0)), _image(np.ones(hu.shape, np.uint8), (1.0, 1.0))
    areas = {}
    for fraction in (0.2, 0.0):
        regions = sitk.GetArrayFromImage(segment_opacity_regions(image, lungs, edge_fraction=fraction))
        assert (regions[nodule] > 0).all() and (regions[patch] > 0).all()
        components, _ = ndimage.label(regions > 0)
        areas[fraction] = [(components == components[100, x]).sum() for x in (60, 150)]
    assert areas[0.2][0] < 0.9 * areas[0.0][0]  # measured 359 vs 421 mm^2
    assert abs(areas[0.2][1] - areas[0.0][1]) <= 0.02 * areas[0.0][1]


def test_medseg_held_out_regions_beat_voxelwise():
    # real COVID-19 slices (MedSeg/SIRM): per-image window estimate + lesion regions; held-out half (odd positions)
    from conftest import shared_path
    from PIL import Image

    from kicc_analysis.imaging import display_to_hu, estimate_display_window
    from kicc_analysis.quantification import segment_opacity_regions
    from kicc_analysis.segmentation import segment_lungs

    data = shared_path("data", "covid_slices", "medseg_train")
    paths = sorted((data / "Imgs").glob("*.jpg"), key=lambda p: int(p.stem))[1::2][:12]
    region_dice, voxel_dice = [], []
    for path in paths:
        grey = np.rot90(np.asarray(Image.open(path).convert("L")), k=-1)
        gt = np.rot90(np.asarray(Image.open(data / "GT" / f"{path.stem}.png")), k=-1) > 0
        level, width = estimate_display_window(grey)
        assert -700 < level < -250 and 1000 < width < 2000  # plausible lung windows
        image = _image(display_to_hu(grey, level, width), (320 / grey.shape[1],) * 2)
        lungs = segment_lungs(image).labels
        for opac, store in (
            (segment_opacity_regions(image, lungs), region_dice),
            (segment_opacities(image, lungs, vessel_width_mm=3.0), voxel_dice),
        ):
            pred = sitk.GetArrayFromImage(opac) > 0
            store.append(2 * (pred & gt).sum() / (pred.sum() + gt.sum()))
    assert np.mean(region_dice) >= 0.55  # see docs/benchmarks.md (all 25 held-out slices)
    assert np.mean(region_dice) > np.mean(voxel_dice)


def test_medseg_local_aerated_reference_finds_faint_ggo():
    # quant-1.4: in the second reference pass the aerated pixels are those below the first pass's LOCAL reference
    # + the lesion offset (not the slice's aerated mode + offset). Three CALIBRATION slices (even positions) where
    # it matters most: diffuse GGO (0, under-segmented by 6.6 pp before), small nodules (16), large GGO (29);
    # measured mean lesion Dice 0.752 -> 0.789 (quant-1.3 rule: local_aerated=False)
    from conftest import shared_path
    from PIL import Image

    from kicc_analysis.imaging import display_to_hu, estimate_display_window
    from kicc_analysis.quantification import segment_opacity_regions
    from kicc_analysis.segmentation import segment_lungs

    data = shared_path("data", "covid_slices", "medseg_train")
    dice = {True: [], False: []}
    for stem in ("0", "16", "29"):
        grey = np.rot90(np.asarray(Image.open(data / "Imgs" / f"{stem}.jpg").convert("L")), k=-1)
        gt = np.rot90(np.asarray(Image.open(data / "GT" / f"{stem}.png")), k=-1) > 0
        image = _image(display_to_hu(grey, *estimate_display_window(grey)), (320 / grey.shape[1],) * 2)
        lungs = segment_lungs(image).labels
        for local in (True, False):
            pred = sitk.GetArrayFromImage(segment_opacity_regions(image, lungs, local_aerated=local)) > 0
            dice[local].append(2 * (pred & gt).sum() / (pred.sum() + gt.sum()))
    assert np.mean(dice[True]) >= np.mean(dice[False]) + 0.03
    assert min(np.subtract(dice[True], dice[False])) > 0.01  # each of the three slices gains


def test_opacity_regions_consolidation_relative_to_aerated_reference():
    # quant-1.4: consolidation = lesion whose 5 mm median is >= the local aerated reference + 450 HU, so a display
    # window estimated 250 HU too high (aerated lung read as -600 HU) shifts GGO and consolidation alike: the GGO
    # patch (-600 + 250 HU) stays GGO and the consolidation (+30 + 250 HU) stays consolidation. The absolute quant-1.3
    # cut-off (-400 HU) calls the shifted GGO consolidation.
    from kicc_analysis.quantification import segment_opacity_regions

    yy, xx = np.mgrid[0:200, 0:200].astype(float)
    ggo = np.hypot(yy - 100, xx - 150) <= 15
    dense = np.hypot(yy - 100, xx - 60) <= 12
    hu = np.full(yy.shape, -850.0, dtype=np.float32)
    hu[ggo], hu[dense] = -600.0, 30.0
    hu += 250.0 + np.random.default_rng(0).normal(0, 15, hu.shape).astype(np.float32)
    image, lungs = _image(hu, (1.0, 1.0)), _image(np.ones(hu.shape, np.uint8), (1.0, 1.0))
    inner_ggo, inner_dense = np.hypot(yy - 100, xx - 150) <= 10, np.hypot(yy - 100, xx - 60) <= 8
    regions = sitk.GetArrayFromImage(segment_opacity_regions(image, lungs))
    assert (regions[inner_ggo] == 1).all() and (regions[inner_dense] == 2).all()
    absolute = sitk.GetArrayFromImage(segment_opacity_regions(image, lungs, consolidation_above_air_hu=None))
    assert (absolute[inner_ggo] == 2).mean() > 0.9


def test_opacity_regions_ignore_partial_volume_border_of_lung_mask():
    # quant-1.4: the outer pixel of the lung mask (partial volume with the chest wall: -300 HU here) is neither
    # lesion evidence nor aerated reference; without the rule (border_px=0) it raises the local density along the
    # whole lung edge into a sub-pleural "lesion" band, while a real GGO patch is found either way. The tube discount
    # is off: this synthetic rim is a perfect 1-pixel ridge, which the tube discount also removes (real partial-volume
    # borders are not such clean ridges)
    from kicc_analysis.quantification import segment_opacity_regions

    yy, xx = np.mgrid[0:200, 0:200].astype(float)
    lung = np.hypot(yy - 100, xx - 100) <= 90
    rim = lung & ~ndimage.binary_erosion(lung)
    patch = np.hypot(yy - 100, xx - 100) <= 15
    hu = np.full(yy.shape, -850.0, dtype=np.float32) + np.random.default_rng(0).normal(0, 15, yy.shape)
    hu[rim], hu[patch], hu[~lung] = -300.0, -600.0, 40.0
    image, lungs = _image(hu.astype(np.float32), (1.0, 1.0)), _image(lung.astype(np.uint8), (1.0, 1.0))
    band = lung & ~ndimage.binary_erosion(lung, iterations=4)
    regions = sitk.GetArrayFromImage(segment_opacity_regions(image, lungs, tube_scales_mm=()))
    assert (regions[patch] > 0).all() and (regions[band] > 0).mean() < 0.02
    legacy = sitk.GetArrayFromImage(segment_opacity_regions(image, lungs, tube_scales_mm=(), border_px=0))
    assert (legacy[patch] > 0).all() and (legacy[band] > 0).mean() > 0.3


def test_region_parameters_object_and_keyword_overrides_agree():
    """segment_opacity_regions takes one RegionParameters; keyword arguments named like its fields override it."""
    from dataclasses import replace

    from kicc_analysis.quantification import segment_opacity_regions
    from kicc_analysis.quantification.regions import RegionParameters

    hu = np.full((80, 80), -850.0, dtype=np.float32)
    yy, xx = np.mgrid[0:80, 0:80]
    hu[(yy - 40) ** 2 + (xx - 40) ** 2 <= 100] = -500.0  # a 20 mm GGO disk
    image, lungs = _image(hu, (1.0, 1.0)), _image(np.ones(hu.shape, dtype=np.uint8), (1.0, 1.0))
    default = sitk.GetArrayFromImage(segment_opacity_regions(image, lungs))
    assert (default[(yy - 40) ** 2 + (xx - 40) ** 2 <= 49] == 1).all()
    strict = replace(RegionParameters(), ggo_above_air_hu=500.0)  # -500 is only 350 HU above the aerated lung
    by_object = sitk.GetArrayFromImage(segment_opacity_regions(image, lungs, strict))
    by_keyword = sitk.GetArrayFromImage(segment_opacity_regions(image, lungs, ggo_above_air_hu=500.0))
    np.testing.assert_array_equal(by_object, by_keyword)
    assert not by_object.any()
    with pytest.raises(AnalysisError, match="unknown setting"):
        segment_opacity_regions(image, lungs, edge_fractoin=0.1)


@pytest.mark.parametrize("singleton_axis", [1, 2])
def test_segment_opacities_on_a_single_coronal_or_sagittal_slice(singleton_axis):
    """A single coronal (one voxel across y) or sagittal (across x) slice is labelled in its own plane, exactly as
    the same pixels given as an axial slice (lungs-1.7 / quant-1.1 crashed in the 3-D vessel filter's SimpleITK
    smoothing: "fewer than four pixels along dimension 1")."""
    rng = np.random.default_rng(3)
    plane = rng.normal(-850.0, 30.0, (60, 50)).astype(np.float32)
    plane[20:35, 10:30] = -500.0  # GGO patch
    plane[40:50, 30:45] = 10.0  # consolidation
    plane[5:55, 24:26] = 30.0  # a 2-pixel vessel: removed from consolidation
    lung = np.zeros(plane.shape, dtype=np.uint8)
    lung[2:58, 2:48] = 1

    def image(array: np.ndarray) -> sitk.Image:
        img = sitk.GetImageFromArray(array)
        img.SetSpacing((0.7, 0.7, 0.7))
        return img

    axial = sitk.GetArrayFromImage(segment_opacities(image(plane[None]), image(lung[None])))[0]
    reformatted = np.expand_dims(plane, singleton_axis)  # (z, 1, x) or (z, y, 1)
    labels = np.expand_dims(lung, singleton_axis)
    out = sitk.GetArrayFromImage(segment_opacities(image(reformatted), image(labels)))
    assert np.array_equal(np.squeeze(out, axis=singleton_axis), axial)
    assert (axial[40:50, 30:45] == 2).all() and (axial[20:35, 10:24] == 1).all() and not (axial[5:38, 24:26] == 2).any()


def test_single_slice_vessel_rims_are_not_ggo():
    """quant-1.5: on a single slice a normal vessel (2 mm, +40 HU) blurred by partial volume has a GGO-range rim
    (-600 HU); neither the vessel nor its rim is labelled, while a 15 mm GGO patch (-550 HU) crossed by the same
    kind of vessel stays GGO. quant-1.1 called the rim GGO (about 4 % of this slice)."""
    spacing = 0.7
    yy, xx = np.mgrid[0:160, 0:160] * spacing
    hu = np.full(yy.shape, -850.0, dtype=np.float32)
    for x0 in (20.0, 60.0):  # two vertical vessels
        distance = np.abs(xx - x0)
        hu[distance <= 1.8] = -600.0  # partial-volume rim
        hu[distance <= 1.0] = 40.0  # vessel core
    patch = (yy - 80.0) ** 2 + (xx - 60.0) ** 2 <= 7.5**2
    hu[patch & (hu < -560)] = -550.0
    lung = np.ones(hu.shape, dtype=np.uint8)
    image, labels = sitk.GetImageFromArray(hu[None]), sitk.GetImageFromArray(lung[None])
    for img in (image, labels):
        img.SetSpacing((spacing, spacing, 5.0))
    out = sitk.GetArrayFromImage(segment_opacities(image, labels))[0]
    assert not (out[:, : int(40 / spacing)] > 0).any()  # the lone vessel and its rim: nothing
    assert (out[patch] == 1).mean() > 0.8  # the patch is GGO (the vessel through it is opened away)
