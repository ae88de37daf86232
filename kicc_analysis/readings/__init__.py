"""Reader scores: the scoring schemes (Brixia, RALE, Cohen, CT per-lobe, CT suspicion, RSNA CT category,
CO-RADS, structured CT findings) in one table, one
reader-score file format validated against it, and loaders of public reader-score data sets."""

from .public import load_brixia_annotations, load_cohen_severity
from .schemes import FINDING_ITEMS, SCHEMES, Item, Scheme, Total, get_scheme, scheme_table
from .scores import (
    PROBLEM_COLUMNS,
    SCORE_COLUMNS,
    from_legacy,
    read_reader_scores,
    reading_totals,
    validate_readings,
)

__all__ = [
    "FINDING_ITEMS",
    "PROBLEM_COLUMNS",
    "SCHEMES",
    "SCORE_COLUMNS",
    "Item",
    "Scheme",
    "Total",
    "from_legacy",
    "get_scheme",
    "load_brixia_annotations",
    "load_cohen_severity",
    "read_reader_scores",
    "reading_totals",
    "scheme_table",
    "validate_readings",
]
