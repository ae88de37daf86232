"""DICOM repository scanner: headers only, parallel, incremental; instance -> series -> study tables.

The source is a folder (:func:`scan_repository`) or a DICOMweb server (:func:`scan_dicomweb`, QIDO-RS metadata;
series fetched on demand with WADO-RS by :func:`series_source`).

Example
-------
>>> from kicc_analysis.repository import scan_repository, series_files
>>> scan = scan_repository("demo_repository/dicom")          # doctest: +SKIP
>>> print(scan.summary())                                      # doctest: +SKIP
>>> uid = scan.selection["series_uid"].dropna().iloc[0]        # doctest: +SKIP
>>> paths = series_files(scan, uid)                            # doctest: +SKIP
"""

from __future__ import annotations

from .dicomweb import DicomwebScan, DicomwebSeries, SeriesCache, is_dicomweb_url, scan_dicomweb, series_source
from .header import HEADER_FIELDS, HeaderResult, read_header, read_header_pydicom
from .scan import INDEX_DIRNAME, RepositoryScan, fs_path, scan_repository, series_files
from .selection import kernel_class, select_ct_series
from .tables import build_instances, build_series, build_studies

__all__ = [
    "HEADER_FIELDS",
    "INDEX_DIRNAME",
    "DicomwebScan",
    "DicomwebSeries",
    "SeriesCache",
    "HeaderResult",
    "RepositoryScan",
    "build_instances",
    "build_series",
    "build_studies",
    "fs_path",
    "is_dicomweb_url",
    "kernel_class",
    "read_header",
    "read_header_pydicom",
    "scan_dicomweb",
    "scan_repository",
    "select_ct_series",
    "series_files",
    "series_source",
]
