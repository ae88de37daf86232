"""The KICC-19 data dictionary and the validation of clinical tables against it.

The dictionary lives in ``data_dictionary/kicc19_dictionary.csv`` in the REDCap
data-dictionary column layout (variable name, form, section, field type,
label, choices, note, validation type, min, max, identifier, branching logic,
required), extended with the unit (UCUM), its printed label, the LOINC code of
laboratory values, alternative units with their conversion to the canonical
unit, the matching ISARIC ARC variable and a standard (SNOMED) code.

:func:`validate_clinical` checks a clinical export cell by cell and returns a
tidy report (one row per problem) -- it never changes the table. Files are read by
:mod:`kicc_analysis.clinical_io` (encodings, delimiters, XLSX cells); columns that look
like direct identifiers are recognised by :mod:`kicc_analysis.privacy`. The checks run
once per distinct value of a column and are mapped back to every row holding it.
:func:`coerce_to_dictionary` then builds the typed table used by the cohort;
every value it cannot convert is one of the problems the report lists, so
nothing is dropped or coerced silently.

Example
-------
>>> from kicc_analysis.dictionary import load_dictionary, validate_clinical
>>> dictionary = load_dictionary()
>>> report = validate_clinical(clinical_table, dictionary)      # doctest: +SKIP
>>> report.groupby("problem").size()                              # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from kicc_analysis.clinical_io import read_clinical_table
from kicc_analysis.errors import DictionaryError, ValidationError
from kicc_analysis.privacy import classify_column, scan_text

#: REDCap data-dictionary columns (in order) followed by the KICC extensions.
REDCAP_COLUMNS = (
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
)
EXTENSION_COLUMNS = (
    "Unit (UCUM)",
    "Unit Label",
    "LOINC Code",
    "Alternative Units",
    "ISARIC Variable",
    "Standard Code",
    "Aliases",
)

#: Forms whose variables are one row per patient in ``clinical.csv``; ``imaging`` is a repeating instrument.
PATIENT_FORMS = ("presentation", "laboratory", "severity", "outcome")
IMAGING_FORM = "imaging"

REPORT_COLUMNS = ["row", "subjid", "variable", "problem", "value", "detail", "severity"]

#: Every problem class the validator reports, with its meaning (rendered in the docs).
PROBLEM_CLASSES: dict[str, str] = {
    "missing_column": "a required variable is absent from the table",
    "unknown_column": "a column is not in the dictionary",
    "identifier_column": "a column not in the dictionary looks like a direct identifier (name, national ID, phone, "
    "e-mail, date of birth, record number); it is dropped from every derived file",
    "header_typo": "a column name is a near-miss of a dictionary variable (typo, case, spacing)",
    "duplicate_column": "two columns map to the same dictionary variable",
    "duplicate_id": "the pseudonymous patient id occurs on more than one row",
    "missing_required": "a required variable is empty on this row",
    "blank_value": "a cell holds only white space (treated as missing)",
    "not_numeric": "free text where a number is expected",
    "unit_in_value": "a unit or letters typed into a numeric cell (e.g. '10L')",
    "embedded_value": "a value wrapped in text, e.g. '[137/91] - 2020-06-02'",
    "censored_value": "a detection-limit value such as '<0.5' or '>1000'",
    "not_integer": "a fractional value where an integer is expected",
    "out_of_range": "a value outside the dictionary's min/max",
    "invalid_code": "a value that is not one of the allowed codes",
    "label_instead_of_code": "an answer label (e.g. 'Yes', 'Male') given instead of its code",
    "invalid_date": "a value that is not a date",
    "date_format": "a date in a format other than the dictionary's",
    "excel_serial_date": "a spreadsheet serial day number where a date is expected (read as that date)",
    "mixed_date_formats": "one column holds dates in several formats",
    "unit_mismatch": "a site's values sit at a constant factor from the others: a different unit",
    "branching_inconsistent": "a value given where its branching logic says the field does not apply",
}


@dataclass(frozen=True)
class AlternativeUnit:
    """A unit sites may have used instead of the canonical one.

    ``canonical = (value + offset) * factor``.
    """

    unit: str
    factor: float
    offset: float = 0.0

    def to_canonical(self, values: np.ndarray | float) -> np.ndarray | float:
        return (np.asarray(values, dtype=float) + self.offset) * self.factor


@dataclass(frozen=True)
class Variable:
    """One dictionary variable."""

    name: str
    form: str
    field_type: str
    label: str
    choices: dict[str, str] = field(default_factory=dict)
    validation: str = ""
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False
    identifier: bool = False
    branching: str = ""
    unit: str = ""
    unit_label: str = ""
    loinc: str = ""
    alternative_units: tuple[AlternativeUnit, ...] = ()
    isaric: str = ""
    standard_code: str = ""
    section: str = ""
    note: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """``"integer"``, ``"number"``, ``"date"``, ``"coded"`` or ``"text"``."""
        if self.field_type in {"radio", "dropdown", "yesno", "truefalse"}:
            return "coded"
        if self.validation == "integer":
            return "integer"
        if self.validation == "number":
            return "number"
        if self.validation.startswith("date"):
            return "date"
        return "text"

    @property
    def numeric_codes(self) -> bool:
        return bool(self.choices) and all(re.fullmatch(r"-?\d+", code) for code in self.choices)


@dataclass(frozen=True)
class DataDictionary:
    """The parsed data dictionary: the raw table and one :class:`Variable` per row."""

    table: pd.DataFrame
    variables: dict[str, Variable]
    path: Path | None = None

    def __getitem__(self, name: str) -> Variable:
        try:
            return self.variables[name]
        except KeyError:
            raise DictionaryError(f"variable {name!r} is not in the data dictionary ({self.path})") from None

    def __contains__(self, name: object) -> bool:
        return name in self.variables

    def names(self, forms: Iterable[str] | None = None) -> list[str]:
        """Variable names, in dictionary order, optionally restricted to ``forms``."""
        wanted = set(forms) if forms is not None else None
        return [v.name for v in self.variables.values() if wanted is None or v.form in wanted]

    def required(self, forms: Iterable[str] | None = None) -> list[str]:
        return [name for name in self.names(forms) if self.variables[name].required]


DEFAULT_DICTIONARY_PATH = Path(__file__).resolve().parents[1] / "data_dictionary" / "kicc19_dictionary.csv"


def _parse_choices(text: str) -> dict[str, str]:
    choices: dict[str, str] = {}
    for part in str(text).split("|"):
        part = part.strip()
        if not part:
            continue
        code, _, label = part.partition(",")
        choices[code.strip()] = label.strip()
    return choices


def _parse_alternatives(text: str, variable: str) -> tuple[AlternativeUnit, ...]:
    units = []
    for part in str(text).split(";"):
        part = part.strip()
        if not part:
            continue
        pieces = part.split("|")
        if len(pieces) != 3:
            raise DictionaryError(f"variable {variable!r}: alternative unit {part!r} must be 'unit|factor|offset'")
        units.append(AlternativeUnit(pieces[0], float(pieces[1]), float(pieces[2])))
    return tuple(units)


def _optional_float(text: str) -> float | None:
    text = str(text).strip()
    return float(text) if text else None


def parse_dictionary(table: pd.DataFrame, path: Path | None = None) -> DataDictionary:
    """Parse a dictionary table in the REDCap layout (plus optional KICC extension columns)."""
    missing = [c for c in REDCAP_COLUMNS if c not in table.columns]
    if missing:
        raise DictionaryError(f"data dictionary {path or ''} lacks REDCap columns {missing}")
    table = table.fillna("").astype(str)
    variables: dict[str, Variable] = {}
    for _, row in table.iterrows():
        name = row["Variable / Field Name"].strip()
        if not name:
            continue
        if name in variables:
            raise DictionaryError(f"data dictionary {path or ''}: variable {name!r} is defined twice")
        variables[name] = Variable(
            name=name,
            form=row["Form Name"].strip(),
            field_type=row["Field Type"].strip(),
            label=row["Field Label"].strip(),
            choices=_parse_choices(row["Choices, Calculations, OR Slider Labels"]),
            validation=row["Text Validation Type OR Show Slider Number"].strip(),
            minimum=_optional_float(row["Text Validation Min"]),
            maximum=_optional_float(row["Text Validation Max"]),
            required=row["Required Field?"].strip().lower() == "y",
            identifier=row["Identifier?"].strip().lower() == "y",
            branching=row["Branching Logic (Show field only if...)"].strip(),
            unit=row.get("Unit (UCUM)", "").strip(),
            unit_label=row.get("Unit Label", "").strip(),
            loinc=row.get("LOINC Code", "").strip(),
            alternative_units=_parse_alternatives(row.get("Alternative Units", ""), name),
            isaric=row.get("ISARIC Variable", "").strip(),
            standard_code=row.get("Standard Code", "").strip(),
            section=row["Section Header"].strip(),
            note=row["Field Note"].strip(),
            aliases=tuple(a.strip() for a in row.get("Aliases", "").split("|") if a.strip()),
        )
    return DataDictionary(table=table, variables=variables, path=path)


@cache
def _load_default() -> DataDictionary:
    return parse_dictionary(pd.read_csv(DEFAULT_DICTIONARY_PATH, dtype=str), DEFAULT_DICTIONARY_PATH)


def load_dictionary(path: str | Path | None = None) -> DataDictionary:
    """Load the data dictionary (the KICC-19 one by default, or any REDCap-layout CSV)."""
    if path is None:
        return _load_default()
    path = Path(path)
    if not path.is_file():
        raise DictionaryError(f"data dictionary not found: {path}")
    return parse_dictionary(read_clinical_table(path), path)  # a dictionary edited in Korean Excel reads too


# --------------------------------------------------------------------------- value parsing

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_UNIT_IN_VALUE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*([A-Za-zµ%/^*\d.]+)\s*$")
_EMBEDDED = re.compile(r"^\[([^\]]*)\]\s*-\s*(.+)$")
_CENSORED = re.compile(r"^\s*([<>]=?|≤|≥)\s*(\d+(\.\d+)?)\s*$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_SLASH_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})$")
_DATE_ANYWHERE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}")
_SERIAL = re.compile(r"^\d{5}(\.\d+)?$")
_EXPECTED_DATE_FORMAT = {"date_ymd": "YYYY-MM-DD", "date_dmy": "DD/MM/YYYY", "date_mdy": "MM/DD/YYYY"}
#: Spreadsheet serial day numbers accepted as dates (1954-10-03 .. 2119-01-08) and their origin (1900 system).
EXCEL_SERIAL_RANGE = (20000, 80000)
EXCEL_EPOCH = "1899-12-30"

_STRPTIME = {"YYYY-MM-DD": "%Y-%m-%d", "DD/MM/YYYY": "%d/%m/%Y", "MM/DD/YYYY": "%m/%d/%Y"}
_BLANKS = frozenset({"", "nan", "none", "null", "na", "n/a"})


def _is_blank(value: str) -> bool:
    return value == "" or value.lower() in _BLANKS


def _as_text(values: pd.Series) -> pd.Series:
    """The column as ``str`` cells (``""`` where missing); cheap when it already is (as read by clinical_io)."""
    if values.dtype == object and not values.isna().any():
        return values if len(values) == 0 or isinstance(values.iat[0], str) else values.astype(str)
    return values.astype(object).where(values.notna(), "").astype(str)


def _missing(value: object) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _blank_mask(stripped: pd.Series) -> pd.Series:
    short = stripped.str.len().le(4)
    return stripped.eq("") | (short & stripped.str.lower().isin(_BLANKS))


def _parse_numbers(stripped: pd.Series) -> pd.Series:
    """Clean numbers as float (NaN where the cell is not a bare decimal number such as ``12``, ``-0.5``, ``1e3``)."""
    numbers = pd.to_numeric(stripped, errors="coerce")
    if numbers.dtype == object:  # pragma: no cover - to_numeric always gives a numeric dtype with coerce
        numbers = numbers.astype(float)
    numbers = numbers.astype(float)
    numbers[np.isinf(numbers)] = np.nan
    # to_numeric also takes "nan"/"inf" spellings and surrounding blanks; those are not clean numbers
    return numbers


def date_formats(value: str) -> set[str]:
    """Return every date format ``value`` is compatible with (empty when it is not a date).

    ``05/05/2020`` fits both ``DD/MM/YYYY`` and ``MM/DD/YYYY``; ``31/03/2020`` only the first;
    two-digit years give ``DD/MM/YY``/``MM/DD/YY``.
    """
    value = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return {"YYYY-MM-DD"}
    if re.fullmatch(r"\d{2}\.\d{2}\.\d{4}", value):
        return {"DD.MM.YYYY"}
    if re.fullmatch(r"(19|20)\d{6}", value):
        return {"YYYYMMDD"}
    m = _SLASH_DATE.match(value)
    if m is None:
        return set()
    first, second, year = int(m.group(1)), int(m.group(2)), m.group(3)
    suffix = "YYYY" if len(year) == 4 else "YY"
    formats = set()
    if 1 <= first <= 31 and 1 <= second <= 12:
        formats.add(f"DD/MM/{suffix}")
    if 1 <= first <= 12 and 1 <= second <= 31:
        formats.add(f"MM/DD/{suffix}")
    return formats


def _redacted(fmt: str | None) -> str:
    return f"<date redacted; format {fmt}>" if fmt else "<date redacted>"


def _shape(value: str) -> str:
    """The value with every digit shown as 9 and every letter as a/A: why it failed, not what it was."""
    shape = re.sub(r"\d", "9", value)
    shape = re.sub(r"[A-Za-z]", lambda m: "A" if m.group(0).isupper() else "a", shape)
    return re.sub(r"[^\x00-\x7f]", "?", shape)[:40]


def _is_serial(text: str) -> bool:
    return bool(_SERIAL.match(text)) and EXCEL_SERIAL_RANGE[0] <= float(text) <= EXCEL_SERIAL_RANGE[1]


def _safe(value):
    """A report cell with any direct identifier (see :mod:`kicc_analysis.privacy`) replaced by its kind."""
    if not isinstance(value, str) or not value:
        return value
    findings = scan_text(value)
    if not findings:
        return value
    return "<redacted: " + ", ".join(sorted({f.kind for f in findings})) + ">"


@dataclass
class _Issues:
    rows: list[dict] = field(default_factory=list)

    def add(self, row, subjid, variable, problem, value, detail, severity="error") -> None:
        value = _DATE_ANYWHERE.sub("<date>", value) if isinstance(value, str) and "redacted" not in value else value
        self.rows.append(
            {
                "row": row,
                "subjid": _safe(subjid),
                "variable": variable,
                "problem": problem,
                "value": _safe(value),
                "detail": detail,
                "severity": severity,
            }
        )


def _normalise_header(name: str) -> str:
    return re.sub(r"[^a-z0-9\uac00-\ud7a3]", "", unicodedata.normalize("NFC", str(name)).lower())


def match_columns(
    columns: Sequence[str], dictionary: DataDictionary, forms: Iterable[str] | None = None
) -> dict[str, str | None]:
    """Map each table column to a dictionary variable, or None.

    A column matches its variable by name (exactly or after dropping case, spaces and punctuation), by one
    of the variable's label aliases (``Aliases`` column of the dictionary: Korean labels such as ``나이``,
    ``성별``, ``체온``, or common abbreviations such as ``CRP``), or as a near-miss of the name (a typo).
    """
    names = dictionary.names(forms)
    normalised = {_normalise_header(n): n for n in names}
    aliases: dict[str, str] = {}
    for name in names:
        for alias in dictionary.variables[name].aliases:
            aliases.setdefault(_normalise_header(alias), name)
    mapping: dict[str, str | None] = {}
    for column in columns:
        if column in names:
            mapping[column] = column
            continue
        key = _normalise_header(column)
        if key in normalised:
            mapping[column] = normalised[key]
            continue
        if key in aliases:
            mapping[column] = aliases[key]
            continue
        close = difflib.get_close_matches(key, list(normalised), n=1, cutoff=0.82) if key.isascii() else []
        mapping[column] = normalised[close[0]] if close else None
    return mapping


def is_alias(column: str, variable: str, dictionary: DataDictionary) -> bool:
    """True when ``column`` names ``variable`` through one of its aliases."""
    key = _normalise_header(column)
    return variable in dictionary and any(_normalise_header(a) == key for a in dictionary[variable].aliases)


def _check_columns(
    table: pd.DataFrame, dictionary: DataDictionary, forms, issues: _Issues
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Report column problems; return {variable: first column} and every (column, variable) pair to check."""
    mapping = match_columns(list(table.columns), dictionary, forms)
    used: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    for column, variable in mapping.items():
        if variable is None:
            finding = classify_column(str(column), _as_text(table[column]).tolist())
            if finding is not None:
                issues.add(
                    pd.NA,
                    pd.NA,
                    column,
                    "identifier_column",
                    "",
                    f"looks like a direct identifier ({finding.kind}; {finding.reason}); dropped from every derived file",
                )
            else:
                issues.add(
                    pd.NA,
                    pd.NA,
                    column,
                    "unknown_column",
                    "",
                    "column is not in the data dictionary; ignored",
                    "warning",
                )
            continue
        if column != variable and not is_alias(column, variable, dictionary):
            issues.add(
                pd.NA,
                pd.NA,
                column,
                "header_typo",
                "",
                f"column {column!r} looks like dictionary variable {variable!r}",
            )
        pairs.append((column, variable))
        if variable in used:
            issues.add(
                pd.NA,
                pd.NA,
                column,
                "duplicate_column",
                "",
                f"columns {used[variable]!r} and {column!r} both map to {variable!r}; values must be merged by hand",
            )
            continue
        used[variable] = column
    for variable in dictionary.required(forms):
        if variable not in used:
            issues.add(pd.NA, pd.NA, variable, "missing_column", "", "required variable is absent from the table")
    return used, pairs


