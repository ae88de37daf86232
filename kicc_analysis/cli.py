"""The ``kicc`` command: argument parsing only; every subcommand calls a package function.

Subcommands: ``demo``, ``scan``, ``validate``, ``cohort``, ``quantify``, ``study``, ``dictionary``, ``export``,
``audit``, ``deidentify``, ``deidentify-table``, ``reidentify-table``, ``teach case|book|propose``.
Run ``kicc <subcommand> --help`` for each one's options. Errors raised on purpose by
the package (:class:`kicc_analysis.errors.KiccError`) are printed as one clear line and
give exit status 2; ``kicc validate`` exits 1 when the table has errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from kicc_analysis import __version__
from kicc_analysis.errors import KiccError


def _print_table(table: pd.DataFrame, max_rows: int = 60) -> None:
    with pd.option_context("display.width", 200, "display.max_colwidth", 80, "display.max_rows", max_rows):
        print(table.to_string(index=False) if len(table) <= max_rows else table.head(max_rows).to_string(index=False))
        if len(table) > max_rows:
            print(f"... {len(table) - max_rows} more rows (use --out to write them all)")


def _cmd_demo(args: argparse.Namespace) -> int:
    from kicc_analysis.demo import generate_demo
    from kicc_analysis.demo.generator import DEFAULT_PATIENTS

    manifest = generate_demo(
        args.out,
        n_patients=DEFAULT_PATIENTS if args.patients is None else args.patients,
        seed=args.seed,
        full_resolution=args.full,
        if_missing=args.if_missing,
        deid_problems=args.deid_problems,
    )
    print(f"demo repository in {args.out}: {manifest}")
    return 0


def _dicomweb_scan(url: str, args: argparse.Namespace, index_dir: str | None = None):
    """A DICOMweb scan with the command's options (credentials only from the environment)."""
    from kicc_analysis.repository.dicomweb import scan_dicomweb

    return scan_dicomweb(
        url,
        index_dir=index_dir,
        verify=getattr(args, "verify", False),
        page_size=args.page_size,
        token_env=args.token_env,
        header_env=args.header_env,
        modified_tag=args.modified_tag,
    )


def _cmd_scan(args: argparse.Namespace) -> int:
    from kicc_analysis.repository import is_dicomweb_url, scan_repository

    if is_dicomweb_url(args.root):
        scan = _dicomweb_scan(args.root, args, args.index)
    else:
        scan = scan_repository(
            args.root,
            index_dir=args.index,
            workers=args.workers,
            follow_symlinks=args.follow_symlinks,
            verify=args.verify,
        )
    print(scan.summary() if hasattr(scan, "summary") else scan)
    if args.out:  # identifiers (non-pseudonym PatientIDs, names in folder names...) are written masked
        scan.write_tables(args.out)
        print(f"tables written to {args.out}/")
    return 0


def _check_out_file(out: str | None, error: type[KiccError]) -> None:
    """Refuse an ``--out`` file whose folder does not exist, before any work is done."""
    if out and not Path(out).resolve().parent.is_dir():
        raise error(f"--out {out}: folder {Path(out).resolve().parent} does not exist (expected an existing folder)")


def _cmd_validate(args: argparse.Namespace) -> int:
    from kicc_analysis.clinical_io import describe_read, read_clinical_table
    from kicc_analysis.dictionary import load_dictionary, summarise_report, validate_clinical
    from kicc_analysis.errors import ValidationError

    _check_out_file(args.out, ValidationError)
    dictionary = load_dictionary(args.dictionary)
    table = read_clinical_table(args.table)
    print(f"read {describe_read(table)}")
    report = validate_clinical(
        table,
        dictionary,
        id_column=args.id_column,
        site_column=args.site_column,
        forms=None if args.all_forms else ("presentation", "laboratory", "severity", "outcome"),
    )
    if args.out:
        report.to_csv(args.out, index=False)
    if report.empty:
        print(f"{args.table}: conforms to the data dictionary (no problems found)")
        return 0
    _print_table(report)
    print()
    _print_table(summarise_report(report))
    if args.out:
        print(f"report written to {args.out}")
    return 1 if (report["severity"] == "error").any() else 0


