# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: kicc-analysis, language: python, name: python3}
# ---

# %% [markdown]
# # 05 — Chest radiographs
#
# The radiographs of the cohort: which radiograph of each study is scored (and why), the radiograph timeline per
# patient, the readers' Brixia scores (zones A–F, 0–3, total 0–18), how well the readers agree per zone and on the
# total, how the radiograph score relates to CT opacity, how it changes over time, and whether it predicts the outcome
# next to CT opacity. Loading and LUT rules: `kicc_analysis.radiography`; schemes and the reader-score format:
# `kicc_analysis.readings`; agreement: `kicc_analysis.agreement.reader_scores` (conventions in `docs/radiographs.md`).

# %% tags=["parameters"]
repository = "../demo_repository"  # path of the repository (demo or real), relative to notebooks/ in JupyterLab
output_dir = "../results"
use_quantification = True  # CT opacity from kicc_analysis.quantification (cached); else the cohort column if present
primary_outcome = "inter_suppleo2"  # binary outcome of the prediction section
seed = 2020

# %%
NOTEBOOK_VERSION = "1.0.0"

import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from kicc_analysis.agreement.reader_scores import score_agreement
from kicc_analysis.cohort import build_cohort
from kicc_analysis.errors import KiccError
from kicc_analysis.figures.radiograph_figures import brixia_figure
from kicc_analysis.provenance import OutputWriter
from kicc_analysis.radiography import load_radiograph
from kicc_analysis.readings import read_reader_scores, reading_totals, validate_readings
from kicc_analysis.repository.cxr_selection import select_radiographs

build = build_cohort(repository)
cohort = build.table
out = OutputWriter(
    output_dir, notebook="05_radiographs", version=NOTEBOOK_VERSION, cohort_version=build.cohort_version,
    parameters={"repository": str(repository), "use_quantification": use_quantification,
                "primary_outcome": primary_outcome, "seed": seed},
)  # fmt: skip
skipped = []  # analyses that could not run on this repository, with the reason

# %% [markdown]
# ## Inventory: the radiograph chosen in each study
#
# Frontal before lateral, for presentation before for processing, PA before AP (then larger image, lower series
# number); the reason names why every other candidate lost.

# %%
selection = select_radiographs(build.scan.instances)
inventory = build.inventory[build.inventory["modality"].isin(["CR", "DX"])][["subjid", "study_uid", "img_day"]]
selection = selection.merge(inventory, on="study_uid", how="left")
out.table(selection.drop(columns=["patient_id", "relpath"]), "radiograph_selection",
          title="Radiograph chosen per study", description="One row per CR/DX study; reason of the choice")  # fmt: skip
summary = pd.DataFrame(
    {
        "patients": [len(cohort)],
        "patients_with_radiographs": [int((cohort["n_radiographs"] > 0).sum())],
        "radiograph_studies": [len(selection)],
        "views": ["; ".join(f"{k} {v}" for k, v in selection["view"].value_counts().items())],
        "intent": ["; ".join(f"{k} {v}" for k, v in selection["intent"].value_counts().items())],
    }
)
out.table(summary, "radiograph_inventory", title="Radiograph inventory")

# %% [markdown]
# ## Timeline per patient: CT and radiographs (days from admission)

# %%
timeline = build.inventory[["subjid", "modality", "img_day"]].copy()
timeline["img_day"] = pd.to_numeric(timeline["img_day"], errors="coerce")
with_cxr = sorted(timeline.loc[timeline["modality"].isin(["CR", "DX"]), "subjid"].unique())
fig, ax = plt.subplots(figsize=(7.2, max(2.5, 0.12 * len(with_cxr))))
ypos = {s: i for i, s in enumerate(with_cxr)}
for modality, marker, colour in (("CT", "s", "#0072B2"), ("DX", "o", "#D55E00"), ("CR", "o", "#D55E00")):
    sub = timeline[(timeline["modality"] == modality) & timeline["subjid"].isin(with_cxr)]
    ax.scatter(sub["img_day"], sub["subjid"].map(ypos), marker=marker, s=14, color=colour,
               label=modality if modality != "CR" else None)  # fmt: skip
ax.set_yticks([])
ax.set_xlabel("day from admission")
ax.set_ylabel(f"patients with a radiograph (n = {len(with_cxr)})")
ax.legend(["CT", "radiograph"], loc="lower right", fontsize=8)
out.figure(fig, "radiograph_timeline", title="Imaging timeline", description="CT (squares) and radiographs (dots)")
plt.close(fig)
cohort[["subjid", "n_radiographs", "baseline_cxr_day", "baseline_cxr_brixia", "worst_cxr_brixia"]].describe()

# %% [markdown]
# ## Reader scores: validation and distributions

# %%
scores_path = Path(repository) / "readings" / "radiograph_scores.csv"
readings = read_reader_scores(scores_path) if scores_path.is_file() else None
if readings is None:
    skipped.append({"analysis": "reader scores", "reason": f"{scores_path} not found"})
