"""One plotting style for every figure of the study.

Use :func:`figure` to create a figure in the house style, or wrap any plotting code in
``with publication_style():``. Sizes are in inches at journal column widths.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib.pyplot as plt

#: Colour-blind-safe palette (Okabe–Ito), in the order groups are drawn.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

SINGLE_COLUMN_IN = 3.5
DOUBLE_COLUMN_IN = 7.2

STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": plt.cycler(color=list(PALETTE)),
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
    "figure.dpi": 100,
    "savefig.dpi": 300,
}


@contextmanager
def publication_style() -> Iterator[None]:
    """Context manager applying the house style to figures created inside it."""
    with plt.rc_context(STYLE):
        yield


def figure(
    ncols: int = 1, nrows: int = 1, *, width_in: float = DOUBLE_COLUMN_IN, height_in: float | None = None, **kwargs: Any
):
    """Create ``(fig, axes)`` in the house style (double-column width by default)."""
    with publication_style():
        height = height_in if height_in is not None else width_in / max(ncols, 1) * 0.8 * nrows
        return plt.subplots(nrows, ncols, figsize=(width_in, height), constrained_layout=True, **kwargs)