def _cmd_cohort(args: argparse.Namespace) -> int:
    from kicc_analysis.cohort import build_cohort
    from kicc_analysis.errors import CohortError

    _check_out_file(args.out, CohortError)
    scan = _dicomweb_scan(args.dicomweb, args) if args.dicomweb else None
    build = build_cohort(args.repository, workers=args.workers, scan=scan)
    print(build.describe())
    if args.out:
        build.table.to_parquet(args.out)
        print(f"cohort written to {args.out} (cohort_version {build.cohort_version})")
    return 0


def _cmd_quantify(args: argparse.Namespace) -> int:
    from kicc_analysis.cohort import build_cohort
    from kicc_analysis.pipeline import quantify_cohort

    build = None
    if args.dicomweb:
        build = build_cohort(args.repository, workers=args.workers, scan=_dicomweb_scan(args.dicomweb, args))
    run = quantify_cohort(
        args.repository,
        cache=args.cache,
        workers=args.workers,
        masks=args.masks,
        build=build,
        series_cache_bytes=int(args.series_cache_gb * (1 << 30)),
        scheduler=args.scheduler,
    )
    print(run.describe())
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        run.results.to_csv(out / "ct_quantification_by_region.csv", index=False)
        run.failures.to_csv(out / "ct_failures.csv", index=False)
        run.cohort.to_parquet(out / "cohort_with_ct.parquet", index=False)
        print(f"per-series results, failures and the cohort with CT columns written to {out}/")
    return 1 if len(run.failures) else 0


def _cmd_study(args: argparse.Namespace) -> int:
    from kicc_analysis.study import run_study

    run = run_study(args.repository, args.output, notebooks=args.notebooks, stop_on_error=args.stop_on_error)
    for nb in run.notebooks:
        print(f"{nb.name:30s} {'FAILED' if nb.error else 'ok':6s} {nb.seconds:7.1f} s")
    print(f"index: {run.index_html}")
    if run.failed:
        for nb in run.failed:
            print(f"error in {nb.name}: {nb.error}", file=sys.stderr)
        return 1
    return 0


def _cmd_dictionary(args: argparse.Namespace) -> int:
    from kicc_analysis.dictionary import DEFAULT_DICTIONARY_PATH, load_dictionary, render_markdown

    text = render_markdown(load_dictionary(args.dictionary))
    if args.write:
        target = (
            Path(args.dictionary).with_suffix(".md") if args.dictionary else DEFAULT_DICTIONARY_PATH.with_suffix(".md")
        )
        target.write_text(text, encoding="utf-8")
        print(f"written {target}")
    else:
        print(text)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from kicc_analysis.export import export_dataset

    result = export_dataset(
        args.repository,
        args.out,
        export_format=args.format,
        task=args.task,
        seed=args.seed,
        fractions=tuple(args.fractions),
        k_folds=args.folds,
        baseline_only=args.baseline_only,
        mask_source="external" if args.mask_dir else "classical",
        mask_dir=args.mask_dir,
        image_format=args.image_format,
        workers=args.workers,
    )
    print(f"exported {len(result.cases)} cases (cohort_version {result.cohort_version}) to {result.out}")
    _print_table(result.report)
    if len(result.problems):
        print(f"{len(result.problems)} cases not exported (see problems.csv)")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from kicc_analysis.deid.audit import audit_repository
    from kicc_analysis.deid.keys import load_key
    from kicc_analysis.deid.report import write_report

    result = audit_repository(
        args.repository,
        key=load_key(args.key) if args.key else None,
        tables=args.table or (),
        workers=args.workers,
        unmasked=args.unmasked,
        ocr=not args.no_ocr,
        ocr_slices=args.ocr_slices,
    )
    print(result.summary())
    if args.out:
        paths = write_report(result, args.out)
        print(f"report written to {paths['html'].parent}/ (findings.jsonl, findings.csv, review.csv, audit.html)")
    return 1 if result.n_high else 0


def _cmd_deidentify(args: argparse.Namespace) -> int:
    from kicc_analysis.deid.deidentify import deidentify_repository, verify_output

    if args.verify:
        problems = verify_output(args.out, args.key)
        for problem in problems:
            print(problem)
        print(f"verify: {len(problems)} problems" if problems else "verify: the output matches its manifest")
        return 1 if problems else 0
    if not args.site:
        parser_error = "--site is required (S01-S99) unless --verify"
        raise KiccError(parser_error)
    run = deidentify_repository(
        args.input,
        args.out,
        args.key,
        args.site,
        workers=args.workers,
        ocr=False if args.no_ocr else None,
        reid_table=args.reid_table,
    )
    print(run.summary())
    for problem in run.problems:
        print(f"  problem: {problem}")
    return 1 if run.problems else 0