@dataclass
class _Cells:
    """One column's cells, worked on per distinct value (a 200,000-row column has a few thousand at most)."""

    index: pd.Index  # row labels
    codes: np.ndarray  # per row: position of its value in ``raw``
    raw: np.ndarray  # distinct cell texts ("" for a missing cell)
    stripped: np.ndarray  # the same, white space stripped
    blank: np.ndarray  # empty, white space only or a missing-value word ("NA", "null", ...)

    @classmethod
    def of(cls, series: pd.Series) -> _Cells:
        codes, uniques = pd.factorize(series.to_numpy(dtype=object), sort=False, use_na_sentinel=False)
        raw = np.array(["" if _missing(u) else str(u) for u in uniques], dtype=object)
        stripped = pd.Series(raw, dtype=object).str.strip()
        return cls(series.index, codes, raw, stripped.to_numpy(dtype=object), _blank_mask(stripped).to_numpy(bool))

    def rows(self, mask: np.ndarray) -> pd.Index:
        """Row labels whose value is flagged in ``mask`` (one flag per distinct value)."""
        if not mask.any():
            return self.index[:0]
        return self.index[mask[self.codes]]

    def expand(self, per_value: np.ndarray) -> np.ndarray:
        return per_value[self.codes]

    def numbers(self) -> np.ndarray:
        """Each distinct value as a clean number (NaN when blank or not a bare decimal number)."""
        if not hasattr(self, "_numbers"):
            self._numbers = _parse_numbers(pd.Series(self.stripped).where(~self.blank)).to_numpy(float)
        return self._numbers

    def text(self, idx) -> tuple[str, str]:
        """(raw, stripped) text of one row."""
        code = self.codes[self.index.get_loc(idx)]
        return self.raw[code], self.stripped[code]


