# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: kicc-analysis, language: python, name: python3}
# ---

# %% [markdown]
# # 04 — Prognosis
#
# Does baseline CT involvement (% of lung volume with opacity) predict oxygen need, ICU admission, invasive
# mechanical ventilation or death, beyond age and laboratory values? Reported per TRIPOD: Table 1 by outcome,
# univariable and multivariable models with and without CT opacity, discrimination (AUC with DeLong CI, DeLong test),
# calibration, clinical usefulness (decision curves), internal validation (bootstrap optimism correction),
# Kaplan–Meier and cumulative incidence of death with discharge as a competing event, and Fine–Gray regression.
# All computations are in `kicc_analysis.prognosis`; see `docs/prognosis.md` for the conventions.

# %% tags=["parameters"]
repository = "../demo_repository"  # path of the repository (demo or real), relative to notebooks/ in JupyterLab
output_dir = "../results"
primary_outcome = "inter_suppleo2"  # outcome for the detailed calibration / decision-curve / validation section
n_boot = 200  # bootstrap replicates (optimism correction, curve bands)
n_imputations = 10  # multiple imputation of the full model
use_quantification = True  # compute CT opacity with kicc_analysis.quantification (cached); else use ct_opacity_pct
seed = 2020

# %%
NOTEBOOK_VERSION = "1.0.0"

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from kicc_analysis.errors import KiccError
from kicc_analysis.prognosis import (
    MissingDataWarning,
    bootstrap_validate,
    calibration,
    cause_specific_cox,
    competing_outcome,
    cumulative_incidence,
    decision_curve,
    delong_test,
    fine_gray,
    gray_test,
    harrell_c,
    hosmer_lemeshow,
    impute_and_pool,
    kaplan_meier,
    km_table,
    logistic,
    logrank,
    ph_test,
    plots,
    roc_auc,
    roc_curve,
    table_one,
    time_dependent_auc,
    uno_c,
)
from kicc_analysis.prognosis.validation import logistic_model
from kicc_analysis.provenance import OutputWriter

warnings.simplefilter("always", MissingDataWarning)  # every skipped row is reported in the output
# near-separated demo models give exp overflow in statsmodels' predict (probabilities of exactly 0/1): not an error
warnings.filterwarnings("ignore", message="overflow encountered in exp", category=RuntimeWarning)

# %% [markdown]
# ## Cohort and CT opacity
#
# CT opacity per patient (% of lung volume, baseline CT) comes from `kicc_analysis.quantification`: the cohort table is
# used as is when it already carries `ct_opacity_pct`; otherwise the cached quantification is run. If neither is
# available the notebook still runs and the CT models are skipped (reported below).

# %%
from kicc_analysis.cohort import load_cohort

cohort = load_cohort(repository)
ct_source = "cohort column ct_opacity_pct" if "ct_opacity_pct" in cohort.columns else "none"
if ct_source == "none" and use_quantification:
    try:
        from kicc_analysis.pipeline import quantify_cohort

        run = quantify_cohort(repository)
        cohort = run.cohort
        ct_source = "kicc_analysis.quantification"
        print(run.describe())
    except (ImportError, KiccError, OSError) as exc:  # keep the notebook running without quantification
        print(f"CT quantification unavailable ({type(exc).__name__}: {exc}); CT models will be skipped")
has_ct = "ct_opacity_pct" in cohort.columns and cohort["ct_opacity_pct"].notna().any()
print(f"{len(cohort)} patients; CT opacity source: {ct_source if has_ct else 'none (CT models skipped)'}")

out = OutputWriter(
    output_dir, notebook="04_prognosis", version=NOTEBOOK_VERSION,
    cohort_version=cohort.attrs.get("cohort_version", "unknown"),
    parameters={"repository": str(repository), "primary_outcome": primary_outcome, "n_boot": n_boot,
                "n_imputations": n_imputations, "use_quantification": use_quantification, "seed": seed,
                "ct_source": ct_source},
)  # fmt: skip

# %% [markdown]
# ## Outcomes and predictors
#
# Binary outcomes: supplemental oxygen, ICU admission, invasive ventilation, in-hospital death (`outco_outcome == 2`).
# Predictors: age (per 10 years), log2 CRP, lymphocyte count, SpO2 on room air, and CT opacity (per 10 % of lung).

# %%
data = cohort.copy()
data["died"] = np.where(data["outco_outcome"].isna(), np.nan, (data["outco_outcome"] == 2).astype(float))
data["age_per10"] = data["demog_age"] / 10
data["log2_crp"] = np.log2(pd.to_numeric(data["labs_crp_mgl"], errors="coerce").clip(lower=0.1))
data["lymphocytes"] = pd.to_numeric(data["labs_lymphocyte_109l"], errors="coerce")
data["spo2"] = pd.to_numeric(data["vital_spo2room"], errors="coerce")
if has_ct:
    data["ct_per10"] = data["ct_opacity_pct"] / 10
