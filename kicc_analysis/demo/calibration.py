"""The demo beside the published KICC-19 summary (J Korean Med Sci 2020;35:e413).

:func:`published_comparison` computes every published figure from a demo (a written repository or a
:class:`~kicc_analysis.demo.generator.DemoPlan`, which needs no pixels) with its 99 % sampling interval at the demo's
size; :func:`comparison_markdown` renders the table that docs/demo.md shows (``python -m
kicc_analysis.demo.calibration`` prints it for the default demo).

Definitions (the paper does not state its cut-offs; these are the usual Korean laboratory reference limits):
lymphocytopenia = lymphocytes < 1.0 x 10^9/L, thrombocytopenia = platelets < 150 x 10^9/L, elevated CRP = CRP
> 5 mg/L (0.5 mg/dL), each among patients with the value recorded; underlying disease = any of the seven
comorbidities coded 1; oxygen or ventilation = supplemental O2, HFNC, invasive ventilation or ECMO; ages above 120
years (the injected implausible value) are left out of the age figures.

Intervals: proportions use the binomial 99 % interval of the published proportion at the demo's denominator; the
mean age uses the normal 99 % interval (published mean +/- 2.576 SD / sqrt(n), SD of the demo); scan counts are
the published counts scaled to the demo's size (the generator makes them exact). The discrimination of CT extent
(baseline lesion burden, % of lung) is the AUC (Mann-Whitney) among patients with a CT; the literature range for
COVID-19 CT severity scores is about 0.75-0.85, widened by the 99 % sampling half-width of an AUC at the demo's
numbers of events and non-events (Hanley-McNeil standard error at AUC 0.80): with 21 deaths in 522 patients a
demo AUC of 0.86 is as consistent with a true 0.80 as 0.74 would be.

Examples
--------
>>> from kicc_analysis.demo.generator import plan_demo
>>> table = published_comparison(plan_demo(40, seed=2))
>>> float(table.set_index("figure").loc["patients", "demo"])
40.0
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from kicc_analysis.demo.clinical import COMORBIDITIES, PUBLISHED

__all__ = ["AUC_RANGE", "comparison_markdown", "published_comparison"]

#: discrimination of severe outcomes by CT extent reported for COVID-19 (AUC)
AUC_RANGE: tuple[float, float] = (0.75, 0.85)
_Z99 = float(stats.norm.ppf(0.995))
_OUTCOMES = {
    "inter_suppleo2": "oxygen or ventilation",
    "crito_icu": "ICU admission",
    "inter_invent": "mechanical ventilation",
    "died": "death",
}


def _load(demo) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """(clinical table as written, imaging inventory, baseline CT burden % by subjid for patients with a CT)."""
    if isinstance(demo, (str, os.PathLike)):
        root = Path(demo)
        clinical = pd.read_csv(root / "clinical" / "clinical.csv", dtype={"labs_procalcito_ngml": str})
        inventory = pd.read_csv(root / "clinical" / "imaging_studies.csv")
        truth = pd.read_csv(root / "ground_truth" / "truth.csv")
        base = truth[(truth["timepoint"] == 1) & (truth["series_role"] == "lung")]
        burden = base.set_index("subjid")["opacity_pct"]
        return clinical, inventory, burden
    inventory = demo.inventory
    with_ct = inventory.loc[inventory["img_modality"] == "CT", "subjid"].unique()
    latent = demo.simulation.latent.set_index("subjid")["opacity_pct"]
    return demo.clinical, inventory, latent.loc[latent.index.isin(with_ct)]


def _auc(score: np.ndarray, event: np.ndarray) -> float:
    pos, neg = score[event], score[~event]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    u = stats.mannwhitneyu(pos, neg, alternative="two-sided").statistic
    return float(u) / (len(pos) * len(neg))


def _hanley_mcneil_se(auc: float, n_events: int, n_controls: int) -> float:
    """Standard error of an AUC (Hanley & McNeil, Radiology 1982;143:29-36)."""
    if n_events == 0 or n_controls == 0:
        return float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_events - 1) * (q1 - auc**2) + (n_controls - 1) * (q2 - auc**2)) / (
        n_events * n_controls
    )
    return float(np.sqrt(var))


def published_comparison(demo) -> pd.DataFrame:
    """Each published KICC-19 figure beside the demo's, with the 99 % sampling interval at the demo's size.

    Parameters
    ----------
    demo : a demo repository folder (written by ``generate_demo``) or a ``DemoPlan`` (``plan_demo``).

    Returns
    -------
    DataFrame, one row per figure: ``figure``, ``published``, ``demo``, ``low``, ``high`` (the interval the demo
    value is expected in; for counts the scaled published count twice), ``n`` (denominator), ``unit``
    (``%``, ``years``, ``count``, ``per patient``, ``AUC``), ``kind`` (``proportion``, ``mean``, ``count``,
    ``range``, ``auc``).
    """
    clinical, inventory, burden = _load(demo)
    n = len(clinical)
    rows: list[dict] = []

    def proportion(figure: str, key: str, hits: pd.Series) -> None:
        hits = hits.dropna().astype(bool)
        p, m = PUBLISHED[key], len(hits)
        lo, hi = stats.binom.interval(0.99, m, p)
        rows.append({"figure": figure, "published": 100 * p, "demo": 100 * hits.mean(), "low": 100 * lo / m,
                     "high": 100 * hi / m, "n": m, "unit": "%", "kind": "proportion"})  # fmt: skip

    def count(figure: str, published: float, value: float, scaled: float, unit: str = "count") -> None:
        rows.append({"figure": figure, "published": published, "demo": float(value), "low": scaled,
                     "high": scaled, "n": n, "unit": unit, "kind": "count"})  # fmt: skip

    count("patients", PUBLISHED["n_patients"], n, n)
    count("hospitals (sites)", PUBLISHED["n_sites"], clinical["kicc_site"].nunique(),
          min(PUBLISHED["n_sites"], n))  # fmt: skip
    proportion("men", "male", clinical["demog_sex"] == 1)
    age = pd.to_numeric(clinical["demog_age"], errors="coerce")
    age = age[age <= 120]
    half = _Z99 * age.std() / np.sqrt(len(age))
    rows.append({"figure": "age, mean", "published": PUBLISHED["age_mean"], "demo": age.mean(),
                 "low": PUBLISHED["age_mean"] - half, "high": PUBLISHED["age_mean"] + half, "n": len(age),
                 "unit": "years", "kind": "mean"})  # fmt: skip
    rows.append({"figure": "age, minimum", "published": PUBLISHED["age_min"], "demo": age.min(),
                 "low": PUBLISHED["age_min"], "high": PUBLISHED["age_min"] + 9, "n": len(age), "unit": "years",
                 "kind": "range"})  # fmt: skip
    rows.append({"figure": "age, maximum", "published": PUBLISHED["age_max"], "demo": age.max(),
                 "low": PUBLISHED["age_max"] - 9, "high": PUBLISHED["age_max"], "n": len(age), "unit": "years",
                 "kind": "range"})  # fmt: skip
    proportion("underlying disease", "underlying_disease", (clinical[list(COMORBIDITIES)] == 1).any(axis=1))
    lab = {c: pd.to_numeric(clinical[c], errors="coerce") for c in
           ("labs_lymphocyte_109l", "labs_platelets_109l", "labs_crp_mgl")}  # fmt: skip
    proportion("lymphocytopenia (< 1.0 x 10^9/L)", "lymphocytopenia",
               (lab["labs_lymphocyte_109l"] < 1.0).where(lab["labs_lymphocyte_109l"].notna()))  # fmt: skip
    proportion("thrombocytopenia (< 150 x 10^9/L)", "thrombocytopenia",
               (lab["labs_platelets_109l"] < 150).where(lab["labs_platelets_109l"].notna()))  # fmt: skip
    proportion("elevated CRP (> 5 mg/L)", "elevated_crp",
               (lab["labs_crp_mgl"] > 5).where(lab["labs_crp_mgl"].notna()))  # fmt: skip
    o2 = clinical[["inter_suppleo2", "inter_hfno", "inter_invent", "inter_ecmo"]].eq(1).any(axis=1)
    proportion("oxygen or ventilation", "oxygen_or_ventilation", o2)
    proportion("mechanical ventilation", "mechanical_ventilation", clinical["inter_invent"] == 1)
    proportion("ICU admission", "icu", clinical["crito_icu"] == 1)
    proportion("death", "death", clinical["outco_outcome"] == 2)

    is_ct = inventory["img_modality"] == "CT"
    imaged_ct = clinical["subjid"].isin(inventory.loc[is_ct, "subjid"])
    imaged_rx = clinical["subjid"].isin(inventory.loc[~is_ct, "subjid"])
    proportion("patients with CT", "ct_patients", imaged_ct)
    scale = n / PUBLISHED["n_patients"]
    count("CT scans", PUBLISHED["ct_scans"], is_ct.sum(), round(PUBLISHED["ct_scans"] * scale))
    count("CT scans per patient", PUBLISHED["ct_scans"] / PUBLISHED["n_patients"], is_ct.sum() / n,
          round(PUBLISHED["ct_scans"] * scale) / n, "per patient")  # fmt: skip
    proportion("patients with radiographs", "radiograph_patients", imaged_rx)
    count("radiographs", PUBLISHED["radiograph_scans"], (~is_ct).sum(), round(PUBLISHED["radiograph_scans"] * scale))
    count("radiographs per patient", PUBLISHED["radiograph_scans"] / PUBLISHED["n_patients"], (~is_ct).sum() / n,
          round(PUBLISHED["radiograph_scans"] * scale) / n, "per patient")  # fmt: skip

    outcome = clinical.set_index("subjid").assign(died=lambda d: d["outco_outcome"] == 2, inter_suppleo2=o2.to_numpy())
    with_ct = outcome.loc[burden.index]
    for col, label in _OUTCOMES.items():
        event = with_ct[col].astype(bool).to_numpy()
        half = _Z99 * _hanley_mcneil_se(float(np.mean(AUC_RANGE)), int(event.sum()), int((~event).sum()))
        rows.append({"figure": f"AUC of CT extent for {label}", "published": float("nan"),
                     "demo": _auc(burden.to_numpy(float), event), "low": AUC_RANGE[0] - half,
                     "high": AUC_RANGE[1] + half, "n": len(with_ct), "unit": "AUC", "kind": "auc"})  # fmt: skip
    return pd.DataFrame(rows, columns=["figure", "published", "demo", "low", "high", "n", "unit", "kind"])


def _fmt(value: float, unit: str) -> str:
    if pd.isna(value):
        return "–"
    if unit == "count":
        return f"{value:,.0f}"
    if unit in ("AUC", "per patient"):
        return f"{value:.2f}"
    return f"{value:.1f}"


def comparison_markdown(table: pd.DataFrame) -> str:
    """The comparison as a Markdown table (published, demo, expected interval, inside?)."""
    lines = [
        "| figure | published | demo | expected at this size (99 %) | n | inside |",
        "|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        unit = "" if r.unit == "count" else f" {r.unit}" if r.unit in ("%", "years") else ""
        published = "literature 0.75–0.85" if r.kind == "auc" else _fmt(r.published, r.unit) + unit
        expected = _fmt(r.low, r.unit) if r.low == r.high else f"{_fmt(r.low, r.unit)}–{_fmt(r.high, r.unit)}"
        inside = "yes" if r.low - 1e-9 <= r.demo <= r.high + 1e-9 else "**no**"
        lines.append(f"| {r.figure} | {published} | {_fmt(r.demo, r.unit)}{unit} | {expected} | {r.n} | {inside} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - documentation helper
    import sys

    from kicc_analysis.demo.generator import DEFAULT_PATIENTS, plan_demo

    target = sys.argv[1] if len(sys.argv) > 1 else None
    print(comparison_markdown(published_comparison(target or plan_demo(DEFAULT_PATIENTS, seed=19))), end="")