def _check_numeric(var: Variable, cells: _Cells, subjids: pd.Series, issues: _Issues) -> np.ndarray:
    """Check a numeric column; return the parsed number of each distinct value (NaN where not a clean number)."""
    parsed = cells.numbers()
    for idx in cells.rows(~cells.blank & np.isnan(parsed)):
        raw, text = cells.text(idx)
        subjid = subjids[idx]
        if (m := _CENSORED.match(text)) is not None:
            issues.add(
                idx,
                subjid,
                var.name,
                "censored_value",
                raw,
                f"detection-limit value; limit {m.group(2)} {var.unit_label}".strip(),
            )
        elif (m := _EMBEDDED.match(text)) is not None:
            issues.add(
                idx, subjid, var.name, "embedded_value", raw, f"value [{m.group(1)}] wrapped in text; extract by hand"
            )
        elif (m := _UNIT_IN_VALUE.match(text)) is not None and re.search(r"[A-Za-zµ%]", m.group(2)):
            issues.add(
                idx,
                subjid,
                var.name,
                "unit_in_value",
                raw,
                f"number {m.group(1)} followed by {m.group(2)!r}; expected a bare number in {var.unit_label or 'the dictionary unit'}",
            )
        elif _DECIMAL_COMMA.match(text):
            issues.add(
                idx,
                subjid,
                var.name,
                "not_numeric",
                raw,
                "decimal comma; expected a number with a decimal point"
                + (f" in {var.unit_label}" if var.unit_label else ""),
            )
        else:
            issues.add(
                idx,
                subjid,
                var.name,
                "not_numeric",
                raw,
                f"expected a number{(' in ' + var.unit_label) if var.unit_label else ''}",
            )
    present = ~np.isnan(parsed)
    with np.errstate(invalid="ignore"):
        if var.kind == "integer":
            for idx in cells.rows(present & (parsed != np.round(parsed))):
                issues.add(
                    idx, subjids[idx], var.name, "not_integer", cells.text(idx)[0], "expected a whole number", "warning"
                )
        low, high = var.minimum, var.maximum
        outside = np.zeros(len(parsed), bool)
        if low is not None:
            outside |= present & (parsed < low)
        if high is not None:
            outside |= present & (parsed > high)
    for idx in cells.rows(outside):
        raw = cells.text(idx)[0]
        number = float(parsed[cells.codes[cells.index.get_loc(idx)]])
        detail = f"outside {low}–{high} {var.unit_label}".strip()
        for alt in var.alternative_units:
            converted = float(alt.to_canonical(number))
            if (low is None or converted >= low) and (high is None or converted <= high):
                detail += f"; plausible if given in {alt.unit} (= {converted:.4g} {var.unit_label})"
                break
        issues.add(idx, subjids[idx], var.name, "out_of_range", raw, detail)
    return parsed


