"""Simulated clinical table of the demo cohort (ISARIC-aligned variable names, KICC-19 codes and units).

Generative model (one latent severity drives everything, so analyses find real signal)
--------------------------------------------------------------------------------------
1. Demographics: age ~ Normal(55, 18) years clipped to 18-95, 50 % male, BMI ~ Normal(24, 3.5) kg/m2
   (Korean adult cohort), smoking more frequent in men.
2. Comorbidities: logistic in age (hypertension ~30 %, diabetes ~15 %, chronic cardiac, pulmonary, kidney disease,
   malignancy, immunosuppression a few %), 99 = unknown in ~2 %.
3. Latent host risk ``L`` = age, male sex, BMI and comorbidities + Normal(0, 1) noise.
4. CT lesion burden (baseline opacity %) = logistic in ``L`` plus noise (median ~8 %, 0 % in ~8 % of patients);
   consolidation share grows with days since symptom onset and with ``L``. The phantom is *built* with this burden,
   so CT opacity truly drives what follows.
5. Severity score ``S`` = host risk + standardised log-opacity + noise. Interventions are the patients with the
   highest ``S`` (plus independent noise), calibrated to O2 ~45 %, HFNC ~15 %, ICU ~12 %, MV ~8 %, ECMO ~2 %; made
   monotone: ECMO => MV => ICU, any of them => supplemental O2. Days are ordered O2 <= HFNC <= ICU <= MV <= ECMO.
6. Outcomes: death ~7 % (highest risk ``0.7 S + 0.5 age``, always among patients needing O2); the others are
   discharged alive (1), still in hospital at last follow-up (3, ~5 %) or transferred (4, ~3 %). Discharge competes
   with death; ``outco_day`` is the day of that event or of the last follow-up.
7. Labs: log-normal with severity: lymphocytes fall, CRP, LDH, D-dimer, ferritin, IL-6, troponin, procalcitonin rise.
   Vitals: SpO2 falls, respiratory rate and temperature rise with ``S``.
8. WHO clinical progression scale (0-10): worst from the interventions and outcome; admission value <= worst.

Then :func:`inject_problems` adds a few realistic data-quality problems (free text in a numeric lab, an implausible
age, ~5 % labs missing completely at random) and lists each of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from kicc_analysis.dictionary import load_dictionary

__all__ = ["CLINICAL_COLUMNS", "LAB_COLUMNS", "ClinicalSimulation", "inject_problems", "simulate_clinical"]

#: Laboratory variables, in data-dictionary order (the dictionary is the single source of truth).
LAB_COLUMNS: tuple[str, ...] = tuple(load_dictionary().names(["laboratory"]))
COMORBIDITIES: tuple[str, ...] = (
    "comor_hypertensi",
    "comor_diabetes",
    "comor_chrpulmona",
    "comor_chrcardiac",
    "comor_chrkidney",
    "comor_malignantn",
    "comor_immunosupp",
)
CLINICAL_COLUMNS: tuple[str, ...] = (
    "subjid",
    "kicc_site",
    "pres_date",
    "demog_age",
    "demog_sex",
    "demog_bmi",
    "comor_smoking",
    *COMORBIDITIES,
    "pres_onset_days",
    "vital_spo2room",
    "vital_rr",
    "vital_highesttem_c",
    *LAB_COLUMNS,
    "sever_who_adm",
    "sever_who_worst",
    "sever_national",
    "inter_suppleo2",
    "inter_suppleo2_day",
    "inter_hfno",
    "inter_hfno_day",
    "inter_invent",
    "inter_invent_day",
    "inter_ecmo",
    "inter_ecmo_day",
    "crito_icu",
    "crito_icu_day",
    "outco_outcome",
    "outco_day",
)

#: Published summary of KICC-19 (J Korean Med Sci 2020;35:e413) that the demo is calibrated to; see
#: :mod:`kicc_analysis.demo.calibration` for how each figure is computed from a demo and docs/demo.md for the table.
PUBLISHED: dict[str, float] = {
    "n_patients": 522,
    "n_sites": 17,
    "male": 0.458,
    "age_mean": 52.3,
    "age_min": 11,
    "age_max": 97,
    "underlying_disease": 0.385,
    "lymphocytopenia": 0.289,
    "thrombocytopenia": 0.165,
    "elevated_crp": 0.435,
    "oxygen_or_ventilation": 0.234,
    "mechanical_ventilation": 0.073,
    "icu": 0.094,
    "death": 0.040,
    "ct_patients": 0.891,
    "ct_scans": 658,
    "radiograph_patients": 0.952,
    "radiograph_scans": 1475,
}

SITES: tuple[str, ...] = tuple(f"S{i:02d}" for i in range(1, 18))
#: 17 hospitals of different sizes (patients per site at the published 522; the real per-site counts are not
#: published): the six largest carry the six original site habits, so that small demos (n >= 6) still cover them
SITE_SIZES_522 = np.array([78, 64, 55, 47, 41, 36, 32, 28, 25, 22, 19, 17, 15, 13, 12, 10, 8])
SITE_WEIGHTS = SITE_SIZES_522 / SITE_SIZES_522.sum()
#: rates of the interventions and outcomes that the paper does not report (HFNC, ECMO): plausible for the cohort
HFNC_RATE = 0.09
ECMO_RATE = 0.015

AGE_RANGE = (PUBLISHED["age_min"], PUBLISHED["age_max"])
#: beta shape parameters: mean (52.3 - 11) / 86 = 0.48, SD ~ 18 years
AGE_BETA = (2.27, 2.46)
#: noise of the latent severity (host risk and CT burden -> severity) and of each intervention's ranking score:
#: chosen so that baseline CT burden discriminates O2 / ICU / MV / death with AUC ~0.75-0.85 (literature range),
#: not near-separation
SEVERITY_NOISE = 0.8
OUTCOME_NOISE = 1.3

# comorbidity prevalence model: logit P = a + b * (age - 55) / 10
_COMOR_MODEL = {
    "comor_hypertensi": (-1.3, 0.75),
    "comor_diabetes": (-2.25, 0.45),
    "comor_chrpulmona": (-3.5, 0.35),
    "comor_chrcardiac": (-3.3, 0.55),
    "comor_chrkidney": (-3.7, 0.45),
    "comor_malignantn": (-3.4, 0.35),
    "comor_immunosupp": (-3.8, 0.10),
}
_COMOR_RISK = {
    "comor_hypertensi": 0.25,
    "comor_diabetes": 0.45,
    "comor_chrpulmona": 0.5,
    "comor_chrcardiac": 0.45,
    "comor_chrkidney": 0.55,
    "comor_malignantn": 0.4,
    "comor_immunosupp": 0.6,
}
# (median at S = 0, log-scale slope per unit S, log-scale SD, decimals)
_LABS = {
    "labs_lymphocyte_109l": (1.245, -0.22, 0.35, 2),
    "labs_platelets_109l": (191.0, -0.06, 0.25, 0),
    "labs_crp_mgl": (4.1, 0.85, 0.9, 1),
    "labs_ldh": (235.0, 0.17, 0.22, 0),
    "labs_ddimer_mgl": (0.55, 0.38, 0.55, 2),
    "labs_ferritin": (260.0, 0.35, 0.7, 0),
    "labs_procalcito_ngml": (0.05, 0.45, 0.7, 2),
    "labs_astsgot": (30.0, 0.16, 0.38, 0),
    "labs_altsgpt": (25.0, 0.10, 0.5, 0),
    "labs_tropi_ngl": (4.0, 0.45, 0.85, 1),
    "labs_il6": (9.0, 0.65, 0.8, 1),
}


@dataclass(frozen=True)
class ClinicalSimulation:
    """The clinical table plus the latent per-patient quantities the imaging simulation needs.

    Attributes
    ----------
    clinical : one row per patient, columns :data:`CLINICAL_COLUMNS` (clean, before :func:`inject_problems`).
    latent : one row per patient: ``subjid``, ``host_risk``, ``severity``, ``opacity_pct`` (baseline CT lesion
        burden, %), ``consolidation_fraction``, ``body_scale``, ``admission_date`` (shifted, fictional).
    """

    clinical: pd.DataFrame
    latent: pd.DataFrame


def _logistic(x: np.ndarray) -> np.ndarray:
    return special.expit(x)


def _top_fraction(score: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the ``round(fraction * n)`` highest scores (stable ranking); at least one when ``n >= 2``, so
    that a small demo still has every outcome (e.g. one death among 8 patients) and the notebooks can run on it."""
    n = len(score)
    k = max(int(round(fraction * n)), 1 if n >= 2 and fraction > 0 else 0)
    out = np.zeros(n, dtype=bool)
    if k > 0:
        out[np.argsort(-score, kind="stable")[:k]] = True
    return out


