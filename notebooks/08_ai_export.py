# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: kicc-analysis, language: python, name: python3}
# ---

# %% [markdown]
# # 08 — AI-ready export and a minimal baseline
#
# The cohort as training data: `kicc_analysis.export` writes one task of the repository in a format that training
# frameworks read (nnU-Net v2, MONAI datalist, or images + a CSV of targets), with **patient-level** splits that
# cannot put a patient's studies on both sides, a datasheet and a manifest of content hashes. Here the outcome task
# (each patient's baseline radiograph with the readers' Brixia score, age and the outcomes) is exported, and a
# minimal baseline — logistic regression of oxygen need on the exported Brixia score + age — is fitted on the
# training split and scored on the test split, to show that the pieces fit. It says little about what a model
# trained on the images could do. Conventions in `docs/export.md`.

# %% tags=["parameters"]
repository = "../demo_repository"  # path of the repository (demo or real), relative to notebooks/ in JupyterLab
output_dir = "../results"
export_dir = ""  # folder for the export; empty: a temporary folder removed at the end (results/ holds results only)
task = "outcome"  # outcome (baseline radiograph), outcome-combined, ... (docs/export.md)
seed = 19  # seed of the patient-level split
outcome = "inter_suppleo2"  # binary target: supplemental oxygen
predictors = ["brixia", "demog_age"]  # exported inputs of the baseline model

# %%
NOTEBOOK_VERSION = "1.0.0"

import tempfile
from pathlib import Path

import pandas as pd

from kicc_analysis.cohort import build_cohort
from kicc_analysis.export import export_dataset
from kicc_analysis.export.baseline import split_baseline
from kicc_analysis.provenance import OutputWriter

build = build_cohort(repository)
out = OutputWriter(
    output_dir, notebook="08_ai_export", version=NOTEBOOK_VERSION, cohort_version=build.cohort_version,
    parameters={"repository": Path(repository).name, "task": task, "seed": seed, "outcome": outcome,
                "predictors": predictors},
)  # fmt: skip
skipped = []  # analyses that could not run on this repository, with the reason
scratch = tempfile.TemporaryDirectory(prefix="kicc_export_") if not export_dir else None
target = Path(export_dir) if export_dir else Path(scratch.name) / "export"

# %% [markdown]
# ## Export
#
# Images as 16-bit PNG (display values of `load_radiograph`), `targets.csv`, `cases.csv`, `split_report.csv`,
# `folds.csv` (patient-level k-fold and leave-one-site-out), `DATASHEET.md` and `MANIFEST.csv`. The split report
# shows the balance of patients, studies, sites, scanners and outcome rates per split; the export has checked that
# no patient, study or series is in two splits.

# %%
result = export_dataset(repository, target, export_format="images-csv", task=task, seed=seed, build=build)
out.table(result.report, "export_split_report", title=f"Export '{task}': balance per split",
          description=f"Patient-level split (seed {seed}): patients, studies, sites, scanners, outcome rates")  # fmt: skip
print(f"{len(result.cases)} cases, {len(result.manifest)} files, {len(result.problems)} problems; "
      f"inputs besides the image: {', '.join(result.inputs)}")  # fmt: skip

# %% [markdown]
# ## A minimal baseline: logistic regression on the exported targets
#
# Read back from the exported `targets.csv` (not from the cohort), fitted on the `train` split only (the
# `validation` split is left for model selection, unused here), scored on the `test` split: AUC with the DeLong
# 95 % CI (`kicc_analysis.export.baseline.split_baseline`: `prognosis.logistic` + `prognosis.roc`). Patients with a
# missing input or outcome are left out and counted. Each input alone is scored on the same test patients for
# comparison (DeLong test for paired AUCs against the first model).

# %%
targets = pd.read_csv(target / "targets.csv")
models = {" + ".join(predictors): predictors, **{p: [p] for p in predictors}}
baseline = split_baseline(targets, outcome, models)
skipped += [{"analysis": f"baseline {m}", "reason": r} for m, r in zip(baseline["model"], baseline["skipped"]) if r]
out.table(baseline, "export_baseline_auc", title=f"Minimal baseline on the '{task}' export: test-split AUC",
          description=f"Logistic regression of {outcome} fitted on the train split, scored on the test split; "
                      "AUC with DeLong 95% CI; DeLong p vs the first model on the same test patients")  # fmt: skip
baseline

# %% [markdown]
# With a few hundred patients the test split holds some tens of them, so the CI is wide: use the patient-level
# k-fold lists in `folds.csv` for an estimate worth reading, and `loso_site` to see how a model transfers between
# hospitals.

# %%
skipped = pd.DataFrame(skipped, columns=["analysis", "reason"])
out.table(skipped, "export_skipped", title="Analyses skipped on this repository")
if scratch is not None:
    scratch.cleanup()