def _check_coded(var: Variable, cells: _Cells, subjids: pd.Series, issues: _Issues) -> None:
    labels = {label.lower(): code for code, label in var.choices.items()}
    ok = cells.blank | np.isin(cells.stripped, list(var.choices))
    if var.numeric_codes:
        ok |= np.isin(cells.numbers(), [float(c) for c in var.choices])
    allowed = ", ".join(f"{c}={lbl}" for c, lbl in var.choices.items())
    for idx in cells.rows(~ok):
        raw, text = cells.text(idx)
        if text.lower() in labels:
            issues.add(
                idx,
                subjids[idx],
                var.name,
                "label_instead_of_code",
                raw,
                f"label given; use code {labels[text.lower()]}",
            )
        else:
            issues.add(idx, subjids[idx], var.name, "invalid_code", raw, f"allowed codes: {allowed}")


def _check_dates(var: Variable, cells: _Cells, subjids: pd.Series, issues: _Issues) -> None:
    expected = _EXPECTED_DATE_FORMAT.get(var.validation, "YYYY-MM-DD")
    counts = np.bincount(cells.codes, minlength=len(cells.raw))
    bad = np.zeros(len(cells.raw), bool)
    compatible: dict[frozenset[str], int] = {}
    for code, text in enumerate(cells.stripped):
        if cells.blank[code] or counts[code] == 0:
            continue
        formats = date_formats(text)
        if formats:
            compatible[frozenset(formats)] = compatible.get(frozenset(formats), 0) + int(counts[code])
        valid = expected in formats and pd.to_datetime(text, format=_STRPTIME[expected], errors="coerce") is not pd.NaT
        bad[code] = not valid
    for idx in cells.rows(bad):
        text = cells.text(idx)[1]
        subjid = subjids[idx]
        if (m := _EMBEDDED.match(text)) is not None and date_formats(m.group(2)):
            issues.add(
                idx, subjid, var.name, "embedded_value", f"[{m.group(1)}] - <date redacted>", "date wrapped in text"
            )
            continue
        formats = date_formats(text)
        if not formats:
            if _is_serial(text):
                issues.add(
                    idx,
                    subjid,
                    var.name,
                    "excel_serial_date",
                    "<date redacted; spreadsheet serial>",
                    f"spreadsheet day number read as a date (1900 date system); better send {expected}",
                    "warning",
                )
            else:
                issues.add(
                    idx,
                    subjid,
                    var.name,
                    "invalid_date",
                    f"<redacted; shape {_shape(text)}>",
                    f"not a date; expected {expected}",
                )
            continue
        shown = _redacted("/".join(sorted(formats)))
        if expected not in formats:
            issues.add(idx, subjid, var.name, "date_format", shown, f"expected {expected}")
        else:
            issues.add(idx, subjid, var.name, "invalid_date", shown, "not a calendar date")
    if compatible and not frozenset.intersection(*compatible):
        seen = {"/".join(sorted(formats)): n for formats, n in compatible.items()}
        detail = ", ".join(f"{fmt} ({n})" for fmt, n in sorted(seen.items()))
        issues.add(
            pd.NA, pd.NA, var.name, "mixed_date_formats", "", f"no single format fits every value; seen: {detail}"
        )


