# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: kicc-analysis, language: python, name: python3}
# ---

# %% [markdown]
# # 03 — Observer variation
#
# How far do the three radiologists agree? Per-lobe visual severity scores (ordinal 0–5), the 5-level categorical
# suspicion score, the total severity score (sum of the five lobes, 0–25), and — when the automatic quantification is
# available — readers against the automatic per-zone severity. Every coefficient comes with its standard error and
# 95% CI from the published large-sample formula (and a subject bootstrap interval); the `convention` column of each
# table names the formula. All computations are in `kicc_analysis.agreement`; conventions in `docs/agreement.md`.

# %% tags=["parameters"]
repository = "../demo_repository"  # path of the repository (demo or real), relative to notebooks/ in JupyterLab
output_dir = "../results"
n_boot = 1000  # bootstrap replicates (subjects resampled) added to the coefficient tables
use_quantification = True  # compare readers with kicc_analysis.quantification zone scores (cached) when available
seed = 2020

# %%
NOTEBOOK_VERSION = "1.0.0"

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kicc_analysis.agreement import (
    agreement_table,
    bland_altman,
    bland_altman_plot,
    cohen_kappa,
    confusion_matrix,
    confusion_matrix_plot,
    forest_plot,
    icc,
    kendall_w,
    lin_ccc,
    pairwise_table,
)
from kicc_analysis.cohort import build_cohort, load_readings
from kicc_analysis.errors import KiccError
from kicc_analysis.provenance import OutputWriter
from kicc_analysis.results import estimates_to_frame

build = build_cohort(repository)
readings = load_readings(repository)
out = OutputWriter(
    output_dir, notebook="03_observer_variation", version=NOTEBOOK_VERSION, cohort_version=build.cohort_version,
    parameters={"repository": str(repository), "n_boot": n_boot, "use_quantification": use_quantification,
                "seed": seed},
)
LOBES = ["RUL", "RML", "RLL", "LUL", "LLL"]
SEVERITY = list(range(6))  # declared ordinal levels 0-5 (unused levels still count)
SUSPICION = [1, 2, 3, 4, 5]
keys = dict(subject="subjid", rater="reader", rating="score")
readers = sorted(readings["reader"].unique())

# %% [markdown]
# ## Readings

# %%
overview = (
    readings.assign(missing=readings["score"].isna())
    .groupby("item", sort=False)
    .agg(subjects=("subjid", "nunique"), readers=("reader", "nunique"), ratings=("score", "count"),
         missing=("missing", "sum"))
    .reset_index()
)
overview.attrs["invalid_scores"] = readings.attrs.get("invalid_scores", 0)
out.table(overview, "readings_overview", title="Readings per item",
          description="Subjects, readers, non-missing ratings and missing ratings per item; "
          f"{overview.attrs['invalid_scores']} non-numeric scores were set missing")

# %% [markdown]
# ## Lobe severity scores (ordinal 0–5)
#
# Multi-rater coefficients per lobe: weighted percent agreement, Fleiss' kappa (unweighted), Gwet's AC2 and the
# weighted Fleiss kappa with quadratic weights, Krippendorff's alpha (ordinal metric). SEs: Gwet (2014); CIs use
# t(n−1). The bootstrap interval (`boot_ci_low/high`) resamples patients.

# %%
lobes = readings[readings["item"].isin(LOBES)]
lobe_table = agreement_table(
    lobes, **keys, item="item", weights="quadratic", categories=SEVERITY, n_boot=n_boot,
    coefficients=("percent_agreement", "fleiss_kappa", "gwet_ac2", "krippendorff_ordinal"),
)
out.table(lobe_table, "lobe_agreement", title="Agreement of the three readers per lobe",
          description="Quadratic weights for percent agreement, weighted Fleiss kappa and AC2; Krippendorff "
          "ordinal metric; 95% CI (Gwet 2014 SE, t(n-1)) and subject bootstrap percentile CI")
fig = forest_plot(lobe_table, title="Lobe severity: agreement of three readers")
out.figure(fig, "lobe_agreement_forest", title="Agreement per lobe", description="Coefficients with 95% CI")
lobe_table[["item", "coefficient", "summary", "n"]]