else:
    problems = validate_readings(readings)
    out.table(problems, "radiograph_score_problems", title="Problems in the radiograph reader scores",
              description="Every problem with its file row and reader; no row dropped")  # fmt: skip
    totals = reading_totals(readings, "brixia")
    zones = readings[(readings["scheme"] == "brixia") & readings["item"].isin(list("ABCDEF"))]
    distribution = zones.pivot_table(index=["reader", "item"], columns="score", values="subject", aggfunc="count",
                                     fill_value=0)  # fmt: skip
    out.table(distribution, "brixia_zone_distribution", title="Brixia zone scores per reader", index=True,
              description="Number of zones with each grade 0-3")  # fmt: skip
    fig, ax = plt.subplots(figsize=(5, 3))
    for reader, group in totals.groupby("reader"):
        ax.hist(group["score"], bins=np.arange(-0.5, 19), histtype="step", linewidth=1.5, label=reader)
    ax.set_xlabel("Brixia total (0-18)")
    ax.set_ylabel("radiographs")
    ax.legend(fontsize=8)
    out.figure(fig, "brixia_total_distribution", title="Brixia totals per reader")
    plt.close(fig)
    print(f"{len(readings)} score rows, {len(problems)} problems")

# %% [markdown]
# ## Agreement per zone and on the total
#
# Weighted kappa per reader pair (quadratic = Fleiss–Cohen and linear = Cicchetti–Allison agreement weights over the
# declared grades 0–3, or 0–18 for the total), ICC(A,1) and ICC(C,1) over all readers, Krippendorff's alpha (ordinal
# for zones, interval for the total), Bland–Altman bias and 95 % limits per pair.

# %%
agreement = None
if readings is not None:
    try:
        agreement = score_agreement(readings, "brixia")
        out.table(agreement, "brixia_agreement", title="Inter-reader agreement of Brixia scores",
                  description="Per zone and total; weights/levels in 'setting'; 95% CIs")  # fmt: skip
        kappas = agreement[(agreement["coefficient"] == "weighted_kappa") & (agreement["setting"] == "quadratic")]
        fig, ax = plt.subplots(figsize=(6, 3))
        for i, (comparison, group) in enumerate(kappas.groupby("comparison")):
            x = np.arange(len(group)) + 0.25 * (i - 1)
            ax.errorbar(x, group["estimate"], yerr=[group["estimate"] - group["ci_low"], group["ci_high"] -
                        group["estimate"]], fmt="o", capsize=2, label=comparison)  # fmt: skip
        ax.set_xticks(np.arange(len(group)), group["item"])
        ax.set_ylabel("weighted kappa (quadratic)")
        ax.legend(fontsize=7)
        out.figure(fig, "brixia_agreement_kappa", title="Pairwise quadratic weighted kappa per zone and total")
        plt.close(fig)
    except KiccError as exc:
        skipped.append({"analysis": "agreement", "reason": str(exc)})
agreement.pivot_table(index="item", columns=["coefficient", "setting"], values="estimate").round(3) if agreement is not None else None  # fmt: skip

# %% [markdown]
# ## Radiograph score vs CT opacity
#
# Baseline radiograph (mean of the readers' Brixia totals) against the baseline CT opacity (% of lung volume).

# %%
ct_source = "cohort column ct_opacity_pct" if "ct_opacity_pct" in cohort.columns else "none"
if ct_source == "none" and use_quantification:
    try:
        from kicc_analysis.pipeline import quantify_cohort

        run = quantify_cohort(repository)
        cohort = cohort.merge(run.cohort[["subjid", "ct_opacity_pct"]], on="subjid", how="left")
        ct_source = "kicc_analysis.quantification"
    except (ImportError, KiccError, OSError, KeyError) as exc:
        skipped.append({"analysis": "CT opacity", "reason": f"{type(exc).__name__}: {exc}"})
paired = cohort.dropna(subset=["baseline_cxr_brixia"])
if "ct_opacity_pct" in paired.columns:
    paired = paired.dropna(subset=["ct_opacity_pct"])
    if len(paired) >= 3:
        rho = spearmanr(paired["baseline_cxr_brixia"], paired["ct_opacity_pct"])
        relation = pd.DataFrame([{"n": len(paired), "spearman_rho": rho.statistic, "p": rho.pvalue,
                                  "ct_source": ct_source}])  # fmt: skip
        out.table(relation, "brixia_vs_ct_opacity", title="Baseline Brixia total vs CT opacity (Spearman)")
        fig, ax = plt.subplots(figsize=(4, 3.2))
        ax.scatter(paired["ct_opacity_pct"], paired["baseline_cxr_brixia"], s=14)
        ax.set_xlabel("CT opacity (% of lung)")
        ax.set_ylabel("baseline Brixia total (mean of readers)")
        out.figure(fig, "brixia_vs_ct_opacity", title="Radiograph score vs CT opacity")
        plt.close(fig)
        print(relation.to_string(index=False))
    else:
        skipped.append({"analysis": "Brixia vs CT", "reason": f"only {len(paired)} patients with both"})
