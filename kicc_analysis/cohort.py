"""The cohort table: one row per patient, clinical data joined with the imaging inventory.

Repository layout (demo or real)::

    REPOSITORY/dicom/...                     DICOM files, any nesting (or DICOM anywhere under REPOSITORY)
    REPOSITORY/clinical/clinical.csv|.xlsx   one row per patient, dictionary variables
    REPOSITORY/clinical/imaging_studies.csv  optional: subjid, img_study_uid, img_modality, img_day, img_timepoint
    REPOSITORY/readings/reader_scores.csv    optional: subjid, reader, item, score

:func:`build_cohort` validates the clinical table against the data dictionary,
scans the DICOM tree (incrementally), links studies to patients, chooses each
patient's baseline CT series, and reports every linkage problem. The table is
typed from the dictionary and hashed: its ``cohort_version`` identifies the
exact content every result was computed from. :func:`load_cohort` is the
one-line entry point for notebooks::

    from kicc_analysis import load_cohort
    cohort = load_cohort("/data/kicc19")
    cohort.attrs["cohort_version"]
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kicc_analysis.clinical_io import describe_read, read_clinical_table
from kicc_analysis.dictionary import (
    IMAGING_FORM,
    PATIENT_FORMS,
    coerce_to_dictionary,
    load_dictionary,
    match_columns,
    summarise_report,
    validate_clinical,
)
from kicc_analysis.errors import CohortError
from kicc_analysis.privacy import classify_column, mask_ids, scan_text

ID = "subjid"
READING_COLUMNS = ("subjid", "reader", "item", "score")
LINKAGE_COLUMNS = ["problem", "subjid", "study_uid", "detail"]


# --------------------------------------------------------------------------- locating inputs


def find_clinical_table(repository: str | Path) -> Path:
    """Return the clinical table of a repository (``clinical/clinical.csv`` or ``.xlsx``)."""
    repository = Path(repository)
    if not repository.is_dir():
        raise CohortError(f"repository folder not found: {repository}")
    for candidate in ("clinical/clinical.csv", "clinical/clinical.xlsx", "clinical.csv", "clinical.xlsx"):
        if (repository / candidate).is_file():
            return repository / candidate
    raise CohortError(
        f"no clinical table in {repository}: expected clinical/clinical.csv or clinical/clinical.xlsx "
        "(one row per patient, columns named as in data_dictionary/kicc19_dictionary.csv)"
    )


def dicom_root(repository: str | Path) -> Path:
    """The folder holding the DICOM tree (``dicom/`` when present, else the repository itself)."""
    repository = Path(repository)
    return repository / "dicom" if (repository / "dicom").is_dir() else repository


def cache_dir(repository: str | Path) -> Path:
    """Where derived files (index, snapshots, quantification cache) go: never inside the repository.

    ``$KICC_CACHE/<name>-<hash>`` when set, else ``~/.cache/kicc-analysis/<name>-<hash>``
    (:func:`kicc_analysis._cache.default_cache_dir`).
    """
    from kicc_analysis._cache import default_cache_dir

    return default_cache_dir(repository)


# --------------------------------------------------------------------------- readings


def load_readings(repository: str | Path) -> pd.DataFrame:
    """Load the radiologists' readings as a tidy table ``subjid, reader, item, score``.

    ``item`` is a lobe (``RUL, RML, RLL, LUL, LLL``: visual severity 0–5) or ``suspicion``
    (5-level categorical score 1–5). Raises :class:`CohortError` when the file is absent or
    lacks a column; rows with a non-numeric score are kept with ``score`` missing and
    counted in ``attrs["invalid_scores"]``.
    """
    path = Path(repository) / "readings" / "reader_scores.csv"
    if not path.is_file():
        raise CohortError(f"no readings in {repository}: expected {path} with columns {', '.join(READING_COLUMNS)}")
    readings = read_clinical_table(path)  # any encoding/delimiter a spreadsheet wrote; every cell as text
    missing = [c for c in READING_COLUMNS if c not in readings.columns]
    if missing:
        raise CohortError(f"{path}: missing columns {missing} (found {list(readings.columns)})")
    scores = pd.to_numeric(readings["score"].str.strip().replace("", np.nan), errors="coerce")
    readings.attrs["invalid_scores"] = int((scores.isna() & readings["score"].str.strip().ne("")).sum())
    readings["score"] = scores.astype("Int64")
    return readings


# --------------------------------------------------------------------------- imaging inventory


def _load_imaging_studies(repository: Path, dictionary) -> tuple[pd.DataFrame, pd.DataFrame]:
    path = repository / "clinical" / "imaging_studies.csv"
    columns = ["subjid", "img_study_uid", "img_modality", "img_day", "img_timepoint"]
    if not path.is_file():
        return pd.DataFrame(columns=columns), pd.DataFrame(
            columns=["row", "subjid", "variable", "problem", "value", "detail", "severity"]
        )
    raw = read_clinical_table(path)
    report = validate_clinical(raw, dictionary, forms=[IMAGING_FORM, "presentation"], site_column=None)
    report = report[~report["problem"].isin(["missing_column"]) | report["variable"].str.startswith("img_")]
    report = report[report["problem"] != "duplicate_id"]  # several studies per patient is expected here
    typed = coerce_to_dictionary(raw, dictionary, forms=[IMAGING_FORM, "presentation"])
    keep = [c for c in columns if c in typed.columns]
    return typed[keep], report.reset_index(drop=True)


def _primary_modality(modalities: str) -> str:
    present = [m for m in str(modalities).split(",") if m]
    for preferred in ("CT", "DX", "CR"):
        if preferred in present:
            return preferred
    return present[0] if present else ""


def _study_inventory(scan, imaging_studies: pd.DataFrame) -> pd.DataFrame:
    """One row per DICOM study: patient, modality, selected series, day from admission."""
    studies = scan.studies.rename(columns={"patient_id": ID}).copy()
    studies["modality"] = studies["modalities"].map(_primary_modality)
    if not imaging_studies.empty:
        listed = imaging_studies.rename(columns={"img_study_uid": "study_uid", ID: "listed_subjid"})
        studies = studies.merge(listed.drop_duplicates("study_uid"), on="study_uid", how="left")
    else:
        for column in ("listed_subjid", "img_modality", "img_day", "img_timepoint"):
            studies[column] = pd.NA
    return studies


def _patient_imaging(inventory: pd.DataFrame, scan) -> pd.DataFrame:
    """Aggregate the study inventory to one row per patient (vectorised: 20,000 patients in well under a second).

    Baseline CT study: the patient's first study (inventory order) with ``img_timepoint == 1``, else the CT study
    with the smallest day from admission (then study date; missing last; ties in inventory order). Follow-ups are
    the patient's other CT studies. The columns and their order are those of one dict per patient
    (``n_followup_ct`` before the baseline columns when the first patient has no baseline).
    """
    inv = inventory[inventory[ID].notna()]
    if inv.empty:
        return pd.DataFrame([])
    patients = inv.groupby(ID, sort=True).size().index
    out = pd.DataFrame({ID: patients})
    is_ct = (inv["modality"] == "CT").to_numpy(dtype=bool)
    out["n_ct_studies"] = out[ID].map(inv[is_ct].groupby(ID).size()).fillna(0).astype("int64")
    is_cxr = inv["modality"].isin(["CR", "DX"]).to_numpy(dtype=bool)
    out["n_radiographs"] = out[ID].map(inv[is_cxr].groupby(ID).size()).fillna(0).astype("int64")

    ct = inv[is_ct].copy()
    ct["order_day"] = pd.to_numeric(ct["img_day"], errors="coerce")
    flagged = (ct["img_timepoint"] == 1).fillna(False).to_numpy(dtype=bool) if len(ct) else np.zeros(0, bool)
    first_flagged = ct[flagged].drop_duplicates(ID, keep="first")
    rest = ct[~ct[ID].isin(first_flagged[ID])]
    rest = rest.sort_values(["order_day", "study_date"], na_position="last", kind="stable")
    baseline = pd.concat([first_flagged, rest.drop_duplicates(ID, keep="first")]).set_index(ID)
    has_baseline = out[ID].isin(baseline.index).to_numpy()

    uid = out[ID].map(baseline["selected_series_uid"])
    uid = uid.where(uid.map(lambda v: isinstance(v, str)), pd.NA).where(has_baseline, np.nan)
    series = scan.series if not scan.series.empty else pd.DataFrame({"series_uid": []})
    series = series[~series["series_uid"].duplicated(keep=False)].set_index("series_uid")
    info_columns = [
        (src, dst)
        for src, dst in (
            ("n_slices", "baseline_ct_n_slices"),
            ("slice_thickness", "baseline_ct_slice_thickness_mm"),
            ("kernel", "baseline_ct_kernel"),
        )
        if src in series.columns
    ]
    has_info = (has_baseline & uid.isin(series.index).to_numpy()) if info_columns else np.zeros(len(out), bool)

    columns: dict[str, pd.Series] = {}
    columns["baseline_ct_study_uid"] = out[ID].map(baseline["study_uid"]).astype(object)
    columns["baseline_ct_series_uid"] = uid.astype(object)
    columns["baseline_ct_day"] = out[ID].map(baseline["order_day"]).astype(float)
    columns["baseline_ct_selection"] = out[ID].map(baseline["selection_reason"]).astype(object)
    for src, dst in info_columns:
        columns[dst] = uid.map(series[src].astype(object)).astype(object).where(has_info, np.nan)
    base_study = ct[ID].map(baseline["study_uid"])
    followups = ct[base_study.notna().to_numpy() & (ct["study_uid"] != base_study).fillna(True).to_numpy(dtype=bool)]
    n_follow = out[ID].map(followups.groupby(ID).size()).fillna(0).astype("int64")
    last_day = out[ID].map(followups.groupby(ID)["order_day"].max()).astype(float)
    columns["n_followup_ct"] = n_follow
    columns["last_followup_ct_day"] = last_day.where(has_baseline, np.nan)

    # column order of the per-patient dicts this replaces: keys in order of first appearance over the patients
    order = [ID, "n_ct_studies", "n_radiographs"]
    full = ["baseline_ct_study_uid", "baseline_ct_series_uid", "baseline_ct_day", "baseline_ct_selection"]
    signatures = pd.DataFrame({"b": has_baseline, "i": has_info}).drop_duplicates()
    for b, i in signatures.itertuples(index=False):
        keys = (
            [*full, *(dst for _, dst in info_columns if i), "n_followup_ct", "last_followup_ct_day"]
            if b
            else ["n_followup_ct"]
        )
        order += [k for k in keys if k not in order]
    for key in order[3:]:
        out[key] = columns[key].to_numpy()
    # object columns as a list-of-dicts construction would have typed them
    return pd.DataFrame(out[order].to_dict("records"))


def identifier_columns(raw: pd.DataFrame, dictionary, forms=PATIENT_FORMS) -> dict[str, str]:
    """Columns of a clinical export that are not dictionary variables and look like direct identifiers.

    Returns ``{column: kind}`` (see :func:`kicc_analysis.privacy.classify_column`); a column whose
    header itself holds an identifier is keyed by its name anyway (callers print :func:`column_label`).
    """
    mapping = match_columns(list(raw.columns), dictionary, forms)
    found = {}
    for column, variable in mapping.items():
        if variable is not None:
            continue
        finding = classify_column(str(column), raw[column].tolist())
        if finding is None and scan_text(str(column)):
            finding = scan_text(str(column))[0]
        if finding is not None:
            found[column] = finding.kind
    return found


def column_label(column: str, position: int) -> str:
    """How a dropped column is named in reports: its name, or ``column N`` when the name itself identifies."""
    return f"column {position + 1}" if scan_text(str(column)) else str(column)


def _radiograph_timeline(table: pd.DataFrame, inventory: pd.DataFrame, repository: Path) -> pd.DataFrame:
    """Radiograph timeline per patient (issue 17): ``baseline_cxr_day`` (first CR/DX study, days from admission),
    ``baseline_cxr_brixia`` and ``worst_cxr_brixia`` (Brixia total 0-18, mean over readers, of the first scored
    radiograph and the highest over the patient's radiographs) from ``readings/radiograph_scores.csv`` when present.
    """
    from kicc_analysis.readings import read_reader_scores, reading_totals

    out = table.copy()
    for column in ("baseline_cxr_day", "baseline_cxr_brixia", "worst_cxr_brixia"):
        out[column] = np.nan
    if inventory.empty or "modality" not in inventory.columns:
        return out
    cxr = inventory[inventory["modality"].isin(["CR", "DX"])][[ID, "study_uid", "img_day"]].copy()
    cxr["img_day"] = pd.to_numeric(cxr["img_day"], errors="coerce")
    first_day = cxr.groupby(ID)["img_day"].min()
    out["baseline_cxr_day"] = out[ID].map(first_day).astype(float)
    path = repository / "readings" / "radiograph_scores.csv"
    if not path.is_file():
        return out
    totals = reading_totals(read_reader_scores(path), "brixia")
    per_study = totals.groupby("study", as_index=False)["score"].mean()
    scored = cxr.merge(per_study, left_on="study_uid", right_on="study", how="inner").dropna(subset=["score"])
    scored = scored.sort_values([ID, "img_day", "study_uid"], na_position="last")
    out["baseline_cxr_brixia"] = out[ID].map(scored.groupby(ID)["score"].first()).astype(float)
    out["worst_cxr_brixia"] = out[ID].map(scored.groupby(ID)["score"].max()).astype(float)
    return out


def _linkage_problems(clinical: pd.DataFrame, inventory: pd.DataFrame, imaging_studies: pd.DataFrame) -> pd.DataFrame:
    """Linkage problems; IDs that are not pseudonyms (a PatientID holding a name or hospital number) are masked."""
    problems: list[dict] = []
    clinical_ids = set(clinical[ID].dropna())
    image_ids = set(inventory[ID].dropna()) if not inventory.empty else set()
    for subjid in sorted(image_ids - clinical_ids):
        n = int((inventory[ID] == subjid).sum())
        problems.append(
            {
                "problem": "images_without_clinical_row",
                "subjid": subjid,
                "study_uid": pd.NA,
                "detail": f"{n} DICOM studies",
            }
        )
    for subjid in sorted(clinical_ids - image_ids):
        problems.append(
            {
                "problem": "clinical_row_without_images",
                "subjid": subjid,
                "study_uid": pd.NA,
                "detail": "no DICOM study found",
            }
        )
    duplicated = clinical[ID][clinical[ID].duplicated(keep="first")]
    for subjid in duplicated.dropna().unique():
        n = int((clinical[ID] == subjid).sum())
        problems.append(
            {
                "problem": "duplicate_pseudonym",
                "subjid": subjid,
                "study_uid": pd.NA,
                "detail": f"{n} clinical rows; first kept, others excluded",
            }
        )
    if not imaging_studies.empty:
        dicom_studies = set(inventory["study_uid"]) if not inventory.empty else set()
        for _, listed in imaging_studies.iterrows():
            if listed["img_study_uid"] not in dicom_studies:
                problems.append(
                    {
                        "problem": "listed_study_not_found",
                        "subjid": listed[ID],
                        "study_uid": listed["img_study_uid"],
                        "detail": "in imaging_studies.csv but not in the DICOM tree",
                    }
                )
        mismatched = inventory[inventory["listed_subjid"].notna() & (inventory["listed_subjid"] != inventory[ID])]
        for _, study in mismatched.iterrows():
            problems.append(
                {
                    "problem": "study_patient_mismatch",
                    "subjid": study[ID],
                    "study_uid": study["study_uid"],
                    "detail": "DICOM PatientID differs from imaging_studies.csv "
                    f"({mask_ids(pd.Series([study['listed_subjid']])).iat[0]})",
                }
            )
        unlisted = inventory[inventory["listed_subjid"].isna()]
        for _, study in unlisted.iterrows():
            problems.append(
                {
                    "problem": "study_not_listed",
                    "subjid": study[ID],
                    "study_uid": study["study_uid"],
                    "detail": "DICOM study missing from imaging_studies.csv (day from admission unknown)",
                }
            )
    linkage = pd.DataFrame(problems, columns=LINKAGE_COLUMNS)
    linkage["subjid"] = mask_ids(linkage["subjid"])
    return linkage


# --------------------------------------------------------------------------- the cohort


def content_hash(table: pd.DataFrame) -> str:
    """A stable content hash of a table (values, column names and dtypes), 16 hex digits."""
    digest = hashlib.sha256()
    digest.update("|".join(f"{c}:{t}" for c, t in table.dtypes.astype(str).items()).encode())
    digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class CohortBuild:
    """Everything :func:`build_cohort` produced.

    Attributes
    ----------
    table : DataFrame
        One row per patient (unique pseudonym), dictionary dtypes, imaging inventory columns.
    validation : DataFrame
        The clinical-table validation report (see :func:`kicc_analysis.dictionary.validate_clinical`).
    linkage : DataFrame
        Linkage problems: images without a clinical row, clinical rows without images,
        duplicate pseudonyms, listed studies not found, …
    flow : DataFrame
        Counts at each inclusion step, with the reason for each exclusion.
    inventory : DataFrame
        One row per DICOM study (patient, modality, selected series, day from admission).
    scan : object
        The repository scan (instances, series, studies, skipped files, selection).
    cohort_version : str
        Content hash of ``table``.
    notes : list of str
        How the clinical table was read (encoding, delimiter, ...) and which columns were dropped.
    dropped_identifiers : list of str
        Clinical columns (not dictionary variables) that look like direct identifiers
        (:mod:`kicc_analysis.privacy`): dropped before typing, so they reach no derived file.
    """

    table: pd.DataFrame
    validation: pd.DataFrame
    linkage: pd.DataFrame
    flow: pd.DataFrame
    inventory: pd.DataFrame
    scan: object
    cohort_version: str
    repository: Path
    snapshot: Path | None = None
    notes: list[str] = field(default_factory=list)
    dropped_identifiers: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """A short plain-text summary (no identifiers beyond pseudonyms, no dates)."""
        lines = [f"cohort_version {self.cohort_version}: {len(self.table)} patients"]
        lines += [f"  {note}" for note in self.notes]
        lines += ["", "Cohort flow:"]
        lines += [
            f"  {r.step:55s} {r.n:6d}" + (f"   (excluded {r.excluded}: {r.reason})" if r.excluded else "")
            for r in self.flow.itertuples()
        ]
        if not self.validation.empty:
            lines += ["", "Clinical table problems:"]
            lines += [
                f"  {r.problem:25s} {r.severity:8s} {r.count:5d}  {r.variables}"
                for r in summarise_report(self.validation).itertuples()
            ]
        if not self.linkage.empty:
            lines += ["", "Linkage problems:"]
            lines += [f"  {k:35s} {v:5d}" for k, v in self.linkage["problem"].value_counts().items()]
        skipped = getattr(self.scan, "skipped", pd.DataFrame())
        if len(skipped):
            lines += ["", f"Files skipped by the scanner: {len(skipped)}"]
            reason_column = "reason" if "reason" in skipped.columns else skipped.columns[-1]
            lines += [
                f"  {k[:70]:70s} {v:5d}"
                for k, v in skipped[reason_column].astype(str).str.split(":").str[0].value_counts().items()
            ]
        return "\n".join(lines)


def _flow(raw: pd.DataFrame, unique: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    steps = [("Rows in the clinical table", len(raw), 0, "")]
    n_unique = len(unique)
    steps.append(("Patients with a unique pseudonym", n_unique, len(raw) - n_unique, "duplicate or missing pseudonym"))
    with_ct = int((table["n_ct_studies"] > 0).sum())
    steps.append(("Patients with at least one CT study", with_ct, n_unique - with_ct, "no CT study in the repository"))
    with_series = int(table["baseline_ct_series_uid"].notna().sum())
    steps.append(
        (
            "Patients with a quantifiable baseline CT series",
            with_series,
            with_ct - with_series,
            "no axial, complete CT series",
        )
    )
    return pd.DataFrame(steps, columns=["step", "n", "excluded", "reason"])


def _parquet_round_trip(table: pd.DataFrame) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(table.reset_index(drop=True).to_parquet(index=False)))


def build_cohort(
    repository: str | Path,
    *,
    workers: int = 2,
    index_dir: str | Path | None = None,
    show_progress: bool | None = None,
    write_snapshot: bool = True,
    scan=None,
) -> CohortBuild:
    """Build the cohort table of a repository (see module docstring for the layout).

    Parameters
    ----------
    repository : path
        Repository folder.
    workers : int
        Processes for the DICOM header scan.
    index_dir : path, optional
        Folder of the incremental scan index (default: the cache folder, see :func:`cache_dir`).
    write_snapshot : bool
        Write ``cohort-<version>.parquet`` to the cache folder.
    scan : RepositoryScan, optional
        Use this scan (of another source, or a synthetic index) instead of scanning ``repository``'s DICOM tree.

    Raises
    ------
    CohortError
        Missing repository or clinical table, or a clinical table without a pseudonym column.
    """
    from kicc_analysis.repository import scan_repository

    repository = Path(repository).resolve()
    dictionary = load_dictionary()
    raw = read_clinical_table(find_clinical_table(repository))
    validation = validate_clinical(raw, dictionary, forms=PATIENT_FORMS)
    identifiers = identifier_columns(raw, dictionary)
    typed = coerce_to_dictionary(raw.drop(columns=list(identifiers)), dictionary, forms=PATIENT_FORMS)
    notes = [f"clinical table read: {describe_read(raw)}"]
    if identifiers:
        positions = {c: i for i, c in enumerate(raw.columns)}
        notes.append(
            f"{len(identifiers)} clinical columns dropped as direct identifiers (never written to any derived file): "
            + ", ".join(f"{column_label(c, positions[c])} ({kind})" for c, kind in identifiers.items())
        )
    if ID not in typed.columns:
        raise CohortError(f"clinical table of {repository} has no '{ID}' (pseudonymous patient id) column")
    unique = typed[typed[ID].notna() & ~typed[ID].duplicated(keep="first")].copy()

    imaging_studies, imaging_report = _load_imaging_studies(repository, dictionary)
    if not imaging_report.empty:
        validation = pd.concat(
            [validation, imaging_report.assign(variable="imaging_studies:" + imaging_report["variable"].astype(str))],
            ignore_index=True,
        )
    cache = cache_dir(repository)
    if scan is None:
        scan = scan_repository(
            dicom_root(repository), index_dir=index_dir or cache / "index", workers=workers, show_progress=show_progress
        )
    inventory = _study_inventory(scan, imaging_studies)
    patient_imaging = (
        _patient_imaging(inventory, scan) if not inventory.empty else pd.DataFrame({ID: pd.Series(dtype="string")})
    )
    table = unique.merge(patient_imaging, on=ID, how="left")
    table = _radiograph_timeline(table, inventory, repository)  # issue 17: radiograph timeline and Brixia scores
    for column in ("n_ct_studies", "n_radiographs", "n_followup_ct"):
        table[column] = table.get(column, pd.Series(0, index=table.index)).fillna(0).astype("int64")
    for column in ("baseline_ct_study_uid", "baseline_ct_series_uid", "baseline_ct_selection", "baseline_ct_kernel"):
        table[column] = (
            table[column].astype("string")
            if column in table.columns
            else pd.Series(pd.NA, index=table.index, dtype="string")
        )
    # round-trip through Parquet so the in-memory table has exactly the snapshot's dtypes (and hash)
    table = _parquet_round_trip(table)
    version = content_hash(table)
    table.attrs.update(cohort_version=version, repository=str(repository))
    build = CohortBuild(
        table=table,
        validation=validation,
        linkage=_linkage_problems(typed, inventory, imaging_studies),
        flow=_flow(raw, unique, table),
        inventory=inventory,
        scan=scan,
        cohort_version=version,
        repository=repository,
        notes=notes,
        dropped_identifiers=[column_label(c, list(raw.columns).index(c)) for c in identifiers],
    )
    if write_snapshot:
        cache.mkdir(parents=True, exist_ok=True)
        build.snapshot = cache / f"cohort-{version}.parquet"
        table.to_parquet(build.snapshot, index=False)
    return build


def load_cohort(repository: str | Path, *, workers: int = 2, show_progress: bool | None = None) -> pd.DataFrame:
    """Return the cohort table of ``repository`` (one row per patient).

    The table's ``attrs`` carry ``cohort_version`` (content hash), ``repository`` and
    ``snapshot`` (the Parquet file written). Re-running on an unchanged repository is
    fast (the DICOM index is incremental) and gives the same ``cohort_version``.
    """
    build = build_cohort(repository, workers=workers, show_progress=show_progress)
    table = build.table
    table.attrs["snapshot"] = str(build.snapshot) if build.snapshot else None
    return table


def read_snapshot(path: str | Path) -> pd.DataFrame:
    """Read a cohort snapshot written by :func:`build_cohort` and check its content hash."""
    table = pd.read_parquet(path)
    version = content_hash(table)
    expected = Path(path).stem.removeprefix("cohort-")
    if expected != version:
        raise CohortError(f"cohort snapshot {path} has content hash {version}, not the {expected} its name says")
    table.attrs["cohort_version"] = version
    return table


def ct_series_jobs(build: CohortBuild, *, series_cache_bytes: int | None = None) -> pd.DataFrame:
    """The CT series to quantify: ``subjid, series_uid, timepoint, img_day, source`` (list of files, or a
    :class:`~kicc_analysis.repository.dicomweb.DicomwebSeries` for a scan of a DICOMweb server, fetched on demand
    into a local cache bounded by ``series_cache_bytes``)."""
    from kicc_analysis.repository.dicomweb import DEFAULT_CACHE_BYTES, DicomwebScan, series_source
    from kicc_analysis.repository.scan import series_file_lists

    inventory = build.inventory
    ct = inventory[
        (inventory["modality"] == "CT") & inventory["selected_series_uid"].notna() & inventory[ID].isin(build.table[ID])
    ]
    baseline_uids = set(build.table["baseline_ct_study_uid"].dropna())
    jobs = pd.DataFrame(
        {
            ID: ct[ID].to_numpy(),
            "study_uid": ct["study_uid"].to_numpy(),
            "series_uid": ct["selected_series_uid"].to_numpy(),
            "timepoint": np.where(ct["study_uid"].isin(baseline_uids), "baseline", "follow-up"),
            "img_day": pd.to_numeric(ct["img_day"], errors="coerce").to_numpy(),
        }
    )
    if isinstance(build.scan, DicomwebScan):  # fetched on demand (WADO-RS) into a bounded local cache
        bound = series_cache_bytes or DEFAULT_CACHE_BYTES
        jobs["source"] = [series_source(build.scan, uid, max_bytes=bound) for uid in jobs["series_uid"]]
    else:
        lists = series_file_lists(build.scan, jobs["series_uid"])
        jobs["source"] = [[str(p) for p in lists[uid]] for uid in jobs["series_uid"]]
    return jobs.sort_values([ID, "img_day"]).reset_index(drop=True)
