"""Single-slice rules of segment_lungs (``kicc_analysis.segmentation.planes``): bowel and stomach gas on single axial
slices, the trachea and pure gas on single coronal / sagittal slices, the severity flag of a plane mask, and the
orientation of coronal / sagittal slices.

Real slices: covid_ny_sbu (TCIA COVID-19-NY-SBU, true HU) and the TotalSegmentator example abdomen CT (each axial
slice segmented alone). Each rule is shown on the real slices with and without it (``disabled_rules``), and on
synthetic slices where it must not fire.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from conftest import shared_path
from scipy import ndimage

from kicc_analysis.imaging import load_ct
from kicc_analysis.segmentation import SLICE_RULE_NAMES, LungParameters, segment_lungs
from kicc_analysis.segmentation.lungs import _as_3d, _PlaneView
from kicc_analysis.segmentation.planes import abnormal_share, airway_tube_plane, drop_abdominal_gas_2d


def _off(*names: str) -> LungParameters:
    return LungParameters(disabled_rules=frozenset(names))


def _sbu(relative: str) -> sitk.Image:
    return load_ct(shared_path("data", "ct", "covid_ny_sbu", f"{relative}.dcm"))


def _canonical(image: sitk.Image, array: np.ndarray) -> np.ndarray:
    """``array`` (the image's (z, y, x) grid) in the canonical plane view: rows superior -> inferior."""
    view = _PlaneView.of(_as_3d(image)[0])
    return view.forward(array.reshape(sitk.GetArrayViewFromImage(image).shape))[0]


# ------------------------------------------------------------------------------- axial slices below the diaphragm
@pytest.mark.parametrize("stem", ["19001231-084", "19010108-078"])
def test_abdominal_axial_slices_have_no_lung(stem):
    """A058062 axial slices at kidney level (bowel gas anterior, no lung): lungs-1.10 labelled the bowel gas as
    lung (21.1 / 6.0 mL) with low_confidence False; the rule drops every gas component (anterior-only, interior
    -924..-959 HU, no air in the posterior half of the trunk) and the mask is empty and flagged."""
    image = _sbu(f"A058062/axial/{stem}")
    seg = segment_lungs(image)
    assert seg.qa["total_ml"] == 0.0
    assert seg.qa["low_confidence"] and "no_lung_gas_only" in seg.qa["flags"]
    assert seg.qa["dropped_gas_ml"] > 5.0
    assert all(d["posterior_share"] < 0.1 and d["interior_median_hu"] < -900 for d in seg.qa["dropped_gas"])
    before = segment_lungs(image, parameters=_off("abdominal_gas_2d"))
    assert before.qa["total_ml"] > 5.0 and not before.qa["low_confidence"]


@pytest.fixture(scope="module")
def totalseg_slices():
    """The TotalSegmentator example CT's top 30 slices (3 mm; lung bases in the top 12, stomach and colon gas below
    and beside them), each axial slice segmented alone with and without the rule, and TotalSegmentator's own lung
    labels (10-14, a model output) as the reference."""
    folder = ("data", "ct", "totalseg_example_ct")
    image = load_ct(shared_path(*folder, "example_ct_sm.nii.gz"))
    reference = sitk.GetArrayFromImage(load_ct(shared_path(*folder, "example_seg.nii.gz")))
    reference = (reference >= 10) & (reference <= 14)
    on, off = [], []
    for z in range(image.GetSize()[2]):
        one = image[:, :, z : z + 1]
        on.append(sitk.GetArrayFromImage(segment_lungs(one).labels)[0] > 0)
        off.append(sitk.GetArrayFromImage(segment_lungs(one, parameters=_off("abdominal_gas_2d")).labels)[0] > 0)
    return np.array(on), np.array(off), reference


def test_totalseg_axial_slices_one_by_one_gas_is_not_lung(totalseg_slices):
    """Single axial slices of a real abdomen CT: without the rule, stomach and colon gas on the slices below the
    lung bases is labelled lung; with it, none of those slices has a mask pixel, and on the lung-base slices the
    rule removes no pixel of TotalSegmentator's lung (it only takes out gas)."""
    on, off, reference = totalseg_slices
    no_lung = ~reference.any(axis=(1, 2))
    assert no_lung.sum() >= 10
    assert off[no_lung].sum() > 1000  # pixels of gas labelled lung without the rule
    assert on[no_lung].sum() == 0
    assert (on & ~reference).sum() < 0.5 * (off & ~reference).sum()
    # no lung pixel lost: compared with partial_aeration_2d (edge11, input grid) off on both sides, because without
    # the gas rule that rule also grows from the gas into 16 lung-base pixels the mask does not reach from the lung;
    # and below_dome_2d (base11) off on both sides: the gas left in without the gas rule lies anteriorly, so the
    # slice no longer reads as a lung base and that filter does not run (8 of its lung pixels differ)
    lost = 0
    image = load_ct(shared_path("data", "ct", "totalseg_example_ct", "example_ct_sm.nii.gz"))
    for z in np.nonzero(reference.any(axis=(1, 2)))[0]:
        one = image[:, :, int(z) : int(z) + 1]
        with_rule = _off("partial_aeration_2d", "below_dome_2d")
        with_rule = sitk.GetArrayFromImage(segment_lungs(one, parameters=with_rule).labels)[0] > 0
        parameters = _off("abdominal_gas_2d", "partial_aeration_2d", "below_dome_2d")
        without = sitk.GetArrayFromImage(segment_lungs(one, parameters=parameters).labels)[0] > 0
        lost += int((without & reference[z] & ~with_rule).sum())
    assert lost == 0


def test_ct64_axial_slices_one_by_one_keep_emphysematous_lung():
    """Every axial slice of the real COPDGene ct-64 scan (emphysema: interior -930 HU, the case the HU limit must
    spare) segmented alone: the rule removes no pixel of the CIP lung mask; it removes stomach gas at the bases and
    the trachea above the apices (611 pixels measured), and the mean Dice against CIP over the lung slices does
    not fall (0.969 -> 0.971 measured)."""
    folder = shared_path("data", "ct", "cip_copdgene_ct64")
    ct = load_ct(folder / "ct-64.nrrd")
    hu = sitk.GetArrayFromImage(ct).astype(np.float32)
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "lm-64.nrrd"))) & 255
    truth = (truth >= 9) & (truth <= 14)  # CIP left/right lung thirds
    lost, removed, dice_on, dice_off = 0, 0, [], []
    for z in range(hu.shape[0]):
        image = sitk.GetImageFromArray(hu[z])
        image.SetSpacing(ct.GetSpacing()[:2])
        on = sitk.GetArrayFromImage(segment_lungs(image).labels) > 0
        off = sitk.GetArrayFromImage(segment_lungs(image, parameters=_off("abdominal_gas_2d")).labels) > 0
        lost += int((off & ~on & truth[z]).sum())
        removed += int((off & ~on & ~truth[z]).sum())
        if truth[z].sum() >= 200:
            dice_on.append(2 * (on & truth[z]).sum() / (on.sum() + truth[z].sum()))
            dice_off.append(2 * (off & truth[z]).sum() / (off.sum() + truth[z].sum()))
    assert lost == 0
    assert removed > 400
    assert np.mean(dice_on) >= np.mean(dice_off)