def _site_allocation(n: int) -> np.ndarray:
    """Site index of each patient, sorted: counts follow SITE_WEIGHTS (largest remainder), every site >= 1 if n >= 6."""
    raw = SITE_WEIGHTS * n
    counts = np.floor(raw).astype(int)
    if n >= len(SITES):
        counts = np.maximum(counts, 1)
    while counts.sum() > n:
        counts[np.argmax(counts)] -= 1
    order = np.argsort(-(raw - np.floor(raw)), kind="stable")
    i = 0
    while counts.sum() < n:
        counts[order[i % len(order)]] += 1
        i += 1
    return np.repeat(np.arange(len(SITES)), counts)


def simulate_clinical(n_patients: int, rng: np.random.Generator) -> ClinicalSimulation:
    """Simulate the clinical table of ``n_patients`` (see the module docstring for the model)."""
    n = int(n_patients)
    site_idx = _site_allocation(n)
    site = np.array(SITES)[site_idx]
    counters: dict[str, int] = {}
    subjid = []
    for s in site:
        counters[s] = counters.get(s, 0) + 1
        subjid.append(f"KICC-{s}-{counters[s]:04d}")

    # age: scaled beta on the published range 11-97 years with the published mean 52.3 (SD ~ 18)
    age = np.rint(AGE_RANGE[0] + (AGE_RANGE[1] - AGE_RANGE[0]) * rng.beta(*AGE_BETA, n)).astype(int)
    male = rng.random(n) < PUBLISHED["male"]
    sex = np.where(male, 1, 2)
    bmi = np.round(np.clip(rng.normal(24.0, 3.5, n), 15.0, 42.0), 1)
    smoking = np.where(rng.random(n) < np.where(male, 0.38, 0.06), 1, 0)
    age10 = (age - 55.0) / 10.0
    comor = {}
    host = rng.normal(0.0, 1.0, n) + 0.32 * age10 + 0.25 * male + 0.05 * (bmi - 24.0)
    for name, (a, b) in _COMOR_MODEL.items():
        has = rng.random(n) < _logistic(a + b * age10)
        comor[name] = has.astype(int)
        host = host + _COMOR_RISK[name] * has
    host_z = (host - host.mean()) / (host.std() or 1.0)

    onset = np.clip(np.rint(rng.gamma(2.5, 2.0, n)), 0, 21).astype(int)
    # baseline CT lesion burden (% of lung volume)
    opacity = 100.0 * _logistic(-2.55 + 1.05 * host_z + 0.08 * (onset - 5) + rng.normal(0.0, 0.55, n))
    opacity = np.where(host_z + rng.normal(0, 0.6, n) < -1.7, 0.0, opacity)
    opacity = np.round(np.clip(opacity, 0.0, 75.0), 2)
    cons_frac = np.round(np.clip(0.12 + 0.025 * onset + 0.07 * host_z + rng.normal(0, 0.07, n), 0.03, 0.7), 3)

    log_opac = np.log(opacity + 1.0)
    opac_z = (log_opac - log_opac.mean()) / (log_opac.std() or 1.0)
    sev = 0.6 * host_z + 0.9 * opac_z + rng.normal(0.0, SEVERITY_NOISE, n)
    sev = (sev - sev.mean()) / (sev.std() or 1.0)

    def noisy(sd: float) -> np.ndarray:
        return sev + rng.normal(0.0, sd, n)

    # nested by construction (ECMO => MV => ICU => O2) with the published rates exactly (largest scores first)
    mv = _top_fraction(noisy(OUTCOME_NOISE), PUBLISHED["mechanical_ventilation"])
    ecmo = _top_fraction(np.where(mv, noisy(OUTCOME_NOISE), -np.inf), ECMO_RATE) & mv
    icu = _top_fraction(np.where(mv, np.inf, noisy(OUTCOME_NOISE)), PUBLISHED["icu"]) | mv
    hfno = _top_fraction(noisy(OUTCOME_NOISE), HFNC_RATE)
    o2 = _top_fraction(np.where(icu | hfno, np.inf, noisy(OUTCOME_NOISE)), PUBLISHED["oxygen_or_ventilation"])
    o2 |= icu | hfno
    death_score = 0.1 * sev + 0.75 * (age - 55.0) / 18.0 + rng.normal(0, 1.0, n)
    death = _top_fraction(np.where(o2, death_score, -np.inf), PUBLISHED["death"]) & o2

    # days, ordered O2 <= HFNC <= ICU <= MV <= ECMO
    o2_day = np.where(o2, np.clip(np.rint(rng.exponential(1.8, n)), 0, 10), np.nan)
    hfno_day = np.where(hfno, o2_day + np.rint(rng.exponential(1.2, n)), np.nan)
    icu_base = np.where(hfno, hfno_day, o2_day)
    icu_day = np.where(icu, icu_base + np.rint(rng.exponential(1.0, n)), np.nan)
    mv_day = np.where(mv, icu_day + np.rint(rng.exponential(0.8, n)), np.nan)
    ecmo_day = np.where(ecmo, mv_day + 1 + np.rint(rng.exponential(2.0, n)), np.nan)
    last_event = np.nanmax(np.vstack([np.zeros(n), o2_day, hfno_day, icu_day, mv_day, ecmo_day]), axis=0)

    # outcomes: death (2) competes with discharge (1); 3 still in hospital and 4 transferred are censored
    los = np.rint(np.exp(rng.normal(np.log(13.0) + 0.18 * sev, 0.35, n)))
    death_day = last_event + 2 + np.rint(rng.gamma(2.0, 4.5, n))
    outcome = np.ones(n, dtype=int)
    outcome[death] = 2
    alive = ~death
    cens_u = rng.random(n)
    outcome[alive & (cens_u < 0.05)] = 3
    outcome[alive & (cens_u >= 0.05) & (cens_u < 0.08)] = 4
    out_day = np.maximum(los, last_event + 3)
    out_day = np.where(death, death_day, out_day)
    out_day = np.where(outcome == 3, np.maximum(out_day, 28 + np.rint(rng.uniform(0, 30, n))), out_day)
    out_day = np.where(outcome == 4, np.maximum(last_event + 1, np.rint(out_day * rng.uniform(0.3, 0.9, n))), out_day)

    who_worst = np.full(n, 4)
    who_worst[o2] = 5
    who_worst[hfno] = 6
    who_worst[mv] = np.where(rng.random(mv.sum()) < 0.5, 7, 8)
    who_worst[ecmo] = 9
    who_worst[death] = 10
    who_adm = np.full(n, 4)
    who_adm[o2 & (o2_day == 0)] = 5
    who_adm[hfno & (hfno_day == 0)] = 6
    who_adm[(who_adm == 4) & (sev < -0.8) & (rng.random(n) < 0.3)] = 3
    who_adm = np.minimum(who_adm, who_worst)
    national = np.where(who_worst >= 7, 4, np.where(who_worst >= 5, 3, np.where(opacity > 0, 2, 1)))
    national[icu] = 4

    softplus = np.log1p(np.exp(sev))
    spo2 = np.clip(np.rint(97.6 - 2.2 * softplus + rng.normal(0, 1.6, n)), 72, 100).astype(int)
    rr = np.clip(np.rint(17 + 3.0 * softplus + rng.normal(0, 1.8, n)), 12, 44).astype(int)
    temp = np.round(np.clip(37.2 + 0.45 * sev + rng.normal(0, 0.5, n), 35.6, 40.5), 1)

    labs: dict[str, np.ndarray] = {}
    for name, (median, slope, sd, dec) in _LABS.items():
        vals = np.exp(np.log(median) + slope * sev + rng.normal(0, sd, n))
        labs[name] = np.round(vals, dec)
    labs["labs_ferritin"] = np.round(labs["labs_ferritin"] * np.where(male, 1.4, 0.8))
    neut = np.round(np.exp(np.log(3.4) + 0.2 * sev + rng.normal(0, 0.33, n)), 2)
    labs["labs_neutrophil_109l"] = neut
    labs["labs_wbccount"] = np.round(neut + labs["labs_lymphocyte_109l"] + np.exp(rng.normal(np.log(0.6), 0.3, n)), 2)
    creat = np.exp(np.log(np.where(male, 85.0, 64.0)) + 0.1 * sev + rng.normal(0, 0.18, n))
    creat *= np.where(comor["comor_chrkidney"] == 1, 2.2, 1.0)
    labs["labs_creatinine_umoll"] = np.round(creat)

    # unknown (99) answers in ~2 % of comorbidity / smoking cells
    def with_unknown(v: np.ndarray) -> np.ndarray:
        v = v.copy()
        v[rng.random(n) < 0.02] = 99
        return v

    # shifted, fictional admission dates (2120-2121): consistent within a patient, never real
    base = np.datetime64("2120-02-01")
    admission = base + rng.integers(0, 420, n).astype("timedelta64[D]")
    clinical = pd.DataFrame(
        {
            "subjid": subjid,
            "kicc_site": site,
            "pres_date": np.datetime_as_string(admission, unit="D"),
            "demog_age": age,
            "demog_sex": sex,
            "demog_bmi": bmi,
            "comor_smoking": with_unknown(smoking),
            **{k: with_unknown(v) for k, v in comor.items()},
            "pres_onset_days": onset,
            "vital_spo2room": spo2,
            "vital_rr": rr,
            "vital_highesttem_c": temp,
            **{k: labs[k] for k in LAB_COLUMNS},
            "sever_who_adm": who_adm,
            "sever_who_worst": who_worst,
            "sever_national": national,
            "inter_suppleo2": o2.astype(int),
            "inter_suppleo2_day": o2_day,
            "inter_hfno": hfno.astype(int),
            "inter_hfno_day": hfno_day,
            "inter_invent": mv.astype(int),
            "inter_invent_day": mv_day,
            "inter_ecmo": ecmo.astype(int),
            "inter_ecmo_day": ecmo_day,
            "crito_icu": icu.astype(int),
            "crito_icu_day": icu_day,
            "outco_outcome": outcome,
            "outco_day": out_day.astype(int),
        },
        columns=list(CLINICAL_COLUMNS),
    )
    # whole days: nullable integers, so the CSV says "3" (and "" when the event did not happen), not "3.0"
    for col in ("inter_suppleo2_day", "inter_hfno_day", "inter_invent_day", "inter_ecmo_day", "crito_icu_day"):
        clinical[col] = clinical[col].astype("Int64")
    latent = pd.DataFrame(
        {
            "subjid": subjid,
            "host_risk": host_z,
            "severity": sev,
            "opacity_pct": opacity,
            "consolidation_fraction": cons_frac,
            "body_scale": np.round(np.clip(0.95 + 0.015 * (bmi - 24.0), 0.85, 1.08), 3),
            "admission_date": admission,
        }
    )
    return ClinicalSimulation(clinical=clinical, latent=latent)


