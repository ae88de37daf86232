"""DICOM PS3.15 Annex E, Table E.1-1 (Basic Application Level Confidentiality Profile), machine-readable.

Source and edition
------------------
The Basic Profile column is read from the ``dicom-anonymizer`` package (BSD-3-Clause, Kitware Europe),
module ``dicomanonymizer.dicom_anonymization_databases.dicomfields_2026c``: its action lists for the
**DICOM 2026c** edition of PS3.15 Table E.1-1 (:data:`EDITION`). Nothing is copied into this project: the table
is imported from the installed package, and ``tests/test_deid_annex_e.py`` checks that every action code is
one of the standard's and that the table has the edition's :data:`EDITION_ROWS` rows.

The package ships no options columns, so the four options the de-identifier implements are encoded here, in
:data:`OPTION_ACTIONS`, from the same edition's Table E.1-1 columns (the attributes each option retains or
cleans; an option's action wins over the Basic Profile action):

* Retain Longitudinal Temporal Information with Modified Dates (DCM 113107): dates shifted (``C``).
* Retain Patient Characteristics (DCM 113108): sex, age (capped at 90 years), size, weight... kept (``K``).
* Clean Descriptors (DCM 113105): free-text descriptions cleaned of identifiers (``C``).
* Clean Pixel Data (DCM 113101): handled on the pixels (burned-in text), not by this table.

Examples
--------
>>> basic_action(0x00100010)
'Z'
>>> basic_action(0x60003000)  # Overlay Data, repeating group 60xx
'X'
>>> action(0x00101010, OPTIONS)  # Patient's Age under Retain Patient Characteristics
'K'
"""

from __future__ import annotations

from functools import lru_cache

#: The edition of PS3.15 the table is pinned to.
EDITION = "2026c"
#: Rows of Table E.1-1 in that edition as the package encodes them (plain tags plus repeating-group rows).
EDITION_ROWS = 655
#: The action codes PS3.15 Table E.1-1 uses (``C`` only in option columns).
ACTION_CODES = frozenset({"X", "Z", "D", "U", "K", "C", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"})

_CATEGORIES = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}

#: Codes of the De-identification Method Code Sequence (0012,0064), CID 7050 (scheme DCM).
PROFILE_CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_pixel": ("113101", "Clean Pixel Data Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "longitudinal_modified_dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
}
#: The options the de-identifier applies by default.
OPTIONS = ("clean_pixel", "clean_descriptors", "longitudinal_modified_dates", "patient_characteristics")

_DATES = {
    0x00080020: "Study Date",
    0x00080021: "Series Date",
    0x00080022: "Acquisition Date",
    0x00080023: "Content Date",
    0x00080012: "Instance Creation Date",
    0x0008002A: "Acquisition DateTime",
    0x00080030: "Study Time",
    0x00080031: "Series Time",
    0x00080032: "Acquisition Time",
    0x00080033: "Content Time",
    0x00080013: "Instance Creation Time",
    0x00400244: "Performed Procedure Step Start Date",
    0x00400245: "Performed Procedure Step Start Time",
    0x00400250: "Performed Procedure Step End Date",
    0x00400251: "Performed Procedure Step End Time",
    0x00181012: "Date of Secondary Capture",
    0x00181014: "Time of Secondary Capture",
    0x00100030: "Patient's Birth Date",
}
_CHARACTERISTICS = {
    0x00101010: "Patient's Age",
    0x00100040: "Patient's Sex",
    0x00101020: "Patient's Size",
    0x00101030: "Patient's Weight",
    0x00102160: "Ethnic Group",
    0x001021A0: "Smoking Status",
    0x001021C0: "Pregnancy Status",
    0x00102203: "Patient's Sex Neutered",
    0x00102000: "Medical Alerts",
    0x00102110: "Allergies",
    0x00380500: "Patient State",
    0x00101022: "Patient's Body Mass Index",
}
_DESCRIPTORS = {
    0x00081030: "Study Description",
    0x0008103E: "Series Description",
    0x00181030: "Protocol Name",
    0x00081080: "Admitting Diagnoses Description",
    0x00321060: "Requested Procedure Description",
    0x00400254: "Performed Procedure Step Description",
    0x00400007: "Scheduled Procedure Step Description",
    0x00081040: "Institutional Department Name",
    0x00102180: "Occupation",
    0x00204000: "Image Comments",
    0x00324000: "Study Comments",
    0x00081032: "Procedure Code Sequence",
    0x00180015: "Body Part Examined",
    0x00181400: "Acquisition Device Processing Description",
}
#: Option -> {tag: action}: the option columns of Table E.1-1 (PS3.15 2026c) for the options implemented.
#: Patient's Birth Date stays ``X/Z`` (removed): only ages are kept, capped at 90 years.
OPTION_ACTIONS: dict[str, dict[int, str]] = {
    "longitudinal_modified_dates": {t: "C" for t in _DATES if t != 0x00100030},
    "patient_characteristics": {t: "K" for t in _CHARACTERISTICS},
    "clean_descriptors": {t: "C" for t in _DESCRIPTORS},
}


@lru_cache(maxsize=1)
def _table() -> tuple[dict[int, str], tuple[tuple[int, int, int, int, str], ...]]:
    from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as edition

    plain: dict[int, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
    for name, code in _CATEGORIES.items():
        for entry in getattr(edition, name):
            if len(entry) == 2:
                plain[(entry[0] << 16) | entry[1]] = code
            else:  # (group, element, group mask, element mask): repeating groups such as 50xx, 60xx
                masked.append((entry[0], entry[1], entry[2], entry[3], code))
    return plain, tuple(masked)


def basic_profile() -> dict[int, str]:
    """Plain tags (as ``0xGGGGEEEE`` ints) -> Basic Profile action code."""
    return dict(_table()[0])


def repeating_rows() -> list[tuple[int, int, int, int, str]]:
    """Rows with repeating groups: ``(group, element, group mask, element mask, action)``."""
    return list(_table()[1])


def basic_action(tag: int) -> str | None:
    """The Basic Profile action of ``tag`` (``None`` when Table E.1-1 does not list it)."""
    plain, masked = _table()
    code = plain.get(int(tag))
    if code is not None:
        return code
    group, element = int(tag) >> 16, int(tag) & 0xFFFF
    for g, e, gm, em, code in masked:
        if group & gm == g & gm and element & em == e & em:
            return code
    return None


@lru_cache(maxsize=65536)
def action(tag: int, options: tuple[str, ...] = OPTIONS) -> str | None:
    """The action for ``tag`` under the Basic Profile and ``options`` (the first option naming it wins; cached
    per tag and options, as every file asks for the same few hundred tags)."""
    for option in options:
        code = OPTION_ACTIONS.get(option, {}).get(int(tag))
        if code is not None:
            return code
    return basic_action(tag)
