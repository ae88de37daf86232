"""A small, representative sample of a scanned repository for a quick de-identification audit.

A full audit (:func:`kicc_analysis.deid.audit.audit_repository`) reads every element of every file and OCRs every
radiograph: minutes to hours on a real repository. Header problems are per series in practice (one de-identifier
run per series), so a notebook's data-quality section audits one file per series, every file the scanner could
not index, every file whose folder or file name holds an identifier by the package's detector (so that the audit
reports it with its rule), and OCRs only the radiographs that do not say they are free of burned-in
text (Burned In Annotation not ``NO``; at most ``ocr_limit``). The sample is a folder of symbolic links that
mirrors the repository's relative paths, so the audit's file and folder names are the repository's own.

Usage (as notebook 01 does, on a scanned repository ``scan`` and an empty folder ``tmp``)::

    from kicc_analysis.deid.audit import audit_repository
    from kicc_analysis.repository.audit_sample import write_audit_sample

    sample = write_audit_sample(scan, tmp)
    headers = audit_repository(sample.headers, ocr=False)
    pixels = audit_repository(sample.ocr, ocr=True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pydicom

from .scan import RepositoryScan, fs_path

__all__ = ["AuditSample", "audit_summary", "write_audit_sample"]

_RADIOGRAPHS = ("CR", "DX")


@dataclass(frozen=True)
class AuditSample:
    """Folders of links to audit: ``headers`` (one file per series + unindexed files), ``ocr`` (radiographs)."""

    headers: Path
    ocr: Path
    n_headers: int
    n_ocr: int
    n_series: int


def _link(root: Path, dest: Path, relpath: str) -> None:
    rel = fs_path(relpath)
    target = dest / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.symlink(root / rel, target)


def _burned_in_annotation(path: str) -> str:
    try:
        ds = pydicom.dcmread(fs_path(path), stop_before_pixels=True, specific_tags=["BurnedInAnnotation"])
    except Exception:  # noqa: BLE001 - an unreadable file: OCR it (nothing says it is clean)
        return ""
    return str(ds.get("BurnedInAnnotation", "")).strip().upper()


def _named(inst: pd.DataFrame) -> pd.Series:
    """Relative paths with a folder or file name that holds an identifier (:func:`kicc_analysis.privacy.field_findings`,
    the scan's non-pseudonym PatientIDs as known values), each component judged once."""
    from kicc_analysis.privacy import field_findings, is_pseudonym

    known = [str(v) for v in inst["patient_id"].dropna().unique() if not is_pseudonym(str(v))]
    verdict: dict[str, bool] = {}

    def flagged(rel: str) -> bool:
        for part in rel.split("/"):
            if part not in verdict:
                verdict[part] = bool(field_findings(part, known_values=known))
            if verdict[part]:
                return True
        return False

    rels = inst["relpath"].astype(str)
    return rels[[flagged(r) for r in rels]]


def write_audit_sample(scan: RepositoryScan, dest: str | os.PathLike[str], *, ocr_limit: int = 5) -> AuditSample:
    """Write the sample of the module notes under ``dest`` (``headers/`` and ``ocr/``; ``dest`` is created).

    Parameters
    ----------
    scan : RepositoryScan
        The scan of the repository to sample.
    dest : path
        A new or empty folder outside the repository (never written into the repository).
    ocr_limit : int
        Most radiographs to OCR (those without ``BurnedInAnnotation`` ``NO``, in path order).
    """
    dest = Path(dest)
    headers, ocr = dest / "headers", dest / "ocr"
    headers.mkdir(parents=True, exist_ok=True)
    ocr.mkdir(parents=True, exist_ok=True)
    inst = scan.instances
    first = (
        inst.sort_values(["series_uid", "instance_number", "relpath"], kind="stable", na_position="last")
        .drop_duplicates("series_uid")
        .sort_values("relpath")
    )
    unindexed = scan.skipped[~scan.skipped["kind"].isin(["symbolic link to a folder", "index folder"])]
    unindexed = unindexed[[os.path.isfile(fs_path(p)) for p in unindexed["path"]]] if len(unindexed) else unindexed
    rels = pd.concat([first["relpath"], unindexed["relpath"], _named(inst)]).drop_duplicates().astype(str).tolist()
    for rel in rels:
        _link(scan.root, headers, rel)
    n_ocr = 0
    radiographs = inst[inst["modality"].isin(_RADIOGRAPHS)].sort_values("relpath")
    for path, rel in zip(radiographs["path"], radiographs["relpath"], strict=True):
        if n_ocr >= ocr_limit:
            break
        if _burned_in_annotation(str(path)) != "NO":
            _link(scan.root, ocr, str(rel))
            n_ocr += 1
    return AuditSample(headers, ocr, len(rels), n_ocr, int(inst["series_uid"].nunique()))


def audit_summary(*findings: pd.DataFrame) -> pd.DataFrame:
    """One row per audit rule over the findings tables of :func:`kicc_analysis.deid.audit.audit_repository`:
    ``rule, severity, findings, files, example_file, example_preview``.

    Only what the audit shows is used: its ``file`` column (identifying folder and file names already masked) and
    its masked ``preview``; rows are ordered by severity, then by count.

    Examples
    --------
    >>> f = pd.DataFrame({"file": ["a/1.dcm", "a/2.dcm"], "rule": ["identity_not_removed"] * 2,
    ...                   "severity": ["high"] * 2, "preview": ["", ""]})
    >>> audit_summary(f)[["rule", "findings", "files"]].to_dict("records")
    [{'rule': 'identity_not_removed', 'findings': 2, 'files': 2}]
    """
    columns = ["rule", "severity", "findings", "files", "example_file", "example_preview"]
    frames = [f for f in findings if f is not None and len(f)]
    if not frames:
        return pd.DataFrame(columns=columns)
    rows = pd.concat(frames, ignore_index=True)
    out = (
        rows.groupby(["rule", "severity"], sort=False)
        .agg(findings=("rule", "size"), files=("file", "nunique"), example_file=("file", "first"),
             example_preview=("preview", "first"))
        .reset_index()
    )  # fmt: skip
    rank = {s: i for i, s in enumerate(("high", "medium", "low", "info"))}
    out["_rank"] = out["severity"].map(rank).fillna(len(rank))
    out = out.sort_values(["_rank", "findings", "rule"], ascending=[True, False, True], kind="stable")
    return out.drop(columns="_rank").reset_index(drop=True)[columns]
