"""Propose good teaching cases from the cohort: several timepoints, a large change, readers who disagree.

:func:`propose_cases` ranks the patients of a cohort table by what makes a case worth teaching and says why for
each one. It reads only the cohort table (with the CT columns of :func:`kicc_analysis.pipeline.quantify_cohort`
when present) and the readers' scores; it never loads images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .images import TeachingError

#: the columns of :func:`propose_cases`' table
PROPOSAL_COLUMNS = (
    "rank",
    "subjid",
    "score",
    "n_ct_timepoints",
    "n_radiographs",
    "opacity_change_pct",
    "brixia_change",
    "reader_range",
    "reason",
)


def _reader_range(readings: pd.DataFrame | str | Path | None, scheme: str) -> pd.Series:
    """Per subject: the largest minus the smallest reader total of ``scheme`` (e.g. CT lobe score 0-25)."""
    if readings is None:
        return pd.Series(dtype=float)
    from ..readings import read_reader_scores, reading_totals

    table = read_reader_scores(readings) if isinstance(readings, str | Path) else readings
    totals = reading_totals(table, scheme).dropna(subset=["score"])
    if totals.empty:
        return pd.Series(dtype=float)
    spread = totals.groupby("subject")["score"].agg(lambda s: float(s.max() - s.min()) if len(s) >= 2 else np.nan)
    return spread.dropna()


def propose_cases(
    cohort: pd.DataFrame,
    *,
    readings: pd.DataFrame | str | Path | None = None,
    scheme: str = "ct_lobe",
    min_timepoints: int = 2,
    min_change_pct: float = 5.0,
    min_reader_range: float = 3.0,
    top: int | None = 10,
) -> pd.DataFrame:
    """Rank patients as teaching cases, with the reason for each.

    A patient is proposed when at least one criterion holds:

    * **timepoints**: at least ``min_timepoints`` CT studies (``n_ct_studies``), so that change can be shown;
    * **large change**: the absolute change in CT opacity between the baseline and the last follow-up CT
      (``ct_opacity_pct_change``, percentage points of lung volume, from the quantification module) is at least
      ``min_change_pct``; without CT quantification, the change in the radiographs' Brixia score (worst minus
      baseline, 0-18) of at least 3 points counts instead;
    * **discordant readers**: the readers' totals of ``scheme`` differ by at least ``min_reader_range`` points.

    Score (for the ranking): ``|opacity change| / min_change_pct + reader range / min_reader_range`` +
    ``brixia change / 3`` + 1 for several CT timepoints; ties by pseudonym.

    Parameters
    ----------
    cohort : DataFrame
        Cohort table (``subjid``, ``n_ct_studies``, ``n_radiographs``, ``baseline_cxr_brixia``,
        ``worst_cxr_brixia``; ``ct_opacity_pct_change`` after ``quantify_cohort``).
    readings : DataFrame or path, optional
        Reader scores (:func:`kicc_analysis.readings.read_reader_scores` format, or its file, e.g. the
        repository's ``readings/reader_scores.csv``).
    scheme : str
        Reading scheme whose total measures reader disagreement (default the CT lobe score, 0-25).
    min_timepoints, min_change_pct, min_reader_range : float
        The criteria's thresholds (see above).
    top : int or None
        Keep the ``top`` best (None: all proposed).

    Returns
    -------
    DataFrame
        :data:`PROPOSAL_COLUMNS`, best first; ``reason`` names every criterion met with its value.

    Examples
    --------
    >>> cohort = pd.DataFrame({"subjid": ["KICC-S01-0001", "KICC-S01-0002"], "n_ct_studies": [2, 1],
    ...                        "ct_opacity_pct_change": [21.5, np.nan]})
    >>> propose_cases(cohort)[["subjid", "reason"]].to_dict("records")
    [{'subjid': 'KICC-S01-0001', 'reason': '2 CT timepoints; opacity +21.5 %p from baseline to follow-up CT'}]
    """
    if "subjid" not in cohort.columns:
        raise TeachingError(f"cohort table: expected a 'subjid' column, found {list(cohort.columns)[:8]}")
    table = pd.DataFrame({"subjid": cohort["subjid"].astype(str).to_numpy()})

    def column(name: str) -> np.ndarray:
        if name not in cohort.columns:
            return np.full(len(cohort), np.nan)
        return pd.to_numeric(cohort[name], errors="coerce").to_numpy(dtype=float)

    table["n_ct_timepoints"] = np.nan_to_num(column("n_ct_studies")).astype(int)
    table["n_radiographs"] = np.nan_to_num(column("n_radiographs")).astype(int)
    table["opacity_change_pct"] = column("ct_opacity_pct_change").round(2)
    table["brixia_change"] = (column("worst_cxr_brixia") - column("baseline_cxr_brixia")).round(2)
    table["reader_range"] = table["subjid"].map(_reader_range(readings, scheme)).astype(float)
    several = table["n_ct_timepoints"] >= min_timepoints
    change = table["opacity_change_pct"].abs() >= min_change_pct
    no_ct_change = table["opacity_change_pct"].isna()
    brixia = no_ct_change & (table["brixia_change"] >= 3)
    discordant = table["reader_range"] >= min_reader_range
    table["score"] = (
        several.astype(float)
        + np.nan_to_num(table["opacity_change_pct"].abs() / min_change_pct)
        + np.where(no_ct_change, np.nan_to_num(table["brixia_change"].clip(lower=0) / 3), 0.0)
        + np.nan_to_num(table["reader_range"] / min_reader_range)
    ).round(3)
    reasons = []
    for i in range(len(table)):
        parts = []
        if several.iloc[i]:
            parts.append(f"{table['n_ct_timepoints'].iloc[i]} CT timepoints")
        if change.iloc[i]:
            parts.append(f"opacity {table['opacity_change_pct'].iloc[i]:+.1f} %p from baseline to follow-up CT")
        if brixia.iloc[i]:
            parts.append(f"Brixia +{table['brixia_change'].iloc[i]:.1f} from baseline to worst radiograph")
        if discordant.iloc[i]:
            parts.append(f"readers' {scheme} totals differ by {table['reader_range'].iloc[i]:g}")
        reasons.append("; ".join(parts))
    table["reason"] = reasons
    proposed = table[several | change | brixia | discordant]
    proposed = proposed.sort_values(["score", "subjid"], ascending=[False, True], kind="stable")
    if top is not None:
        proposed = proposed.head(top)
    proposed = proposed.reset_index(drop=True)
    proposed.insert(0, "rank", np.arange(1, len(proposed) + 1))
    return proposed[list(PROPOSAL_COLUMNS)]
