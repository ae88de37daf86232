"""Nothing below the diaphragm dome on single axial lung-base slices (``kicc_analysis.segmentation.base_2d``, step-6
filter ``below_dome_2d``).

Real slices: the TotalSegmentator example CT (abdomen with the lung bases, 3 mm; each axial slice segmented alone,
TotalSegmentator's own lung labels 10-14 as the reference) and the six outlined covid_ny_sbu slices (carina-to-heart
level, posterior consolidation). The rule is shown with and without it (``disabled_rules``), and on synthetic slices
where it must not fire.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_path

from kicc_analysis.imaging import load_ct
from kicc_analysis.segmentation import RULE_NAMES, LungParameters, dense_rules, segment_lungs
from kicc_analysis.segmentation.base_2d import anterior_lung_share, below_dome_2d


def _off(*names: str) -> LungParameters:
    return LungParameters(disabled_rules=frozenset(names))


def _mask(image: sitk.Image, parameters: LungParameters | None = None) -> np.ndarray:
    return sitk.GetArrayFromImage(segment_lungs(image, parameters=parameters).labels).reshape(-1) > 0


@pytest.fixture(scope="module")
def totalseg_base():
    """Per lung-base slice of the TotalSegmentator example CT (each segmented alone): mask pixels outside / inside
    its lung with the rule, without it, and with ``posterior_2d`` off (the rule that reaches under the dome)."""
    folder = ("data", "ct", "totalseg_example_ct")
    image = load_ct(shared_path(*folder, "example_ct_sm.nii.gz"))
    reference = sitk.GetArrayFromImage(load_ct(shared_path(*folder, "example_seg.nii.gz")))
    reference = (reference >= 10) & (reference <= 14)
    counts = {"on": [0, 0], "off": [0, 0], "no_posterior": [0, 0]}
    variants = {"on": None, "off": _off("below_dome_2d"), "no_posterior": _off("posterior_2d")}
    for z in np.nonzero(reference.any(axis=(1, 2)))[0]:
        one = image[:, :, int(z) : int(z) + 1]
        ref = reference[z].reshape(-1)
        for key, parameters in variants.items():
            mask = _mask(one, parameters)
            counts[key][0] += int((mask & ~ref).sum())
            counts[key][1] += int((mask & ref).sum())
    return counts


def test_totalseg_lung_bases_nothing_under_the_dome(totalseg_base):
    """Lung-base slices of a real abdomen CT: posterior_2d took retro-crural / perirenal fat, the crura and the
    adrenal region in the concavity of the basal lung crescent (measured: 1,108 mask pixels outside
    TotalSegmentator's lung without the rule, 506 with posterior_2d off); with the rule 506 -- no more than with
    posterior_2d off -- and not one of its lung pixels fewer (4,175)."""
    on_out, on_in = totalseg_base["on"]
    off_out, off_in = totalseg_base["off"]
    no_posterior_out, _ = totalseg_base["no_posterior"]
    assert off_out > 1.8 * on_out  # the rule removes more than half of the excess
    assert on_out <= no_posterior_out  # everything posterior_2d added under the dome
    assert on_in == off_in  # no lung pixel lost


def test_prone_patient_rule_does_not_run():
    """A lung-base slice read as prone (HFP): dependent consolidation would lie in front of the aerated lung, so the
    rule does not run; read as supine (HFS) it takes the tissue under the dome out."""
    image = load_ct(shared_path("data", "ct", "totalseg_example_ct", "example_ct_sm.nii.gz"))[:, :, 23:24]
    supine = segment_lungs(image, patient_position="HFS").qa["rule_added_ml"]
    prone = segment_lungs(image, patient_position="HFP").qa["rule_added_ml"]
    assert supine["below_dome_2d"] < -1.0  # mL taken back
    assert prone["below_dome_2d"] == 0.0 and prone["posterior_2d"] > 1.0


def _sbu(stem: str) -> sitk.Image:
    patient, name = stem.split("_", 1)
    return load_ct(shared_path("data", "ct", "covid_ny_sbu", patient, "axial", f"{name}.dcm"))


@pytest.mark.parametrize(
    "stem",
    [
        "A002304_19001231-076",
        "A002304_19010112-135",
        "A046441_19001111-045",
        "A046441_19010101-23",
        "A048383_19001231-30",
        "A048383_19010410-30",
    ],
)
def test_outlined_covid_slices_keep_posterior_consolidation(stem):
    """The six outlined COVID-19 slices lie at carina-to-heart level with aerated lung in front as well (share of
    aerated lung before the cavity midpoint 0.39-0.83 measured): the rule does not run there, so the posterior
    (dependent) consolidation posterior_2d brings in stays, and the mask is the same with and without it."""
    image = _sbu(stem)
    seg = segment_lungs(image)
    assert seg.qa["rule_added_ml"]["below_dome_2d"] == 0.0
    assert seg.qa["rule_added_ml"]["posterior_2d"] > 0.0
    assert np.array_equal(_mask(image), _mask(image, _off("below_dome_2d")))


# ------------------------------------------------------------------------------------------------- synthetic slices
def _slice(lung_rows: slice, tissue_rows: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Working-grid slice (rows anterior -> posterior): cavity rows 10-89, aerated lung and recovered tissue in the
    given rows of columns 20-79."""
    labels = np.zeros((1, 100, 100), dtype=np.uint8)
    recovered = np.zeros((1, 100, 100), dtype=bool)
    cavity = np.zeros((1, 100, 100), dtype=bool)
    cavity[0, 10:90, 10:90] = True
    labels[0, lung_rows, 20:80] = 1
    recovered[0, tissue_rows, 20:80] = True
    return labels, recovered, cavity


def test_tissue_in_front_of_a_basal_crescent_is_removed():
    """Base slice: aerated lung only in the posterior cavity (rows 75-84), tissue in front of it (rows 60-74)."""
    labels, recovered, cavity = _slice(slice(75, 85), slice(60, 75))
    assert anterior_lung_share(labels[0] > 0, cavity[0]) == 0.0
    assert np.array_equal(below_dome_2d(labels, recovered, cavity), recovered)


def test_dependent_consolidation_behind_a_basal_crescent_is_kept():
    """Base slice: the consolidation lies behind the aerated lung (between it and the posterior wall)."""
    labels, recovered, cavity = _slice(slice(65, 75), slice(75, 88))
    assert not below_dome_2d(labels, recovered, cavity).any()


def test_consolidation_between_aerated_lung_at_heart_level_is_kept():
    """Slice with aerated lung in front too (rows 15-49) and behind the consolidation (rows 80-84): not a base."""
    labels, recovered, cavity = _slice(slice(15, 50), slice(60, 80))
    labels[0, 80:85, 20:80] = 1
    assert anterior_lung_share(labels[0] > 0, cavity[0]) > 0.5
    assert not below_dome_2d(labels, recovered, cavity).any()


def test_no_cavity_nothing_removed():
    labels, recovered, cavity = _slice(slice(75, 85), slice(60, 75))
    assert not below_dome_2d(labels, recovered, None).any()
    assert not below_dome_2d(labels, recovered, np.ones_like(cavity)).any()


def test_rule_name_and_order():
    """A step-6 filter of the 2-D path, after posterior_2d, switched off by name."""
    names = [rule.name for rule in dense_rules("2d")]
    assert "below_dome_2d" in RULE_NAMES
    assert names.index("below_dome_2d") == names.index("posterior_2d") + 1
    assert [rule.removes for rule in dense_rules("2d") if rule.name == "below_dome_2d"] == [True]
    assert not _off("below_dome_2d").rule_enabled("below_dome_2d")
