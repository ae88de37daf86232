"""Key images on real CT slices (true HU, axial/coronal/sagittal) and real radiographs."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from kicc_analysis.imaging import WINDOW_PRESETS, load_ct
from kicc_analysis.quantification.opacity import CONSOLIDATION, GGO
from kicc_analysis.radiography import load_radiograph
from kicc_analysis.teaching import TeachingError, apply_window, key_image, resolve_window, save_figure


@pytest.fixture(scope="module")
def sbu(shared_dir):
    root = shared_dir / "data" / "ct" / "covid_ny_sbu" / "A002304"
    if not root.is_dir():
        pytest.skip(f"{root} absent: the real COVID CT slices are needed")
    return {
        "axial": load_ct(root / "axial" / "19010112-135.dcm"),
        "coronal": load_ct(root / "coronal" / "19010112-124.dcm"),
        "sagittal": load_ct(root / "sagittal" / "19010112-134.dcm"),
    }


@pytest.fixture(scope="module")
def cxr_dir(shared_dir):
    root = shared_dir / "data" / "cxr" / "dicom"
    if not root.is_dir():
        pytest.skip(f"{root} absent: real radiographs are needed")
    return root


def test_one_window_table():
    from kicc_analysis.quantification import plots

    assert plots.LUNG_WINDOW is WINDOW_PRESETS["lung"]
    assert resolve_window("mediastinum") == (40.0, 400.0)
    with pytest.raises(TeachingError, match="expected one of"):
        resolve_window("brain")


@pytest.mark.parametrize("window", ["lung", "mediastinum", (-500.0, 1000.0)])
def test_window_edges_on_true_hu(sbu, window):
    image = sbu["axial"]
    k = key_image(image, window=window)
    hu = sitk.GetArrayFromImage(image)[0].astype(float)  # identity direction: display order = array order
    level, width = resolve_window(window)
    low, high = level - width / 2, level + width / 2
    below, above = hu <= low, hu >= high
    inside = ~below & ~above
    assert above.any() and inside.any()  # the real slice spans the window (air, -1000 HU, is above the lung floor)
    if window != "lung":
        assert below.any()
    assert np.all(k.display[below] == 0.0)
    assert np.all(k.display[above] == 1.0)
    np.testing.assert_allclose(k.display[inside], (hu[inside] - low) / width, atol=1e-12)
    assert k.window_text == f"W {width:g} / L {level:g} HU"
    assert any(t.get_text() == k.window_text for t in k.figure.axes[0].texts)  # the window is printed


@pytest.mark.parametrize(
    ("plane", "letters"),
    [
        ("axial", {"left": "R", "right": "L", "top": "A", "bottom": "P"}),
        ("coronal", {"left": "R", "right": "L", "top": "S", "bottom": "I"}),
        ("sagittal", {"left": "A", "right": "P", "top": "S", "bottom": "I"}),
    ],
)
def test_orientation_letters_and_storage_order(sbu, plane, letters):
    image = sbu[plane]
    k = key_image(image)
    assert k.plane == plane and k.letters == letters
    drawn = {t.get_text() for t in k.figure.axes[0].texts}
    assert set(letters.values()) <= drawn
    # the same slice stored mirrored (rows and columns reversed, direction updated) looks the same on screen
    flipped = sitk.Flip(image, [True, True, False])
    stored, stored_flipped = sitk.GetArrayViewFromImage(image)[0], sitk.GetArrayViewFromImage(flipped)[0]
    assert not np.array_equal(stored, stored_flipped)
    np.testing.assert_array_equal(key_image(flipped).display, k.display)


def test_left_lung_lesion_appears_on_image_right(sbu):
    image = sbu["axial"]
    centre = image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in image.GetSize()])
    left = (centre[0] + 80.0, centre[1], centre[2])  # LPS: +x is the patient's left
    right = (centre[0] - 80.0, centre[1], centre[2])
    k = key_image(image, arrows=[left, right])
    cols = k.display.shape[1]
    (col_left, _), (col_right, _) = k.arrows_px
    assert col_left > cols / 2 > col_right
    assert col_left - col_right == pytest.approx(160.0 / image.GetSpacing()[0])
    # the same on the coronal reformat, and for a mirrored storage order
    cor = sbu["coronal"]
    c = cor.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in cor.GetSize()])
    kc = key_image(sitk.Flip(cor, [True, False, False]), arrows=[(c[0] + 80.0, c[1], c[2])])
    assert kc.arrows_px[0][0] > kc.display.shape[1] / 2


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_scale_bar_is_50_mm(sbu, plane):
    image = sbu[plane]
    k = key_image(image, scale_bar_mm=50)
    spacing_col = k.spacing_mm[1]
    assert k.scale_bar_px == pytest.approx(50.0 / spacing_col)
    ax = k.figure.axes[0]
    (bar,) = [line for line in ax.lines if line.get_gid() == "scale-bar"]
    x = bar.get_xdata()
    # in the drawing, the bar spans the same fraction of the image width as 50 mm of the patient
    to_px = ax.transData.transform
    bar_px = abs(to_px((x[1], 0))[0] - to_px((x[0], 0))[0])
    image_px = abs(to_px((k.display.shape[1] * spacing_col, 0))[0] - to_px((0, 0))[0])
    assert bar_px / image_px == pytest.approx(k.scale_bar_px / k.display.shape[1], rel=1e-9)
    # aspect from the spacing: the image is drawn in mm, one mm as wide as it is tall
    (x0, y0), (x1, y1) = to_px((0, 0)), to_px((10, 10))
    assert abs(x1 - x0) == pytest.approx(abs(y1 - y0), rel=1e-9)


def test_key_slice_is_largest_opacity_burden(sbu):
    slice_ = sbu["axial"]
    volume = sitk.JoinSeries([slice_[:, :, 0]] * 5)
    volume.SetSpacing((*slice_.GetSpacing()[:2], 5.0))
    labels = np.zeros(sitk.GetArrayViewFromImage(volume).shape, dtype=np.uint8)
    labels[1, 200:220, 100:140] = GGO
    labels[3, 200:260, 100:140] = CONSOLIDATION  # most opacity
    labels[3, 150:160, 300:310] = 3  # lung, not opacity
    k = key_image(volume, overlay=labels)
    assert k.index == 3 and k.index_rule == "largest opacity burden (2400 voxels)"
    assert key_image(volume).index_rule == "middle slice (no opacity labels given)"
    assert key_image(volume, index=1).index == 1
    with pytest.raises(TeachingError, match="expected 0..4"):
        key_image(volume, index=9)
    # GGO and consolidation differ by line style as well as colour
    labels[3, 270:280, 100:140] = GGO
    drawn = {c.get_gid(): c for c in key_image(volume, overlay=labels).figure.axes[0].collections if c.get_gid()}
    assert set(drawn) == {"ggo", "consolidation", "lungs"}
    dashes = {name: c.get_linestyle()[0] for name, c in drawn.items()}
    assert dashes["consolidation"][1] is None and dashes["ggo"][1] is not None  # solid vs dashed
    assert dashes["lungs"][1] is not None and dashes["lungs"][1] != dashes["ggo"][1]  # dotted
    colours = {name: tuple(np.round(c.get_edgecolor()[0][:3], 3)) for name, c in drawn.items()}
    assert len(set(colours.values())) == 3


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_byte_identical_rerender(sbu, tmp_path, suffix):
    paths = []
    for run in range(2):
        k = key_image(sbu["coronal"], arrows=[(0.0, 0.0, 0.0)])
        paths.append(save_figure(k.figure, tmp_path / f"run{run}{suffix}"))
    first, second = (p.read_bytes() for p in paths)
    assert first == second
    for marker in (b"matplotlib", b"Matplotlib", b"CreationDate", b"<dc:date>"):
        assert marker not in first


def test_png_is_300_dpi(sbu, tmp_path):
    from PIL import Image

    k = key_image(sbu["axial"], width_in=3.5)
    path = save_figure(k.figure, tmp_path / "axial.png")
    with Image.open(path) as im:
        assert im.size[0] == 1050  # 3.5 in x 300 dpi
        assert round(im.info["dpi"][0]) == 300


def test_radiograph_with_and_without_spacing(cxr_dir):
    with_spacing = load_radiograph(cxr_dir / "fodicom_CR-ModalitySequenceLUT.dcm")
    assert with_spacing.spacing_mm is not None
    k = key_image(with_spacing, burned_in_cleared=True)
    assert k.scale_bar_px == pytest.approx(50.0 / with_spacing.spacing_mm[1])
    np.testing.assert_array_equal(k.display, with_spacing.pixels)  # the header's VOI is kept
    no_spacing = load_radiograph(cxr_dir / "fodicom_CR-MONO1-10-chest.dcm")
    assert no_spacing.spacing_mm is None and no_spacing.view_position == "PA"
    k2 = key_image(no_spacing, burned_in_cleared=True)
    assert k2.scale_bar_px is None and "no scale bar" in " ".join(k2.notes)
    drawn = {t.get_text() for t in k2.figure.axes[0].texts}
    assert "no scale (spacing unknown)" in drawn
    assert k2.letters == {"left": "R", "right": "L"}
    assert k2.window_text.startswith("W 1024 / L 550")
    with pytest.raises(TeachingError, match="spacing"):
        key_image(no_spacing, arrows=[(10.0, 10.0)], burned_in_cleared=True)


def test_burned_in_annotation_refused_unless_redacted(cxr_dir):
    unknown = load_radiograph(cxr_dir / "fodicom_CR-MONO1-10-chest.dcm")
    assert unknown.burned_in_annotation == "unknown"
    with pytest.raises(TeachingError, match="BurnedInAnnotation is 'unknown'"):
        key_image(unknown)
    k = key_image(unknown, redaction=[(0, 0, 40, 440)])
    assert np.all(k.display[:40] == 0.0) and k.display[40:].max() > 0.5
    assert unknown.pixels[:40].max() > 0.0  # the loaded radiograph itself is not modified
    cleared = load_radiograph(cxr_dir / "highdicom_dx_image.dcm")
    assert cleared.burned_in_annotation == "NO"
    np.testing.assert_array_equal(key_image(cleared).display, cleared.pixels)


def test_apply_window_edges_exact():
    values = np.array([-1351.0, -1350.0, -600.0, 150.0, 151.0])
    assert apply_window(values, -600, 1500).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]


def test_radiograph_zone_scores_drawn(cxr_dir):
    xr = load_radiograph(cxr_dir / "highdicom_dx_image.dcm")
    scores = {"A": 2, "B": 1, "C": 3, "D": 0, "E": 1.5, "F": 2}
    k = key_image(xr, scores=scores)
    ax = k.figure.axes[0]
    drawn = {t.get_gid(): t.get_text() for t in ax.texts if t.get_gid()}
    assert drawn["zone-score-A"] == "A\n2" and drawn["zone-score-E"] == "E\n1.5"
    assert drawn["zone-total"] == "Brixia score 9.5 / 18" == k.zone_scores["total_text"]
    assert k.record()["zone_scores"]["zones"]["C"] == "C\n3"
    # zones in display convention: A-C (patient right) on the viewer's left, A above B above C; drawn in mm
    boxes = {p.get_gid(): p for p in ax.patches if (p.get_gid() or "").startswith("zone-")}
    assert boxes["zone-A"].get_x() < boxes["zone-D"].get_x()
    assert boxes["zone-A"].get_y() < boxes["zone-B"].get_y() < boxes["zone-C"].get_y()
    rows, cols = xr.pixels.shape
    width_mm = cols * xr.spacing_mm[1]
    lung_w = boxes["zone-A"].get_width() + boxes["zone-D"].get_width()
    assert lung_w == pytest.approx((0.88 - 0.12) * width_mm)
    rale = {f"{q}_{p}": v for q in ("RUQ", "RLQ", "LUQ", "LLQ") for p, v in (("extent", 2), ("density", 3))}
    k2 = key_image(xr, scores=rale, scheme="rale")
    assert k2.zone_scores["zones"]["RUQ"] == "RUQ\n2\u00d73" and k2.zone_scores["total_text"].endswith("24 / 48")
    cohen = {"right_extent": 3, "left_extent": 2, "right_opacity": 2, "left_opacity": 1}
    k3 = key_image(xr, scores=cohen, scheme="cohen")
    assert k3.zone_scores["zones"] == {"right": "right\nE3 O2", "left": "left\nE2 O1"}
    assert k3.zone_scores["total_text"] == "extent 5 / 8, opacity 3 / 6"
    with pytest.raises(TeachingError, match=r"lack Brixia score items \['F'\]"):
        key_image(xr, scores={z: 1 for z in "ABCDE"})
    import dataclasses

    with pytest.raises(TeachingError, match="need a frontal view, found 'LL'"):
        key_image(dataclasses.replace(xr, view_position="LL"), scores=scores)
    with pytest.raises(TeachingError, match="expected a Radiograph"):
        key_image(sitk.Image([4, 4, 1], sitk.sitkFloat32), scores=scores)


def test_real_reader_scores_on_real_radiographs(shared_dir):
    """BrixIA's two radiologists' zone scores drawn on the images they scored; totals as the file states them."""
    import pandas as pd

    root = shared_dir / "data" / "cxr"
    if not (root / "brixia_cohen" / "public-annotations.csv").is_file():
        pytest.skip(f"{root}/brixia_cohen absent: the BrixIA reader scores are needed")
    from kicc_analysis.readings import load_brixia_annotations

    table = load_brixia_annotations(root / "brixia_cohen" / "public-annotations.csv")
    raw = pd.read_csv(root / "brixia_cohen" / "public-annotations.csv", encoding="utf-8-sig").set_index("filename")
    manifest = pd.read_csv(root / "images" / "manifest.csv").set_index("original_filename")
    shown = 0
    for name in ("01E392EE-69F9-4E33-BFCE-E5C968654078.jpeg", "03BF7561-A9BA-4C3C-B8A0-D3E585F73F3C.jpeg"):
        xr = load_radiograph(root / "images" / manifest.loc[name, "image"])
        assert xr.spacing_mm is None  # figures from papers: no spacing, said on the image
        for reader, code in (("senior", "S"), ("junior", "J")):
            rows = table[(table["subject"] == name) & (table["reader"] == reader) & (table["item"] != "total")]
            scores = dict(zip(rows["item"], rows["score"], strict=True))
            k = key_image(xr, scores=scores, burned_in_cleared=True)
            assert k.zone_scores["total_text"] == f"Brixia score {raw.loc[name, f'{code}-Global']:g} / 18"
            assert [k.zone_scores["zones"][z].split("\n")[1] for z in "ABCDEF"] == [
                f"{raw.loc[name, f'{code}-{z}']:g}" for z in "ABCDEF"
            ]
            shown += 1
    assert shown == 4
