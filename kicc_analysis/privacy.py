"""The package's one detector of direct identifiers (data layer; every layer above reuses it).

What it looks for
-----------------
* **Resident registration numbers** (주민등록번호): ``YYMMDD-NNNNNNN`` with or without the hyphen, a
  calendar-valid date and a 7th digit 1–8 (1–4 citizens, 5–8 foreign residents).
* **Telephone numbers**: Korean mobiles (``010-1234-5678``, ``01012345678``, 011/016–019), Korean
  landlines (``02-123-4567``, ``031-123-4567``, ``070-…``) and international numbers (``+82 10 1234 5678``).
* **E-mail addresses**.
* **Person names**: a DICOM person name with a caret (``HONG^GILDONG``, ``홍^길동``) anywhere; in free text a
  Latin or Hangul name only after a name label (``Name: …``, ``이름 …``, ``성명 …``, ``환자명 …``), because bare
  2–4-syllable Hangul words that start with a common surname are everyday words (``정상`` normal, ``고혈압``
  hypertension). Columns are judged on their whole content: most values look like names (Hangul: 2–4
  syllables starting with one of :data:`KOREAN_SURNAMES`; Latin: ``Given Family`` or ``FAMILY^GIVEN``)
  and nearly all values differ.
* **Full dates of birth**: in text after a birth label (``DOB``, ``born``, ``생년월일``); in a column, by its
  name (``birth_date``, ``생년월일``) or by content (full dates spread over decades, as birth dates are,
  unlike admission dates).
* **Identifier column names**: names, national IDs, phones, e-mails, addresses, birth dates, hospital
  record numbers (MRN, 등록번호, 차트번호), in English and Korean.
* **Short fields** (file and folder names, DICOM descriptions; :func:`field_findings`): everything above, plus
  any Hangul word of 2–4 syllables starting with a common surname and any ``Given Family`` / ``Given_Family``
  Latin name, without a label -- such fields give no context to tell a name from a word, so the rule fails
  closed -- and every *known* identifying value (e.g. the scan's PatientIDs that are not pseudonyms).
  An all-capitals Latin name without a caret (``HONG_GILDONG``) is not told apart from ``CHEST_CT`` by
  pattern: it is caught only as a known value.

Pseudonyms: a KICC-19 subject pseudonym is ``KICC-Sxx-nnnn`` (site ``S01``–``S99``, a number of four or more
digits; see ``subjid`` in ``data_dictionary/kicc19_dictionary.csv`` and the demo generator). Anything else in
an ID field is masked by :func:`mask_identifier` before it is written or printed.

A :class:`Finding` never holds the identifying value itself: only what kind it was and where.

Examples
--------
>>> [f.kind for f in scan_text("call 010-1234-5678 or mail a@b.kr")]
['phone', 'email']
>>> is_pseudonym("KICC-S03-0042"), is_pseudonym("12345678")
(True, False)
>>> mask_identifier("KIM^MINSU"), mask_identifier("KICC-S03-0042")
('K*******U', 'KICC-S03-0042')
>>> mask_path("site1/홍길동_12345678/CT/IM0001.dcm")
'site1/홍**********8/CT/IM0001.dcm'
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import pandas as pd

from kicc_analysis.errors import PrivacyError

#: The pseudonym the de-identification service assigns (``subjid`` in the data dictionary).
PSEUDONYM_PATTERN = re.compile(r"KICC-S\d{2}-\d{4,}")

#: Common Korean surnames (the most frequent ~100 single-syllable ones and the two-syllable ones).
KOREAN_SURNAMES_SINGLE = frozenset(
    "김이박최정강조윤장임한오서신권황안송류유홍전고문양손배백허남심노하곽성차주우구민진나지엄채원천방공현함변염여추도소석선설마길연위표명기반왕금옥육인맹제모탁국어은편용예경봉사부가복태목형피두감음빈동온호범좌"
)
KOREAN_SURNAMES_DOUBLE = frozenset({"남궁", "황보", "제갈", "선우", "독고", "사공", "서문", "동방", "어금", "망절"})
KOREAN_SURNAMES = KOREAN_SURNAMES_SINGLE | KOREAN_SURNAMES_DOUBLE

_D = r"(?<![\d.])"  # not preceded by a digit or a dot (UIDs are digit runs separated by dots)
_E = r"(?![\d.]\d)(?!\d)"
RRN = re.compile(_D + r"(\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\s?[-–]?\s?([1-8])\d{6}" + _E)
PHONE_KR_MOBILE = re.compile(_D + r"01[016789][-. ]?\d{3,4}[-. ]?\d{4}" + _E)
PHONE_KR_LANDLINE = re.compile(_D + r"0(?:2|[3-6][1-5]|70|50\d)[-. )]\d{3,4}[-. ]\d{4}" + _E)
PHONE_INTERNATIONAL = re.compile(r"(?<![\w+])\+\d{1,3}[-. ]?\(?\d{1,4}\)?(?:[-. ]?\d{2,4}){2,3}" + _E)
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
PERSON_NAME_CARET = re.compile(
    r"[A-Za-z\uac00-\ud7a3][A-Za-z\uac00-\ud7a3' -]*\^[A-Za-z\uac00-\ud7a3][A-Za-z\uac00-\ud7a3'^ -]*"
)
_NAME_LABEL = r"(?<![A-Za-z_])(?i:patient\s*name|full\s*name|name|이름|성명|환자명|환자\s*이름|보호자)"
LABELLED_NAME = re.compile(
    _NAME_LABEL + r"\s*[:=]?\s*((?:[\uac00-\ud7a3]{2,4})(?![\uac00-\ud7a3])|[A-Z][a-z]+(?:[ -][A-Z][a-z]+){1,2})"
)
_DATE_TEXT = r"((?:19|20)\d{2})[-./년 ]\s?(\d{1,2})[-./월 ]\s?(\d{1,2})일?|(\d{1,2})[/.](\d{1,2})[/.]((?:19|20)\d{2})"
LABELLED_BIRTH_DATE = re.compile(
    r"(?:date\s*of\s*birth|birth\s*date|birthdate|d\.?o\.?b\.?|born|생년월일|생일|출생일?)\s*[:=]?\s*(?:"
    + _DATE_TEXT
    + ")",
    re.IGNORECASE,
)
#: A calendar date in free text (``2020-03-14``, ``2020.3.14``, ``14/03/2020``, ``2020년 3월 14일``, ``20200314``).
#: Not an identifier pattern of :func:`scan_text` (tables hold admission dates legitimately); outputs that must
#: give relative days only (teaching figures) search for it.
CALENDAR_DATE = re.compile(_D + r"(?:" + _DATE_TEXT + r"|(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))" + _E)
_FULL_DATE = re.compile(r"^\s*(?:" + _DATE_TEXT + r"|(?:19|20)\d{6})(?:[ T]00:00(?::00)?)?\s*$")
HANGUL_NAME = re.compile(r"[\uac00-\ud7a3]{2,4}")
LATIN_NAME = re.compile(r"[A-Z][a-z]+(?:[ -][A-Z][a-z]+){1,2}|[A-Z][A-Za-z'-]+\^[A-Z][A-Za-z' ^-]+")

#: Normalised column-name fragments that mark a direct identifier, by kind.
IDENTIFIER_NAMES: dict[str, tuple[str, ...]] = {
    "person_name": (
        "name",
        "patientname",
        "fullname",
        "firstname",
        "lastname",
        "surname",
        "forename",
        "givenname",
        "familyname",
        "이름",
        "성명",
        "환자명",
        "환자이름",
        "성함",
        "보호자",
    ),
    "national_id": (
        "rrn",
        "residentregistration",
        "residentnumber",
        "nationalid",
        "ssn",
        "socialsecurity",
        "jumin",
        "주민등록번호",
        "주민번호",
        "주민등록",
        "외국인등록번호",
        "passport",
        "여권번호",
    ),
    "phone": (
        "phone",
        "telephone",
        "tel",
        "mobileno",
        "mobilenumber",
        "cellphone",
        "fax",
        "전화",
        "전화번호",
        "휴대폰",
        "핸드폰",
        "연락처",
    ),
    "email": ("email", "mail", "이메일", "메일"),
    "address": ("address", "street", "zipcode", "postcode", "postalcode", "주소", "우편번호"),
    "date_of_birth": ("dob", "birth", "birthdate", "dateofbirth", "birthday", "생년월일", "생일", "출생일"),
    "record_number": (
        "mrn",
        "medicalrecord",
        "hospitalnumber",
        "chartno",
        "chartnumber",
        "patientnumber",
        "등록번호",
        "병록번호",
        "차트번호",
        "환자번호",
        "의무기록번호",
    ),
}
#: Name fragments that say a column of that kind holds something else ("site_name", "birth_weight").
_NOT_THAT_KIND: dict[str, tuple[str, ...]] = {
    "person_name": (
        "site",
        "hospital",
        "centre",
        "center",
        "drug",
        "med",
        "immunosup",
        "antibiotic",
        "antiviral",
        "vaccine",
        "organism",
        "pathogen",
        "product",
        "brand",
        "test",
        "file",
        "study",
        "series",
        "variable",
        "reader",
        "sheet",
        "device",
        "station",
        "institution",
        "protocol",
        "병원",
        "기관",
        "약",
    ),
    "date_of_birth": ("weight", "defect", "order", "place", "country", "length", "height", "control", "know"),
}


_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]+")


@dataclass(frozen=True)
class Finding:
    """One place that looks like a direct identifier; never carries the identifying value.

    Attributes
    ----------
    kind : str
        ``rrn``, ``phone``, ``email``, ``person_name``, ``date_of_birth``, ``national_id``, ``address``,
        ``record_number`` or ``not_pseudonym``.
    where : str
        The column name, or ``"text"`` for free text.
    reason : str
        Why (``"column name"``, ``"12 of 40 values"``, ``"labelled"``, ...).
    start, end : int or None
        Character offsets in the scanned text (``None`` for columns).
    """

    kind: str
    where: str
    reason: str
    start: int | None = None
    end: int | None = None


def _valid_rrn_date(match: re.Match) -> bool:
    yy, mm, dd, digit = int(match.group(1)), int(match.group(2)), int(match.group(3)), int(match.group(4))
    century = 1900 if digit in (1, 2, 5, 6) else 2000
    try:
        date(century + yy, mm, dd)
    except ValueError:
        return False
    return True


_HEX_DIGITS = frozenset("0123456789abcdef")


def _inside_hex_digest(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` lies inside a lower-case hexadecimal digest (a run of >= 16 hex characters with
    at least one letter, such as a SHA-256 or a ``cohort_version``), where digit runs are chance, not identifiers."""
    left, right = start, end
    while left > 0 and text[left - 1] in _HEX_DIGITS:
        left -= 1
    while right < len(text) and text[right] in _HEX_DIGITS:
        right += 1
    run = text[left:right]
    return len(run) >= 16 and any(c in "abcdef" for c in run)