outcomes = {"inter_suppleo2": "Supplemental O2", "crito_icu": "ICU admission", "inter_invent": "Invasive ventilation",
            "died": "Death"}  # fmt: skip
base_predictors = ["age_per10", "log2_crp", "lymphocytes", "spo2"]
ct_predictors = base_predictors + (["ct_per10"] if has_ct else [])
event_counts = pd.DataFrame(
    [{"outcome": label, "variable": v, "events": int(data[v].sum()), "n": int(data[v].notna().sum())}
     for v, label in outcomes.items()]
)  # fmt: skip
out.table(event_counts, "outcome_counts", title="Events per outcome")

# %% [markdown]
# ## Table 1 by death

# %%
table_vars = ["demog_age", "demog_sex", "demog_bmi", "comor_hypertensi", "comor_diabetes", "vital_spo2room",
              "labs_crp_mgl", "labs_lymphocyte_109l", "labs_ldh", "labs_ddimer_mgl"] + (["ct_opacity_pct"] if has_ct else [])  # fmt: skip
t1 = table_one(
    data, "died", table_vars,
    nonnormal=["labs_crp_mgl", "labs_ldh", "labs_ddimer_mgl", "ct_opacity_pct"],
    categorical=["demog_sex", "comor_hypertensi", "comor_diabetes"],
)  # fmt: skip
out.table(t1.table, "table1_by_death", title="Table 1 by in-hospital death")
out.table(t1.tests, "table1_by_death_tests", title="Table 1 tests and standardised mean differences")

# %% [markdown]
# ## Univariable and multivariable logistic models, with and without CT
#
# Complete cases (skipped rows are reported); the CT model's coefficients are also pooled over multiple imputations.

# %%
models, failures, discrimination = {}, [], []
for outcome, label in outcomes.items():
    for name, preds in (("base", base_predictors), ("with CT", ct_predictors)):
        if name == "with CT" and not has_ct:
            continue
        try:
            # both models on the same complete rows so that AUCs are comparable (DeLong test is paired)
            sub = data.dropna(subset=[outcome, *ct_predictors])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # non-convergence is recorded below instead
                fit = logistic(sub, outcome, preds)
            if not fit.converged:
                failures.append({"outcome": outcome, "model": name, "reason": "did not converge (separation)"})
            models[(outcome, name)] = (fit, sub)
        except KiccError as exc:
            failures.append({"outcome": outcome, "model": name, "reason": str(exc)})
for (outcome, name), (fit, sub) in models.items():
    table = fit.side_by_side()
    out.table(table, f"or_{outcome}_{name.replace(' ', '_')}", title=f"Odds ratios: {outcomes[outcome]} ({name})",
              description=f"n = {fit.n}, events = {fit.events}, rows skipped = {len(data) - len(sub)}")  # fmt: skip
for outcome in outcomes:
    if (outcome, "base") not in models:
        continue
    fit_b, sub = models[(outcome, "base")]
    p_b = fit_b.model.predict()
    row = {"outcome": outcomes[outcome], "n": fit_b.n, "events": fit_b.events}
    auc_b = roc_auc(sub[outcome], p_b)
    row.update({"auc_base": auc_b.estimate, "auc_base_ci": f"{auc_b.ci_low:.3f}–{auc_b.ci_high:.3f}"})
    if (outcome, "with CT") in models:
        p_c = models[(outcome, "with CT")][0].model.predict()
        auc_c = roc_auc(sub[outcome], p_c)
        dl = delong_test(sub[outcome], p_c, p_b)
        row.update({"auc_ct": auc_c.estimate, "auc_ct_ci": f"{auc_c.ci_low:.3f}–{auc_c.ci_high:.3f}",
                    "delta_auc": dl.estimate, "delta_ci": f"{dl.ci_low:.3f}–{dl.ci_high:.3f}", "delong_p": dl.p})  # fmt: skip
    discrimination.append(row)
discrimination = pd.DataFrame(discrimination)
out.table(discrimination, "discrimination_base_vs_ct", title="AUC without and with CT opacity (DeLong)")
if failures:
    out.table(pd.DataFrame(failures), "model_failures", title="Models that could not be fitted")