def _cmd_reidentify_table(args: argparse.Namespace) -> int:
    from kicc_analysis.deid.reid import read_reid_table

    table = read_reid_table(args.table, args.key)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False, encoding="utf-8")
        print(f"{len(table)} rows ({table['pseudonym'].nunique()} patients) decrypted to {out}")
    else:  # identifiers are never printed: counts only
        print(f"{len(table)} rows ({table['pseudonym'].nunique()} patients); give --out CSV to write them")
    return 0


def _cmd_deidentify_table(args: argparse.Namespace) -> int:
    from kicc_analysis.deid.deidentify import deidentify_table

    table = deidentify_table(
        args.table, args.out, args.key, site=args.site, id_column=args.id_column, site_column=args.site_column
    )
    print(f"{len(table)} rows, {table.shape[1]} columns written to {args.out}")
    return 0


def _teach_cohort(repository: str, quantify: bool) -> tuple[pd.DataFrame, object]:
    """The cohort table and build; the table with the quantification module's CT columns (cached per series) when
    ``quantify``."""
    from kicc_analysis.cohort import build_cohort

    build = build_cohort(repository, show_progress=False)
    if quantify:
        from kicc_analysis.pipeline import quantify_cohort

        return quantify_cohort(repository, show_progress=False, build=build).cohort, build
    return build.table, build


def _cmd_teach_case(args: argparse.Namespace) -> int:
    from kicc_analysis.teaching import build_case, render_case

    cohort, build = _teach_cohort(args.repository, args.quantify)
    case = build_case(
        cohort,
        args.subject,
        repository=args.repository,
        build=build,
        educator=args.text,
        allow_pseudonym=args.allow_pseudonym,
        overlay=args.overlay,
        stack_step=args.stack_step,
        comparison=not args.no_comparison,
    )
    page = render_case(case, args.out, quiz=not args.no_quiz, lang=args.lang)
    print(f"case page written to {page} ({len(case.key_images)} key images, {len(case.stack)} stack slices)")
    return 0


def _cmd_teach_book(args: argparse.Namespace) -> int:
    from kicc_analysis.errors import CohortError
    from kicc_analysis.teaching.casebook import build_casebook, load_casebook_spec

    spec = load_casebook_spec(args.cases)
    repository = args.repository or spec.get("repository")
    if not repository:
        raise CohortError(f"{args.cases}: no repository (give 'repository:' in the file or --repository)")
    cohort, build = _teach_cohort(repository, bool(spec.get("quantify")))
    index = build_casebook(
        spec,
        args.out,
        cohort=cohort,
        build=build,
        repository=repository,
        quiz=False if args.no_quiz else None,
        lang=args.lang,
    )
    print(f"casebook of {len(spec['cases'])} cases written to {index}")
    return 0


