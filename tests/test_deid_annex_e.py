"""The machine-readable PS3.15 Table E.1-1 (edition 2026c, from dicom-anonymizer) and the options encoded here."""

from __future__ import annotations

from kicc_analysis.deid import annex_e


def test_every_action_code_is_one_of_the_standards():
    codes = set(annex_e.basic_profile().values()) | {row[-1] for row in annex_e.repeating_rows()}
    codes |= {code for option in annex_e.OPTION_ACTIONS.values() for code in option.values()}
    assert codes <= annex_e.ACTION_CODES
    assert {"X", "Z", "D", "U"} <= codes  # the table is not empty of any main action


def test_table_covers_the_editions_rows():
    plain, repeating = annex_e.basic_profile(), annex_e.repeating_rows()
    assert len(plain) + len(repeating) == annex_e.EDITION_ROWS == 655
    assert annex_e.EDITION == "2026c"


def test_well_known_rows():
    # spot checks against PS3.15 Table E.1-1: Patient's Name Z, Patient ID Z/D (2026c), SOP Instance UID U,
    # Institution Name X/Z/D, Referenced Image Sequence X/Z/U*, Overlay Data (60xx,3000) X
    assert annex_e.basic_action(0x00100010) == "Z"
    assert annex_e.basic_action(0x00080018) == "U"
    assert annex_e.basic_action(0x00080080) == "X/Z/D"
    assert annex_e.basic_action(0x00081140) == "X/Z/U*"
    assert annex_e.basic_action(0x60023000) == "X"
    assert annex_e.basic_action(0x00280010) is None  # Rows: not in the table


def test_options_override_the_basic_profile():
    assert annex_e.action(0x00101010, ()) == "X"  # Patient's Age: removed by the Basic Profile alone
    assert annex_e.action(0x00101010, ("patient_characteristics",)) == "K"
    assert annex_e.action(0x00080020, ("longitudinal_modified_dates",)) == "C"
    assert annex_e.action(0x00100030, annex_e.OPTIONS) == annex_e.basic_action(0x00100030)  # birth date goes
    for name in annex_e.OPTIONS:
        assert name in annex_e.PROFILE_CODES