def scan_text(text: str) -> list[Finding]:
    """Every direct identifier found in free text, in order of position.

    Examples
    --------
    >>> [(f.kind, f.start) for f in scan_text("RRN 900101-1234568, 성명: 홍길동")]
    [('rrn', 4), ('person_name', 24)]
    >>> scan_text("정상 소견; CRP 12 mg/L; UID 1.2.840.113619.2.55.3.6046881190101.1234567")
    []

    Digit runs inside a hexadecimal digest are not identifiers:

    >>> scan_text("sha256 3f9001011234567a0c1e")
    []
    """
    text = unicodedata.normalize("NFC", str(text))
    found: list[Finding] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, m: re.Match, reason: str, group: int = 0) -> None:
        start, end = m.span(group)
        if any(s < end and start < e for s, e in taken):
            return
        if kind in ("rrn", "phone") and _inside_hex_digest(text, start, end):
            return
        taken.append((start, end))
        found.append(Finding(kind, "text", reason, start, end))

    for m in RRN.finditer(text):
        if _valid_rrn_date(m):
            add("rrn", m, "resident registration number pattern")
    for pattern in (PHONE_KR_MOBILE, PHONE_KR_LANDLINE, PHONE_INTERNATIONAL):
        for m in pattern.finditer(text):
            add("phone", m, "telephone number pattern")
    for m in EMAIL.finditer(text):
        add("email", m, "e-mail address")
    for m in LABELLED_BIRTH_DATE.finditer(text):
        add("date_of_birth", m, "date after a birth label")
    if "^" in text:
        for m in PERSON_NAME_CARET.finditer(text):
            add("person_name", m, "DICOM person name (family^given)")
    for m in LABELLED_NAME.finditer(text):
        value = m.group(1)
        if HANGUL_NAME.fullmatch(value) and not _starts_with_surname(value):
            continue
        add("person_name", m, "name after a name label", 1)
    return sorted(found, key=lambda f: f.start or 0)


