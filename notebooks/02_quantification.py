# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: kicc-analysis, language: python, name: python3}
# ---

# %% [markdown]
# # 02 — CT quantification
#
# Every selected chest CT series is loaded in HU, the lungs are segmented (weight-free, consolidation kept inside
# the lung) and ground-glass opacity (GGO, −700…−300 HU) and consolidation (−300…+50 HU) are measured per lung and
# per zone (thirds of lung height), with a zone severity score 0–5 (total 0–30). Conventions: `docs/ct.md`.
# Outputs: the per-series × region table, the QA list, opacity by national severity category, agreement with the
# radiologists' visual lobe scores, example overlays, and baseline → follow-up change.

# %% tags=["parameters"]
repository = "../demo_repository"  # path of the repository (demo or real), relative to notebooks/ in JupyterLab
output_dir = "../results"
workers = 2

# %%
NOTEBOOK_VERSION = "1.1.0"

import pandas as pd
from scipy import stats

from kicc_analysis.cohort import build_cohort, load_readings
from kicc_analysis.pipeline import quantify_cohort
from kicc_analysis.provenance import OutputWriter
from kicc_analysis.quantification import segment_opacities
from kicc_analysis.quantification.plots import core_periphery_figure, opacity_by_group_figure, overlay_figure

build = build_cohort(repository, workers=workers)
cohort = build.table
out = OutputWriter(
    output_dir, notebook="02_quantification", version=NOTEBOOK_VERSION,
    cohort_version=build.cohort_version, parameters={"repository": str(repository), "workers": workers},
)

# %% [markdown]
# ## Quantify every selected CT series (parallel, cached per series)

# %%
run = quantify_cohort(repository, build=build, workers=workers)
jobs, results, failures, cohort_ct = run.jobs, run.results, run.failures, run.cohort
print(f"{results['series_uid'].nunique()} series quantified, {len(failures)} failed, "
      f"{int(results.drop_duplicates('series_uid')['cached'].sum())} from cache")
out.table(results.drop(columns=["cached"]), "ct_quantification_by_region",
          title="CT quantification per series and region",
          description="Lung volume (mL), GGO and consolidation (mL, % of region), density statistics (HU), zone "
                      "severity 0-5 and total 0-30; default HU bins")

# %% [markdown]
# ## QA list
# Series with a segmentation flag (implausible volume, left/right imbalance, leak, large dense-recovered share,
# airway not found) or a load warning, and series that failed.
#
# **`low_confidence`**: the classical mask is likely wrong (no or one lung, implausible volume, leak outside the
# thorax, a strong left/right imbalance, or more than 30 % of the mask added by dense recovery; on real COVID-19
# slices it marks the masks with Dice 0.76-0.81 against hand-drawn outlines, see docs/ct.md). Its numbers carry
# `qa_low_confidence` on every row of the quantification table and `ct_low_confidence` in the cohort table; every
# table below counts them (`n_low_confidence`) and every figure draws them as red crosses. For these series use an
# external mask
# (TotalSegmentator or lungmask output) with `kicc_analysis.segmentation.load_lung_mask`, or the job's `mask` column.

# %%
both = results[results["region"] == "both"]
qa = both.loc[(both["qa_flags"] != "") | (both["load_warnings"] != ""),
              ["subjid", "timepoint", "qa_low_confidence", "qa_flags", "load_warnings", "qa_total_ml", "qa_lr_ratio",
               "qa_dense_recovered_fraction", "qa_halo_dropped_ml"]]
qa_all = pd.concat([qa, failures.rename(columns={"error": "qa_flags"})], ignore_index=True)
out.table(qa_all, "ct_qa_list", title="CT QA list", description="Flags, warnings and failures per series")

# %% [markdown]
# ## Opacity by national severity category (baseline CT)

# %%
severity_names = {1: "mild", 2: "moderate", 3: "severe", 4: "critical"}
summary = (cohort_ct.groupby("sever_national")[["ct_opacity_pct", "ct_consolidation_pct", "ct_severity_total"]]
           .describe(percentiles=[0.25, 0.5, 0.75]).round(2))
no_flag = pd.Series(False, index=cohort_ct.index)
low_confidence = cohort_ct.get("ct_low_confidence", no_flag).fillna(False).astype(bool)
summary[("n_low_confidence", "")] = low_confidence.groupby(cohort_ct["sever_national"]).sum()
out.table(summary, "ct_opacity_by_severity", title="Baseline CT opacity by national severity category", index=True)
kruskal = stats.kruskal(*[g.dropna() for _, g in cohort_ct.groupby("sever_national")["ct_opacity_pct"]])
print(f"Kruskal-Wallis across categories: H = {kruskal.statistic:.2f}, p = {kruskal.pvalue:.3g}")
fig = opacity_by_group_figure(cohort_ct, "ct_opacity_pct", "sever_national", severity_names)
out.figure(fig, "ct_opacity_by_severity", title="Total opacity (% of lung) by national severity category")

