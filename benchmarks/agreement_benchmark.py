"""Speed of kicc_analysis.agreement against pingouin, statsmodels and krippendorff on the same data.

Usage::

    .venv/bin/python benchmarks/agreement_benchmark.py            # 1,500 subjects x 5 raters, 7 repeats
    .venv/bin/python benchmarks/agreement_benchmark.py --repeats 3

Data: simulated ordinal lobe scores 0-5 (seeded), 1,500 subjects x 5 raters, complete. Every timing is the median
wall time of ``--repeats`` calls after one warm-up call, including input reshaping each library needs from the
same wide array (pingouin: long DataFrame; statsmodels: contingency / count table). Where a peer is timed, our call
and the peer's alternate round by round and the ratio column is the median of the per-round ratios, so that both
see the same load on a shared machine. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd

os.environ.setdefault("KICC_NO_PROGRESS", "1")

from kicc_analysis.agreement import (  # noqa: E402
    cohen_kappa,
    conger_kappa,
    fleiss_kappa,
    gwet_ac,
    icc,
    krippendorff_alpha,
    light_kappa,
)


def simulate(n: int, raters: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 6, n)
    noise = rng.integers(-1, 2, size=(n, raters)) * (rng.random((n, raters)) < 0.4)
    return np.clip(truth[:, None] + noise, 0, 5).astype(float)


def timed(func: Callable[[], object], repeats: int) -> float:
    func()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timed_pair(ours: Callable[[], object], peer: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    """Interleaved timing (ours, peer, ours, peer, ...) so that both face the same machine load.

    Returns the two median times (s) and the median of the per-round ratios peer / ours.
    """
    ours()
    peer()
    t_ours, t_peer = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ours()
        t1 = time.perf_counter()
        peer()
        t2 = time.perf_counter()
        t_ours.append(t1 - t0)
        t_peer.append(t2 - t1)
    ratios = [p / o for o, p in zip(t_ours, t_peer, strict=True)]
    return statistics.median(t_ours), statistics.median(t_peer), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--raters", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args()

    import krippendorff
    import pingouin as pg
    from statsmodels.stats import inter_rater as ir

    x = simulate(args.n, args.raters)
    long = pd.DataFrame(
        {
            "subject": np.repeat(np.arange(args.n), args.raters),
            "rater": np.tile(np.arange(args.raters), args.n),
            "score": x.ravel(),
        }
    )
    cats = list(range(6))

    def sm_weighted_kappa() -> float:
        table, _ = ir.to_table(x[:, :2].astype(int), bins=np.arange(7))
        return ir.cohens_kappa(table, wt="quadratic").kappa

    def sm_fleiss() -> float:
        counts, _ = ir.aggregate_raters(x.astype(int), n_cat=6)
        return ir.fleiss_kappa(counts)

    rows = [
        (
            "ICC (6 forms, F, CI)",
            lambda: icc(x),
            "pingouin.intraclass_corr",
            lambda: pg.intraclass_corr(long, "subject", "rater", "score"),
        ),
        (
            "weighted kappa (quadratic, SE)",
            lambda: cohen_kappa(x[:, 0], x[:, 1], weights="quadratic", categories=cats),
            "statsmodels cohens_kappa(to_table)",
            sm_weighted_kappa,
        ),
        (
            "Fleiss kappa (SE, per-category)",
            lambda: fleiss_kappa(x, categories=cats),
            "statsmodels fleiss_kappa(aggregate_raters)",
            sm_fleiss,
        ),
        ("Conger kappa (SE)", lambda: conger_kappa(x, categories=cats), "-", None),
        ("Light kappa (jackknife SE)", lambda: light_kappa(x, categories=cats), "-", None),
        ("Gwet AC2 quadratic (SE)", lambda: gwet_ac(x, weights="quadratic", categories=cats), "-", None),
        (
            "Krippendorff alpha ordinal (SE)",
            lambda: krippendorff_alpha(x, level="ordinal", categories=cats),
            "krippendorff.alpha (no SE)",
            lambda: krippendorff.alpha(reliability_data=x.T, level_of_measurement="ordinal", value_domain=cats),
        ),
    ]
    print(
        f"# agreement benchmark {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}"
        f", {os.cpu_count()} CPUs, n={args.n} subjects x {args.raters} raters, median of {args.repeats}"
    )
    print("| task | kicc (ms) | peer | peer (ms) | peer / kicc |")
    print("|---|---|---|---|---|")
    for name, ours, peer_name, peer in rows:
        if peer is None:
            t_ours = timed(ours, args.repeats) * 1000
            print(f"| {name} | {t_ours:.1f} | {peer_name} | - | - |")
            continue
        t_ours, t_peer, ratio = timed_pair(ours, peer, args.repeats)
        print(f"| {name} | {t_ours * 1000:.1f} | {peer_name} | {t_peer * 1000:.1f} | {ratio:.1f}x |")

    # Bootstrap: vectorised draw-count matrices vs a Python loop over replicates with statsmodels.
    boot_repeats = max(1, min(3, args.repeats))
    b = args.n_boot
    t_fleiss = timed(lambda: fleiss_kappa(x, categories=cats, n_boot=b, seed=1), boot_repeats)
    t_ac2 = timed(lambda: gwet_ac(x, weights="quadratic", categories=cats, n_boot=b, seed=1), boot_repeats)
    t_wk = timed(
        lambda: cohen_kappa(x[:, 0], x[:, 1], weights="quadratic", categories=cats, n_boot=b, seed=1), boot_repeats
    )
    rng = np.random.default_rng(1)
    counts, _ = ir.aggregate_raters(x.astype(int), n_cat=6)
    loop_reps = max(b // 10, 50)

    def sm_loop() -> None:
        for _ in range(loop_reps):
            ir.fleiss_kappa(counts[rng.integers(0, args.n, args.n)])

    t_loop = timed(sm_loop, 1) * b / loop_reps
    print(
        f"| bootstrap {b} reps, Fleiss kappa | {t_fleiss * 1000:.0f} | statsmodels loop (extrapolated from "
        f"{loop_reps}) | {t_loop * 1000:.0f} | {t_loop / t_fleiss:.1f}x |"
    )
    # Segmentation: two lesion-like masks on a 120 x 256 x 256 CT grid (0.7 x 0.7 x 2.5 mm).
    import SimpleITK as sitk

    from kicc_analysis.agreement import segmentation_agreement

    zz, yy, xx = np.ogrid[:120, :256, :256]
    spacing = (2.5, 0.7, 0.7)
    ell = ((zz - 60) * 2.5 / 80) ** 2 + ((yy - 128) * 0.7 / 60) ** 2 + ((xx - 120) * 0.7 / 50) ** 2
    mask_a = ell <= 1
    mask_b = np.roll(mask_a, 2, axis=2) | (ell <= 0.2)
    img_a = sitk.GetImageFromArray(mask_a.astype(np.uint8))
    img_b = sitk.GetImageFromArray(mask_b.astype(np.uint8))
    for img in (img_a, img_b):
        img.SetSpacing(spacing[::-1])

    def sitk_metrics() -> None:
        hd = sitk.HausdorffDistanceImageFilter()
        hd.Execute(img_a, img_b)
        ov = sitk.LabelOverlapMeasuresImageFilter()
        ov.Execute(img_a, img_b)

    t_seg = timed(lambda: segmentation_agreement(mask_a, mask_b, spacing), boot_repeats)
    t_sitk = timed(sitk_metrics, boot_repeats)
    print(
        f"| segmentation (Dice, HD, HD95, ASSD, surface Dice), {int(mask_a.sum())} voxels | {t_seg * 1000:.0f} | "
        f"SimpleITK Hausdorff + LabelOverlap (HD, mean HD, Dice) | {t_sitk * 1000:.0f} | {t_sitk / t_seg:.1f}x |"
    )
    print(f"| bootstrap {b} reps, Gwet AC2 | {t_ac2 * 1000:.0f} | - | - | - |")
    print(f"| bootstrap {b} reps, weighted kappa | {t_wk * 1000:.0f} | - | - | - |")


if __name__ == "__main__":
    main()