def _starts_with_surname(value: str) -> bool:
    return value[:2] in KOREAN_SURNAMES_DOUBLE or (value[:1] in KOREAN_SURNAMES_SINGLE and 2 <= len(value) <= 4)


def _normalise_name(name: str) -> str:
    return re.sub(r"[^0-9a-z\uac00-\ud7a3]", "", unicodedata.normalize("NFC", str(name)).lower())


def _name_kind(name: str) -> str | None:
    key = _normalise_name(name)
    if not key:
        return None
    for kind, fragments in IDENTIFIER_NAMES.items():
        for fragment in fragments:
            if fragment.isascii() and (len(fragment) <= 4 or fragment == "birth"):
                # short Latin fragments (dob, rrn, tel, ssn, mrn, name) must be a whole word of the column name
                words = re.split(r"[^0-9a-z]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", str(name)).lower())
                hit = fragment in words
            else:
                hit = fragment in key
            if hit:
                if any(word in key for word in _NOT_THAT_KIND.get(kind, ())):
                    continue
                return kind
    return None


def _is_full_date(value: str) -> bool:
    return bool(_FULL_DATE.match(value))


def _year(value: str) -> int | None:
    found = re.search(r"(19|20)\d{2}", value)
    return int(found.group(0)) if found else None


def classify_column(name: str, values: Iterable[object]) -> Finding | None:
    """Judge one column by its name and its content; ``None`` when it looks like no direct identifier.

    Parameters
    ----------
    name : str
        The column name as submitted (English or Korean).
    values : iterable
        The column's values (any type; read as text).

    Examples
    --------
    >>> classify_column("환자명", []).kind
    'person_name'
    >>> classify_column("contact", ["010-1234-5678", ""]).kind
    'phone'
    >>> classify_column("labs_crp_mgl", ["12.5", "3.1"]) is None
    True
    """
    kind = _name_kind(name)
    if kind is not None:
        return Finding(kind, str(name), "column name")
    texts = [unicodedata.normalize("NFC", str(v)).strip() for v in values if v is not None and not pd.isna(v)]
    texts = [t for t in texts if t and t.lower() not in {"nan", "none", "null", "na", "n/a"}]
    if not texts:
        return None
    n = len(texts)
    unique = set(texts)
    counts = {"rrn": 0, "phone": 0, "email": 0, "caret": 0}
    for text in unique:
        if any(_valid_rrn_date(m) and not _inside_hex_digest(text, *m.span()) for m in RRN.finditer(text)):
            counts["rrn"] += 1
        if any(
            not _inside_hex_digest(text, *m.span())
            for pattern in (PHONE_KR_MOBILE, PHONE_KR_LANDLINE, PHONE_INTERNATIONAL)
            for m in pattern.finditer(text)
        ):
            counts["phone"] += 1
        if EMAIL.search(text):
            counts["email"] += 1
        if PERSON_NAME_CARET.search(text):
            counts["caret"] += 1
    # specific patterns: one hit is one identifier too many
    for kind in ("rrn", "email", "phone"):
        if counts[kind]:
            return Finding(kind, str(name), f"{counts[kind]} of {len(unique)} distinct values")
    if counts["caret"]:
        return Finding("person_name", str(name), f"{counts['caret']} DICOM person names")
    distinct = len(unique) / n
    hangul = sum(1 for t in unique if HANGUL_NAME.fullmatch(t) and _starts_with_surname(t))
    latin = sum(1 for t in unique if LATIN_NAME.fullmatch(t))
    if len(unique) >= 2 and distinct >= 0.8 and max(hangul, latin) >= 0.6 * len(unique):
        return Finding(
            "person_name", str(name), f"{max(hangul, latin)} of {len(unique)} distinct values look like names"
        )
    dates = [t for t in texts if _is_full_date(t)]
    if len(dates) >= 2 and len(dates) >= 0.8 * n:
        years = sorted(y for y in map(_year, dates) if y is not None)
        if years and (years[-1] - years[0] >= 15 or years[len(years) // 2] <= 2005):
            return Finding(
                "date_of_birth", str(name), f"{len(dates)} full dates spread over {years[-1] - years[0]} years"
            )
    return None


def find_identifier_columns(table: pd.DataFrame, *, exclude: Iterable[str] = ()) -> list[Finding]:
    """One :class:`Finding` per column of ``table`` that looks like a direct identifier.

    ``exclude`` names columns known to be safe (e.g. the dictionary's variables; its pseudonym column).

    Examples
    --------
    >>> df = pd.DataFrame({"subjid": ["KICC-S01-0001"], "patient_name": ["Hong Gildong"], "age": ["54"]})
    >>> [(f.where, f.kind) for f in find_identifier_columns(df)]
    [('patient_name', 'person_name')]
    """
    skip = set(exclude)
    findings = []
    for column in table.columns:
        if column in skip:
            continue
        finding = classify_column(str(column), table[column].tolist())
        if finding is None and str(column).strip() and not is_pseudonym(str(column)):
            for finding in scan_text(str(column)):  # a header that is itself an identifier
                finding = Finding(finding.kind, str(column), "column header text")
                break
            else:
                finding = None
        if finding is not None:
            findings.append(finding)
    return findings


def is_pseudonym(value: object) -> bool:
    """True when ``value`` is a KICC-19 subject pseudonym (``KICC-Sxx-nnnn``), see :data:`PSEUDONYM_PATTERN`."""
    return isinstance(value, str) and PSEUDONYM_PATTERN.fullmatch(value.strip()) is not None


def mask_identifier(value: object) -> object:
    """Mask an ID that is not a pseudonym: first and last character kept, the rest ``*`` (same length).

    Pseudonyms and missing values are returned unchanged; values of one to three characters become ``***``
    (the first and last character would be most of them).

    Examples
    --------
    >>> mask_identifier("K1234569"), mask_identifier("홍길동"), mask_identifier(None)
    ('K******9', '***', None)
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return value
    text = str(value)
    if is_pseudonym(text) or text == "":
        return text
    if len(text) <= 3:
        return "***"
    return text[0] + "*" * (len(text) - 2) + text[-1]


def mask_ids(values: pd.Series) -> pd.Series:
    """:func:`mask_identifier` applied to a column (vectorised over its distinct values)."""
    if values.empty:
        return values
    distinct = values.dropna().unique()
    mapping = {v: mask_identifier(v) for v in distinct}
    return values.map(mapping).where(values.notna(), values)


def assert_no_identifiers(
    content: str | bytes, *, known_values: Iterable[object] = (), where: str = "output", patterns: bool = True
) -> None:
    """Fail closed: raise :class:`PrivacyError` when ``content`` holds an identifier.

    Parameters
    ----------
    content : str or bytes
        A rendered page, a file's bytes, captured output. Bytes are decoded as UTF-8 (undecodable bytes
        replaced) and also searched raw for every known value in UTF-8, CP949 and UTF-16. Base64 ``data:``
        URIs (embedded images) are skipped by the pattern scan (their digit runs are not phone numbers);
        known values are still searched everywhere.
    known_values : iterable
        Identifying values known to exist in the inputs (e.g. the values of dropped identifier columns,
        non-pseudonym PatientIDs); each one must not occur at all.
    where : str
        Named in the error message (file name, page).
    patterns : bool
        Also run the identifier patterns (default). ``False`` searches only ``known_values``: for binary
        content (compressed pixels, font programs) whose random bytes would match text patterns.

    Raises
    ------
    PrivacyError
        Naming ``where``, the kind and the character offset -- never the value.

    Examples
    --------
    >>> assert_no_identifiers("KICC-S01-0001: CRP 12 mg/L")
    >>> assert_no_identifiers("phone 010-2222-3333", where="page.html")
    Traceback (most recent call last):
    ...
    kicc_analysis.errors.PrivacyError: page.html: phone at character 6 (telephone number pattern)
    """
    raw = content if isinstance(content, bytes) else None
    text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else str(content)
    for value in known_values:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            continue
        value = str(value).strip()
        if len(value) < 2 or is_pseudonym(value):
            continue
        position = text.find(value)
        if position < 0 and raw is not None:
            for encoding in ("cp949", "utf-16-le"):
                try:
                    encoded = value.encode(encoding)
                except UnicodeEncodeError:
                    continue
                if (position := raw.find(encoded)) >= 0:
                    break
        if position >= 0:
            raise PrivacyError(f"{where}: a known identifying value at position {position}")
    if not patterns:
        return
    findings = scan_text(_DATA_URI.sub("data:", text))  # embedded images are pixels, not text (checked by OCR)
    if findings:
        first = findings[0]
        raise PrivacyError(f"{where}: {first.kind} at character {first.start} ({first.reason})")


# ----------------------------------------------------------------------------------------------------------------------
# Short fields: file and folder names, DICOM descriptions.

_FIELD_SPLIT = re.compile(r"[_\s]+")
_HANGUL_RUN = re.compile(r"(?<![\uac00-\ud7a3])[\uac00-\ud7a3]{2,4}(?![\uac00-\ud7a3])")
_LATIN_PAIR = re.compile(r"(?<![A-Za-z])[A-Z][a-z]+(?:[ _-][A-Z][a-z]+){1,2}(?![A-Za-z])")


def _known(values: Iterable[object]) -> list[str]:
    """Known identifying values worth searching: text of 4+ characters (shorter ones only as whole tokens)."""
    out = []
    for value in values:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            continue
        text = unicodedata.normalize("NFC", str(value)).strip()
        if text and not is_pseudonym(text):
            out.append(text)
    return out


def field_findings(text: str, *, known_values: Iterable[object] = ()) -> list[Finding]:
    """Identifiers in a short field (a file or folder name, a DICOM description): see the module notes.

    Unlike :func:`scan_text` a bare Hangul name (``홍길동``) or ``Hong_Gildong`` counts: a short field gives no
    context to tell a name from a word, so the rule fails closed (``정상``, normal, is a false positive).

    Examples
    --------
    >>> [f.kind for f in field_findings("홍길동_12345678")]
    ['person_name']
    >>> [f.kind for f in field_findings("Hong_Gildong")], field_findings("흉부 CT"), field_findings("IM0001.dcm")
    (['person_name'], [], [])
    >>> [f.kind for f in field_findings("P12345678", known_values=["12345678"])]
    ['known_value']
    """
    text = unicodedata.normalize("NFC", str(text))
    spaced = text.replace("_", " ")  # same length: the offsets of the findings stay those of ``text``
    found = [Finding(f.kind, "field", f.reason, f.start, f.end) for f in scan_text(spaced)]
    for m in _HANGUL_RUN.finditer(text):
        if _starts_with_surname(m.group(0)):
            found.append(Finding("person_name", "field", "Hangul name in a short field", m.start(), m.end()))
    for m in _LATIN_PAIR.finditer(text):
        found.append(Finding("person_name", "field", "Latin name in a short field", m.start(), m.end()))
    tokens = set(_FIELD_SPLIT.split(re.sub(r"[^\w\uac00-\ud7a3]+", " ", text)))
    for value in _known(known_values):
        position = text.find(value) if len(value) >= 4 else (0 if value in tokens else -1)
        if position >= 0:
            found.append(Finding("known_value", "field", "a known identifying value", position, position + len(value)))
    return sorted(found, key=lambda f: f.start or 0)


def _tag(key: bytes | None, text: str) -> str:
    return (
        ""
        if key is None
        else "#" + hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:8]
    )


def mask_path(path: object, *, known_values: Iterable[object] = (), key: bytes | None = None) -> object:
    """A path with every component that holds an identifier (:func:`field_findings`) masked.

    A masked component is :func:`mask_identifier` of it (first and last character kept, same length), followed
    by ``#`` and 8 hex digits of HMAC-SHA256 under ``key`` when a key is given, so that two patients' folders
    stay apart in a table while neither name nor ID is written. Missing values are returned unchanged.

    Parameters
    ----------
    path : str
        A relative or absolute path with ``/`` separators.
    known_values : iterable
        Identifying values known to exist (non-pseudonym PatientIDs...): a component holding one is masked.
    key : bytes, optional
        Secret of the HMAC tag (e.g. the scan cache's secret); no tag without it.

    Examples
    --------
    >>> mask_path("S01/KIM^MINSU/1.dcm"), mask_path("a/12345678/x", known_values=["12345678"])
    ('S01/K*******U/1.dcm', 'a/1******8/x')
    """
    if path is None or (not isinstance(path, str) and pd.isna(path)):
        return path
    known = _known(known_values)
    parts = str(path).split("/")
    for i, part in enumerate(parts):
        if part and field_findings(part, known_values=known):
            parts[i] = f"{mask_identifier(part)}{_tag(key, part)}"
    return "/".join(parts)


def mask_field(text: object, *, known_values: Iterable[object] = (), key: bytes | None = None) -> object:
    """A short field (a DICOM description, a skip reason) with each identifier found in it masked in place.

    Examples
    --------
    >>> mask_field("CHEST 홍길동 010-1234-5678")
    'CHEST *** 0***********8'
    >>> mask_field("Lung 1.0 B70f"), mask_field(None)
    ('Lung 1.0 B70f', None)
    """
    if text is None or (not isinstance(text, str) and pd.isna(text)):
        return text
    text = unicodedata.normalize("NFC", str(text))
    spans: list[tuple[int, int]] = []
    for f in field_findings(text, known_values=known_values):
        if f.start is None or f.end is None:
            continue
        if spans and f.start < spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], f.end))
        else:
            spans.append((f.start, f.end))
    for start, end in reversed(spans):
        value = text[start:end]
        text = text[:start] + f"{mask_identifier(value)}{_tag(key, value)}" + text[end:]
    return text
