"""``DATASHEET.md`` after Gebru et al., "Datasheets for Datasets" (Communications of the ACM 64(12), 2021).

Generated from the cohort and the export: motivation, composition (patients, studies, sites per split),
collection, preprocessing, labels (sources and their inter-reader agreement from :mod:`kicc_analysis.agreement`),
known biases (sites, scanners, missing values), uses, distribution (licence) and maintenance, with the
``cohort_version`` the export was made from. Only counts, rates and pseudonym-free text: checked by the identifier
detector like every exported text file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LICENCE = (
    "Images and clinical data: the KICC-19 data use agreement of the contributing repository (research use, no "
    "re-identification, no redistribution outside the agreement). Export code: the kicc-analysis licence."
)


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(none)\n"
    columns = list(frame.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame.itertuples(index=False):
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def brixia_agreement(repository: Path) -> pd.DataFrame:
    """ICC of the Brixia total between radiograph readers (empty when the repository has no reader scores)."""
    from kicc_analysis.agreement.reader_scores import score_agreement
    from kicc_analysis.readings.scores import read_reader_scores

    path = Path(repository) / "readings" / "radiograph_scores.csv"
    if not path.is_file():
        return pd.DataFrame()
    try:
        table = score_agreement(read_reader_scores(path), "brixia", items=[], totals=["total"])
    except Exception as error:  # noqa: BLE001 -- reported in the datasheet, never stops the export
        return pd.DataFrame({"item": ["total"], "coefficient": [f"not computed: {type(error).__name__}"]})
    table = table[table["coefficient"].isin(["icc", "krippendorff_alpha"])]
    return table[["item", "coefficient", "setting", "estimate", "ci_low", "ci_high", "n"]].reset_index(drop=True)


def render(
    *,
    task: str,
    export_format: str,
    cohort: pd.DataFrame,
    cases: pd.DataFrame,
    report: pd.DataFrame,
    agreement: pd.DataFrame,
    cohort_version: str,
    seed: int,
    fractions: tuple[float, float, float],
    mask_source: str,
    package_version: str,
    inputs: list[str] | None = None,
) -> str:
    """The datasheet text (Markdown)."""
    exported = cohort[cohort["subjid"].isin(cases["subjid"])]
    missing = exported.drop(columns=["subjid"]).isna().mean().sort_values(ascending=False)
    missing = missing[missing > 0].head(10)
    sites = (
        exported["kicc_site"].astype("string").value_counts().sort_index() if "kicc_site" in exported else pd.Series()
    )
    largest = float(sites.max() / sites.sum()) if len(sites) else np.nan
    per_split = cases.groupby("split").agg(cases=("case_id", "size"), patients=("subjid", "nunique")).reset_index()
    lines = [
        f"# Datasheet: KICC-19 export, task `{task}`, format `{export_format}`",
        "",
        'Structured after Gebru et al., "Datasheets for Datasets" (Commun. ACM 64(12):86-92, 2021).',
        "",
        f"- cohort_version: `{cohort_version}`",
        f"- kicc-analysis version: {package_version}",
        f"- split seed: {seed}; target fractions train/validation/test: {fractions[0]}/{fractions[1]}/{fractions[2]}",
        "",
        "## Motivation",
        "The Korean Imaging Cohort of COVID-19 (KICC-19) was assembled so that researchers can develop and validate "
        "algorithms for early and accurate detection and prognosis of COVID-19 on chest CT and radiographs. This "
        "export turns one task of the cohort into files a training framework reads, with patient-level splits.",
        "",
        "## Composition",
        f"{len(cases)} cases from {cases['subjid'].nunique()} patients ({len(sites)} sites). One case is one "
        + ("CT series." if task in ("lungs", "lobes") else "radiograph study."),
        "",
        _table(per_split),
        "Balance per split (split report; rates are shares of patients with the event among those with a known value):",
        "",
        _table(report),
        "Every study of a patient is in the split of that patient; the export checked that no patient, study or "
        "series appears in two splits.",
        "",
        "## Collection process",
        "Images were acquired in routine care at the contributing hospitals and submitted as DICOM; clinical "
        "variables follow the KICC-19 data dictionary (ISARIC-based). Days are counted from admission; no dates "
        "are exported.",
        "",
        "## Preprocessing",
        "- CT: `kicc_analysis.imaging.load_ct` (HU, padding replaced, LPS), stored as int16 HU NIfTI (NIfTI stores "
        "the grid in RAS; SimpleITK and nibabel read back the same physical geometry).",
        "- Radiographs: `kicc_analysis.radiography.load_radiograph` (Modality/VOI LUT, polarity), display values "
        "0-1 stored as 16-bit 0-65535.",
        f"- Masks: `{mask_source}` (`classical` = `kicc_analysis.segmentation.segment_lungs`, weight-free; "
        "`external` = masks read by `kicc_analysis.segmentation.load_lung_mask`); the source is in `cases.csv`.",
        *(
            [f"- Label source (`label_source` in `cases.csv`): {'; '.join(sorted(set(cases['label_source'])))}."]
            if "label_source" in cases
            else []
        ),
        *(
            [
                "- Opacity labels (task `opacity`): 1 lung without opacity, 2 ground-glass opacity, 3 consolidation "
                "= the voxel-wise opacity labels of the cohort's CT quantification "
                "(`kicc_analysis.quantification.segment_opacities`: default HU bins, vessels removed) inside the "
                "lung mask, computed on the float HU of `load_ct`; label counts x voxel volume equal the "
                "quantification's `ggo_ml` and `consolidation_ml`. They are an algorithm's output, not a reader's "
                "outline."
            ]
            if task == "opacity"
            else []
        ),
        "- No DICOM header beyond the geometry is exported; patients appear only by pseudonym.",
        "",
        "## Labels and their agreement",
        "Radiograph severity: Brixia total (0-18), mean over readers (`kicc_analysis.readings`). Inter-reader "
        "agreement on the total (`kicc_analysis.agreement.score_agreement`):",
        "",
        _table(agreement),
        "Outcomes (oxygen, ICU, invasive ventilation, death) come from the clinical case report forms; 'Unknown' "
        "(99) is exported as missing.",
        *(
            [
                "",
                f"Model inputs of task `{task}` besides the image: {', '.join(f'`{c}`' for c in inputs)}. Baseline "
                "= each patient's first study of the modality: the radiograph with the fewest days from admission "
                "(ties by study UID); the CT study flagged as timepoint 1 in the clinical table, else the earliest "
                "(`kicc_analysis.cohort.build_cohort`). CT features (`ct_*`) are the cohort's quantification of the "
                "baseline series (region `both`; `kicc_analysis.quantification`); clinical inputs are the admission "
                "values (demographics, comorbidities, vital signs, laboratory; 'Unknown' 99 -> missing), never "
                "severity or intervention columns.",
            ]
            if inputs
            else []
        ),
        "",
        "## Known biases and limitations",
        f"- Sites are unequal: the largest site contributes {largest:.0%} of exported patients. Use leave-one-site-"
        "out folds (`loso_site` in `folds.csv`; `kfold` gives patient-level cross-validation folds) to see how a model transfers between hospitals.",
        "- Scanners and reconstruction kernels differ between sites; a site's scanner may occur in one split only.",
        "- Missing values (share of exported patients, top 10):",
        "",
        _table(missing.rename("missing_share").reset_index().rename(columns={"index": "variable"})),
        "## Uses",
        "Intended: research and teaching on COVID-19 imaging (segmentation, severity, prognosis). Not intended: "
        "clinical decision making, re-identification of patients, any use outside the data use agreement.",
        "",
        "## Distribution",
        LICENCE,
        "",
        "## Maintenance",
        "Regenerate the export from the repository with the same seed to reproduce it byte for byte; every file is "
        "listed with its SHA-256 in `MANIFEST.csv`.",
        "",
    ]
    return "\n".join(lines)
