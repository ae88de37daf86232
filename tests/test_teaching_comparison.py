"""Comparison figures on real CT (COPDGene ct-64 volume with CIP's lung and airway labels, COVID-19-NY-SBU earlier
and later slices of one patient) and real radiographs; the demo repository for the carina on two CTs of one
patient."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from kicc_analysis.errors import PrivacyError
from kicc_analysis.imaging import load_ct
from kicc_analysis.radiography import load_radiograph
from kicc_analysis.teaching import (
    ComparisonStudy,
    TeachingCase,
    TeachingError,
    comparison_figure,
    find_carina,
    lung_level,
    repository_studies,
)
from kicc_analysis.teaching.case import _dicom_identifiers

BRIXIA = {"A": 2, "B": 1, "C": 3, "D": 0, "E": 1, "F": 2}


@pytest.fixture(scope="module")
def ct64(shared_dir):
    root = shared_dir / "data" / "ct" / "cip_copdgene_ct64"
    if not root.is_dir():
        pytest.skip(f"{root} absent: the real COPDGene ct-64 volume is needed")
    image = load_ct(root / "ct-64.nrrd")
    lungs = sitk.ReadImage(str(root / "wholeLung-64.nrrd"))
    lungs.CopyInformation(image)
    return image, lungs, sitk.GetArrayFromImage(sitk.ReadImage(str(root / "lm-64.nrrd")))


def _follow_up(image: sitk.Image, lungs: sitk.Image, *, spacing_z: float, shift_z: float, n: int):
    """The same patient scanned again: another slice spacing and table position (the whole lungs covered)."""
    grid = sitk.Image([image.GetSize()[0], image.GetSize()[1], n], sitk.sitkFloat32)
    grid.SetSpacing((*image.GetSpacing()[:2], spacing_z))
    grid.SetOrigin((*image.GetOrigin()[:2], image.GetOrigin()[2] + shift_z))
    grid.SetDirection(image.GetDirection())
    ct = sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, -1024.0)
    mask = sitk.Resample(lungs, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return ct, mask


@pytest.fixture(scope="module")
def pair(ct64):
    image, lungs, _ = ct64
    follow, follow_lungs = _follow_up(image, lungs, spacing_z=5.0, shift_z=-10.0, n=66)
    return [
        ComparisonStudy(image, day=0, label="baseline", lungs=lungs),
        ComparisonStudy(follow, day=19, label="follow-up", lungs=follow_lungs),
    ]


@pytest.fixture(scope="module")
def sbu(shared_dir):
    root = shared_dir / "data" / "ct" / "covid_ny_sbu" / "A002304"
    if not root.is_dir():
        pytest.skip(f"{root} absent: the real COVID CT slices are needed")
    return root


@pytest.fixture(scope="module")
def cxr(shared_dir):
    path = shared_dir / "data" / "cxr" / "dicom" / "highdicom_dx_image.dcm"
    if not path.is_file():
        pytest.skip(f"{path} absent: a real radiograph is needed")
    return load_radiograph(path)


def test_lung_level_on_real_mask(ct64):
    image, lungs, _ = ct64
    level = lung_level(image, lungs)
    present = np.flatnonzero(sitk.GetArrayViewFromImage(lungs).any(axis=(1, 2)))
    z = [image.TransformIndexToPhysicalPoint((0, 0, int(k)))[2] for k in (present[0], present[-1])]
    assert level["first_mm"] == pytest.approx(max(z)) and level["last_mm"] == pytest.approx(min(z))  # apex first
    assert level["fractions"][present[-1]] == pytest.approx(0.0) and level["fractions"][present[0]] == 1.0
    assert level["step"] == pytest.approx(image.GetSpacing()[2] / (max(z) - min(z)))
    assert not level["cut"]
    empty = sitk.Image(lungs.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(lungs)
    with pytest.raises(TeachingError, match="lung mask is empty"):
        lung_level(image, empty)


def test_matched_levels_agree_with_the_rule(pair):
    cmp = comparison_figure(pair, quantify=False)
    base, follow = (p["level"] for p in cmp.panels)
    f = cmp.target["fraction"]
    assert cmp.rule == "lung_fraction" and base["fraction"] == pytest.approx(f)
    # the rule: the follow-up slice nearest the same fraction, within half a slice (and so within one slice)
    assert follow["fraction_error"] == pytest.approx(abs(follow["fraction"] - f))
    assert follow["fraction_error"] <= follow["fraction_step"] / 2 + 1e-12
    fractions = lung_level(pair[1].image, pair[1].lungs)["fractions"]
    assert follow["index"] == int(np.argmin(np.abs(fractions - f)))
    # same patient, same anatomy: the matched slices lie at the same height within one follow-up slice
    assert abs(follow["position_mm"] - base["position_mm"]) <= pair[1].image.GetSpacing()[2]
    # the reference level is the baseline's middle of the lungs without opacity labels
    assert cmp.target["how"] == "middle of the lungs" and f == pytest.approx(0.5)
    # a given fraction or index is kept and recorded
    for kwargs in ({"fraction": 0.25}, {"index": 60}):
        other = comparison_figure(pair, quantify=False, **kwargs)
        levels = [p["level"] for p in other.panels]
        f = other.target["fraction"]
        assert f == pytest.approx(0.25) if "fraction" in kwargs else levels[0]["index"] == 60
        assert all(abs(lv["fraction"] - f) <= lv["fraction_step"] / 2 + 1e-12 for lv in levels)
    record = json.loads(json.dumps(cmp.record()))
    assert record["panels"][1]["level"]["index"] == follow["index"] and "fraction" in record["rule_text"]


def test_matched_level_follows_the_opacity_of_the_reference(pair):
    opacity = np.zeros(sitk.GetArrayViewFromImage(pair[0].image).shape, dtype=np.uint8)
    opacity[25, 20:30, 10:20] = 1  # GGO in the lower right lung, most on slice 25
    opacity[26, 20:22, 10:12] = 2
    studies = [ComparisonStudy(pair[0].image, day=0, lungs=pair[0].lungs, opacity=opacity), pair[1]]
    cmp = comparison_figure(studies, quantify=False)
    assert cmp.panels[0]["level"]["index"] == 25 and cmp.target["how"] == "largest opacity burden (100 voxels)"
    drawn = {c.get_gid() for c in cmp.figure.axes[0].collections if c.get_gid()}
    assert {"ggo", "lungs"} <= drawn  # the overlay of the reference's slice


def test_mirrored_storage_gives_the_same_level(pair):
    flipped = [ComparisonStudy(sitk.Flip(s.image, [False, False, True]), day=s.day,
                               lungs=sitk.Flip(s.lungs, [False, False, True])) for s in pair]  # fmt: skip
    a = comparison_figure(pair, quantify=False, fraction=0.3)
    b = comparison_figure(flipped, quantify=False, fraction=0.3)
    for pa, pb in zip(a.panels, b.panels, strict=True):
        assert pa["level"]["position_mm"] == pytest.approx(pb["level"]["position_mm"])
        assert pa["level"]["index"] == pa["level"]["n_slices"] - 1 - pb["level"]["index"]
    np.testing.assert_array_equal(a.key_images[1].display, b.key_images[1].display)


def test_cut_lungs_are_reported(ct64):
    image, lungs, _ = ct64
    follow, follow_lungs = _follow_up(image, lungs, spacing_z=5.0, shift_z=13.0, n=50)  # apex not covered
    cmp = comparison_figure([ComparisonStudy(image, day=0, lungs=lungs),
                             ComparisonStudy(follow, day=9, lungs=follow_lungs)], quantify=False)  # fmt: skip
    assert cmp.panels[1]["level"]["lungs_cut"] and not cmp.panels[0]["level"]["lungs_cut"]
    assert "studies [1]" in cmp.target["warning"]
    assert any("edge of the scan" in t.get_text() for t in cmp.figure.texts)


def test_carina_agrees_with_cip_airway_labels(ct64):
    image, lungs, cip = ct64
    # CIP's airway labels (type 2 << 8) outside the lungs (region 0): the carina is the last slice where they form
    # one lumen, above the first slice with the two main bronchi
    airway = ((cip >> 8) == 2) & ((cip & 255) == 0)
    counts = {k: ndimage.label(airway[k], structure=np.ones((3, 3)))[1] for k in range(airway.shape[0])}
    top = max(k for k, n in counts.items() if n)
    reference = next(k for k in range(top, 0, -1) if counts[k] == 1 and counts[k - 1] >= 2)
    assert find_carina(image, lungs) == reference == 52
    follow, follow_lungs = _follow_up(image, lungs, spacing_z=4.0, shift_z=-6.0, n=82)
    cmp = comparison_figure([ComparisonStudy(image, day=0, lungs=lungs),
                             ComparisonStudy(follow, day=9, lungs=follow_lungs)],
                            rule="carina", index=40, quantify=False)  # fmt: skip
    base, other = (p["level"] for p in cmp.panels)
    assert base["carina_index"] == 52 and base["carina"] == "found (find_carina)"
    assert cmp.target["offset_mm"] == pytest.approx(base["position_mm"] - cmp.panels[0]["level"]["position_mm"]
                                                    + base["offset_mm"])  # fmt: skip
    assert abs(other["offset_mm"] - base["offset_mm"]) <= follow.GetSpacing()[2] / 2 + 1e-9
    given = comparison_figure([ComparisonStudy(image, day=0, lungs=lungs)], rule="carina", carina=[50], index=40,
                              quantify=False)  # fmt: skip
    assert given.panels[0]["level"]["carina"] == "given" and given.target["offset_mm"] == pytest.approx(
        image.TransformIndexToPhysicalPoint((0, 0, 40))[2] - image.TransformIndexToPhysicalPoint((0, 0, 50))[2]
    )
    with pytest.raises(TeachingError, match="matches axial levels"):
        comparison_figure([ComparisonStudy(image, lungs=lungs)], rule="carina", plane="coronal")


def test_captions_hold_the_numbers_given(pair, cxr):
    numbers = {"opacity_pct": 12.34, "ggo_ml": 310.4, "consolidation_ml": 95.6, "volume_ml": 4321.0,
               "severity_total": 10.0}  # fmt: skip
    lobes = {"RUL": 2, "RML": 1, "RLL": 3, "LUL": 1, "LLL": 4}
    studies = [
        ComparisonStudy(pair[0].image, day=0, label="baseline", lungs=pair[0].lungs, quantification=numbers,
                        scores=lobes, n_readers=3),
        ComparisonStudy(cxr, day=0, label="baseline", scores=BRIXIA, n_readers=2),
        ComparisonStudy(pair[1].image, day=19, label="follow-up", lungs=pair[1].lungs,
                        quantification={"opacity_pct": 3.0}),
    ]  # fmt: skip
    cmp = comparison_figure(studies, quantify=False)
    ct0, xr0, ct19 = cmp.captions()
    flat = ct0.replace("\n", " ")
    for text in ("day 0 (baseline)", "opacity 12.3 %", "GGO 310 mL", "consolidation 96 mL", "lungs 4,321 mL",
                 "per lobe 11/25 (mean of 3 readers)", "CT severity 10/30"):  # fmt: skip
        assert text in flat
    assert "Brixia score 9/18 (mean of 2 readers)" in xr0.replace("\n", " ") and "radiograph" in xr0
    assert ct19.startswith("day 19 (follow-up)") and "opacity 3.0 %" in ct19
    drawn = {t.get_text() for t in cmp.figure.texts}
    assert {ct0, xr0, ct19} <= drawn  # the captions are on the figure
    # CT and the radiograph of the same day share a column, the CT above
    where = {(p["modality"], p["day"]): (p["row"], p["column"]) for p in cmp.panels}
    assert where == {("CT", 0): (0, 0), ("radiograph", 0): (1, 0), ("CT", 19): (0, 1)}
    # the radiograph's zone scores are drawn on it
    assert cmp.panels[1]["key_image"]["zone_scores"]["zones"]["C"] == "C\n3"
    assert not any(ch.isdigit() and len(ch) == 8 for ch in flat.split())  # no YYYYMMDD anywhere


def test_real_earlier_and_later_slices(sbu, tmp_path):
    early, late = load_ct(sbu / "axial" / "19001231-076.dcm"), load_ct(sbu / "axial" / "19010112-135.dcm")
    studies = [ComparisonStudy(early, day=0, label="earlier"), ComparisonStudy(late, day=12, label="later")]
    cmp = comparison_figure(studies)
    assert [p["level"]["how"] for p in cmp.panels] == ["single slice as acquired"] * 2
    opacity = [p["numbers"]["opacity_pct"] for p in cmp.panels]
    assert opacity[1] > opacity[0]  # the later study has more disease (SOURCE.txt)
    assert "of the lung in this slice" in cmp.captions()[0] and " mL" not in cmp.captions()[0]


def test_figure_bytes_reproducible_identifier_free_and_300_dpi(sbu, cxr, tmp_path):
    from PIL import Image

    files = sorted(sbu.rglob("*.dcm"))
    case = TeachingCase(title={}, presentation={}, question={}, options=[], answer={}, discussion={},
                        teaching_points=[], identifying_values=_dicom_identifiers(files), subject="A002304")  # fmt: skip
    assert "A002304" in case.identifying_values and "19010112" in case.identifying_values

    from kicc_analysis.segmentation import segment_lungs

    cts = [load_ct(sbu / "coronal" / name) for name in ("19001231-076.dcm", "19010112-124.dcm")]
    lungs = [segment_lungs(ct).labels for ct in cts]  # once: the figure, not the segmentation, is under test

    def build():
        case.studies = [
            ComparisonStudy(cts[0], day=0, label="baseline", lungs=lungs[0]),
            ComparisonStudy(cts[1], day=12, label="follow-up", lungs=lungs[1]),
            ComparisonStudy(cxr, day=12, scores=BRIXIA),
        ]
        return comparison_figure(case, width_mm=174)

    for suffix in (".png", ".svg", ".pdf"):
        first = build().save(tmp_path / f"a{suffix}", case=case).read_bytes()
        second = build().save(tmp_path / f"b{suffix}", case=case).read_bytes()
        assert first == second
        for marker in (b"matplotlib", b"Matplotlib", b"CreationDate", b"A002304", b"19010112"):
            assert marker not in first
    with Image.open(tmp_path / "a.png") as im:
        assert round(im.info["dpi"][0]) == 300
        assert im.size[0] == round(174 / 25.4 * 300)  # 174 mm double column at 300 dpi
    # an identifier in a caption is refused and nothing is written
    case.studies[0].label = "A002304"
    with pytest.raises(PrivacyError):
        comparison_figure(case).save(tmp_path / "leak.png")  # a figure of a case is checked against it
    assert not (tmp_path / "leak.png").exists()
    case.studies[0].label = "scan of 2020-03-14"
    with pytest.raises(PrivacyError):
        comparison_figure(case).save(tmp_path / "date.png")
    assert not (tmp_path / "date.png").exists()


def test_bad_inputs(pair, cxr):
    with pytest.raises(TeachingError, match="no studies"):
        comparison_figure([])
    with pytest.raises(TeachingError, match="expected one of"):
        comparison_figure(pair, rule="landmark")
    with pytest.raises(TeachingError, match="reference 1"):
        comparison_figure([pair[0], ComparisonStudy(cxr, day=0)], reference=1, quantify=False)
    with pytest.raises(TeachingError, match="one sets the level"):
        comparison_figure(pair, fraction=0.3, index=4, quantify=False)
    with pytest.raises(TeachingError, match="needs its lung mask"):
        comparison_figure([ComparisonStudy(pair[0].image)], quantify=False)
    with pytest.raises(TeachingError, match="lung mask of shape"):
        comparison_figure([ComparisonStudy(pair[0].image, lungs=np.zeros((2, 2, 2)))], quantify=False)


def test_repository_studies_and_carina_on_two_cts(demo_repository: Path):
    import pandas as pd

    listed = pd.read_csv(demo_repository / "clinical" / "imaging_studies.csv")
    ct_counts = listed[listed["img_modality"] == "CT"].groupby("subjid").size()
    subject = str(ct_counts[ct_counts >= 2].index[0])
    studies = repository_studies(demo_repository, subject)
    mine = listed[listed["subjid"] == subject]
    assert sorted(s.day for s in studies) == sorted(mine["img_day"].astype(int))
    assert studies[0].label == "baseline" and studies[-1].label == "follow-up"
    assert any(s.modality == "radiograph" and s.scores and s.n_readers for s in studies)
    cts = [s for s in studies if s.modality == "CT"][:2]
    cmp = comparison_figure(cts, rule="carina")
    base, follow = (p["level"] for p in cmp.panels)
    assert base["carina"] == follow["carina"] == "found (find_carina)"
    assert abs(follow["offset_mm"] - base["offset_mm"]) <= cts[1].image.GetSpacing()[2] / 2 + 1e-9
    # the carina lies at the same depth below the lung apex in both scans of the same (phantom) patient
    depth = [lv["lung_first_mm"] - (lv["position_mm"] - lv["offset_mm"]) for lv in (base, follow)]
    assert abs(depth[0] - depth[1]) <= max(s.image.GetSpacing()[2] for s in cts)
    assert all("opacity" in c for c in cmp.captions())


def test_coronal_levels_and_korean_labels(pair):
    from kicc_analysis.teaching.images import hangul_font

    studies = [
        ComparisonStudy(s.image, day=s.day, label=label, lungs=s.lungs)
        for s, label in zip(pair, ("기준", "추적"), strict=True)
    ]
    cmp = comparison_figure(studies, plane="coronal", fraction=0.4, quantify=False)
    for panel, study in zip(cmp.panels, studies, strict=True):
        level = panel["level"]
        assert panel["key_image"]["plane"] == "coronal"
        assert abs(level["fraction"] - 0.4) <= level["fraction_step"] / 2 + 1e-12
        assert level["fraction_step"] == pytest.approx(
            study.image.GetSpacing()[1] / abs(level["lung_last_mm"] - level["lung_first_mm"])
        )
        assert level["lung_first_mm"] < level["lung_last_mm"]  # 0 = anterior (smaller y in LPS)
    caption = next(t for t in cmp.figure.texts if t.get_gid() == "caption-0")
    assert "(기준)" in caption.get_text()
    if hangul_font() is not None:
        assert caption.get_fontfamily()[0] == "NanumGothic"


def test_case_without_studies_says_how_to_fill_them():
    case = TeachingCase(title={}, presentation={}, question={}, options=[], answer={}, discussion={},
                        teaching_points=[])  # fmt: skip
    with pytest.raises(TeachingError, match="repository_studies"):
        comparison_figure(case)


def test_readme_figure_is_reproducible_and_current(demo_repository, project_root, tmp_path):
    """docs/img/teaching_comparison.png is what docs/make_comparison_figure.py makes from the demo (seed 19)."""
    import runpy

    committed = project_root / "docs" / "img" / "teaching_comparison.png"
    script = runpy.run_path(str(project_root / "docs" / "make_comparison_figure.py"))
    made = script["main"](["--repository", str(demo_repository), "--out", str(tmp_path / "figure.png")])
    data = made.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) < 300 * 1024
    assert data == committed.read_bytes(), "README figure out of date: run docs/make_comparison_figure.py"


def test_single_column_figure_shrinks_its_labels(pair):
    wide = comparison_figure(pair, quantify=False, width_mm=174)
    narrow = comparison_figure(pair, quantify=False, width_mm=84)
    assert narrow.figure.get_size_inches()[0] == pytest.approx(84 / 25.4)

    def letter_size(cmp):
        return next(t.get_fontsize() for t in cmp.figure.axes[0].texts if t.get_text() == "A")

    assert letter_size(wide) == 9 and letter_size(narrow) < 9
    assert all(len(line) <= 40 for c in narrow.captions() for line in c.split("\n"))  # wrapped to the panel


@pytest.mark.parametrize(("spacing_z", "shift_z", "n"), [(2.5, -3.0, 140), (7.5, -20.0, 48), (3.0, 7.0, 110)])
def test_matched_levels_across_slice_spacings(ct64, spacing_z, shift_z, n):
    image, lungs, _ = ct64
    follow, follow_lungs = _follow_up(image, lungs, spacing_z=spacing_z, shift_z=shift_z, n=n)
    studies = [ComparisonStudy(image, day=0, lungs=lungs), ComparisonStudy(follow, day=9, lungs=follow_lungs)]
    for fraction in (0.1, 0.35, 0.6, 0.9):
        cmp = comparison_figure(studies, fraction=fraction, quantify=False)
        for panel in cmp.panels:
            level = panel["level"]
            assert level["fraction_error"] <= level["fraction_step"] / 2 + 1e-12  # nearest slice: within half a slice
        base, other = (p["level"] for p in cmp.panels)
        # the same anatomy: apart by at most the follow-up slice plus half a baseline slice (each study's lung
        # extent is measured between slice centres, so it is itself known to about a slice)
        assert abs(other["position_mm"] - base["position_mm"]) <= spacing_z + image.GetSpacing()[2] / 2
