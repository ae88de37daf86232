"""Reading clinical exports (CSV, Excel "Unicode text", XLSX) as they come out of Korean hospital systems.

Every cell is returned as text, nothing converted, so the validator sees what the site typed. What is
detected, and reported in ``table.attrs["read"]`` (a :class:`ReadInfo` as a dict; :func:`describe_read`
prints it):

* **Encoding**: UTF-8 with or without BOM, UTF-16 (what Excel writes as "Unicode text", BOM or not),
  CP949 (Korean Windows Excel "CSV"; a superset of EUC-KR), and as a last resort Windows-1252.
* **Delimiter**: ``,`` ``;`` tab or ``|``, whichever splits the first lines into the same number of fields.
* **Decimal comma**: in a ``;``- or tab-separated file, cells like ``12,5`` when they outnumber ``12.5``
  are read as ``12.5`` (``decimal=","`` in the report); in a comma-separated file they cannot occur
  unquoted, and the validator's ``not_numeric`` detail names a quoted one.
* **XLSX cells**: date cells become ``YYYY-MM-DD`` (``YYYY-MM-DD HH:MM:SS`` when they carry a time),
  whole numbers ``12`` (not ``12.0``), other numbers their shortest decimal form; the first sheet is read.

Refused with a one-line :class:`~kicc_analysis.errors.ValidationError` naming the file, the line or row,
what was expected and what was found: a missing or empty file, a header without data rows, a ragged CSV
(a line with more or fewer fields than the header), bytes that no supported encoding decodes, a file
named ``.xlsx`` that is not a workbook (CSV text, legacy ``.xls``, a password-protected workbook) and a
workbook without cells. Rows in which every cell is empty (Excel's formatted-but-empty rows) are
ignored and counted in the notes.

Example
-------
>>> from kicc_analysis.clinical_io import read_clinical_table, describe_read
>>> table = read_clinical_table("site_export.csv")                  # doctest: +SKIP
>>> describe_read(table)                                             # doctest: +SKIP
'site_export.csv: CSV, encoding cp949, delimiter ";", decimal ",", 120 rows x 44 columns'
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from pathlib import Path

import numpy as np
import pandas as pd

from kicc_analysis.errors import ValidationError

CSV_SUFFIXES = {".csv", ".txt", ".tsv", ".tab"}
XLSX_SUFFIXES = {".xlsx", ".xlsm"}
DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_DECIMAL_POINT = re.compile(r"^[+-]?\d+\.\d+$")
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass
class ReadInfo:
    """How a clinical export was read.

    Attributes
    ----------
    path : str
        The file.
    format : str
        ``"csv"`` or ``"xlsx"``.
    encoding : str
        ``utf-8``, ``utf-8-sig`` (UTF-8 with BOM), ``utf-16``, ``cp949`` or ``cp1252`` (empty for XLSX).
    delimiter : str
        The field separator (empty for XLSX).
    decimal : str
        ``"."``, or ``","`` when decimal commas were found and read as points.
    sheet : str
        The worksheet read (XLSX only).
    n_rows, n_columns : int
        Data rows (header excluded) and columns.
    notes : list of str
        Anything else the reader did (empty rows ignored, date cells converted, other sheets present).
    """

    path: str
    format: str
    encoding: str = ""
    delimiter: str = ""
    decimal: str = "."
    sheet: str = ""
    n_rows: int = 0
    n_columns: int = 0
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line: file, format, encoding, delimiter, decimal mark, size, notes."""
        parts = [f"{Path(self.path).name}: {self.format.upper()}"]
        if self.format == "csv":
            parts.append(f"encoding {self.encoding}")
            parts.append(f"delimiter {_DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))}")
            parts.append(f"decimal {self.decimal!r}")
        else:
            parts.append(f"sheet {self.sheet!r}")
        parts.append(f"{self.n_rows} rows x {self.n_columns} columns")
        return ", ".join(parts) + "".join(f"; {note}" for note in self.notes)


def describe_read(table: pd.DataFrame) -> str:
    """The one-line description of how ``table`` was read (empty when it was not read by this module)."""
    info = table.attrs.get("read")
    return ReadInfo(**info).describe() if info else ""


# --------------------------------------------------------------------------- encodings


