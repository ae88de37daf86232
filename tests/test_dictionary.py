"""The data dictionary: layout, units/LOINC, generated document, ISARIC alignment."""

from __future__ import annotations

import csv
import re

import pandas as pd
import pytest
from conftest import shared_path

from kicc_analysis.dictionary import (
    DEFAULT_DICTIONARY_PATH,
    EXTENSION_COLUMNS,
    REDCAP_COLUMNS,
    load_dictionary,
    parse_dictionary,
    render_markdown,
)
from kicc_analysis.errors import DictionaryError

REQUIRED_CONCEPTS = [
    "subjid",
    "kicc_site",
    "demog_age",
    "demog_sex",
    "demog_bmi",
    "comor_smoking",
    "comor_hypertensi",
    "comor_diabetes",
    "comor_chrpulmona",
    "comor_chrcardiac",
    "comor_chrkidney",
    "comor_malignantn",
    "comor_immunosupp",
    "pres_onset_days",
    "vital_spo2room",
    "vital_rr",
    "vital_highesttem_c",
    "labs_wbccount",
    "labs_neutrophil_109l",
    "labs_lymphocyte_109l",
    "labs_platelets_109l",
    "labs_crp_mgl",
    "labs_ldh",
    "labs_ddimer_mgl",
    "labs_ferritin",
    "labs_procalcito_ngml",
    "labs_astsgot",
    "labs_altsgpt",
    "labs_creatinine_umoll",
    "labs_tropi_ngl",
    "labs_il6",
    "sever_who_adm",
    "sever_who_worst",
    "sever_national",
    "inter_suppleo2",
    "inter_hfno",
    "inter_invent",
    "inter_ecmo",
    "crito_icu",
    "outco_outcome",
    "outco_day",
    "img_modality",
    "img_day",
    "img_timepoint",
]


def test_layout_is_redcap_plus_extensions():
    with DEFAULT_DICTIONARY_PATH.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert tuple(header[: len(REDCAP_COLUMNS)]) == REDCAP_COLUMNS
    assert tuple(header[len(REDCAP_COLUMNS) :]) == EXTENSION_COLUMNS


def test_covers_every_concept_the_study_needs():
    dictionary = load_dictionary()
    missing = [name for name in REQUIRED_CONCEPTS if name not in dictionary]
    assert missing == []


def test_laboratory_values_carry_ucum_unit_and_loinc_code():
    dictionary = load_dictionary()
    labs = [v for v in dictionary.variables.values() if v.form == "laboratory"]
    assert len(labs) == 14
    for var in labs:
        assert var.unit, var.name
        assert re.fullmatch(r"\d{1,6}-\d", var.loinc), (var.name, var.loinc)
        assert var.alternative_units, f"{var.name} should list the units sites are known to use instead"
    crp = dictionary["labs_crp_mgl"]
    assert crp.unit == "mg/L" and crp.loinc == "1988-5"
    assert crp.alternative_units[0].unit == "mg/dL" and crp.alternative_units[0].to_canonical(1.5) == pytest.approx(
        15.0
    )
    temperature = dictionary["vital_highesttem_c"]
    assert temperature.alternative_units[0].to_canonical(98.6) == pytest.approx(37.0, abs=0.01)


def test_generated_document_is_up_to_date():
    committed = DEFAULT_DICTIONARY_PATH.with_suffix(".md").read_text(encoding="utf-8")
    assert committed == render_markdown(load_dictionary()), "run `kicc dictionary --write` after editing the CSV"


def test_malformed_dictionary_is_refused():
    table = pd.read_csv(DEFAULT_DICTIONARY_PATH, dtype=str)
    with pytest.raises(DictionaryError, match="defined twice"):
        parse_dictionary(pd.concat([table, table.head(1)]))
    with pytest.raises(DictionaryError, match="lacks REDCap columns"):
        parse_dictionary(table.drop(columns=["Field Type"]))
    with pytest.raises(DictionaryError, match="not in the data dictionary"):
        load_dictionary()["no_such_variable"]


@pytest.fixture(scope="module")
def isaric() -> pd.DataFrame:
    return pd.read_csv(shared_path("reference", "clinical", "ISARIC_ARC.csv"), dtype=str, encoding="utf-8-sig").fillna(
        ""
    )


def _isaric_choices(text: str) -> dict[str, str]:
    pairs = {}
    for part in text.split("|"):
        code, _, label = part.strip().partition(",")
        if code.strip():
            pairs[code.strip()] = label.strip().lower()
    return pairs


def test_isaric_names_exist_and_answer_options_agree(isaric):
    by_name = isaric.set_index("Variable")
    dictionary = load_dictionary()
    aligned = [v for v in dictionary.variables.values() if v.isaric]
    assert len(aligned) >= 30
    for var in aligned:
        assert var.isaric in by_name.index, f"{var.name}: ISARIC variable {var.isaric} does not exist"
        assert var.name == var.isaric, f"{var.name} should carry the ISARIC name {var.isaric}"
        reference = by_name.loc[var.isaric]
        options = _isaric_choices(reference["Answer Options"])
        if var.choices and options:
            for code, label in var.choices.items():
                assert code in options, f"{var.name}: code {code} not an ISARIC code {sorted(options)}"
                assert options[code].split("/")[0] == label.lower().split("/")[0], (
                    var.name,
                    code,
                    label,
                    options[code],
                )


def test_isaric_standard_codes_agree(isaric):
    """Where ISARIC gives a SNOMED code for the variable, ours is the same."""
    by_name = isaric.set_index("Variable")
    checked = 0
    for var in load_dictionary().variables.values():
        if var.isaric and var.standard_code.startswith("SNOMED "):
            reference = by_name.loc[var.isaric, "Standardized Term Code"]
            if re.search(r"\d{6,}", reference):
                assert var.standard_code.split()[1] in reference, (var.name, var.standard_code, reference)
                checked += 1
    assert checked >= 10


def test_label_aliases_are_unambiguous_and_cover_the_korean_labels():
    from kicc_analysis.dictionary import _normalise_header, match_columns

    dictionary = load_dictionary()
    seen: dict[str, str] = {}
    names = {_normalise_header(n) for n in dictionary.names()}
    for var in dictionary.variables.values():
        for alias in var.aliases:
            key = _normalise_header(alias)
            assert key, (var.name, alias)
            assert key not in names or key == _normalise_header(var.name), (var.name, alias)
            assert seen.setdefault(key, var.name) == var.name, f"alias {alias!r} of {var.name} and {seen[key]}"
    korean = {"나이": "demog_age", "성별": "demog_sex", "체온": "vital_highesttem_c", "산소포화도": "vital_spo2room"}
    assert match_columns(list(korean), dictionary) == korean
    # an alias matches whole, not as a near-miss: unrelated Korean headers stay unknown
    assert match_columns(["비고", "담당의"], dictionary) == {"비고": None, "담당의": None}