def _check_site_units(
    var: Variable, numbers: np.ndarray, sites: _Cells | None, issues: _Issues, min_values: int = 5
) -> None:
    """Flag a site whose median differs from the other sites' by one of the alternative-unit factors.

    ``numbers`` holds one value per row; ``sites`` the site column.
    """
    if sites is None or not var.alternative_units:
        return
    with np.errstate(invalid="ignore"):
        positive = numbers > 0
    if not positive.any():
        return
    site_of_row = sites.codes[positive]
    values = numbers[positive]
    per_site = np.bincount(site_of_row, minlength=len(sites.raw))
    for code in np.flatnonzero(per_site >= min_values):
        mine = site_of_row == code
        if len(values) - per_site[code] < min_values:
            continue
        site = sites.stripped[code]
        median = float(np.median(values[mine]))
        others = float(np.median(values[~mine]))
        ratio = others / median
        for alt in var.alternative_units:
            if alt.offset != 0 or alt.factor == 1:
                continue
            if abs(np.log(ratio) - np.log(alt.factor)) < np.log(1.6):
                issues.add(
                    pd.NA,
                    pd.NA,
                    var.name,
                    "unit_mismatch",
                    f"site {site}",
                    f"site {site}: median {median:.4g} vs {others:.4g} elsewhere (×{ratio:.3g}); "
                    f"looks like {alt.unit} instead of {var.unit_label} (×{alt.factor:g})",
                )
                break