def inject_problems(clinical: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, list[dict]]:
    """Add minor, realistic data-quality problems and list each one.

    Problems: ~5 % of lab cells missing completely at random (NaN), one free-text value in a numeric lab
    (``"<0.05"`` in procalcitonin, a below-detection-limit report), one implausible age (199 years).

    Returns
    -------
    (table, problems): the modified copy and a list of ``{"row", "subjid", "variable", "problem"}``
    (``row`` is the 0-based row position in ``clinical.csv``).
    """
    df = clinical.copy()
    n = len(df)
    problems: list[dict] = []
    if n == 0:
        return df, problems
    for col in LAB_COLUMNS:
        miss = np.nonzero(rng.random(n) < 0.05)[0]
        for r in miss:
            df.loc[df.index[r], col] = np.nan
            problems.append(
                {"row": int(r), "subjid": df["subjid"].iat[r], "variable": col, "problem": "missing (MCAR)"}
            )
    r_text = int(rng.integers(0, n))
    df["labs_procalcito_ngml"] = df["labs_procalcito_ngml"].astype(object)
    df.loc[df.index[r_text], "labs_procalcito_ngml"] = "<0.05"
    problems.append(
        {
            "row": r_text,
            "subjid": df["subjid"].iat[r_text],
            "variable": "labs_procalcito_ngml",
            "problem": "free text in numeric field: '<0.05'",
        }
    )
    candidates = [i for i in range(n) if i != r_text] or [r_text]
    r_age = int(rng.choice(candidates))
    df.loc[df.index[r_age], "demog_age"] = 199
    problems.append(
        {
            "row": r_age,
            "subjid": df["subjid"].iat[r_age],
            "variable": "demog_age",
            "problem": "implausible value: 199 years",
        }
    )
    problems.sort(key=lambda p: (p["row"], p["variable"]))
    return df, problems