# %% [markdown]
# ## Peripheral predominance (baseline CT)
# Opacity % of the peripheral lung (outer third of the depth from the thoracic outline) against the core
# (`quantify(..., core_periphery=True)`; definition in `docs/ct.md`). COVID-19 pneumonia is typically peripheral:
# points above the line of equality. Wilcoxon signed-rank test of periphery minus core.

# %%
pair = cohort_ct[["ct_core_opacity_pct", "ct_periphery_opacity_pct"]].dropna()
difference = pair["ct_periphery_opacity_pct"] - pair["ct_core_opacity_pct"]
wilcoxon = stats.wilcoxon(difference) if (difference != 0).any() else None
predominance = pd.DataFrame([{
    "n": len(pair),
    "n_low_confidence": int(low_confidence[pair.index].sum()),
    "core_median_pct": pair["ct_core_opacity_pct"].median(),
    "periphery_median_pct": pair["ct_periphery_opacity_pct"].median(),
    "difference_median_pct_points": difference.median(),
    "share_peripheral_predominant": float((difference > 0).mean()) if len(pair) else float("nan"),
    "wilcoxon_p": wilcoxon.pvalue if wilcoxon is not None else float("nan"),
}])
out.table(predominance, "ct_peripheral_predominance",
          title="Peripheral vs core opacity at baseline (Wilcoxon signed-rank)")
fig = core_periphery_figure(cohort_ct)
out.figure(fig, "ct_core_vs_periphery", title="Peripheral vs core opacity per patient (baseline CT)")

# %% [markdown]
# ## Agreement with the radiologists' visual scores
# Each reader's five lobe scores (0–5) are summed (0–25) and compared with the baseline CT opacity % and the
# automatic severity total (Spearman rank correlation).

# %%
readings = load_readings(repository)
lobes = readings[readings["item"].isin(["RUL", "RML", "RLL", "LUL", "LLL"])]
visual = lobes.groupby(["subjid", "reader"])["score"].sum(min_count=5).unstack("reader")
merged = cohort_ct.set_index("subjid")[["ct_opacity_pct", "ct_severity_total"]].join(visual, how="inner")
rows = []
for reader in visual.columns:
    for metric in ("ct_opacity_pct", "ct_severity_total"):
        pair = merged[[reader, metric]].dropna()
        rho, p = stats.spearmanr(pair[reader], pair[metric])
        rows.append({"reader": reader, "ct_metric": metric, "n": len(pair),
                     "n_low_confidence": int(low_confidence.set_axis(cohort_ct["subjid"]).reindex(pair.index)
                                             .fillna(False).astype(bool).sum()),
                     "spearman_rho": rho, "p": p})
correlation = pd.DataFrame(rows)
out.table(correlation, "ct_vs_visual_scores", title="CT metrics vs readers' summed lobe scores (Spearman)")

# %% [markdown]
# ## Example overlays (lowest, median and highest baseline opacity)

# %%
from kicc_analysis.imaging import load_ct
from kicc_analysis.segmentation import segment_lungs

baseline = both[both["timepoint"] == "baseline"].sort_values("opacity_pct")
picks = baseline.iloc[[0, len(baseline) // 2, len(baseline) - 1]] if len(baseline) >= 3 else baseline
images, lungs, opacities, titles = [], [], [], []
sources = jobs.set_index("series_uid")["source"]
for row in picks.itertuples():
    image = load_ct(sources[row.series_uid])
    seg = segment_lungs(image)
    images.append(image)
    lungs.append(seg.labels)
    opacities.append(segment_opacities(image, seg.labels))
    flag = " (low-confidence mask)" if row.qa_low_confidence else ""
    titles.append(f"{row.subjid}: opacity {row.opacity_pct:.1f} %{flag}")
fig = overlay_figure(images, lungs, opacities, titles)
out.figure(fig, "ct_example_overlays", title="Example lung and opacity segmentations")

# %% [markdown]
# ## Baseline → follow-up change

# %%
change_cols = ["subjid", "ct_opacity_pct", "ct_opacity_pct_followup", "ct_opacity_pct_change",
               "ct_severity_total", "ct_severity_total_followup", "ct_severity_total_change",
               "ct_low_confidence", "ct_low_confidence_followup"]
change = cohort_ct.loc[cohort_ct["ct_opacity_pct_followup"].notna(), change_cols]
out.table(change, "ct_change", title="Change in CT opacity between baseline and follow-up",
          description="Follow-up minus baseline (percentage points of lung volume; severity points)")
change.describe().round(2)