def _check_branching(
    var: Variable, cells: _Cells, table: pd.DataFrame, columns: dict[str, str], subjids, issues
) -> None:
    m = re.fullmatch(r"\[(\w+)\]\s*=\s*'([^']*)'", var.branching)
    if m is None or m.group(1) not in columns:
        return
    parent = _Cells.of(table[columns[m.group(1)]])
    parent_other = parent.expand((parent.stripped != m.group(2)) & ~parent.blank)
    inconsistent = cells.expand(~cells.blank) & parent_other
    for idx in cells.index[inconsistent]:
        issues.add(
            idx,
            subjids[idx],
            var.name,
            "branching_inconsistent",
            cells.text(idx)[0],
            f"given although {m.group(1)} is not {m.group(2)}",
            "warning",
        )


def validate_clinical(
    table: pd.DataFrame | str | Path,
    dictionary: DataDictionary | None = None,
    *,
    forms: Iterable[str] | None = PATIENT_FORMS,
    id_column: str = "subjid",
    site_column: str | None = "kicc_site",
) -> pd.DataFrame:
    """Check a clinical table against the data dictionary.

    Parameters
    ----------
    table : DataFrame or path
        The clinical export. A path is read by :func:`kicc_analysis.clinical_io.read_clinical_table`
        (encoding, delimiter and decimal mark detected; every cell as text, so free text in numeric
        fields is seen, not lost); how it was read is in ``report.attrs["read"]``.
    dictionary : DataDictionary, optional
        Defaults to the KICC-19 dictionary.
    forms : iterable of str, optional
        Which forms' variables the table should hold (default: the per-patient forms;
        ``None`` for every form).
    id_column, site_column : str
        Columns holding the pseudonym and the site code (used to report and to detect
        per-site unit differences).

    Returns
    -------
    DataFrame
        One row per problem with columns ``row`` (0-based data row, NA for column-level
        problems), ``subjid``, ``variable``, ``problem`` (see :data:`PROBLEM_CLASSES`),
        ``value`` (as submitted; dates and anything that looks like a direct identifier are
        redacted), ``detail`` and ``severity`` (``error``/``warning``/``info``). An empty report
        means the table conforms. Columns that look like direct identifiers (names, national IDs,
        phones, birth dates; :mod:`kicc_analysis.privacy`) are reported as ``identifier_column``.
    """
    if not isinstance(table, pd.DataFrame):
        table = read_clinical_table(table)
    elif len(table) == 0:
        raise ValidationError(
            f"clinical table has no data rows ({table.shape[1]} columns; expected one row per patient)"
        )
    dictionary = dictionary or load_dictionary()
    issues = _Issues()
    columns, pairs = _check_columns(table, dictionary, forms, issues)
    id_source = columns.get(id_column)
    subjids = _as_text(table[id_source]).str.strip() if id_source else pd.Series(pd.NA, index=table.index)
    if id_source:
        duplicated = subjids[subjids.duplicated(keep=False) & (subjids != "")]
        times = duplicated.map(duplicated.value_counts())
        for idx, value in duplicated.items():
            issues.add(idx, value, id_column, "duplicate_id", value, f"pseudonym occurs {int(times[idx])} times")
    sites = _Cells.of(table[columns[site_column]]) if site_column and site_column in columns else None
    for column, variable in pairs:
        # problems are reported under the column name as submitted, so the cell can be found
        var = replace(dictionary[variable], name=column)
        cells = _Cells.of(table[column])
        whitespace = np.array([len(r) > 0 for r in cells.raw], bool) & (cells.stripped == "")
        for idx in cells.rows(whitespace):
            issues.add(
                idx,
                subjids[idx],
                variable,
                "blank_value",
                cells.text(idx)[0],
                "white space only; treated as missing",
                "info",
            )
        if var.required and columns[variable] == column:
            for idx in cells.rows(cells.blank):
                issues.add(idx, subjids[idx], variable, "missing_required", "", "required value is empty")
        if var.kind in {"integer", "number"}:
            numbers = _check_numeric(var, cells, subjids, issues)
            _check_site_units(var, cells.expand(numbers), sites, issues)
        elif var.kind == "coded":
            _check_coded(var, cells, subjids, issues)
        elif var.kind == "date":
            _check_dates(var, cells, subjids, issues)
        if var.branching:
            _check_branching(var, cells, table, columns, subjids, issues)
    report = pd.DataFrame(issues.rows, columns=REPORT_COLUMNS)
    report["row"] = report["row"].astype("Int64")
    report = report.sort_values(["row", "variable"], na_position="first", kind="stable").reset_index(drop=True)
    if "read" in table.attrs:
        report.attrs["read"] = table.attrs["read"]
    return report