# %% [markdown]
# ### Pairwise weighted kappa (Cohen, quadratic and linear weights)
#
# Fleiss–Cohen–Everitt standard errors (SAS / statsmodels convention).

# %%
pairwise = pd.concat(
    [
        pairwise_table(lobes[lobes["item"] == lobe], **keys, weights=weights, categories=SEVERITY).assign(
            item=lobe, weights=weights
        )
        for lobe in LOBES
        for weights in ("quadratic", "linear")
    ],
    ignore_index=True,
)
out.table(pairwise, "lobe_pairwise_kappa", title="Pairwise weighted kappa per lobe",
          description="Cohen's weighted kappa for each pair of readers, quadratic and linear weights, FCE SE")
pairwise.pivot_table(index=["item", "rater_a", "rater_b"], columns="weights", values="estimate").round(3)

# %% [markdown]
# ### Where the readers disagree
#
# Confusion matrices pooled over the five lobes (rows: first reader, columns: second).

# %%
pooled = lobes.assign(subjid=lobes["subjid"] + "/" + lobes["item"])
pairs = [(a, b) for i, a in enumerate(readers) for b in readers[i + 1:]]
fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.8))
for ax, (a, b) in zip(np.atleast_1d(axes), pairs, strict=True):
    confusion_matrix_plot(confusion_matrix(pooled, a, b, **keys, categories=SEVERITY), ax=ax, title=f"{a} vs {b}")
fig.tight_layout()
out.figure(fig, "lobe_confusion_matrices", title="Lobe scores: reader confusion matrices",
           description="Counts of lobe scores of one reader against another, pooled over lobes")

# %% [markdown]
# ## Total severity score (0–25)
#
# Sum of the five lobe scores per reader (a patient with a missing lobe score has no total for that reader). ICC in
# the six Shrout & Fleiss forms (McGraw & Wong names), Kendall's W, and Bland–Altman between readers.

# %%
totals = (
    lobes.groupby(["subjid", "reader"])["score"]
    .agg(lambda s: s.sum() if s.notna().sum() == len(LOBES) else np.nan)
    .astype(float)
    .rename("total")
    .reset_index()
)
icc_table = icc(totals, "subjid", "reader", "total").reset_index()
icc_table.attrs["dropped"] = icc(totals, "subjid", "reader", "total").attrs["dropped"]
out.table(icc_table, "total_score_icc", title="ICC of the total severity score",
          description="Shrout & Fleiss six forms; psych/pingouin F tests and CIs; "
          f"{icc_table.attrs['dropped']} patients without a complete total for every reader excluded")
w = kendall_w(totals, "subjid", "reader", "total")
print(f"Kendall's W = {w.estimate:.3f}, chi2 = {w.chi_square:.1f} on {w.df:g} df, p = {w.p:.2g}")
icc_table[["form", "mcgraw_wong", "estimate", "ci_low", "ci_high", "F", "p"]].round(3)

# %%
wide_totals = totals.pivot(index="subjid", columns="reader", values="total")
ba_rows = {}
fig, axes = plt.subplots(1, len(pairs), figsize=(4.6 * len(pairs), 3.8))
for ax, (a, b) in zip(np.atleast_1d(axes), pairs, strict=True):
    ba = bland_altman(wide_totals[a], wide_totals[b])
    ba_rows[f"{a}-{b}"] = ba.to_frame().assign(pair=f"{a}-{b}", sd=ba.sd)
    bland_altman_plot(ba, ax=ax, units="points", title=f"Total score: {a} − {b}")
fig.tight_layout()
out.figure(fig, "total_score_bland_altman", title="Bland–Altman of total severity scores",
           description="Difference against mean of two readers' total scores; bias and 95% limits with CIs")
ba_table = pd.concat(ba_rows.values(), ignore_index=True)
out.table(ba_table, "total_score_bland_altman", title="Bland–Altman of total severity scores",
          description="Bias and limits of agreement (bias ± 1.96 SD) with t CIs (Bland & Altman 1999 limit SE)")
