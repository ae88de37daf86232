"""Benchmark of kicc_analysis.prognosis against lifelines / statsmodels / scikit-learn on the same data.

Tasks (brief, issue 5):
1. Cox model, 100,000 rows x 10 covariates, tied times (Efron and Breslow).
2. AUC with DeLong variance on 100,000 scores (peer: scikit-learn ``roc_auc_score``, AUC only).
3. 200-replicate bootstrap optimism validation of a 10-predictor logistic model on 1,500 patients
   (AUC, calibration slope/intercept, Brier), peers: the same loop with scikit-learn and statsmodels.
4. Kaplan–Meier with the 25th/50th/75th percentiles and their Brookmeyer–Crowley CIs (log-log), 100,000
   rows (issue 14), peers: statsmodels ``SurvfuncRight`` + ``quantile_ci``, lifelines ``KaplanMeierFitter``
   (median CI from the band; lifelines has no quartile CI).
5. Proportional-hazards test, pre-3.0 ``cox.zph`` (scaled Schoenfeld, ``method="schoenfeld"``) on a fitted
   Cox model of 20,000 rows x 5 covariates, peer: lifelines ``proportional_hazard_test`` (rank transform).

Run:  .venv/bin/python benchmarks/prognosis_benchmark.py [--repeats 5] [--quick]
Prints a Markdown table (medians over repeats, ratio = peer / ours) for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

os.environ.setdefault("KICC_NO_PROGRESS", "1")

from kicc_analysis.prognosis import bootstrap_validate, cox, kaplan_meier, ph_test, roc_auc  # noqa: E402
from kicc_analysis.prognosis.validation import logistic_model  # noqa: E402


def timed(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median time of each function, running them alternately so that load changes on a shared
    machine affect all of them alike."""
    for fn in fns.values():  # warm-up (imports, caches)
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def cox_data(n: int, p: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    beta = rng.normal(scale=0.3, size=p)
    t = np.round(rng.exponential(1 / np.exp(x @ beta)) * 100) + 1  # integer days -> many ties
    c = np.round(rng.uniform(0, 300, n)) + 1
    d = pd.DataFrame(x, columns=[f"x{i}" for i in range(p)])
    d["time"] = np.minimum(t, c)
    d["event"] = (t <= c).astype(float)
    return d


def bench_cox(n: int, p: int, repeats: int) -> list[dict]:
    d = cox_data(n, p)
    cols = [f"x{i}" for i in range(p)]
    from statsmodels.duration.hazard_regression import PHReg

    fns = {
        "ours_efron": lambda: cox(d, "time", "event", cols, ties="efron"),
        "ours_breslow": lambda: cox(d, "time", "event", cols, ties="breslow"),
        "sm_efron": lambda: PHReg(d["time"], d[cols], status=d["event"], ties="efron").fit(),
        "sm_breslow": lambda: PHReg(d["time"], d[cols], status=d["event"], ties="breslow").fit(),
    }
    try:
        from lifelines import CoxPHFitter

        fns["lifelines"] = lambda: CoxPHFitter().fit(d[[*cols, "time", "event"]], "time", "event")
    except ImportError:
        pass
    t = interleaved(fns, repeats)
    rows = [
        {"task": f"Cox {n:,} x {p} (efron)", "ours_s": t["ours_efron"], "peer": "statsmodels PHReg", "peer_s": t["sm_efron"]},
        {"task": f"Cox {n:,} x {p} (breslow)", "ours_s": t["ours_breslow"], "peer": "statsmodels PHReg",
         "peer_s": t["sm_breslow"]},
    ]  # fmt: skip
    if "lifelines" in t:
        rows.append({"task": f"Cox {n:,} x {p} (efron)", "ours_s": t["ours_efron"], "peer": "lifelines CoxPHFitter",
                     "peer_s": t["lifelines"]})  # fmt: skip
    return rows


def bench_delong(n: int, repeats: int) -> list[dict]:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, n)
    s = rng.normal(size=n) + y
    from sklearn.metrics import roc_auc_score

    t = interleaved({"ours": lambda: roc_auc(y, s), "sk": lambda: roc_auc_score(y, s)}, repeats)
    ours, sk = t["ours"], t["sk"]
    return [{"task": f"AUC + DeLong SE, {n:,} scores", "ours_s": ours, "peer": "scikit-learn roc_auc_score (AUC only)",
             "peer_s": sk}]  # fmt: skip