# %%
if (primary_outcome, "with CT") in models:
    fit = models[(primary_outcome, "with CT")][0]
    fig = plots.forest_plot(fit.table, title=f"{outcomes[primary_outcome]}: multivariable model with CT")
    out.figure(fig, f"forest_{primary_outcome}", title="Forest plot of odds ratios")
    plt.close(fig)
    mi_cols = [primary_outcome, *ct_predictors, "demog_sex", "comor_hypertensi", "comor_diabetes"]
    mi_data = data[mi_cols].apply(pd.to_numeric, errors="coerce")
    mi_data = mi_data.dropna(subset=[primary_outcome])
    try:
        pooled = impute_and_pool(mi_data, lambda d: logistic(d, primary_outcome, ct_predictors, univariable=False),
                                 m=n_imputations, seed=seed)  # fmt: skip
    except (KiccError, np.linalg.LinAlgError) as exc:  # e.g. separation in a tiny cohort: report, don't fail
        pooled = None
        display_table = f"multiple imputation not possible on these data: {exc}"
    if pooled is not None:
        pooled_table = pooled.table.assign(or_=np.exp(pooled.table["estimate"]), or_ci_low=np.exp(pooled.table["ci_low"]),
                                           or_ci_high=np.exp(pooled.table["ci_high"]))  # fmt: skip
        out.table(pooled_table, f"or_{primary_outcome}_mice", title="Multiply imputed model (Rubin's rules)",
                  description=f"m = {n_imputations}; Barnard–Rubin df; fmi as R mice")  # fmt: skip
        display_table = pooled_table[["term", "or_", "or_ci_low", "or_ci_high", "p", "fmi"]]
else:
    display_table = "CT model not available"
display_table

# %% [markdown]
# ## Discrimination, calibration and clinical usefulness (primary outcome)

# %%
key = (primary_outcome, "with CT") if (primary_outcome, "with CT") in models else (primary_outcome, "base")
fit, sub = models[key]
y = sub[primary_outcome].to_numpy()
p = np.clip(fit.model.predict(), 1e-9, 1 - 1e-9)  # fitted risks of 0/1 under (near-)separation
curves = {key[1]: roc_curve(y, p)}
aucs = {key[1]: roc_auc(y, p)}
bands = {key[1]: plots.roc_band(y, p, n_boot=n_boot, seed=seed)}
if key[1] == "with CT":
    pb = np.clip(models[(primary_outcome, "base")][0].model.predict(), 1e-9, 1 - 1e-9)
    curves["base"], aucs["base"] = roc_curve(y, pb), roc_auc(y, pb)
fig = plots.roc_plot(curves, aucs, bands=bands, title=outcomes[primary_outcome])
out.figure(fig, f"roc_{primary_outcome}", title="ROC curves with bootstrap band")
plt.close(fig)
cal = calibration(y, p, n_boot=n_boot, seed=seed)
hl = hosmer_lemeshow(y, np.clip(p, 1e-9, 1 - 1e-9))
cal_summary = pd.concat([cal.summary, hl.to_frame().assign(statistic="hosmer_lemeshow")], ignore_index=True)
out.table(cal_summary, f"calibration_{primary_outcome}", title="Calibration statistics (apparent)",
          description=f"Hosmer–Lemeshow: {hl.convention}")  # fmt: skip
fig = plots.calibration_plot(cal, p=p, title=f"{outcomes[primary_outcome]} ({key[1]})")
out.figure(fig, f"calibration_{primary_outcome}", title="Calibration plot")
plt.close(fig)
preds = {key[1]: p} | ({"base": pb} if key[1] == "with CT" else {})
dca = decision_curve(y, preds, np.round(np.arange(0.0, 0.9, 0.01), 2), n_boot=n_boot, seed=seed)
out.table(dca, f"decision_curve_{primary_outcome}", title="Decision curve (net benefit)")
fig = plots.decision_curve_plot(dca, title=outcomes[primary_outcome])
out.figure(fig, f"decision_curve_{primary_outcome}", title="Decision curve")
plt.close(fig)
cal.summary[["statistic", "estimate", "ci_low", "ci_high"]]

# %% [markdown]
# ## Internal validation: bootstrap optimism correction (Harrell)

# %%
validation = []
for (outcome, name), (fit_, sub_) in models.items():
    if outcome != primary_outcome:
        continue
    preds_ = base_predictors if name == "base" else ct_predictors
    v = bootstrap_validate(logistic_model(outcome, preds_), sub_[[outcome, *preds_]], n_boot, outcome=outcome,
                           seed=seed)  # fmt: skip
    validation.append(v.assign(model=name))
validation = pd.concat(validation, ignore_index=True)
out.table(validation, f"bootstrap_validation_{primary_outcome}", title="Optimism-corrected performance",
          description=f"{n_boot} bootstrap replicates; the whole model is refitted in each")  # fmt: skip
validation[["model", "metric", "apparent", "optimism", "corrected"]]

# %% [markdown]
# ## Survival: Kaplan–Meier and cumulative incidence of death with discharge as a competing event
#
# Time = days from admission to death, discharge or last follow-up (`outco_day`). Kaplan–Meier treats discharge as
# censoring (it overestimates death risk); the Aalen–Johansen CIF treats discharge as a competing event.