ba_table.round(2)

# %% [markdown]
# ## Suspicion score (5-level categorical)
#
# Nominal agreement (Fleiss, Gwet AC1, Krippendorff nominal) and, treating the levels as ordered, linear-weighted
# AC2 and Krippendorff ordinal; pairwise Cohen's kappa.

# %%
suspicion = readings[readings["item"] == "suspicion"]
susp_nominal = agreement_table(
    suspicion, **keys, item="item", weights=None, categories=SUSPICION, n_boot=n_boot,
    coefficients=("percent_agreement", "fleiss_kappa", "conger_kappa", "gwet_ac1", "krippendorff_nominal"),
)
susp_ordinal = agreement_table(
    suspicion, **keys, item="item", weights="linear", categories=SUSPICION, n_boot=n_boot,
    coefficients=("gwet_ac2", "krippendorff_ordinal"),
)
susp_table = pd.concat([susp_nominal.assign(weights="identity"), susp_ordinal.assign(weights="linear")],
                       ignore_index=True)
susp_pairs = pairwise_table(suspicion, **keys, weights=None, categories=SUSPICION)
out.table(susp_table, "suspicion_agreement", title="Agreement on the suspicion score",
          description="Unweighted (nominal) and linear-weighted (ordered) coefficients; Gwet SE, t(n-1) CIs")
out.table(susp_pairs, "suspicion_pairwise_kappa", title="Pairwise Cohen kappa, suspicion score",
          description="Unweighted Cohen's kappa per pair of readers, FCE SE")
fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.8))
for ax, (a, b) in zip(np.atleast_1d(axes), pairs, strict=True):
    confusion_matrix_plot(confusion_matrix(suspicion, a, b, **keys, categories=SUSPICION), ax=ax,
                          title=f"{a} vs {b}", cmap="Purples")
fig.tight_layout()
out.figure(fig, "suspicion_confusion_matrices", title="Suspicion score: reader confusion matrices",
           description="Counts of suspicion levels of one reader against another")
susp_table[["coefficient", "weights", "summary", "n"]]

# %% [markdown]
# ## Readers against the automatic scores
#
# With lobe masks (TotalSegmentator or lungmask LTRCLobes files, one per series; the demo repository carries its lobe
# truth in this layout in `ground_truth/lobes/`), `kicc_analysis.quantification` scores each **lobe** 0–5 exactly as
# the readers do (Pan et al. 2020; total 0–25), and readers and machine are compared directly: (1) the total score
# with Lin's CCC and Bland–Altman, (2) each reader's lobe score against the automatic score of the same lobe with
# quadratic-weighted kappa. Without lobe masks it falls back to the six **zones** (upper/middle/lower third of each
# lung, total 0–30): lobes and zones are not the same anatomy, so the totals are compared as % of the maximum score
# and each lobe with the nearest zone (RUL↔right upper, RML↔right middle, RLL↔right lower, LUL↔left upper,
# LLL↔left lower). This section is skipped (with the reason printed) when the quantification is unavailable.

# %%
auto_zones = auto_lobes = None
if use_quantification:
    try:
        from pathlib import Path

        from kicc_analysis.pipeline import quantify_cohort

        lobe_masks = Path(repository) / "ground_truth" / "lobes"  # demo lobe truth; a real study: its masks folder
        run = quantify_cohort(repository, build=build, masks=lobe_masks if lobe_masks.is_dir() else None,
                              compare_masks=False)  # lobe scores only: no classical mask for comparison
        res = run.results
        baseline = res[(res["timepoint"] == "baseline") & res["region"].str.contains("_")]
        auto_zones = baseline.groupby(["subjid", "region"])["severity_score"].first().unstack()
        auto_total = baseline.groupby("subjid")["severity_total"].first()
        if "lobe_score" in res.columns:  # series quantified with a lobe mask
            lobe_rows = res[(res["timepoint"] == "baseline") & (res["zone"] == "lobe")]
            auto_lobes = lobe_rows.groupby(["subjid", "region"])["lobe_score"].first().unstack()
            auto_lobe_total = lobe_rows.groupby("subjid")["lobe_score_total"].first()
            print(f"lobe masks for {auto_lobes.shape[0]} patients: readers compared with automatic lobe scores")
        print(run.describe().splitlines()[0])
    except (ImportError, KiccError, OSError, KeyError) as exc:  # keep the notebook running without quantification
        print(f"automatic scores unavailable ({type(exc).__name__}: {exc}); reader-vs-automatic section skipped")
        auto_zones = None
