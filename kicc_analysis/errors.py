"""Exception classes shared by every layer of kicc_analysis.

Every error message says what was expected, what was found, and where
(file, row, variable), so that a researcher can fix the input without reading
the source.
"""

from __future__ import annotations


class KiccError(Exception):
    """Base class of every error raised on purpose by kicc_analysis."""


class DictionaryError(KiccError):
    """The data dictionary itself is malformed or a variable is unknown."""


class ValidationError(KiccError):
    """A clinical table cannot be validated at all (e.g. unreadable file)."""


class RepositoryError(KiccError):
    """The imaging repository cannot be scanned (missing folder, no DICOM...)."""


class CohortError(KiccError):
    """The cohort table cannot be built or loaded."""


class ImagingError(KiccError):
    """An image or series cannot be loaded as a CT volume in HU."""


class MissingCodecError(ImagingError):
    """Pixel data uses a compressed transfer syntax whose decoder is not installed."""


class ReadingsError(KiccError):
    """A reader-score file or scoring scheme is unusable (unknown scheme, missing columns...)."""


class SegmentationError(KiccError):
    """Lung segmentation failed or produced an unusable result."""


class AnalysisError(KiccError):
    """Input to a statistical routine is unusable (wrong shape, too few cases...)."""


class StudyError(KiccError):
    """A notebook of the study failed to run."""


class PrivacyError(KiccError):
    """Output would contain a direct identifier (a name, national ID, phone, e-mail, date of birth)."""


class ClusterError(KiccError):
    """A Dask scheduler cannot be reached or used (address, missing ``[cluster]`` extra, lost connection)."""