def detect_encoding(data: bytes) -> str:
    """The encoding of a text export: BOM first, then UTF-16 by its zero bytes, UTF-8, CP949, Windows-1252.

    Raises
    ------
    ValidationError
        When none decodes the bytes (the message gives the first undecodable byte and its line).

    Examples
    --------
    >>> detect_encoding("나이,성별".encode("cp949")), detect_encoding("나이".encode("utf-8"))
    ('cp949', 'utf-8')
    >>> detect_encoding(codecs.BOM_UTF16_LE + "age".encode("utf-16-le"))
    'utf-16'
    """
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    head = data[:4096]
    if len(head) >= 4 and head.count(0) >= len(head) // 4:
        even_zeros = head[0::2].count(0)
        odd_zeros = head[1::2].count(0)
        return "utf-16-be" if even_zeros > odd_zeros else "utf-16-le"
    for encoding in ("utf-8", "cp949"):
        try:
            data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        pass
    else:
        return "cp1252"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValidationError(
            f"line {line}: byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8, CP949 (EUC-KR), UTF-16 "
            "or Windows-1252 text; expected a CSV saved as 'CSV UTF-8' or 'Unicode text' from Excel"
        ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def detect_delimiter(text: str, max_lines: int = 50) -> str:
    """The field separator of CSV text: the candidate giving the header's field count on most lines.

    Examples
    --------
    >>> detect_delimiter("subjid;demog_age\\nKICC-S01-0001;54,5\\n")
    ';'
    >>> detect_delimiter("a\\tb\\tc\\n1\\t2\\t3\\n"), detect_delimiter("only_one_column\\n1\\n")
    ('\\t', ',')
    """
    head = text[: 1 << 16]
    lines = [line for line in head.splitlines()[: max_lines * 2] if line.strip()][:max_lines]
    if len(head) < len(text) and len(lines) > 1:
        lines = lines[:-1]  # the last line of the excerpt may be cut
    if not lines:
        return ","
    best, best_score = ",", (-1.0, 0)
    for candidate in DELIMITERS:
        counts = [len(row) for row in csv.reader(lines, delimiter=candidate)]
        header = counts[0]
        if header < 2:
            continue
        agreement = sum(c == header for c in counts) / len(counts)
        score = (agreement, header)
        if score > best_score:
            best, best_score = candidate, score
    return best


# --------------------------------------------------------------------------- CSV


def _ragged_line(text: str, delimiter: str) -> tuple[int, int, int] | None:
    """(line number, fields found, fields expected) of the first line whose field count differs from the header's."""
    # newline="": the csv module sees a lone carriage return itself (a text stream would raise "new-line character
    # seen in unquoted field" on it)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    expected = None
    try:
        for row in reader:
            if not row or not any(cell.strip() for cell in row) and len(row) <= 1:
                continue
            if expected is None:
                expected = len(row)
            elif len(row) != expected:
                return reader.line_num, len(row), expected
    except csv.Error:  # a line the csv module cannot split: reported as the line where the field count is lost
        return reader.line_num, 0, expected or 0
    return None


def _check_header(where: Path | str, names: list[str]) -> None:
    """One-line error when a header names a column twice (pandas would silently rename the second to ``name.1``)."""
    first: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        key = str(name).strip()
        if not key:
            continue
        if key in first:
            raise ValidationError(
                f"clinical table {where}: column header {key!r} appears twice (columns {first[key]} and {position}); "
                "expected one column per variable"
            )
        first[key] = position


def _read_csv(path: Path, data: bytes, encoding: str | None, delimiter: str | None, decimal: str | None):
    try:
        encoding = encoding or detect_encoding(data)
    except ValidationError as exc:
        raise ValidationError(f"clinical table {path}: {exc}") from None
    try:
        head = data[: 1 << 16].decode(encoding, errors="ignore").removeprefix("\ufeff")
    except LookupError as exc:
        raise ValidationError(f"clinical table {path}: unknown encoding {encoding} ({exc})") from None
    if not head.strip():
        raise ValidationError(f"clinical table {path} is empty (expected a header line and one row per patient)")
    delimiter = delimiter or detect_delimiter(head)
    try:
        header = next(csv.reader(io.StringIO(head.lstrip("\r\n"), newline=""), delimiter=delimiter), [])
    except csv.Error:  # a header the csv module cannot split: pandas reads it or fails below with its own line
        header = []
    _check_header(path, header)
    info = ReadInfo(path=str(path), format="csv", encoding=encoding, delimiter=delimiter)
    try:  # pandas decodes the bytes itself: no second copy of the file as text
        table = pd.read_csv(
            io.BytesIO(data), encoding=encoding, sep=delimiter, dtype=str, keep_default_na=False, na_values=[]
        )
    except pd.errors.ParserError:
        table = None
    except UnicodeDecodeError as exc:
        raise ValidationError(f"clinical table {path}: cannot be decoded as {encoding} ({exc})") from None
    except pd.errors.EmptyDataError:
        raise ValidationError(
            f"clinical table {path} is empty (expected a header line and one row per patient)"
        ) from None
    # pandas pads a short line with "" like an empty cell: a line is checked field by field (csv module) when the
    # last column has an empty cell at all
    # and when pandas took the first column as an index (data lines with one field more than the header)
    if (
        table is None
        or not isinstance(table.index, pd.RangeIndex)
        or table.iloc[:, -1].isna().any()
        or table.iloc[:, -1].eq("").any()
    ):
        ragged = _ragged_line(data.decode(encoding).removeprefix("\ufeff"), delimiter)
        if ragged is not None:
            line, found, expected = ragged
            raise ValidationError(
                f"clinical table {path}, line {line}: {found} fields where the header has {expected} "
                f"(delimiter {_DELIMITER_NAMES.get(delimiter, repr(delimiter))}; a stray or missing delimiter, "
                "or a value holding the delimiter without quotes)"
            )
        if table is None:
            raise ValidationError(f"clinical table {path}: not readable as CSV with delimiter {delimiter!r}")
        table = table.fillna("")
    wanted_decimal = decimal
    if wanted_decimal is None:
        wanted_decimal = "."
        if delimiter != ",":
            sample = table.head(2000)
            commas = sum(int(sample[c].str.match(_DECIMAL_COMMA).sum()) for c in sample.columns)
            points = sum(int(sample[c].str.match(_DECIMAL_POINT).sum()) for c in sample.columns)
            if commas > points:
                wanted_decimal = ","
    if wanted_decimal == ",":
        converted = 0
        for column in table.columns:
            hits = table[column].str.match(_DECIMAL_COMMA)
            if hits.any():
                converted += int(hits.sum())
                table.loc[hits, column] = table.loc[hits, column].str.replace(",", ".", regex=False)
        info.notes.append(f"{converted} decimal-comma numbers read with a decimal point")
    info.decimal = wanted_decimal
    return table, info


# --------------------------------------------------------------------------- XLSX


def _cell_text(value: object) -> tuple[str, bool]:
    """(text, was a date cell) of one worksheet cell."""
    if value is None:
        return "", False
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.strftime("%Y-%m-%d"), True
        return value.strftime("%Y-%m-%d %H:%M:%S"), True
    if isinstance(value, date):
        return value.isoformat(), True
    if isinstance(value, time):
        return value.isoformat(), False
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE"), False
    if isinstance(value, float):
        if np.isfinite(value) and value.is_integer() and abs(value) < 1e15:
            return str(int(value)), False
        return repr(value), False
    return str(value), False


def _read_xlsx(path: Path, data: bytes):
    import zipfile

    from openpyxl import load_workbook

    if data.startswith(_OLE_MAGIC):
        raise ValidationError(
            f"clinical table {path} is a legacy .xls workbook or a password-protected .xlsx (OLE container); "
            "expected an .xlsx without a password: open it in Excel and 'Save As' .xlsx or CSV UTF-8"
        )
    if not data.startswith(_ZIP_MAGIC):
        try:
            text = data[:4096].decode(detect_encoding(data[:4096]))
            looks = f"text (first line {text.splitlines()[0][:40]!r}...): a CSV named .xlsx; rename it to .csv"
        except (ValidationError, UnicodeDecodeError, IndexError):
            looks = f"bytes starting {data[:8]!r}"
        raise ValidationError(f"clinical table {path} is not an XLSX workbook (no ZIP signature); found {looks}")
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ValidationError(
            f"clinical table {path} is not a readable XLSX workbook ({type(exc).__name__}: {exc})"
        ) from None
    try:
        sheets = workbook.sheetnames
        sheet = workbook[sheets[0]]
        date_cells = 0
        rows = []
        for values in sheet.iter_rows(values_only=True):
            cells = []
            for value in values:
                text, is_date = _cell_text(value)
                date_cells += is_date
                cells.append(text)
            rows.append(cells)
    finally:
        workbook.close()
    info = ReadInfo(path=str(path), format="xlsx", sheet=sheets[0])
    if len(sheets) > 1:
        info.notes.append(f"first of {len(sheets)} sheets read (others: {', '.join(sheets[1:])})")
    rows = [r for r in rows if any(c.strip() for c in r)] if rows else []
    if not rows:
        raise ValidationError(
            f"clinical table {path}, sheet {sheets[0]!r}: no cells (expected a header row and one row per patient)"
        )
    width = max(len(r) for r in rows)
    header = rows[0] + [""] * (width - len(rows[0]))
    body = [r + [""] * (width - len(r)) for r in rows[1:]]
    while width and not header[width - 1].strip() and not any(r[width - 1].strip() for r in body):
        width -= 1
    _check_header(f"{path}, sheet {sheets[0]!r}", header[:width])
    header = [h if h.strip() else f"Unnamed: {i}" for i, h in enumerate(header[:width])]
    table = pd.DataFrame([r[:width] for r in body], columns=header, dtype=object)
    if table.empty:
        table = pd.DataFrame(columns=header)
    if date_cells:
        info.notes.append(f"{date_cells} date cells read as YYYY-MM-DD")
    return table, info


# --------------------------------------------------------------------------- entry point


def _empty_rows(table: pd.DataFrame) -> pd.Series:
    """Rows in which every cell is empty or white space (checked only where the first cell is)."""
    empty = pd.Series(False, index=table.index)
    if len(table) == 0:
        return empty
    candidates = table.index[table.iloc[:, 0].astype(str).str.strip().eq("")]
    if len(candidates):
        rest = table.loc[candidates].astype(str).apply(lambda c: c.str.strip().eq(""))
        empty[candidates] = rest.all(axis=1)
    return empty


def read_clinical_table(
    path: str | Path, *, encoding: str | None = None, delimiter: str | None = None, decimal: str | None = None
) -> pd.DataFrame:
    """Read a clinical export (CSV/TSV/Excel "Unicode text"/XLSX) with every cell as text.

    Parameters
    ----------
    path : path
        The export.
    encoding, delimiter, decimal : str, optional
        Override what is detected (CSV only).

    Returns
    -------
    DataFrame
        Every cell a ``str`` (``""`` when empty); ``attrs["read"]`` holds the :class:`ReadInfo` as a dict.

    Raises
    ------
    ValidationError
        One line naming the file (and line/row), what was expected and what was found.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"clinical table not found: {path} (expected a CSV or XLSX export)")
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES | XLSX_SUFFIXES:
        raise ValidationError(
            f"clinical table {path}: unsupported file type {suffix!r} (use .csv, .tsv, .txt or .xlsx)"
        )
    data = path.read_bytes()
    if not data.strip():
        raise ValidationError(f"clinical table {path} is empty (expected a header line and one row per patient)")
    if suffix in XLSX_SUFFIXES:
        table, info = _read_xlsx(path, data)
    elif data.startswith(_ZIP_MAGIC) or data.startswith(_OLE_MAGIC):
        raise ValidationError(
            f"clinical table {path} is a spreadsheet workbook named {suffix}; expected CSV text: rename it to .xlsx "
            "(or save it as CSV UTF-8)"
        )
    else:
        table, info = _read_csv(path, data, encoding, delimiter, decimal)
    if table.shape[1] == 0:
        raise ValidationError(f"clinical table {path} has no columns (expected a header line)")
    empty_rows = _empty_rows(table)
    if empty_rows.any():
        table = table[~empty_rows].reset_index(drop=True)
        info.notes.append(f"{int(empty_rows.sum())} empty rows ignored")
    if len(table) == 0:
        raise ValidationError(
            f"clinical table {path} has a header ({table.shape[1]} columns) but no data rows "
            "(expected one row per patient under the header)"
        )
    info.n_rows, info.n_columns = table.shape
    table.attrs["read"] = asdict(info)
    return table