else:
    print("use_quantification=False: reader-vs-automatic section skipped")

# %%
if auto_lobes is not None:  # lobes against lobes, totals 0-25 against 0-25
    reader_total = wide_totals.mean(axis=1)
    auto_scale = auto_lobe_total.reindex(reader_total.index)
    ccc = lin_ccc(reader_total, auto_scale, n_boot=n_boot, seed=seed)
    ba_auto = bland_altman(auto_scale, reader_total)
    fig = bland_altman_plot(ba_auto, units="score points (0-25)", title="Automatic − readers' mean total (lobes)")
    out.figure(fig, "auto_vs_reader_bland_altman", title="Automatic vs reader total severity",
               description="Bland–Altman of the total lobar severity score (0–25): automatic (lobe masks) − "
               "readers' mean")
    rows = {"lin_ccc_total": ccc}
    for reader in readers:
        mine = lobes[lobes["reader"] == reader].pivot(index="subjid", columns="item", values="score")
        for lobe in LOBES:
            a = mine[lobe].astype(float)
            b = auto_lobes[lobe].reindex(a.index).astype(float)
            rows[f"{reader}_{lobe}_vs_auto_{lobe}"] = cohen_kappa(a, b, weights="quadratic", categories=SEVERITY)
    auto_table = estimates_to_frame(rows, index_name="comparison")
    out.table(auto_table, "auto_vs_reader_agreement", title="Readers vs automatic severity",
              description="Lin's CCC of the total lobar score (0–25) and quadratic-weighted kappa of each reader's "
              "lobe score against the automatic score of the same lobe (lobe masks)")
    display_table = auto_table[["comparison", "estimate", "ci_low", "ci_high", "n"]].round(3)
elif auto_zones is not None:
    ZONE_OF = {"RUL": "right_upper", "RML": "right_middle", "RLL": "right_lower", "LUL": "left_upper",
               "LLL": "left_lower"}
    reader_pct = wide_totals.mean(axis=1) / 25 * 100
    auto_pct = (auto_total / 30 * 100).reindex(reader_pct.index)
    ccc = lin_ccc(reader_pct, auto_pct, n_boot=n_boot, seed=seed)
    ba_auto = bland_altman(auto_pct, reader_pct)
    fig = bland_altman_plot(ba_auto, units="% of maximum score", title="Automatic − readers' mean total")
    out.figure(fig, "auto_vs_reader_bland_altman", title="Automatic vs reader total severity",
               description="Bland–Altman of total severity as % of the maximum score (automatic /30, readers /25)")
    rows = {"lin_ccc_total": ccc}
    for reader in readers:
        mine = lobes[lobes["reader"] == reader].pivot(index="subjid", columns="item", values="score")
        for lobe, zone in ZONE_OF.items():
            if zone not in auto_zones.columns:
                continue
            a = mine[lobe].astype(float)
            b = auto_zones[zone].reindex(a.index).astype(float)
            rows[f"{reader}_{lobe}_vs_{zone}"] = cohen_kappa(a, b, weights="quadratic", categories=SEVERITY)
    auto_table = estimates_to_frame(rows, index_name="comparison")
    out.table(auto_table, "auto_vs_reader_agreement", title="Readers vs automatic severity",
              description="Lin's CCC of total severity (% of maximum) and quadratic-weighted kappa of each lobe "
              "score against the corresponding automatic zone score (approximate lobe-zone mapping)")
    display_table = auto_table[["comparison", "estimate", "ci_low", "ci_high", "n"]].round(3)
else:
    display_table = pd.DataFrame({"comparison": [], "estimate": []})
display_table