def summarise_report(report: pd.DataFrame) -> pd.DataFrame:
    """Count problems by class and severity (for printing and notebooks)."""
    if report.empty:
        return pd.DataFrame(columns=["problem", "severity", "count", "variables"])
    grouped = report.groupby(["problem", "severity"], sort=True)
    return grouped.agg(
        count=("variable", "size"), variables=("variable", lambda v: ", ".join(sorted(set(v))))
    ).reset_index()


# --------------------------------------------------------------------------- typed table


def coerce_to_dictionary(
    table: pd.DataFrame,
    dictionary: DataDictionary | None = None,
    *,
    forms: Iterable[str] | None = PATIENT_FORMS,
    excel_serial_dates: bool = True,
) -> pd.DataFrame:
    """Return the table with dictionary names and dtypes; invalid cells become missing.

    Every cell that becomes missing here is listed by :func:`validate_clinical` on the
    same table, so call both (the cohort does). Columns are matched by name, label alias
    or near-miss (:func:`match_columns`). Unknown columns are kept unchanged (as text);
    the cohort then drops those that look like direct identifiers. Integer and coded
    variables use pandas' nullable ``Int64``; numbers ``float64``; dates ``datetime64``
    (spreadsheet serial day numbers are converted, 1900 date system, day 1 = 1900-01-01 as
    in Excel and openpyxl; ``excel_serial_dates=False`` makes them missing instead, as the
    NCCID cleaning pipeline does); text ``string``.
    """
    dictionary = dictionary or load_dictionary()
    mapping = match_columns(list(table.columns), dictionary, forms)
    typed: dict[str, pd.Series] = {}
    for column in table.columns:
        variable = mapping.get(column)
        values = _as_text(table[column]).str.strip()
        if variable is None or variable in typed:
            typed[column] = values.replace("", pd.NA).astype("string")
            continue
        var = dictionary[variable]
        blank = _blank_mask(values)
        if var.kind in {"integer", "number"}:
            numbers = _parse_numbers(values.where(~blank))
            low, high = var.minimum, var.maximum
            if low is not None:
                numbers = numbers.where(numbers >= low)
            if high is not None:
                numbers = numbers.where(numbers <= high)
            typed[variable] = numbers.round().astype("Int64") if var.kind == "integer" else numbers.astype(float)
        elif var.kind == "coded" and var.numeric_codes:
            numbers = _parse_numbers(values.where(~blank))
            numbers = numbers.where(numbers.isin([float(c) for c in var.choices]))
            typed[variable] = numbers.astype("Int64")
        elif var.kind == "coded":
            typed[variable] = pd.Categorical(values.where(values.isin(list(var.choices))), categories=list(var.choices))
        elif var.kind == "date":
            fmt = _STRPTIME[_EXPECTED_DATE_FORMAT.get(var.validation, "YYYY-MM-DD")]
            dates = pd.to_datetime(values.where(~blank), format=fmt, errors="coerce")
            serial = values.str.match(_SERIAL) & dates.isna()
            if serial.any() and excel_serial_dates:
                days = pd.to_numeric(values.where(serial), errors="coerce")
                days = days.where(days.between(*EXCEL_SERIAL_RANGE))
                dates = dates.where(~serial, pd.Timestamp(EXCEL_EPOCH) + pd.to_timedelta(days.round(), unit="D"))
            typed[variable] = dates
        else:
            typed[variable] = values.replace("", pd.NA).astype("string")
    return pd.DataFrame(typed, index=table.index)


