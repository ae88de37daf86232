# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: kicc-analysis, language: python, name: python3}
# ---

# %% [markdown]
# # 07 — Imaging findings
#
# Which CT findings appear in COVID-19 pneumonia, how often, in whom and when: the readers' structured findings
# (RSNA category, CO-RADS, ground-glass opacity ... lymphadenopathy, distribution) on the baseline CT, their
# frequency with 95 % CIs overall, by clinical severity and by days from symptom onset (0–4, 5–9, ≥ 10), how well
# the readers agree on each (kappa with CI, and the prevalence and bias indices that explain a low kappa for a rare
# finding), and each finding's association with the outcome adjusted for age. Schemes: `kicc_analysis.readings`;
# analyses: `kicc_analysis.findings` (conventions in `docs/findings.md`).

# %% tags=["parameters"]
repository = "../demo_repository"  # path of the repository (demo or real), relative to notebooks/ in JupyterLab
output_dir = "../results"
reader = "majority"  # a patient's call: "majority" of the readers, or one reader's code (e.g. "R1")
ci_method = "wilson"  # statsmodels proportion_confint method: wilson, beta (Clopper-Pearson), agresti_coull, ...
outcome = "inter_suppleo2"  # binary outcome of the association section
adjust_for = ["demog_age"]
fdr = 0.05  # Benjamini-Hochberg false-discovery rate

# %%
NOTEBOOK_VERSION = "1.0.0"

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kicc_analysis.cohort import build_cohort
from kicc_analysis.findings import (
    finding_agreement,
    finding_calls,
    finding_frequencies,
    finding_outcome,
    frequency_figure,
    frequency_table,
    onset_group,
)
from kicc_analysis.provenance import OutputWriter
from kicc_analysis.readings import read_reader_scores, validate_readings

build = build_cohort(repository)
cohort = build.table
out = OutputWriter(
    output_dir, notebook="07_imaging_findings", version=NOTEBOOK_VERSION, cohort_version=build.cohort_version,
    parameters={"repository": Path(repository).name, "reader": reader, "ci_method": ci_method, "outcome": outcome,
                "adjust_for": adjust_for, "fdr": fdr},
)  # fmt: skip
skipped = []  # analyses that could not run on this repository, with the reason

# %% [markdown]
# ## Reader findings: validation
#
# Every problem of the findings file with its row and reader; an invalid score becomes a missing call, never 0.

# %%
readings = read_reader_scores(Path(repository) / "readings" / "ct_findings.csv")  # one-line error when absent
problems = validate_readings(readings)
out.table(problems, "ct_finding_problems", title="Problems in the CT finding readings",
          description="Every problem with its file row and reader; no row dropped")  # fmt: skip
print(f"{len(readings)} rows, {readings['reader'].nunique()} readers, {len(problems)} problems")

# %% [markdown]
# ## Frequencies: overall, by clinical severity, by days from symptom onset
#
# Days from onset to the baseline CT = days from onset to admission + day of the CT from admission.

# %%
calls = finding_calls(readings, reader=reader).rename(columns={"subject": "subjid"})
data = calls.merge(cohort, on="subjid", how="left")
severity_names = {1: "mild", 2: "moderate", 3: "severe", 4: "critical"}
data["severity"] = pd.to_numeric(data["sever_national"], errors="coerce").map(severity_names)
onset_to_ct = pd.to_numeric(data["pres_onset_days"], errors="coerce") + pd.to_numeric(
    data.get("baseline_ct_day", 0), errors="coerce"
)
data["onset"] = onset_group(onset_to_ct).to_numpy()
frequencies = {
    "overall": finding_frequencies(data, method=ci_method),
    "severity": finding_frequencies(data, by="severity", method=ci_method),
    "onset": finding_frequencies(data, by="onset", method=ci_method),
}
for key, freq in frequencies.items():
    out.table(freq, f"ct_finding_frequency_{key}", title=f"CT finding frequencies ({key})",
              description=f"count/n, proportion and 95% CI ({ci_method}); call: {reader}")  # fmt: skip
levels = [lvl for lvl in severity_names.values() if lvl in set(frequencies["severity"]["group"])]
guideline = pd.concat(
    [frequency_table(frequencies["overall"]).rename(columns={"all": "all patients"}),
     frequency_table(frequencies["severity"])[levels],
     frequency_table(frequencies["onset"])],
    axis=1,
)  # fmt: skip
out.table(guideline, "ct_finding_guideline_table", index=True, title="CT findings: guideline table",
          description="k/n (%, 95% CI) overall, by national severity and by days from onset to CT")  # fmt: skip
guideline

# %%
for key in ("severity", "onset"):
    fig = frequency_figure(frequencies[key], title=f"CT findings by {key}")
    out.figure(fig, f"ct_finding_frequency_{key}", title=f"CT finding frequencies by {key}",
               description=f"Proportion with 95% CI ({ci_method})")  # fmt: skip
    plt.close(fig)

# %% [markdown]
# ## Inter-reader agreement per finding
#
# Cohen's kappa (95 % CI, Fleiss–Cohen–Everitt SE) per reader pair, with PABAK and the prevalence and bias indices
# of Byrt, Bishop & Carlin (1993): a finding that is rare (|PI| near 1) can have a low kappa despite high observed
# agreement.

# %%
agreement = finding_agreement(readings)
out.table(agreement, "ct_finding_agreement", title="Inter-reader agreement per CT finding",
          description="Cohen kappa (95% CI), PABAK, prevalence index, bias index per reader pair")  # fmt: skip
summary = agreement.groupby("label", sort=False)[["po", "kappa", "pabak", "prevalence_index", "bias_index"]].mean()
fig, ax = plt.subplots(figsize=(5.5, 0.25 * len(summary) + 1.2))
ypos = np.arange(len(summary))
ax.scatter(summary["kappa"], ypos, label="kappa (mean of pairs)", s=14)
ax.scatter(summary["pabak"], ypos, label="PABAK", marker="x", s=14)
ax.set_yticks(ypos, summary.index, fontsize=7)
ax.invert_yaxis()
ax.set_xlim(-0.2, 1.0)
ax.legend(fontsize=7)
fig.tight_layout()
out.figure(fig, "ct_finding_agreement", title="Kappa and PABAK per CT finding")
plt.close(fig)
summary.round(2)

# %% [markdown]
# ## Association with the outcome
#
# One logistic model per finding, adjusted for age; each model is one test, so the table states the number of
# tests and gives Benjamini–Hochberg q-values. Findings that are constant or separate the outcome get no estimate.

# %%
if outcome in data.columns:
    associations = finding_outcome(data, outcome, covariates=adjust_for, fdr=fdr)
    out.table(associations, "ct_finding_outcome", title=f"CT findings and {outcome} (OR adjusted for age)",
              description=f"{int(associations['n_tests'].iloc[0])} tests; BH q-values at FDR {fdr}")  # fmt: skip
    print(f"{int(associations['n_tests'].iloc[0])} tests; {int(associations['significant_bh'].sum())} below FDR {fdr}")
else:
    skipped.append({"analysis": "association", "reason": f"outcome {outcome} not in the cohort"})
    associations = None
associations

# %%
out.table(pd.DataFrame(skipped, columns=["analysis", "reason"]), "ct_finding_skipped", title="Skipped analyses")