# %%
cr = competing_outcome(data)
surv = data.join(cr)
surv["death"] = (surv["event_type"] == 1).astype(float).where(surv["event_type"].notna())
if has_ct:
    surv["ct_group"] = pd.cut(surv["ct_opacity_pct"], [-np.inf, 5, 20, np.inf], labels=["<5%", "5–20%", ">20%"])
    groups = surv["ct_group"]
else:
    groups = pd.cut(surv["demog_age"].astype(float), [-np.inf, 65, np.inf], right=False, labels=["age <65", "age ≥65"])
km = kaplan_meier(surv["time"], surv["death"], groups)
out.table(km_table(km), "km_death_by_group", title="Kaplan–Meier median time to death by group")
lr = logrank(surv["time"], surv["death"], groups)
out.table(pd.concat([lr.to_frame(), lr.table], axis=1), "logrank_death_by_group", title="Log-rank test")
fig = plots.km_plot(km, title="Death (discharge censored)", ylabel="Probability of survival")
out.figure(fig, "km_death", title="Kaplan–Meier curves with numbers at risk")
plt.close(fig)
cif = cumulative_incidence(surv["time"], surv["event_type"], causes=[1, 2])
cif_groups = cumulative_incidence(surv["time"], surv["event_type"], groups, causes=[1, 2])
out.table(cif.table, "cif_death_discharge", title="Cumulative incidence of death and discharge (Aalen–Johansen)")
fig = plots.cif_plot(cif, cause_labels={1: "Death", 2: "Discharged alive"}, title="Competing outcomes")
out.figure(fig, "cif_death_discharge", title="Cumulative incidence functions")
plt.close(fig)
fig = plots.cif_plot({k: v for k, v in cif_groups.items()}, cause_labels={1: "death", 2: "discharge"}, ci=False,
                     title="Cumulative incidence by group")  # fmt: skip
out.figure(fig, "cif_by_group", title="Cumulative incidence of death and discharge by group")
plt.close(fig)
gray = gray_test(surv["time"], surv["event_type"], groups, cause=1)
out.table(gray, "gray_test_death", title="Test of equal cumulative incidence of death between groups")

# %% [markdown]
# ## Fine–Gray and cause-specific Cox models for death

# %%
surv_preds = ["age_per10"] + (["ct_per10"] if has_ct else ["log2_crp"])
surv_cc = surv.dropna(subset=["time", "event_type", *surv_preds])
fg = fine_gray(surv_cc, "time", "event_type", 1, surv_preds)
cs = cause_specific_cox(surv_cc, "time", "event_type", 1, surv_preds)
try:
    zph = ph_test(cs)
except KiccError as exc:  # too few events to test proportional hazards: say so instead of failing
    zph = pd.DataFrame([{"covariate": "GLOBAL", "chisq": np.nan, "df": len(surv_preds), "p": np.nan, "note": str(exc)}])
out.table(fg.table, "fine_gray_death", title="Fine–Gray subdistribution hazard ratios for death",
          description=f"n = {fg.n}, deaths = {fg.events}, discharges = {fg.competing}, censored = {fg.censored}")  # fmt: skip
out.table(cs.table, "cause_specific_cox_death", title="Cause-specific Cox model for death")
out.table(zph, "ph_test_cause_specific", title="Proportional hazards test (R cox.zph, survival >= 3)")
lp = cs.linear_predictor()
horizons = [h for h in (7, 14, 21) if (surv_cc["time"] > h).any()]
disc = pd.DataFrame(
    [{"statistic": "Harrell C", "value": cs.concordance.estimate},
     {"statistic": "Uno C", "value": uno_c(surv_cc["time"], surv_cc["event_type"] == 1, lp).estimate}]
    + [{"statistic": f"time-dependent AUC day {h}", "value": a}
       for h, a in zip(horizons,
                       time_dependent_auc(surv_cc["time"], surv_cc["event_type"] == 1, lp, horizons).table["auc"],
                       strict=True)]
)  # fmt: skip
out.table(disc, "discrimination_death_cause_specific", title="Discrimination of the cause-specific Cox model for death",
          description="Uno's C and time-dependent AUC with IPCW; discharge treated as censoring")  # fmt: skip
fig = plots.forest_plot(fg.table, estimate="shr", low="shr_ci_low", high="shr_ci_high", label="covariate",
                        xlabel="Subdistribution hazard ratio (95% CI)", title="Fine–Gray: death")  # fmt: skip
out.figure(fig, "forest_fine_gray_death", title="Fine–Gray forest plot")
plt.close(fig)

# %% [markdown]
# ## Notes
#
# * CT opacity source is recorded in every output's provenance (`ct_source`).
# * Skipped rows are reported as warnings above and in table descriptions; the multiply imputed model keeps them.
