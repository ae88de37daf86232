"""Tests of kicc_analysis.repository.cxr_selection: the radiograph chosen per study and the reason."""

from __future__ import annotations

import doctest

import pandas as pd
from conftest import shared_path

import kicc_analysis.repository.cxr_selection as module
from kicc_analysis.repository.cxr_selection import select_radiographs

DX_PRESENT = "1.2.840.10008.5.1.4.1.1.1.1"
DX_PROCESS = "1.2.840.10008.5.1.4.1.1.1.1.1"
CR = "1.2.840.10008.5.1.4.1.1.1"


def _inst(study, sop, view="", desc="", sop_class=DX_PRESENT, modality="DX", rows=2000, series=1, frames=1):
    return dict(study_uid=study, sop_uid=sop, series_uid=f"{study}.{series}", modality=modality, view_position=view,
                series_description=desc, sop_class_uid=sop_class, rows=rows, columns=rows, series_number=series,
                instance_number=1, number_of_frames=frames, patient_id="P", relpath=f"{sop}.dcm")  # fmt: skip


def test_preference_order_and_reasons():
    table = pd.DataFrame(
        [
            # study 1: lateral PA-described vs AP frontal -> frontal wins
            _inst("1", "1.lat", view="LL"),
            _inst("1", "1.ap", view="AP", series=2),
            # study 2: PA for processing vs AP for presentation -> presentation wins
            _inst("2", "2.pa.proc", view="PA", sop_class=DX_PROCESS),
            _inst("2", "2.ap.pres", view="AP", series=2),
            # study 3: PA vs AP, both for presentation -> PA; view from description when ViewPosition is empty
            _inst("3", "3.ap", desc="CHEST AP PORTABLE"),
            _inst("3", "3.pa", desc="CHEST PA", series=2),
            _inst("3", "3.multi", view="PA", frames=5),  # multi-frame: not a candidate
            # study 4: CT only -> no row; study 5: one CR
            _inst("4", "4.ct", modality="CT"),
            _inst("5", "5.cr", view="", sop_class=CR, modality="CR"),
        ]
    )
    sel = select_radiographs(table).set_index("study_uid")
    assert list(sel.index) == ["1", "2", "3", "5"]
    assert sel.loc["1", "sop_uid"] == "1.ap" and "1.lat: lateral view" in sel.loc["1", "reason"]
    assert sel.loc["2", "sop_uid"] == "2.ap.pres" and "for processing" in sel.loc["2", "reason"]
    assert sel.loc["3", "sop_uid"] == "3.pa" and sel.loc["3", "n_candidates"] == 2
    assert "3.ap: AP view (after PA)" in sel.loc["3", "reason"]
    assert sel.loc["5", "view"] == "unknown" and sel.loc["5", "reason"].endswith("only radiograph of the study")


def test_real_files_views(tmp_path):
    from kicc_analysis.repository import scan_repository

    folder = shared_path("data", "cxr", "dicom")
    scan = scan_repository(folder, index_dir=tmp_path / "index", workers=1, show_progress=False)
    sel = select_radiographs(scan.instances)
    views = dict(zip(sel["relpath"], sel["view"], strict=True))
    assert views["fodicom_CR-MONO1-10-chest.dcm"] == "PA"
    assert views["pydicomdata_RG1_J2KI.dcm"] == "PA"
    assert views["pydicom_dicomdir_CR1_6154.dcm"] == "lateral"
    assert views["nccid_nih_cxr_dx_sc.dcm"] == "unknown"  # Secondary Capture with modality DX is a candidate


def test_docstring_examples_run():
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