else:
    skipped.append({"analysis": "Brixia vs CT", "reason": "no CT opacity available"})

# %% [markdown]
# ## Change over time
#
# Patients with two or more scored radiographs: first and last mean Brixia total and the change per day.

# %%
if readings is not None:
    per_study = totals.groupby(["subject", "study"], as_index=False)["score"].mean()
    per_study = per_study.merge(inventory, left_on="study", right_on="study_uid", how="left")
    per_study["img_day"] = pd.to_numeric(per_study["img_day"], errors="coerce")
    serial = per_study.dropna(subset=["img_day"]).sort_values(["subject", "img_day"])
    serial = serial[serial.groupby("subject")["study"].transform("count") >= 2]
    change = serial.groupby("subject").agg(first_day=("img_day", "first"), last_day=("img_day", "last"),
                                           first_score=("score", "first"), last_score=("score", "last"))  # fmt: skip
    change["change"] = change["last_score"] - change["first_score"]
    span = (change["last_day"] - change["first_day"]).replace(0, np.nan)
    change["change_per_day"] = change["change"] / span
    out.table(change.reset_index(), "brixia_change", title="Change of the Brixia total between radiographs")
    fig, ax = plt.subplots(figsize=(5, 3))
    for _, group in serial.groupby("subject"):
        ax.plot(group["img_day"], group["score"], marker="o", markersize=3, linewidth=0.8, alpha=0.7)
    ax.set_xlabel("day from admission")
    ax.set_ylabel("Brixia total (mean of readers)")
    out.figure(fig, "brixia_over_time", title="Brixia total over time (patients with serial radiographs)")
    plt.close(fig)
    change.describe()

# %% [markdown]
# ## The radiograph score as a predictor, next to CT opacity
#
# Logistic models of the primary outcome among patients with a scored baseline radiograph: age alone, age + Brixia
# total (per 3 points), age + CT opacity (per 10 %), and both; AUC with 95 % CI (DeLong).

# %%
from kicc_analysis.prognosis import logistic, roc_auc

data = cohort.copy()
data["age_per10"] = data["demog_age"] / 10
data["brixia_per3"] = data["baseline_cxr_brixia"] / 3
models = {"age": ["age_per10"], "age + Brixia": ["age_per10", "brixia_per3"]}
if "ct_opacity_pct" in data.columns:
    data["ct_per10"] = data["ct_opacity_pct"] / 10
    models.update({"age + CT": ["age_per10", "ct_per10"], "age + Brixia + CT": ["age_per10", "brixia_per3", "ct_per10"]})
needed = sorted({p for preds in models.values() for p in preds})
sub = data.dropna(subset=[primary_outcome, *needed])
rows = []
for name, predictors in models.items():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fit = logistic(sub, primary_outcome, predictors)
        auc = roc_auc(sub[primary_outcome], fit.model.predict())
        rows.append({"model": name, "n": fit.n, "events": fit.events, "auc": auc.estimate, "ci_low": auc.ci_low,
                     "ci_high": auc.ci_high, "converged": fit.converged})  # fmt: skip
    except KiccError as exc:
        skipped.append({"analysis": f"logistic {name}", "reason": str(exc)})
prediction = pd.DataFrame(rows)
out.table(prediction, "brixia_prediction", title=f"Prediction of {primary_outcome}: Brixia total next to CT opacity",
          description="Same complete rows for every model; AUC 95% CI by DeLong's method")  # fmt: skip

# %% [markdown]
# ## Teaching figure: a radiograph with its zone grid and the readers' scores
#
# The radiograph on which the readers' totals differ most.

# %%
if readings is not None and len(selection):
    # the study on which the readers' totals differ most (ties: the higher mean): a case for teaching
    spread = totals.groupby("study")["score"].agg(lambda s: s.max() - s.min()) + totals.groupby("study")["score"].mean() / 100
    candidates = selection[selection["study_uid"].isin(spread.index)]
    if len(candidates):
        chosen = candidates.loc[candidates["study_uid"].map(spread).idxmax()]
        path = build.scan.instances.set_index("sop_uid").loc[chosen["sop_uid"], "path"]
        xr = load_radiograph(path)
        zone_scores = zones[zones["study"] == chosen["study_uid"]].pivot(index="reader", columns="item", values="score")
        fig = brixia_figure(xr.pixels, zone_scores, title=f"{chosen['subjid']} day {chosen['img_day']}")
        out.figure(fig, "brixia_zone_figure", title="Radiograph with Brixia zones and scores",
                   description=f"{xr.view_position or 'unknown'} view; zone grid over a fixed lung box")  # fmt: skip
        plt.close(fig)

# %%
skipped = pd.DataFrame(skipped, columns=["analysis", "reason"])
out.table(skipped, "radiograph_skipped", title="Analyses skipped on this repository")
