"""Agreement for continuous (and ordinal treated as scores) measurements: ICC, Bland-Altman, Lin's CCC, Kendall's W.

Conventions (see ``docs/agreement.md``)
---------------------------------------
* ``icc``: Shrout & Fleiss (1979) six forms from one-way and two-way ANOVA mean squares, McGraw & Wong (1996) names
  in a column. F tests of ICC = 0 and confidence intervals follow R ``psych::ICC`` / pingouin: ICC2 and ICC2k share
  the F test BMS/EMS on ((n-1), (n-1)(k-1)) df; the ICC2 interval uses the Satterthwaite approximation and ICC2k's
  interval is the Spearman-Brown step-up of ICC2's (``icc2k_ci="spearman_brown"``). ``icc2k_ci="mcgraw_wong"`` gives
  McGraw & Wong's own average-measures interval (R ``irr::icc``). Subjects with a missing rating are dropped
  (listwise, like pingouin ``nan_policy="omit"``) and counted in ``attrs["dropped"]``.
* ``bland_altman``: differences ``x - y``; SD with ddof 1; limits ``bias +/- 1.96 SD`` (``multiplier=2`` for the
  1986 paper); CI of the bias with t(n-1); CI of the limits with the exact-normal SE ``s sqrt(1/n + z^2/(2(n-1)))``
  (Bland & Altman 1999; ``loa_se="bland_altman_1986"`` gives the 1986 approximation ``sqrt(3 s^2 / n)``).
  Repeated measurements per subject (``subject=``): Bland & Altman (2007) one-way variance components, true value
  varying.
* ``lin_ccc``: Lin (1989) with 1/n moments, CI on Fisher's z scale (Lin's asymptotic variance) or the asymptotic
  CI (``ci="asymptotic"``); location and scale shifts of y relative to x as R ``epiR::epi.ccc``.
* ``kendall_w``: ranks within rater (ties averaged), tie-corrected W (``tie_correction=False`` for Kendall's
  uncorrected W), chi-square test m(n-1)W on n-1 df in ``chi_square``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from kicc_analysis.errors import AnalysisError
from kicc_analysis.results import Estimate, KendallW

from ._data import DeprecatedKeys, to_wide
from .bootstrap import with_bootstrap

ICC_FORMS = ("ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k")
_MCGRAW_WONG = {
    "ICC1": "ICC(1)",
    "ICC2": "ICC(A,1)",
    "ICC3": "ICC(C,1)",
    "ICC1k": "ICC(k)",
    "ICC2k": "ICC(A,k)",
    "ICC3k": "ICC(C,k)",
}
_DESCRIPTION = {
    "ICC1": "one-way random, single rater, absolute agreement",
    "ICC2": "two-way random, single rater, absolute agreement",
    "ICC3": "two-way mixed, single rater, consistency",
    "ICC1k": "one-way random, mean of k raters, absolute agreement",
    "ICC2k": "two-way random, mean of k raters, absolute agreement",
    "ICC3k": "two-way mixed, mean of k raters, consistency",
}


def anova_mean_squares(x: np.ndarray) -> dict[str, float]:
    """One-way and two-way ANOVA mean squares of a complete subjects x raters array.

    Returns ``BMS`` (between subjects), ``WMS`` (within subjects, one-way), ``JMS`` (between raters/judges) and
    ``EMS`` (residual, two-way), with ``n`` and ``k``.
    """
    n, k = x.shape
    grand = x.mean()
    ss_total = np.sum((x - grand) ** 2)
    ss_rows = k * np.sum((x.mean(1) - grand) ** 2)
    ss_cols = n * np.sum((x.mean(0) - grand) ** 2)
    ss_err = ss_total - ss_rows - ss_cols
    return {
        "BMS": ss_rows / (n - 1),
        "WMS": (ss_total - ss_rows) / (n * (k - 1)),
        "JMS": ss_cols / (k - 1),
        "EMS": ss_err / ((n - 1) * (k - 1)),
        "n": n,
        "k": k,
    }


def _icc_values(ms: dict[str, float]) -> dict[str, float]:
    bms, wms, jms, ems, n, k = (ms[key] for key in ("BMS", "WMS", "JMS", "EMS", "n", "k"))
    return {
        "ICC1": (bms - wms) / (bms + (k - 1) * wms),
        "ICC2": (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n),
        "ICC3": (bms - ems) / (bms + (k - 1) * ems),
        "ICC1k": (bms - wms) / bms,
        "ICC2k": (bms - ems) / (bms + (jms - ems) / n),
        "ICC3k": (bms - ems) / bms,
    }


def icc(
    data: Any,
    targets: str | None = None,
    raters: str | None = None,
    ratings: str | None = None,
    confidence: float = 0.95,
    *,
    icc2k_ci: str = "spearman_brown",
    layout: str | None = None,
) -> pd.DataFrame:
    """Intraclass correlation coefficients, the six Shrout & Fleiss forms.

    Parameters
    ----------
    data : DataFrame or array
        Long table (``targets``, ``raters``, ``ratings`` column names) or wide array: subjects x raters, or
        ``layout="raters_x_subjects"`` (a wide input with more raters than subjects and no ``layout`` warns:
        :class:`~kicc_analysis.agreement.LayoutWarning`).
    confidence : float
        Confidence level of the intervals.
    icc2k_ci : {"spearman_brown", "mcgraw_wong"}
        Interval of ICC2k: Spearman-Brown step-up of ICC2's limits (psych, pingouin; default) or McGraw & Wong's
        (1996) average-measures formula (R irr).

    Returns
    -------
    DataFrame
        One row per form ``ICC1, ICC2, ICC3, ICC1k, ICC2k, ICC3k`` with columns ``mcgraw_wong, description,
        estimate, F, df1, df2, p, ci_low, ci_high, se, n, method, convention`` (the estimate protocol's columns;
        ``se`` is NaN: the Shrout & Fleiss intervals come from F distributions, not from an SE); ``attrs`` holds the
        mean squares, ``n``, ``k`` and ``dropped`` (subjects removed for a missing rating).

    Examples
    --------
    >>> sf = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    >>> float(round(icc(sf).loc["ICC3", "estimate"], 6))   # Shrout & Fleiss (1979): 0.71
    0.714841
    """
    wide = to_wide(data, targets, raters, ratings, layout=layout)
    x = wide.values
    complete = ~np.isnan(x).any(axis=1)
    dropped = int((~complete).sum())
    x = x[complete]
    n, k = x.shape
    if k < 2:
        raise AnalysisError(f"ICC needs at least 2 raters, got {k}")
    if n < 2:
        raise AnalysisError(
            f"ICC needs at least 2 subjects rated by every rater; {n} complete subjects ({dropped} dropped for a "
            "missing rating)"
        )
    if icc2k_ci not in ("spearman_brown", "mcgraw_wong"):
        raise AnalysisError(f"icc2k_ci must be 'spearman_brown' or 'mcgraw_wong', got {icc2k_ci!r}")
    ms = anova_mean_squares(x)
    bms, wms, jms, ems = ms["BMS"], ms["WMS"], ms["JMS"], ms["EMS"]
    values = _icc_values(ms)
    a = 1 - confidence
    df1, df2_one, df2_two = n - 1, n * (k - 1), (n - 1) * (k - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = bms / wms
        f3 = bms / ems
        f1l = f1 / stats.f.ppf(1 - a / 2, df1, df2_one)
        f1u = f1 * stats.f.ppf(1 - a / 2, df2_one, df1)
        f3l = f3 / stats.f.ppf(1 - a / 2, df1, df2_two)
        f3u = f3 * stats.f.ppf(1 - a / 2, df2_two, df1)
        ci = {
            "ICC1": ((f1l - 1) / (f1l + k - 1), (f1u - 1) / (f1u + k - 1)),
            "ICC3": ((f3l - 1) / (f3l + k - 1), (f3u - 1) / (f3u + k - 1)),
            "ICC1k": (1 - 1 / f1l, 1 - 1 / f1u),
            "ICC3k": (1 - 1 / f3l, 1 - 1 / f3u),
        }
        # ICC2: Satterthwaite df for the denominator (Shrout & Fleiss 1979; McGraw & Wong 1996).
        r2 = values["ICC2"]
        fj = jms / ems
        vn = (k - 1) * (n - 1) * (k * r2 * fj + n * (1 + (k - 1) * r2) - k * r2) ** 2
        vd = (n - 1) * k**2 * r2**2 * fj**2 + (n * (1 + (k - 1) * r2) - k * r2) ** 2
        v = vn / vd
        f2u = stats.f.ppf(1 - a / 2, df1, v)
        f2l = stats.f.ppf(1 - a / 2, v, df1)
        low2 = n * (bms - f2u * ems) / (f2u * (k * jms + (k * n - k - n) * ems) + n * bms)
        high2 = n * (f2l * bms - ems) / (k * jms + (k * n - k - n) * ems + n * f2l * bms)
        ci["ICC2"] = (low2, high2)
        if icc2k_ci == "spearman_brown":
            ci["ICC2k"] = (low2 * k / (1 + low2 * (k - 1)), high2 * k / (1 + high2 * (k - 1)))
        else:
            rk = values["ICC2k"]
            c = k * rk / (n * (1 - rk))
            d = 1 + k * rk * (n - 1) / (n * (1 - rk))
            vk = (c * jms + d * ems) ** 2 / ((c * jms) ** 2 / (k - 1) + (d * ems) ** 2 / df2_two)
            fl = stats.f.ppf(1 - a / 2, df1, vk)
            fu = stats.f.ppf(1 - a / 2, vk, df1)
            ci["ICC2k"] = (
                n * (bms - fl * ems) / (fl * (jms - ems) + n * bms),
                n * (fu * bms - ems) / (jms - ems + n * fu * bms),
            )
    rows = []
    for form in ICC_FORMS:
        one_way = form.startswith("ICC1")
        f_value = f1 if one_way else f3
        d2 = df2_one if one_way else df2_two
        rows.append(
            {
                "form": form,
                "mcgraw_wong": _MCGRAW_WONG[form],
                "description": _DESCRIPTION[form],
                "estimate": values[form],
                "F": f_value,
                "df1": df1,
                "df2": d2,
                "p": stats.f.sf(f_value, df1, d2),
                "ci_low": ci[form][0],
                "ci_high": ci[form][1],
                "se": np.nan,
                "n": n,
                "method": form.lower(),
                "convention": f"Shrout & Fleiss (1979) {form} = McGraw & Wong {_MCGRAW_WONG[form]}; F test on "
                f"({df1:g}, {d2:g}) df; CI "
                + ("McGraw & Wong" if form == "ICC2k" and icc2k_ci == "mcgraw_wong" else "psych/pingouin"),
            }
        )
    table = pd.DataFrame(rows).set_index("form")
    table.attrs.update(
        {
            "mean_squares": {key: ms[key] for key in ("BMS", "WMS", "JMS", "EMS")},
            "n": n,
            "k": k,
            "dropped": dropped,
            "confidence": confidence,
            "convention": f"Shrout & Fleiss (1979); psych/pingouin intervals; ICC2k CI {icc2k_ci}",
        }
    )
    return table


# --------------------------------------------------------------------------- Bland-Altman


@dataclass(frozen=True)
class BlandAltman:
    """Result of :func:`bland_altman` (units of the measurements, e.g. mL or %)."""

    bias: Estimate
    sd: float
    lower: Estimate
    upper: Estimate
    multiplier: float
    n: int
    proportional: dict[str, float] = field(default_factory=dict)
    differences: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    means: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    convention: str = ""

    def to_frame(self) -> pd.DataFrame:
        """Three-row table: bias and the two limits of agreement with their CIs (estimate protocol columns)."""
        rows = []
        for name, est in (("bias", self.bias), ("lower_loa", self.lower), ("upper_loa", self.upper)):
            rows.append(
                {
                    "quantity": name,
                    "estimate": est.estimate,
                    "se": est.se,
                    "ci_low": est.ci_low,
                    "ci_high": est.ci_high,
                    "p": est.p,
                    "n": self.n,
                    "method": est.method,
                    "convention": est.convention,
                }
            )
        frame = pd.DataFrame(rows)
        frame.attrs.update(sd=self.sd, multiplier=self.multiplier, proportional=self.proportional)
        return frame

    def summary(self, digits: int = 3) -> str:
        """Readable summary: bias and limits of agreement with their CIs, SD of differences, convention."""
        lines = [f"Bland-Altman, n = {self.n}, SD of differences {self.sd:.{digits}f}"]
        for name, est in (("bias", self.bias), ("lower limit", self.lower), ("upper limit", self.upper)):
            level = f"{100 * est.confidence:g}%"
            lines.append(
                f"  {name}: {est.estimate:.{digits}f} ({level} CI {est.ci_low:.{digits}f} to {est.ci_high:.{digits}f})"
            )
        if self.convention:
            lines.append(f"  convention: {self.convention}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def bland_altman(
    x: Any,
    y: Any,
    *,
    subject: Any = None,
    multiplier: float = 1.96,
    confidence: float = 0.95,
    loa_se: str = "bland_altman_1999",
) -> BlandAltman:
    """Bland-Altman agreement between two methods measuring the same quantity.

    Parameters
    ----------
    x, y : array-like
        Paired measurements (same units); differences are ``x - y``. Pairs with a missing value are dropped and
        counted in ``bias.extra['dropped']``.
    subject : array-like, optional
        Subject labels for repeated measurements per subject (Bland & Altman 2007, true value varying): the SD of
        differences combines between- and within-subject variance components.
    multiplier : float
        Limits are ``bias +/- multiplier * SD`` (1.96; the 1986 paper used 2).
    loa_se : {"bland_altman_1999", "bland_altman_1986"}
        SE of a limit: ``SD * sqrt(1/n + multiplier^2 / (2 (n - 1)))`` (1999) or ``sqrt(3 SD^2 / n)`` (1986).

    Returns
    -------
    BlandAltman
        Bias, SD, limits (each an :class:`Estimate` with a t(n-1) CI) and the proportional-bias regression of the
        differences on the means (``slope``, ``intercept``, ``slope_se``, ``slope_p``).
    """
    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    if xa.shape != ya.shape:
        raise AnalysisError(f"x and y must have the same length, got {xa.size} and {ya.size}")
    ok = np.isfinite(xa) & np.isfinite(ya)
    dropped = int((~ok).sum())
    d = xa[ok] - ya[ok]
    means = (xa[ok] + ya[ok]) / 2
    n = d.size
    if n < 3:
        raise AnalysisError(f"Bland-Altman needs at least 3 complete pairs, got {n} ({dropped} dropped)")
    bias = float(d.mean())
    if subject is None:
        sd = float(d.std(ddof=1))
        se_bias = sd / np.sqrt(n)
        df = n - 1
        method = "within-pair differences"
    else:
        subj = np.asarray(subject, dtype=object).ravel()
        if subj.size != xa.size:
            raise AnalysisError(f"subject must have one label per pair ({xa.size}), got {subj.size}")
        sd, se_bias, df = _repeated_sd(d, subj[ok])
        method = "repeated measures (Bland & Altman 2007, variance components)"
    tq = stats.t.ppf(0.5 + confidence / 2, df)
    if loa_se == "bland_altman_1999":
        se_loa = sd * np.sqrt(1 / n + multiplier**2 / (2 * (n - 1)))
    elif loa_se == "bland_altman_1986":
        se_loa = np.sqrt(3 * sd**2 / n)
    else:
        raise AnalysisError(f"loa_se must be 'bland_altman_1999' or 'bland_altman_1986', got {loa_se!r}")
    convention = f"Bland & Altman; {method}; limits bias +/- {multiplier} SD; limit SE {loa_se}; t({df}) CIs"
    extra = {"dropped": dropped, "df": df}

    def est(value: float, se: float, name: str) -> Estimate:
        return Estimate(
            value,
            se,
            value - tq * se,
            value + tq * se,
            value / se if se > 0 else np.nan,
            float(2 * stats.t.sf(abs(value / se), df)) if se > 0 else np.nan,
            n,
            name,
            convention,
            confidence,
            extra,
        )

    lr = stats.linregress(means, d)
    proportional = {
        "slope": float(lr.slope),
        "intercept": float(lr.intercept),
        "slope_se": float(lr.stderr),
        "slope_p": float(lr.pvalue),
        "r": float(lr.rvalue),
    }
    return BlandAltman(
        bias=est(bias, se_bias, "bias"),
        sd=sd,
        lower=est(bias - multiplier * sd, se_loa, "lower_loa"),
        upper=est(bias + multiplier * sd, se_loa, "upper_loa"),
        multiplier=multiplier,
        n=n,
        proportional=proportional,
        differences=d,
        means=means,
        convention=convention,
    )


def _repeated_sd(d: np.ndarray, subj: np.ndarray) -> tuple[float, float, int]:
    """SD of a single difference with several pairs per subject (Bland & Altman 2007, one-way ANOVA)."""
    frame = pd.DataFrame({"d": d, "s": subj})
    groups = frame.groupby("s", sort=False)["d"]
    m = groups.size().to_numpy(dtype=float)
    means = groups.mean().to_numpy()
    n_subj, total = m.size, m.sum()
    if n_subj < 2:
        raise AnalysisError("repeated-measures Bland-Altman needs at least 2 subjects")
    ss_within = float(((frame["d"] - groups.transform("mean")) ** 2).sum())
    ss_between = float(np.sum(m * (means - d.mean()) ** 2))
    ms_w = ss_within / (total - n_subj) if total > n_subj else 0.0
    ms_b = ss_between / (n_subj - 1)
    divisor = (total**2 - np.sum(m**2)) / ((n_subj - 1) * total)
    var_b = max((ms_b - ms_w) / divisor, 0.0)
    sd = float(np.sqrt(var_b + ms_w))
    se_bias = float(np.sqrt(ms_b / total)) if total else np.nan
    return sd, se_bias, n_subj - 1


# --------------------------------------------------------------------------- Lin's CCC


def lin_ccc(
    x: Any,
    y: Any,
    *,
    ci: str = "z-transform",
    confidence: float = 0.95,
    n_boot: int = 0,
    seed: int | None = 0,
) -> Estimate:
    """Lin's (1989) concordance correlation coefficient with its z-transform and asymptotic intervals.

    Moments use 1/n (Lin's definition). Pairs with a missing value are dropped and counted in ``extra["dropped"]``.

    Parameters
    ----------
    x, y : array-like
        The two methods' measurements of the same subjects (same units).
    ci : {"z-transform", "asymptotic"}
        Interval reported in ``ci_low``/``ci_high``: on Fisher's z scale, back-transformed (default; R
        ``epiR::epi.ccc`` default), or ``rho_c +/- z SE`` with Lin's (2000) asymptotic SE (``epi.ccc(ci =
        "asymptotic")``). Both are always in ``extra`` (``z_ci_low/high``, ``asymptotic_ci_low/high``).

    Returns
    -------
    Estimate
        ``se`` is Lin's asymptotic SE of rho_c; ``extra`` holds ``r`` (Pearson), ``accuracy`` (= ``C_b`` = rho_c /
        r), and the shifts of **y relative to x** as in ``epi.ccc``: ``scale_shift`` = sd(y) / sd(x) (``s.shift``) and
        ``location_shift`` = (mean(y) - mean(x)) / sqrt(sd(x) sd(y)) with 1/n SDs (``l.shift``). ``u`` and ``v``
        are the same shifts of x relative to y (``u = -location_shift``, ``v = 1 / scale_shift``), kept for one
        release.

    Examples
    --------
    >>> x = [1.0, 2.0, 3.0, 4.0, 5.0]
    >>> est = lin_ccc(x, [2.0 * v + 1.0 for v in x])   # y = 1 + 2x
    >>> round(est.estimate, 4), est.extra["scale_shift"], round(est.extra["location_shift"], 4)
    (0.3077, 2.0, 2.0)
    """
    if ci not in ("z-transform", "asymptotic"):
        raise AnalysisError(f"ci must be 'z-transform' or 'asymptotic', got {ci!r}")
    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    if xa.shape != ya.shape:
        raise AnalysisError(f"x and y must have the same length, got {xa.size} and {ya.size}")
    ok = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[ok], ya[ok]
    n = xa.size
    if n < 3:
        raise AnalysisError(f"Lin's CCC needs at least 3 complete pairs, got {n}")
    mx, my = xa.mean(), ya.mean()
    sx2, sy2 = xa.var(), ya.var()
    sxy = np.mean((xa - mx) * (ya - my))
    rc = 2 * sxy / (sx2 + sy2 + (mx - my) ** 2)
    r = sxy / np.sqrt(sx2 * sy2)
    u = (mx - my) / (sx2 * sy2) ** 0.25
    with np.errstate(divide="ignore", invalid="ignore"):
        var_z = (
            (1 - r**2) * rc**2 / ((1 - rc**2) * r**2)
            + 2 * rc**3 * (1 - rc) * u**2 / (r * (1 - rc**2) ** 2)
            - rc**4 * u**4 / (2 * r**2 * (1 - rc**2) ** 2)
        ) / (n - 2)
        se_z = float(np.sqrt(var_z))
        z = float(np.arctanh(rc))
    q = stats.norm.ppf(0.5 + confidence / 2)
    z_low, z_high = float(np.tanh(z - q * se_z)), float(np.tanh(z + q * se_z))
    se = se_z * (1 - rc**2)  # Lin's (2000) asymptotic SE of rho_c (delta method of the z-scale SE)
    a_low, a_high = float(rc - q * se), float(rc + q * se)
    low, high = (z_low, z_high) if ci == "z-transform" else (a_low, a_high)
    conv_ci = "CI on Fisher's z scale" if ci == "z-transform" else "asymptotic CI rho_c +/- z SE (Lin 2000)"
    est = Estimate(
        float(rc),
        float(se),
        low,
        high,
        z / se_z if se_z > 0 else np.nan,
        float(2 * stats.norm.sf(abs(z / se_z))) if se_z > 0 else np.nan,
        n,
        "lin_ccc",
        f"Lin (1989) CCC, 1/n moments; {conv_ci} (epiR epi.ccc ci='{ci}'); shifts of y relative to x",
        confidence,
        {
            "r": float(r),
            "accuracy": float(rc / r),
            "C_b": float(rc / r),
            "scale_shift": float(np.sqrt(sy2 / sx2)),
            "location_shift": float(-u),
            "u": float(u),
            "v": float(np.sqrt(sx2 / sy2)),
            "z_ci_low": z_low,
            "z_ci_high": z_high,
            "asymptotic_ci_low": a_low,
            "asymptotic_ci_high": a_high,
            "dropped": int((~ok).sum()),
        },
        statistic=z / se_z if se_z > 0 else np.nan,
        statistic_name="z" if se_z > 0 else "",
    )
    if n_boot:
        feats = np.stack([xa, ya, xa**2, ya**2, xa * ya], 1)

        def stat(W: np.ndarray) -> np.ndarray:
            s = (W @ feats) / W.sum(1)[:, None]
            vx, vy, cxy = s[:, 2] - s[:, 0] ** 2, s[:, 3] - s[:, 1] ** 2, s[:, 4] - s[:, 0] * s[:, 1]
            return 2 * cxy / (vx + vy + (s[:, 0] - s[:, 1]) ** 2)

        est = with_bootstrap(est, stat, n, n_boot, seed)
    moved = {
        "u": "extra['u'] (x relative to y) is deprecated: use extra['location_shift'] (y relative to x, epiR l.shift)",
        "v": "extra['v'] (x relative to y) is deprecated: use extra['scale_shift'] (y relative to x, epiR s.shift)",
    }
    return replace(est, extra=DeprecatedKeys(est.extra, moved))


# --------------------------------------------------------------------------- Kendall's W


def kendall_w(
    data: Any,
    subject: str | None = None,
    rater: str | None = None,
    rating: str | None = None,
    *,
    tie_correction: bool = True,
    layout: str | None = None,
    confidence: float = 0.95,
) -> KendallW:
    """Kendall's coefficient of concordance W, with or without the tie correction, and its chi-square test.

    Each rater's ratings are ranked over the subjects (ties get average ranks);
    ``W = 12 S / (m^2 (n^3 - n) - m sum T)`` with ``T = sum (t^3 - t)`` over each rater's tie groups
    (``tie_correction=False``: ``T = 0``, Kendall's uncorrected W, R ``irr::kendall(correct=FALSE)`` and
    ``DescTools::KendallW(correct=FALSE)``); ``chi_square = m (n - 1) W`` on ``n - 1`` df. With the tie correction
    the chi-square equals Friedman's statistic (``scipy.stats.friedmanchisquare``). Subjects with a missing rating are
    dropped and counted in ``extra["dropped"]``.

    Parameters
    ----------
    data, subject, rater, rating : see :func:`kicc_analysis.agreement.gwet_ac`
        Long table, or wide subjects x raters array (``layout`` as in :func:`~kicc_analysis.agreement.to_wide`).
    tie_correction : bool
        Apply the tie correction (default; R ``irr::kendall(correct=TRUE)``).

    Returns
    -------
    KendallW
        ``estimate`` = W, ``chi_square`` (= ``statistic``), ``df``, ``p``; no SE or CI.

    Examples
    --------
    >>> w = kendall_w([[1, 1, 2], [2, 2, 1], [3, 3, 3], [4, 4, 4]])
    >>> round(w.estimate, 4), round(w.chi_square, 2), w.df
    (0.9111, 8.2, 3.0)
    """
    wide = to_wide(data, subject, rater, rating, layout=layout)
    x = wide.values
    complete = ~np.isnan(x).any(axis=1)
    x = x[complete]
    n, m = x.shape
    if n < 2 or m < 2:
        raise AnalysisError(f"Kendall's W needs at least 2 complete subjects and 2 raters, got {n} x {m}")
    ranks = stats.rankdata(x, axis=0)
    totals = ranks.sum(1)
    s = np.sum((totals - totals.mean()) ** 2)
    ties = 0.0
    for j in range(m):
        _, counts = np.unique(x[:, j], return_counts=True)
        ties += np.sum(counts**3 - counts)
    denom = m**2 * (n**3 - n) - (m * ties if tie_correction else 0.0)
    w = 12 * s / denom if denom > 0 else np.nan
    chi2 = m * (n - 1) * w
    p = float(stats.chi2.sf(chi2, n - 1))
    corrected = "tie-corrected" if tie_correction else "uncorrected (no tie correction)"
    return KendallW(
        estimate=float(w),
        z=float(chi2),
        p=p,
        n=n,
        method="kendall_w",
        convention=f"Kendall & Babington Smith (1939) W, {corrected}; chi-square = m(n-1)W on n-1 df",
        confidence=confidence,
        extra={
            "chi2": float(chi2),
            "df": n - 1,
            "raters": m,
            "dropped": int((~complete).sum()),
            "tie_correction": float(ties),
        },
        statistic=float(chi2),
        statistic_name="chi-square",
        df=float(n - 1),
        chi_square=float(chi2),
        tie_correction=tie_correction,
    )