def _axial(components: list[tuple[slice, slice, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic axial working-grid slice (1, 100, 100): trunk rows 10-89; air components (rows, columns, HU)."""
    hu = np.full((1, 100, 100), 40.0)
    trunk = np.zeros(hu.shape, dtype=bool)
    trunk[0, 10:90, 5:95] = True
    lungs = np.zeros(hu.shape, dtype=bool)
    for rows, columns, value in components:
        hu[0, rows, columns] = value
        lungs[0, rows, columns] = True
    return lungs, hu, trunk


def test_abdominal_gas_2d_keeps_anterior_lung_and_emphysema():
    """The rule must not fire on lung: an anterior-only lung piece (middle lobe in front of the heart, -850 HU), an
    anterior-only emphysematous piece (-920 HU) on a slice that also has posterior lung, or posterior lung itself.
    It fires on pure anterior gas (-1000 HU) and, on a slice without posterior air, on -920 HU anterior air."""
    posterior_lung = (slice(40, 85), slice(10, 40), -850.0)
    middle_lobe = (slice(15, 30), slice(20, 35), -850.0)
    emphysema = (slice(15, 30), slice(60, 75), -920.0)
    lungs, hu, trunk = _axial([posterior_lung, middle_lobe, emphysema])
    kept, dropped = drop_abdominal_gas_2d(lungs, hu, trunk, 0.01)
    assert dropped == [] and (kept == lungs).all()
    gas = (slice(15, 30), slice(60, 75), -1000.0)
    lungs, hu, trunk = _axial([posterior_lung, middle_lobe, gas])
    kept, dropped = drop_abdominal_gas_2d(lungs, hu, trunk, 0.01)
    assert len(dropped) == 1 and not kept[0, 15:30, 60:75].any() and kept[0, 15:30, 20:35].all()
    lungs, hu, trunk = _axial([emphysema, middle_lobe])  # no posterior air: a slice below the lung bases
    kept, dropped = drop_abdominal_gas_2d(lungs, hu, trunk, 0.01)
    assert len(dropped) == 1 and not kept[0, 15:30, 60:75].any() and kept[0, 15:30, 20:35].all()


# ------------------------------------------------------------------------------------- coronal / sagittal slices
# the tracheal lumen on the canonical view (row, column), read on the images: the midline pure-air tube
TRACHEA = {
    "A048383/coronal/19001231-057": (137, 251),
    "A048383/coronal/19010410-052": (148, 209),
    "A002304/coronal/19001231-076": (95, 238),
    "A046441/coronal/19001111-056": (77, 246),
    "A046441/coronal/19010101-43": (188, 236),
    "A027284/sagittal/19001231-081": (84, 220),
}


def _lumen(hu: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """The air lumen (< -900 HU, opened by 2 pixels so it does not run into the lung) containing ``seed``."""
    lumen = ndimage.binary_opening(hu < -900, iterations=2)
    lab, _ = ndimage.label(lumen)
    assert lab[seed] > 0
    return lab == lab[seed]


@pytest.mark.parametrize("name", sorted(TRACHEA))
def test_no_trachea_pixel_in_the_plane_mask(name):
    """lungs-1.10 labelled the trachea right lung on these slices; the airway-tube rule (narrow, midline, pure-air
    lumen) takes it out (A046441 -43: its lumen is pure gas, < -940 HU, so the gas rule already does). Both lungs
    stay on the coronal slices of the mild case (20-60 mL each)."""
    image = _sbu(name)
    hu = _canonical(image, sitk.GetArrayFromImage(image))
    lumen = _lumen(hu, TRACHEA[name])
    assert 80 <= lumen.sum() <= 1500
    seg = segment_lungs(image)
    labels = _canonical(image, sitk.GetArrayFromImage(seg.labels))
    assert not (labels[lumen] > 0).any()
    before = segment_lungs(image, parameters=_off("airway_tube_plane", "gas_plane"))
    assert (_canonical(image, sitk.GetArrayFromImage(before.labels))[lumen] > 0).mean() > 0.5
    if name.startswith("A048383"):
        assert 20 < seg.qa["right_ml"] < 60 and 20 < seg.qa["left_ml"] < 60


def test_airway_tube_plane_does_not_fire_on_lung():
    """Synthetic coronal view: a 15 mm pure-air tube on the midline is airway; the same tube 60 mm off the midline,
    a 15 mm strip of parenchyma (-850 HU) on the midline, and a 75 mm wide pure-air (bullous) lung are not."""
    spacing = np.array([1.0, 2.5, 2.5])
    hu = np.full((1, 100, 100), 40.0)
    candidate = np.zeros(hu.shape, dtype=bool)

    def put(rows, columns, value):
        hu[0, rows, columns] = value
        candidate[0, rows, columns] = True

    put(slice(5, 40), slice(47, 53), -1000.0)  # trachea: 6 px = 15 mm wide, centre column 49.5
    put(slice(5, 40), slice(71, 77), -1000.0)  # 60 mm lateral
    put(slice(45, 80), slice(47, 53), -850.0)  # parenchyma strip on the midline
    put(slice(45, 80), slice(5, 35), -1000.0)  # wide pure-air lung (bulla)
    airway = airway_tube_plane(candidate, hu, spacing, midline_column=49.5)
    assert airway[0, 5:40, 47:53].all()
    assert airway.sum() == 35 * 6
    none = airway_tube_plane(candidate, hu, spacing, midline_column=49.5, params=_off("airway_tube_plane"))
    assert none.sum() == 35 * 6  # the function itself is unconditional; segment_lungs checks the switch


def test_ct64_coronal_and_sagittal_reformats_keep_emphysematous_lung():
    """Single coronal and sagittal slices cut from the real COPDGene ct-64 volume (emphysema; 4 mm voxels) every
    12.5 mm, against the CIP lung mask: the single-slice rules never lower the Dice, and remove the trachea where
    a coronal slice meets it. Without the size exemption of the pure-gas rule the emphysematous left lung (interior
    -941 / -944 HU) was dropped on the posterior coronal slices (Dice 0.995 -> 0.683, 0.990 -> 0.705)."""
    folder = shared_path("data", "ct", "cip_copdgene_ct64")
    ct = load_ct(folder / "ct-64.nrrd")
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "lm-64.nrrd"))) & 255
    truth = (truth >= 9) & (truth <= 14)  # (z, y, x)
    nx, ny, _ = ct.GetSize()
    gains = []
    for plane, count in (("coronal", ny), ("sagittal", nx)):
        for k in range(4, count - 4, 3):
            image = ct[:, k : k + 1, :] if plane == "coronal" else ct[k : k + 1, :, :]
            reference = truth[:, k, :] if plane == "coronal" else truth[:, :, k]
            if reference.sum() < 200:
                continue
            dice = []
            for parameters in (LungParameters(), _off(*SLICE_RULE_NAMES)):
                seg = segment_lungs(image, parameters=parameters)
                assert seg.qa["plane"] == plane
                mask = np.squeeze(sitk.GetArrayFromImage(seg.labels)) > 0
                dice.append(2 * (mask & reference).sum() / (mask.sum() + reference.sum()))
            assert dice[0] >= dice[1] - 1e-9, (plane, k)
            gains.append(dice[0] - dice[1])
    assert len(gains) >= 25 and max(gains) > 0.003  # the trachea slice (coronal y 22: 0.986 -> 0.992 measured)


def test_totalseg_reformats_nothing_below_the_lung_bases():
    """Coronal and sagittal slices cut every 18 mm from the TotalSegmentator example abdomen CT (lung bases only in
    its top 12 slices, stomach and colon gas below): with the single-slice rules no mask pixel lies below the lung
    bases (169 without them, measured), and the lung-base pixels are the same."""
    ct = load_ct(shared_path("data", "ct", "totalseg_example_ct", "example_ct.nii.gz"))
    nx, ny, nz = ct.GetSize()
    below, bases = {}, {}
    for name, parameters in (("on", LungParameters()), ("off", _off(*SLICE_RULE_NAMES))):
        below[name] = bases[name] = 0
        for plane, count in (("coronal", ny), ("sagittal", nx)):
            for k in range(5, count - 5, 6):
                image = ct[:, k : k + 1, :] if plane == "coronal" else ct[k : k + 1, :, :]
                mask = np.squeeze(sitk.GetArrayFromImage(segment_lungs(image, parameters=parameters).labels)) > 0
                below[name] += int(mask[: nz - 12].sum())  # (z, in-plane): z = 0 is inferior
                bases[name] += int(mask[nz - 12 :].sum())
    assert below["on"] == 0 and below["off"] > 50
    assert bases["on"] == bases["off"] > 100


def test_sagittal_bowel_gas_is_not_lung():
    """A058062 sagittal 19001231-073 (abdomen, lung bases barely in the field): lungs-1.10 took a bowel loop
    (interior < -940 HU, 15 cm^2) as the slice's lung (5.8 mL); pure gas smaller than a lung section (50 cm^2) is
    never lung now, so the mask is empty and flagged."""
    image = _sbu("A058062/sagittal/19001231-073")
    seg = segment_lungs(image)
    assert seg.qa["total_ml"] == 0.0 and seg.qa["low_confidence"]
    before = segment_lungs(image, parameters=_off("gas_plane"))
    assert before.qa["total_ml"] > 3.0


def _coronal_phantom(lower_lung_hu: float) -> sitk.Image:
    """A synthetic coronal slice (LPS, 2 mm): trunk of soft tissue, two lungs (-850 HU in their upper fifth,
    ``lower_lung_hu`` below) above a liver; array axis z runs superior."""
    hu = np.full((140, 1, 160), -1000.0)
    hu[10:135, 0, 15:145] = 40.0  # trunk (z, y, x): z = 0 is inferior
    for x0 in (30, 90):
        hu[60:125, 0, x0 : x0 + 40] = -850.0
        hu[60:112, 0, x0 : x0 + 40] = lower_lung_hu
    image = sitk.GetImageFromArray(hu.astype(np.int16))
    image.SetSpacing((2.0, 2.0, 2.0))
    return image


def test_plane_severity_flag_fires_only_on_mostly_abnormal_masks():
    """The plane flag: on real slices it fires on the consolidated A046441 coronal slices (most of the air-based
    mask is ground glass, consolidated lower lungs missed; lungs-1.10 left -056 unflagged with most of the lung
    missing) and not on the mild A048383 ones; on a synthetic slice it fires only when the lower lung is ground
    glass (-600 HU in its lower four fifths), not when it is normal (-850 HU)."""
    for name in ("A046441/coronal/19001111-056", "A046441/coronal/19010101-43"):
        qa = segment_lungs(_sbu(name)).qa
        assert qa["plane_abnormal_share"] > 0.8 and qa["low_confidence"], name
        assert any(r.startswith("plane_abnormal_share") for r in qa["low_confidence_reasons"]), name
    for name in ("A048383/coronal/19001231-057", "A048383/coronal/19010410-052"):
        qa = segment_lungs(_sbu(name)).qa
        assert qa["plane_abnormal_share"] < 0.3 and not qa["low_confidence"], name
    normal = segment_lungs(_coronal_phantom(-850.0)).qa
    assert normal["plane"] == "coronal" and normal["total_ml"] > 5 and not normal["low_confidence"]
    assert normal["plane_abnormal_share"] < 0.1
    glass = segment_lungs(_coronal_phantom(-600.0)).qa
    assert glass["plane_abnormal_share"] > 0.7 and glass["low_confidence"]
    labels = np.zeros((3, 3), dtype=np.uint8)
    assert abnormal_share(labels, np.zeros((3, 3))) == 0.0


def test_plane_slice_without_body_gives_no_lung():
    """A coronal slice outside the patient (air only, as at the edge of a reformatted volume): empty mask and
    ``no_lung``, no crash (the airway rule's upper-body limit needs a body)."""
    image = sitk.GetImageFromArray(np.full((40, 1, 50), -1000, dtype=np.int16))
    image.SetSpacing((2.0, 2.0, 2.0))
    seg = segment_lungs(image)
    assert seg.qa["plane"] == "coronal" and seg.qa["total_ml"] == 0.0 and "no_lung" in seg.qa["flags"]


def test_slice_rule_names_switch_off():
    """Every single-slice rule name is accepted by ``disabled_rules``; an unknown name is refused."""
    assert set(_off(*SLICE_RULE_NAMES).disabled_rules) == set(SLICE_RULE_NAMES)
    with pytest.raises(Exception, match="unknown rule"):
        _off("no_such_rule")


# ----------------------------------------------------------------------------------------------- orientation
def _file_view(path) -> np.ndarray:
    """The slice in HU as pydicom reads it, turned by its ImageOrientationPatient alone into the canonical view:
    rows superior -> inferior; columns patient right -> left (coronal) or anterior -> posterior (sagittal)."""
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    row_dir = np.array(ds.ImageOrientationPatient[:3], dtype=float)  # along a row: column index grows (LPS)
    col_dir = np.array(ds.ImageOrientationPatient[3:], dtype=float)  # down a column: row index grows
    assert abs(col_dir[2]) > 0.99  # these reformats: file rows run along the superior-inferior axis
    if col_dir[2] > 0:  # row index grows towards superior: turn it round
        pixels = pixels[::-1]
    along = int(np.argmax(np.abs(row_dir[:2])))  # coronal: x (left), sagittal: y (posterior)
    if row_dir[along] < 0:
        pixels = pixels[:, ::-1]
    return pixels


@pytest.mark.parametrize("plane", ["coronal", "sagittal"])
def test_plane_view_orientation_matches_image_orientation_patient(plane):
    """Every coronal / sagittal file: the canonical view that segment_lungs works on (load_ct, then _PlaneView)
    equals the file's pixels turned by its own DICOM ImageOrientationPatient (read with pydicom): superior at the
    top, the patient's right on the left (coronal) / anterior on the left (sagittal). load_ct returns the
    axis-aligned files in LPS with z growing superior, so their raw arrays display upside down; the view turns
    them. Anatomy agrees: the mask lies above the liver (the lungs' rows are in the upper part of the body)."""
    folder = shared_path("data", "ct", "covid_ny_sbu")
    files = sorted(folder.glob(f"*/{plane}/*.dcm"))
    assert len(files) == 10
    for path in files:
        image = load_ct(path)
        view = _PlaneView.of(_as_3d(image)[0])
        assert view is not None and view.plane == plane, path.name
        canonical = _canonical(image, sitk.GetArrayFromImage(image).astype(float))
        # load_ct sets the padding (-2048 / -3024) to air: compare with both clipped at -1024 HU
        assert np.allclose(np.maximum(canonical, -1024), np.maximum(_file_view(path), -1024), atol=0.5), path.name
        seg = segment_lungs(image)
        labels = _canonical(image, sitk.GetArrayFromImage(seg.labels))
        if labels.any():
            body_rows = np.nonzero((canonical > -400).any(axis=1))[0]
            lung_rows = np.nonzero(labels.any(axis=1))[0]
            assert lung_rows.mean() < body_rows.min() + 0.6 * np.ptp(body_rows), path.name