def _cmd_teach_propose(args: argparse.Namespace) -> int:
    from kicc_analysis.teaching import propose_cases

    cohort, _ = _teach_cohort(args.repository, not args.no_quantify)
    readings = Path(args.repository) / "readings" / "reader_scores.csv"
    table = propose_cases(cohort, readings=readings if readings.is_file() else None, top=args.top)
    _print_table(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kicc", description="KICC-19 cohort, CT quantification and statistics.")
    parser.add_argument("--version", action="version", version=f"kicc-analysis {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="generate the embedded demo repository",
        description="Write a deterministic demo repository (DICOM, clinical table, readings, ground truth).",
    )
    p.add_argument("out", help="output folder (must be empty, absent, or a previous demo)")
    p.add_argument(
        "--patients", type=int, default=None, help="number of patients (default 522, the published KICC-19 cohort)"
    )
    p.add_argument("--seed", type=int, default=19, help="random seed (default 19)")
    p.add_argument("--full", action="store_true", help="full 512×512 CT series (slow, large)")
    p.add_argument("--if-missing", action="store_true", help="do nothing when OUT already holds this demo")
    p.add_argument(
        "--deid-problems",
        action="store_true",
        help="plant five de-identification problems for the audit to find (see kicc_analysis.demo.deid_problems)",
    )
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "scan",
        help="index a DICOM tree (headers only, incremental)",
        description="Scan a DICOM tree and print the instance/series/study summary; unreadable files are listed with the reason.",
    )
    p.add_argument(
        "root",
        help="root folder of the DICOM tree, or a DICOMweb service dicomweb+https://host/dicom-web (QIDO-RS; "
        "credentials from $KICC_DICOMWEB_TOKEN or $KICC_DICOMWEB_HEADER)",
    )
    p.add_argument(
        "--index",
        help="folder for the incremental index (default: outside ROOT, in $KICC_CACHE or ~/.cache/kicc-analysis)",
    )
    p.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="walk symlinked folders too (each folder once; default: list them in skipped)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="re-read every header and report files changed without a change of size, mtime or ctime",
    )
    p.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    p.add_argument("--out", help="folder to write instances/series/studies/skipped/selection CSV tables")
    _dicomweb_options(p, with_url=False)
    p.set_defaults(func=_cmd_scan)

    p = sub.add_parser(
        "validate",
        help="check a clinical table against the data dictionary",
        description="Print every problem in a clinical export (CSV/XLSX); exit status 1 when there are errors.",
    )
    p.add_argument("table", help="clinical table (.csv or .xlsx)")
    p.add_argument("--dictionary", help="data dictionary CSV (default: the KICC-19 dictionary)")
    p.add_argument("--id-column", default="subjid", help="pseudonym column (default subjid)")
    p.add_argument(
        "--site-column", default="kicc_site", help="site column for per-site unit checks (default kicc_site)"
    )
    p.add_argument("--all-forms", action="store_true", help="check every form, not only the per-patient ones")
    p.add_argument("--out", help="write the full report to this CSV")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser(
        "cohort",
        help="build the cohort table",
        description="Join the clinical table and the imaging inventory into the cohort table and report linkage problems.",
    )
    p.add_argument("repository", help="repository folder (dicom/, clinical/, readings/)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes for the scan (default 2)")
    p.add_argument("--out", help="write the cohort to this Parquet file")
    _dicomweb_options(p)
    p.set_defaults(func=_cmd_cohort)

    p = sub.add_parser(
        "quantify",
        help="segment lungs and quantify opacity on every selected CT series",
        description="Quantify the cohort's selected CT series in parallel (cached; failures recorded).",
    )
    p.add_argument("--repository", required=True, help="repository folder")
    p.add_argument(
        "--cache",
        help="cache folder (default: outside REPOSITORY, $KICC_CACHE or ~/.cache/kicc-analysis/<name-hash>/quantification)",
    )
    p.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    p.add_argument(
        "--scheduler",
        help="run one task per series on this dask.distributed scheduler (tcp://host:8786; needs the [cluster] "
        "extra); default: $KICC_DASK_SCHEDULER when set, else the local pool of --workers processes; "
        "'local' forces the local pool",
    )
    p.add_argument(
        "--masks",
        help="folder of lung/lobe masks (TotalSegmentator, lungmask, DICOM SEG, label maps), one per series: "
        "MASKS/<SeriesInstanceUID>.nii.gz (or a folder of that name) or MASKS/<series folder relative to the "
        "repository>.nii.gz; series without one use the classical segmentation",
    )
    p.add_argument(
        "--out", help="folder for ct_quantification_by_region.csv, ct_failures.csv and cohort_with_ct.parquet"
    )
    _dicomweb_options(p)
    p.add_argument(
        "--series-cache-gb",
        type=float,
        default=20.0,
        help="with --dicomweb: bound of the local cache of fetched series, GiB (default 20; least recently used "
        "series are evicted)",
    )
    p.set_defaults(func=_cmd_quantify)

    p = sub.add_parser(
        "study",
        help="run every study notebook and write results/",
        description="Execute notebooks/NN_*.py with papermill and write results/index.html.",
    )
    p.add_argument("--repository", required=True, help="repository folder (demo or real)")
    p.add_argument("--output", default="results", help="results folder (default results)")
    p.add_argument("--notebooks", nargs="*", help="only notebooks whose names start with these prefixes (e.g. 01 03)")
    p.add_argument("--stop-on-error", action="store_true", help="stop at the first failing notebook")
    p.set_defaults(func=_cmd_study)

    p = sub.add_parser(
        "dictionary",
        help="render the data dictionary as Markdown",
        description="Print (or --write) the human-readable data dictionary.",
    )
    p.add_argument("--dictionary", help="dictionary CSV (default: the KICC-19 dictionary)")
    p.add_argument("--write", action="store_true", help="write the .md beside the CSV instead of printing")
    p.set_defaults(func=_cmd_dictionary)

    p = sub.add_parser(
        "export",
        help="export a task as an AI training dataset (nnU-Net v2, MONAI datalist, radiographs + CSV)",
        description="Patient-level splits, images, labels, DATASHEET.md and MANIFEST.csv; never identifiers.",
    )
    p.add_argument("--repository", required=True, help="repository folder (only read)")
    p.add_argument("--out", required=True, help="export folder (new or empty)")
    p.add_argument("--format", required=True, choices=["nnunet", "monai", "images-csv"], help="dataset format")
    p.add_argument(
        "--task",
        required=True,
        choices=[
            "lungs",
            "lobes",
            "opacity",
            "cxr-severity",
            "outcome",
            "outcome-ct",
            "outcome-clinical",
            "outcome-combined",
        ],
        help="task: CT segmentation (lungs, lobes, opacity), radiograph severity, or outcome from the baseline "
        "radiograph (outcome), CT, clinical variables only, or all combined",
    )
    p.add_argument("--seed", type=int, default=19, help="split seed (default 19)")
    p.add_argument(
        "--fractions", type=float, nargs=3, default=[0.7, 0.1, 0.2], help="train validation test shares of patients"
    )
    p.add_argument("--folds", type=int, default=5, help="patient-level cross-validation folds (default 5)")
    p.add_argument("--baseline-only", action="store_true", help="only each patient's baseline CT / radiograph")
    p.add_argument(
        "--mask-dir",
        help="external masks, MASK_DIR/<SeriesInstanceUID>.nii.gz or a TotalSegmentator folder of that "
        "name (default: classical lung segmentation)",
    )
    p.add_argument("--image-format", choices=["png", "nifti"], default="png", help="radiograph files (images-csv)")
    p.add_argument("--workers", type=int, default=2, help="processes for the DICOM scan (default 2)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "audit",
        help="audit a repository for identifiers left behind (DICOM headers, names, clinical tables)",
        description="Check every header element against PS3.15 Annex E and the identifier detector; exit status 1 "
        "on any high-severity finding.",
    )
    p.add_argument("repository", help="repository folder (read only)")
    p.add_argument("--out", help="folder for findings.jsonl/.csv, review.csv, summary.txt and audit.html")
    p.add_argument("--key", help="key file for keyed hashes of values (default: a random key for this run)")
    p.add_argument("--table", action="append", help="a clinical export to audit too (repeatable)")
    p.add_argument(
        "--workers", type=int, default=None, help="parallel processes (default: 1 below 1,000 files, else 2)"
    )
    p.add_argument("--unmasked", action="store_true", help="write values unmasked in the report (sensitive!)")
    p.add_argument("--no-ocr", action="store_true", help="skip the burned-in text check")
    p.add_argument(
        "--ocr-slices", type=int, default=3, help="slices OCR'd per CT/MR series (default 3: first, middle, last)"
    )
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser(
        "deidentify",
        help="de-identify a DICOM repository with a secret key",
        description="Basic Profile + options, keyed pseudonyms, UIDs and date offsets; never modifies IN.",
    )
    p.add_argument("input", nargs="?", help="input repository (read only)")
    p.add_argument("out", help="output folder (outside IN)")
    p.add_argument("--key", required=True, help="secret key file (at least 32 bytes; never under OUT)")
    p.add_argument("--site", help="contributing site S01-S99")
    p.add_argument("--verify", action="store_true", help="check OUT against its manifest instead")
    p.add_argument(
        "--workers", type=int, default=None, help="parallel processes (default: 1 below 1,000 files, else 2)"
    )
    p.add_argument("--no-ocr", action="store_true", help="do not read burned-in text (flagged files quarantined)")
    p.add_argument(
        "--reid-table", help="write the encrypted re-identification table to this file (not inside OUT or IN)"
    )
    p.set_defaults(func=_cmd_deidentify)

    p = sub.add_parser(
        "reidentify-table",
        help="decrypt a re-identification table written by kicc deidentify --reid-table",
        description="Decrypt with the key file that wrote it; prints counts only, writes the rows with --out.",
    )
    p.add_argument("table", help="the encrypted table")
    p.add_argument("--key", required=True, help="the key file kicc deidentify used")
    p.add_argument("--out", help="CSV to write the decrypted rows to (they hold identifiers: keep it private)")
    p.set_defaults(func=_cmd_reidentify_table)

    p = sub.add_parser(
        "deidentify-table",
        help="de-identify a clinical export with the same key (pseudonyms equal the DICOM ones)",
        description="Replace local IDs by pseudonyms, drop identifier columns, shift dates, clean free text.",
    )
    p.add_argument("table", help="clinical export (CSV/XLSX)")
    p.add_argument("out", help="output CSV")
    p.add_argument("--key", required=True, help="secret key file")
    p.add_argument("--site", help="site S01-S99 for every row")
    p.add_argument("--site-column", help="column holding each row's site instead of --site")
    p.add_argument("--id-column", default="patient_id", help="local patient ID column (default patient_id)")
    p.set_defaults(func=_cmd_deidentify_table)

    p = sub.add_parser(
        "teach",
        help="teaching cases: one case page, a casebook, or proposed cases",
        description="Self-contained, offline, identifier-checked case pages for educators (docs/teaching.md).",
    )
    teach = p.add_subparsers(dest="teach_command", required=True, metavar="WHAT")
    t = teach.add_parser("case", help="write one case page", description="Write DIR/case.html, figures, manifest.")
    t.add_argument("--repository", required=True, help="repository folder (only read)")
    t.add_argument("--subject", required=True, help="the subject's pseudonym (subjid)")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--text", help="the educator's text: question, options, answer... (YAML or Markdown)")
    t.add_argument("--no-quiz", action="store_true", help="show the answer (default: hidden until revealed)")
    t.add_argument("--lang", choices=["en", "ko"], default="en", help="page language (default en)")
    t.add_argument("--overlay", action="store_true", help="draw the opacity labels on the CT key image")
    t.add_argument("--quantify", action="store_true", help="show the CT quantification (kicc quantify, cached)")
    t.add_argument("--allow-pseudonym", action="store_true", help="show the pseudonym on the page")
    t.add_argument("--stack-step", type=int, default=1, help="keep every n-th slice in the CT stack (default 1)")
    t.add_argument(
        "--no-comparison",
        action="store_true",
        help="leave out the baseline/follow-up comparison figure (default: shown when there are two or more days)",
    )
    t.set_defaults(func=_cmd_teach_case)
    t = teach.add_parser(
        "book", help="write a casebook", description="Write DIR/index.html and one folder per case from CASES.yaml."
    )
    t.add_argument("cases", help="casebook file (YAML: repository, title, cases: [{subject, text}, ...])")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--repository", help="repository folder (default: the file's 'repository')")
    t.add_argument("--no-quiz", action="store_true", help="show the answers")
    t.add_argument("--lang", choices=["en", "ko"], help="page language (default: the file's, else en)")
    t.set_defaults(func=_cmd_teach_book)
    t = teach.add_parser(
        "propose",
        help="propose teaching cases",
        description="Rank patients by CT timepoints, change in opacity and reader disagreement, with reasons.",
    )
    t.add_argument("--repository", required=True, help="repository folder (only read)")
    t.add_argument("--top", type=int, default=10, help="how many (default 10)")
    t.add_argument("--no-quantify", action="store_true", help="do not quantify CT (Brixia change is used instead)")
    t.set_defaults(func=_cmd_teach_propose)
    return parser


def _dicomweb_options(p: argparse.ArgumentParser, with_url: bool = True) -> None:
    """Options of a DICOMweb source (credentials are never options: they come from the environment)."""
    if with_url:
        p.add_argument(
            "--dicomweb",
            metavar="URL",
            help="images from a DICOMweb service dicomweb+https://host/dicom-web instead of REPOSITORY/dicom "
            "(clinical table and readings still from REPOSITORY)",
        )
    p.add_argument("--page-size", type=int, default=500, help="DICOMweb: results per QIDO-RS request (default 500)")
    p.add_argument(
        "--token-env",
        default="KICC_DICOMWEB_TOKEN",
        help="DICOMweb: environment variable holding a bearer token (default KICC_DICOMWEB_TOKEN)",
    )
    p.add_argument(
        "--header-env",
        default="KICC_DICOMWEB_HEADER",
        help="DICOMweb: environment variable holding one 'Name: value' header (default KICC_DICOMWEB_HEADER)",
    )
    p.add_argument(
        "--modified-tag",
        help="DICOMweb: tag (8 hex digits) of a study attribute the server updates on change, if it has one",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kicc`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KiccError as exc:
        print(f"kicc {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