def bench_bootstrap(n: int, p: int, reps: int, repeats: int) -> list[dict]:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, p))
    d = pd.DataFrame(x, columns=[f"x{i}" for i in range(p)])
    d["y"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-(x[:, 0] - 0.5 * x[:, 1] - 1)))).astype(float)
    cols = [f"x{i}" for i in range(p)]
    task = f"Bootstrap validation {reps} x {n:,} patients ({p} predictors)"

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss, roc_auc_score

    X, y = d[cols].to_numpy(), d["y"].to_numpy()

    def sk_perf(model, Xe, ye):
        p_ = model.predict_proba(Xe)[:, 1]
        lp = np.log(p_ / (1 - p_))[:, None]
        cal = LogisticRegression(penalty=None).fit(lp, ye)
        return roc_auc_score(ye, p_), cal.coef_[0, 0], cal.intercept_[0], brier_score_loss(ye, p_)

    def sk_loop():
        r = np.random.default_rng(0)
        full = LogisticRegression(penalty=None, max_iter=1000).fit(X, y)
        sk_perf(full, X, y)
        for _ in range(reps):
            i = r.integers(0, n, n)
            m = LogisticRegression(penalty=None, max_iter=1000).fit(X[i], y[i])
            sk_perf(m, X[i], y[i])
            sk_perf(m, X, y)

    import statsmodels.api as sm

    Xc = sm.add_constant(X)

    def sm_perf(res, Xe, ye):
        p_ = res.predict(Xe)
        lp = np.log(p_ / (1 - p_))
        cal = sm.Logit(ye, sm.add_constant(lp)).fit(disp=0)
        return roc_auc_score(ye, p_), cal.params, np.mean((p_ - ye) ** 2)

    def sm_loop():
        r = np.random.default_rng(0)
        sm_perf(sm.Logit(y, Xc).fit(disp=0), Xc, y)
        for _ in range(reps):
            i = r.integers(0, n, n)
            res = sm.Logit(y[i], Xc[i]).fit(disp=0)
            sm_perf(res, Xc[i], y[i])
            sm_perf(res, Xc, y)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = interleaved(
            {"ours": lambda: bootstrap_validate(logistic_model("y", cols), d, reps, outcome="y"),
             "scikit-learn loop": sk_loop, "statsmodels loop": sm_loop},
            repeats,
        )  # fmt: skip
    return [
        {"task": task, "ours_s": t["ours"], "peer": k, "peer_s": t[k]}
        for k in ("scikit-learn loop", "statsmodels loop")
    ]


def bench_km_quantiles(n: int, repeats: int, continuous: bool = False) -> list[dict]:
    d = cox_data(n, 1, seed=3)
    t, e = d["time"].to_numpy(), d["event"].to_numpy()
    if continuous:  # every time distinct: the core's sorting path instead of its integer-count path
        t = t - np.random.default_rng(5).random(n)
    probs = (0.25, 0.5, 0.75)
    from statsmodels.duration.survfunc import SurvfuncRight

    def sm() -> None:
        sf = SurvfuncRight(t, e)
        [sf.quantile_ci(p, method="cloglog") for p in probs]

    fns = {"ours": lambda: kaplan_meier(t, e, conf_type="log-log").quantiles(probs), "statsmodels": sm}
    try:
        from lifelines import KaplanMeierFitter
        from lifelines.utils import median_survival_times

        def ll() -> None:
            kmf = KaplanMeierFitter().fit(t, e)
            [kmf.percentile(1 - p) for p in probs]
            median_survival_times(kmf.confidence_interval_)

        fns["lifelines"] = ll
    except ImportError:
        pass
    res = interleaved(fns, repeats)
    task = f"Kaplan-Meier + quartiles with CIs, {n:,} rows ({'distinct real times' if continuous else 'integer days'})"
    peers = {
        "statsmodels": "statsmodels SurvfuncRight + quantile_ci",
        "lifelines": "lifelines KaplanMeierFitter (median CI only)",
    }
    return [{"task": task, "ours_s": res["ours"], "peer": peers[k], "peer_s": res[k]} for k in fns if k != "ours"]


def bench_ph_test(n: int, p: int, repeats: int) -> list[dict]:
    d = cox_data(n, p, seed=4)
    cols = [f"x{i}" for i in range(p)]
    ours_model = cox(d, "time", "event", cols)
    try:
        from lifelines import CoxPHFitter
        from lifelines.statistics import proportional_hazard_test
    except ImportError:
        return []
    peer_model = CoxPHFitter().fit(d[[*cols, "time", "event"]], "time", "event")
    frame = d[[*cols, "time", "event"]]
    res = interleaved({
        "ours": lambda: ph_test(ours_model, "lifelines_rank", method="schoenfeld"),
        "lifelines": lambda: proportional_hazard_test(peer_model, frame, time_transform="rank"),
    }, repeats)  # fmt: skip
    return [{"task": f"PH test (scaled Schoenfeld, pre-3.0 cox.zph), {n:,} x {p}", "ours_s": res["ours"],
             "peer": "lifelines proportional_hazard_test", "peer_s": res["lifelines"]}]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    ap.add_argument("--tasks", default="cox,delong,bootstrap,km,ph", help="comma-separated subset of the tasks")
    args = ap.parse_args()
    tasks = set(args.tasks.split(","))
    n_cox, n_auc, n_boot = (10_000, 10_000, 20) if args.quick else (100_000, 100_000, 200)
    rows = []
    if "cox" in tasks:
        rows += bench_cox(n_cox, 10, args.repeats)
    if "delong" in tasks:
        rows += bench_delong(n_auc, args.repeats * 3)
    if "bootstrap" in tasks:
        rows += bench_bootstrap(1500, 10, n_boot, max(1, args.repeats // 2))
    if "km" in tasks:
        rows += bench_km_quantiles(n_auc, args.repeats)
        rows += bench_km_quantiles(n_auc, args.repeats, continuous=True)
    if "ph" in tasks:
        rows += bench_ph_test(n_cox // 5, 5, args.repeats)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| task | kicc_analysis (s) | peer | peer (s) | peer / ours |")
    print("|---|---:|---|---:|---:|")
    for r in rows:
        print(
            f"| {r['task']} | {r['ours_s']:.3f} | {r['peer']} | {r['peer_s']:.3f} | {r['peer_s'] / r['ours_s']:.1f}x |"
        )


if __name__ == "__main__":
    main()
