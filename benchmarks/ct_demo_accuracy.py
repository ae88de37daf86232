"""Accuracy of the cohort CT quantification against the demo repository's truth, series by series.

The demo repository (``kicc demo``) holds CT series of synthetic chests whose GGO and consolidation volumes are
known (``ground_truth/truth.csv``), from healthy-looking to severe. ``make study`` quantifies them
(``results/tables/ct_quantification_by_region.csv``, region ``both``). This script joins the two on the series UID
and reports, for the lung-kernel series, the error of GGO mL, consolidation mL and total opacity %: mean absolute
error, bias (ours - truth), Spearman and Pearson correlation, and the consolidation error in the series with little
(< 20 mL) and much (>= 200 mL) true consolidation.

Usage::

    .venv/bin/python benchmarks/ct_demo_accuracy.py [--quantification CSV] [--truth CSV]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
QUANTIFICATION = ROOT / "results" / "tables" / "ct_quantification_by_region.csv"
TRUTH = ROOT / "demo_repository" / "ground_truth" / "truth.csv"
COLUMNS = ("ggo_ml", "consolidation_ml", "opacity_pct")


def joined(quantification: Path, truth: Path, role: str = "lung") -> pd.DataFrame:
    """Truth rows of one series role joined to our ``both`` rows on the series UID (suffixes ``_true`` / ``_ours``).

    The cohort batch quantifies the series the cohort selects (the lung-kernel series); truth also lists the
    soft-tissue-kernel series of the same studies.
    """
    ours = pd.read_csv(quantification)
    ours = ours[ours["region"] == "both"]
    reference = pd.read_csv(truth)
    reference = reference[reference["series_role"] == role]
    frame = reference.merge(ours, on="series_uid", suffixes=("_true", "_ours"), validate="one_to_one")
    missing = len(reference) - len(frame)
    if missing:
        print(f"note: {missing} {role}-kernel truth series have no quantification row (failed?)", file=sys.stderr)
    return frame


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per quantity: n, MAE, bias, Spearman, Pearson."""
    rows = []
    for column in COLUMNS:
        truth, ours = frame[f"{column}_true"], frame[f"{column}_ours"]
        error = ours - truth
        rows.append(
            {
                "quantity": column,
                "n": len(frame),
                "mae": float(error.abs().mean()),
                "bias": float(error.mean()),
                "spearman": float(stats.spearmanr(truth, ours).statistic),
                "pearson": float(np.corrcoef(truth, ours)[0, 1]),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quantification", type=Path, default=QUANTIFICATION)
    parser.add_argument("--truth", type=Path, default=TRUTH)
    args = parser.parse_args(argv)
    for path in (args.quantification, args.truth):
        if not path.is_file():
            print(f"error: {path} not found (run `make study` first)", file=sys.stderr)
            return 2
    frame = joined(args.quantification, args.truth)
    versions = sorted(frame["algorithm_version"].astype(str).unique())
    print(f"{len(frame)} lung-kernel series; algorithm version(s) {', '.join(versions)}\n")
    print("| quantity | n | MAE | bias (ours - truth) | Spearman | Pearson |")
    print("|---|---|---|---|---|---|")
    for row in summary(frame).itertuples():
        print(
            f"| {row.quantity} | {row.n} | {row.mae:.2f} | {row.bias:+.2f} | {row.spearman:.4f} | {row.pearson:.4f} |"
        )
    low = frame[frame["consolidation_ml_true"] < 20]
    high = frame[frame["consolidation_ml_true"] >= 200]
    low_error = (low["consolidation_ml_ours"] - low["consolidation_ml_true"]).mean()
    high_error = (high["consolidation_ml_ours"] / high["consolidation_ml_true"] - 1).mean() * 100
    print(f"\nconsolidation, series with < 20 mL true (n = {len(low)}): mean error {low_error:+.1f} mL")
    print(f"consolidation, series with >= 200 mL true (n = {len(high)}): mean relative error {high_error:+.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
