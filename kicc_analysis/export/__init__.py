"""AI-ready export of the cohort: nnU-Net v2, MONAI datalist, radiographs + CSV; patient-level splits; datasheet.

:func:`export_dataset` builds the cohort (:func:`kicc_analysis.cohort.build_cohort`), lists the cases of a task,
splits the **patients** (:func:`~kicc_analysis.export.splits.patient_splits`), checks that no patient, study or series
lies in two splits, writes the images (reusing ``load_ct``, ``load_radiograph``, ``segment_lungs``,
``load_lung_mask``) and the format's index files, then ``cases.csv``, ``split_report.csv``, ``folds.csv``,
``DATASHEET.md`` and ``MANIFEST.csv`` (SHA-256 of every file). Every text file passes the identifier detector
(:mod:`kicc_analysis.privacy`). The same repository, task, format and seed give byte-identical files.

Tasks: ``lungs`` (CT, labels 1 right / 2 left lung), ``lobes`` (CT, labels 1 RUL ... 5 LLL, external masks),
``opacity`` (CT, labels 1 lung / 2 GGO / 3 consolidation from the quantification), ``cxr-severity`` (every
radiograph, target Brixia total) and the outcome variants (one case per patient, targets oxygen / ICU / ventilation /
death): ``outcome`` (baseline radiograph + Brixia), ``outcome-ct`` (baseline CT + its quantification),
``outcome-clinical`` (admission clinical variables, no image) and ``outcome-combined`` (all of them). Formats:
``nnunet`` (CT segmentation tasks), ``monai`` (all), ``images-csv`` (every task but CT segmentation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kicc_analysis.export import images_csv, monai, nnunet
from kicc_analysis.export.cases import (
    CT_FEATURES,
    CT_TASKS,
    CXR_TASKS,
    OUTCOME_TASKS,
    SEGMENTATION_TASKS,
    TASK_LABELS,
    TASKS,
    ExportError,
    add_scanner,
    clinical_features,
    clinical_targets,
    ct_cases,
    ct_features,
    cxr_cases,
    number_cases,
    patient_cases,
)
from kicc_analysis.export.manifest import write_csv, write_image, write_json, write_manifest, write_text
from kicc_analysis.export.splits import (
    SplitError,
    check_no_leakage,
    kfold_splits,
    leave_one_site_out,
    patient_splits,
    split_report,
)

FORMATS = ("nnunet", "monai", "images-csv")
__all__ = [
    "FORMATS",
    "OUTCOME_TASKS",
    "SEGMENTATION_TASKS",
    "TASKS",
    "ExportError",
    "ExportResult",
    "SplitError",
    "check_no_leakage",
    "export_dataset",
    "kfold_splits",
    "leave_one_site_out",
    "patient_splits",
    "split_report",
]


@dataclass
class ExportResult:
    """What :func:`export_dataset` wrote.

    Attributes
    ----------
    out : Path
        The export folder.
    cases : DataFrame
        One row per case: ``case_id, subjid, split, timepoint, img_day, image, label, mask_source`` and targets
        (also in ``cases.csv``; study/series UIDs are kept here in memory only).
    report : DataFrame
        The split report (``split_report.csv``).
    manifest : DataFrame
        ``path, bytes, sha256`` of every file (``MANIFEST.csv``).
    problems : DataFrame
        ``case_id, problem``: cases that could not be exported, or exported with a missing input (never silently
        dropped).
    cohort_version : str
    inputs : list of str
        The model inputs of the task besides the image (columns of ``cases.csv`` / ``targets.csv`` / the datalist),
        e.g. ``["brixia", "demog_age", "demog_sex"]`` for ``outcome``; the other value columns are targets.
    """

    out: Path
    cases: pd.DataFrame
    report: pd.DataFrame
    manifest: pd.DataFrame
    problems: pd.DataFrame
    cohort_version: str
    inputs: list[str] = field(default_factory=list)


def _check_combination(export_format: str, task: str) -> None:
    if export_format not in FORMATS:
        raise ExportError(f"export: format must be one of {', '.join(FORMATS)}, found '{export_format}'")
    if task not in TASKS:
        raise ExportError(f"export: task must be one of {', '.join(TASKS)}, found '{task}'")
    if export_format == "nnunet" and task not in SEGMENTATION_TASKS:
        raise ExportError(f"export: nnunet is a segmentation format; task '{task}' is not (use monai or images-csv)")
    if export_format == "images-csv" and task in SEGMENTATION_TASKS:
        raise ExportError(
            f"export: images-csv holds images with a table of targets; task '{task}' is a CT segmentation task "
            "(use nnunet or monai)"
        )


def export_dataset(
    repository: str | Path,
    out: str | Path,
    *,
    export_format: str = "nnunet",
    task: str = "lungs",
    seed: int = 19,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    stratify: str | None = "outco_outcome",
    k_folds: int = 5,
    baseline_only: bool = False,
    mask_source: str = "classical",
    mask_dir: str | Path | None = None,
    image_format: str = "png",
    workers: int = 2,
    show_progress: bool | None = None,
    build=None,
) -> ExportResult:
    """Export one task of a repository in one format (see the module docstring).

    Parameters
    ----------
    repository : path
        The repository (clinical table, ``dicom/``, ``readings/``); it is only read.
    out : path
        The export folder (created; must be empty or absent).
    export_format : str
        ``nnunet``, ``monai`` or ``images-csv``.
    task : str
        ``lungs``, ``lobes``, ``opacity`` (CT segmentation), ``cxr-severity``, or an outcome variant: ``outcome``
        (baseline radiograph + Brixia), ``outcome-ct`` (baseline CT + its quantification), ``outcome-clinical``
        (admission clinical variables, no image), ``outcome-combined`` (baseline radiograph + Brixia + baseline CT
        quantification + clinical variables).
    seed : int
        Seed of the patient-level split and the folds.
    fractions : tuple of 3 floats
        Shares of patients in train, validation, test. Outcome tasks split every patient of the cohort (and keep
        those with a case), so a patient has the same split and fold in every outcome variant; the other tasks
        split the patients that have a case.
    stratify : str or None
        Cohort column stratified on together with the site (default ``outco_outcome``).
    k_folds : int
        Number of patient-level cross-validation folds over train + validation (``folds.csv``).
    baseline_only : bool
        Keep only each patient's baseline CT series / radiograph.
    mask_source : str
        ``classical`` or ``external`` (then ``mask_dir`` holds ``<series UID>.nii.gz`` or a TotalSegmentator
        folder ``<series UID>/`` per CT series). For ``outcome-ct`` / ``outcome-combined`` the lungs of the
        baseline CT quantification (series without an external mask use the classical segmentation, as
        :func:`kicc_analysis.pipeline.quantify_cohort` does).
    image_format : str
        ``png`` or ``nifti`` for radiographs in ``images-csv`` (CT images are always NIfTI).
    workers : int
        Processes for the DICOM scan and the baseline CT quantification.
    build : CohortBuild, optional
        An already built cohort of ``repository`` (:func:`kicc_analysis.cohort.build_cohort`); default: built here.

    Raises
    ------
    ExportError
        Unknown task / format / mask source, non-empty ``out``, no exportable case.
    SplitError
        A patient, study or series would be in two splits.
    """
    from kicc_analysis import __version__
    from kicc_analysis.cohort import build_cohort
    from kicc_analysis.export import datasheet
    from kicc_analysis.export.images import as_int16, ct_label, radiograph_image
    from kicc_analysis.imaging import load_ct
    from kicc_analysis.progress import progress_bar

    _check_combination(export_format, task)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"export: output folder {out} is not empty (expected an empty or new folder)")
    if image_format not in images_csv.IMAGE_ENDINGS:
        raise ExportError(f"export: image format must be png or nifti, found '{image_format}'")
    if build is None:
        build = build_cohort(repository, workers=workers, show_progress=show_progress, write_snapshot=False)
    cohort = build.table
    segmentation = task in SEGMENTATION_TASKS
    image_kind = "ct" if task in CT_TASKS else "cxr" if task in CXR_TASKS else None
    if image_kind == "ct":
        cases = ct_cases(build, task)
    elif image_kind == "cxr":
        cases = cxr_cases(build, task)
    else:
        cases = patient_cases(build)
    if cases.empty:
        raise ExportError(f"export: the repository has no case for task '{task}'")
    if baseline_only:
        cases = cases[cases["timepoint"] == "baseline"]
    cases = number_cases(add_scanner(cases, build))
    problems = []
    if mask_source not in ("classical", "external"):
        raise ExportError(f"export: mask source must be 'classical' or 'external', found '{mask_source}'")
    if segmentation and mask_source == "external" and mask_dir is not None:
        from kicc_analysis.export.images import external_mask_path

        has_mask = [external_mask_path(Path(mask_dir), uid) is not None for uid in cases["series_uid"]]
        problems += [
            {"case_id": case, "problem": "no external mask for the series in the mask folder"}
            for case, ok in zip(cases["case_id"], has_mask, strict=True)
            if not ok
        ]
        cases = cases[has_mask].reset_index(drop=True)  # splits are made on exportable cases only
        if cases.empty:
            raise ExportError(f"export: no CT series of task '{task}' has a mask in {mask_dir}")
    patients = cohort[cohort["subjid"].isin(cases["subjid"])]
    # outcome variants split the whole cohort, so that a patient is in the same split (and fold) in every variant
    # and models on different inputs can be compared on the same test patients; other tasks split their own patients
    population = cohort if task in OUTCOME_TASKS else patients
    assignment = patient_splits(population, fractions=fractions, seed=seed, stratify=stratify)
    training = population[population["subjid"].isin(assignment.loc[assignment["split"] != "test", "subjid"])]
    folds = kfold_splits(training, k=k_folds, seed=seed, stratify=stratify) if len(training) >= k_folds else None
    assignment = assignment[assignment["subjid"].isin(patients["subjid"])]
    if folds is not None:
        folds = folds[folds["subjid"].isin(patients["subjid"])]
    cases = cases.merge(assignment[["subjid", "split"]], on="subjid", how="left")
    check_no_leakage(cases)
    targets = clinical_targets(cohort)
    cases = cases.merge(targets, on="subjid", how="left")
    target_columns = [c for c in targets.columns if c not in ("subjid", "kicc_site", "outco_outcome")]
    inputs = ["brixia"] if image_kind == "cxr" else []
    if task in ("outcome-ct", "outcome-combined"):
        features, failed = ct_features(build, mask_source, mask_dir, workers=workers, show_progress=show_progress)
        cases = cases.merge(features, on="subjid", how="left")
        case_of = cases.drop_duplicates("subjid").set_index("subjid")["case_id"]
        problems += [
            {"case_id": case_of[subjid], "problem": problem}
            for subjid, problem in zip(failed["subjid"], failed["problem"], strict=True)
            if subjid in case_of.index
        ]
        inputs += list(CT_FEATURES)
    if task in ("outcome-clinical", "outcome-combined"):
        clinical = clinical_features(cohort)
        clinical = clinical[["subjid", *[c for c in clinical.columns if c not in cases.columns]]]
        cases = cases.merge(clinical, on="subjid", how="left")
        inputs += [c for c in clinical_features(cohort).columns if c != "subjid"]
    elif task in OUTCOME_TASKS:
        inputs += [c for c in ("demog_age", "demog_sex") if c in cases.columns]
    quality = ["ct_low_confidence"] if "ct_low_confidence" in cases else []  # a QA flag, neither input nor target
    target_columns = [*inputs, *quality, *[c for c in target_columns if c not in inputs]]
    if folds is not None:
        cases = cases.merge(folds[["subjid", "fold"]], on="subjid", how="left")
        cases["fold"] = cases["fold"].astype("Int64")

    if export_format == "nnunet":
        cases = nnunet.paths(cases)
    elif image_kind is None:
        pass  # no image: a table (images-csv) or a datalist of values (monai)
    elif export_format == "monai":
        cases = monai.paths(cases, segmentation=segmentation)
    else:
        cases = images_csv.paths(cases, "nifti" if image_kind == "ct" else image_format)
    if segmentation:
        cases["mask_source"] = mask_source
    elif "ct_mask_source" in cases:
        cases["mask_source"] = cases.pop("ct_mask_source")

    out.mkdir(parents=True, exist_ok=True)
    written = []
    label_sources: dict[str, str] = {}
    mask_folder = Path(mask_dir) if mask_dir is not None else None
    for row in progress_bar(cases.itertuples(index=False), total=len(cases), desc="export", show=show_progress):
        try:
            if image_kind == "ct":
                hu = load_ct(row.source)
                if segmentation:
                    label, label_sources[row.case_id] = ct_label(hu, task, mask_source, mask_folder, row.series_uid)
                    write_image(label, out / row.label)
                write_image(as_int16(hu), out / row.image)
            elif image_kind == "cxr":
                write_image(radiograph_image(row.source), out / row.image)
            written.append(row.case_id)
        except (ExportError, SplitError):
            raise
        except Exception as error:  # noqa: BLE001 -- one bad series never stops the export; reported
            problems.append({"case_id": row.case_id, "problem": f"{type(error).__name__}: {str(error)[:200]}"})
    problem_table = pd.DataFrame(problems, columns=["case_id", "problem"])
    cases = cases[cases["case_id"].isin(written)].reset_index(drop=True)
    if segmentation:
        cases["label_source"] = cases["case_id"].map(label_sources)
    if cases.empty:
        raise ExportError(f"export: no case of task '{task}' could be exported ({len(problem_table)} problems)")

    known = [*cases["study_uid"].dropna().astype(str), *cases["series_uid"].dropna().astype(str)]
    labels = TASK_LABELS.get(task, {})
    name = f"KICC19_{task.replace('-', '_')}"
    description = f"KICC-19 {task} export (cohort_version {build.cohort_version}, seed {seed})"
    if export_format == "nnunet":
        write_json(
            nnunet.dataset_json(cases, labels, name=name, description=description, licence=datasheet.LICENCE),
            out / "dataset.json",
            known_values=known,
        )
        if folds is not None:
            write_json(nnunet.splits_final(cases), out / "splits_final.json", known_values=known)
    elif export_format == "monai":
        data = monai.datalist(cases, target_columns)
        data.update(
            {"name": name, "description": description, "cohort_version": build.cohort_version}
            | ({"labels": {str(v): k for k, v in labels.items()}} if segmentation else {})
            | ({"inputs": inputs} if inputs else {})
        )
        write_json(data, out / "datalist.json", known_values=known)
    else:
        write_csv(images_csv.targets_table(cases, target_columns), out / "targets.csv", known_values=known)

    public = ["case_id", "subjid", "split", "timepoint", "img_day", *(["image"] if "image" in cases else [])]
    public += ["label", "label_source"] if segmentation else []
    public += ["mask_source"] if "mask_source" in cases else []
    public += [c for c in ("fold", *target_columns) if c in cases.columns and c not in public]
    write_csv(cases[public], out / "cases.csv", known_values=known)
    report = split_report(patients, assignment, cases)
    write_csv(report, out / "split_report.csv", known_values=known)
    fold_table = leave_one_site_out(patients).rename(columns={"fold": "loso_site"})
    if folds is not None:
        fold_table = fold_table.merge(
            folds[["subjid", "fold"]].rename(columns={"fold": "kfold"}), on="subjid", how="left"
        )
        fold_table["kfold"] = fold_table["kfold"].astype("Int64")
    fold_table = fold_table.merge(assignment[["subjid", "split"]], on="subjid")
    write_csv(fold_table, out / "folds.csv", known_values=known)
    if len(problem_table):
        write_csv(problem_table, out / "problems.csv", known_values=known)
    text = datasheet.render(
        task=task,
        export_format=export_format,
        cohort=patients,
        cases=cases,
        report=report,
        agreement=datasheet.brixia_agreement(build.repository),
        cohort_version=build.cohort_version,
        seed=seed,
        fractions=fractions,
        mask_source=(
            mask_source
            if segmentation
            else f"{mask_source} (lungs of the baseline CT quantification)"
            if "mask_source" in cases
            else "none (no CT in this task)"
        ),
        inputs=inputs,
        package_version=__version__,
    )
    write_text(text, out / "DATASHEET.md", known_values=known)
    manifest = write_manifest(out, known_values=known)
    return ExportResult(
        out=out,
        cases=cases,
        report=report,
        manifest=manifest,
        problems=problem_table,
        cohort_version=build.cohort_version,
        inputs=inputs,
    )