def code_labels(variable: str, dictionary: DataDictionary | None = None) -> dict[int | str, str]:
    """Map a coded variable's codes to their labels (``{1: "Male", 2: "Female", ...}``)."""
    var = (dictionary or load_dictionary())[variable]
    return {(int(code) if var.numeric_codes else code): label for code, label in var.choices.items()}


# --------------------------------------------------------------------------- human-readable document


def render_markdown(dictionary: DataDictionary | None = None) -> str:
    """Render the dictionary as a Markdown document (committed as ``data_dictionary/kicc19_dictionary.md``)."""
    dictionary = dictionary or load_dictionary()
    lines = [
        "# KICC-19 data dictionary",
        "",
        "Generated from `kicc19_dictionary.csv` by `kicc_analysis.dictionary.render_markdown` — edit the CSV, then run",
        "`kicc dictionary --write`. Column layout: REDCap data dictionary plus unit (UCUM), LOINC code, alternative units",
        "(`unit|factor|offset`: canonical = (value + offset) × factor), the aligned ISARIC ARC variable, a standard code",
        "and the column labels accepted for each variable (Korean labels, common abbreviations).",
        "",
        "Variable names, answer options and codes follow ISARIC ARC wherever a variable exists there (column *ISARIC*).",
        "The `imaging` form is a repeating instrument (one row per imaging study, `clinical/imaging_studies.csv`).",
        "",
    ]
    current_form = None
    for var in dictionary.variables.values():
        if var.form != current_form:
            current_form = var.form
            lines += [
                f"## Form `{current_form}`",
                "",
                "| Variable | Label | Type | Values / range | Unit | LOINC | Req. | ISARIC |",
                "|---|---|---|---|---|---|---|---|",
            ]
        if var.choices:
            values = "; ".join(f"{c} = {lbl}" for c, lbl in var.choices.items())
        elif var.minimum is not None or var.maximum is not None:
            values = f"{var.validation} {'' if var.minimum is None else f'{var.minimum:g}'}–{'' if var.maximum is None else f'{var.maximum:g}'}"
        else:
            values = var.validation or "text"
        unit = var.unit_label + (f" (`{var.unit}`)" if var.unit else "")
        if var.alternative_units:
            unit += "; also " + ", ".join(a.unit for a in var.alternative_units)
        label = var.label + (f" — only if {var.branching}" if var.branching else "")
        if var.aliases:
            label += " (also: " + ", ".join(var.aliases) + ")"
        lines.append(
            f"| `{var.name}` | {label} | {var.field_type} | {values} | {unit} | {var.loinc} | {'yes' if var.required else ''} | {var.isaric} |"
        )
    lines += ["", "## Problems the validator reports", "", "| Problem | Meaning |", "|---|---|"]
    lines += [f"| `{name}` | {meaning} |" for name, meaning in PROBLEM_CLASSES.items()]
    return "\n".join(lines) + "\n"


def display_labels(variables: Iterable[str], dictionary: DataDictionary | None = None) -> dict[str, str]:
    """Printable labels with units, e.g. ``{"labs_crp_mgl": "C-reactive protein (mg/L)"}``; unknown names kept."""
    dictionary = dictionary or load_dictionary()
    labels = {}
    for name in variables:
        if name in dictionary:
            var = dictionary[name]
            labels[name] = f"{var.label} ({var.unit_label})" if var.unit_label else var.label
        else:
            labels[name] = name
    return labels


def decode(
    table: pd.DataFrame, variables: Iterable[str] | None = None, dictionary: DataDictionary | None = None
) -> pd.DataFrame:
    """Return a copy with coded variables replaced by their answer labels (as ordered categoricals)."""
    dictionary = dictionary or load_dictionary()
    decoded = table.copy()
    names = variables if variables is not None else [c for c in table.columns if c in dictionary]
    for name in names:
        var = dictionary[name]
        if var.kind != "coded" or name not in decoded:
            continue
        mapping = code_labels(name, dictionary)
        decoded[name] = pd.Categorical(
            decoded[name].map(mapping), categories=list(dict.fromkeys(mapping.values())), ordered=True
        )
    return decoded
