"""A radiograph with its Brixia zone grid and zone scores (teaching and reporting figure).

The zone grid is drawn over the lung box of a frontal radiograph in the standard display orientation (patient
right on the viewer's left): two columns (right lung A-C on the left half, left lung D-F on the right half) of
three rows (upper, middle, lower). The lung box is given as fractions of the image (``lung_box``); without a lung
segmentation of radiographs (not part of this package) the default box fits a centred PA chest radiograph and can
be adjusted per image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from kicc_analysis.figures.style import publication_style

__all__ = ["BRIXIA_GRADE_COLOURS", "brixia_figure"]

#: grade 0..3 colours (none, interstitial, mixed, alveolar), colour-blind safe
BRIXIA_GRADE_COLOURS = ("#56B4E9", "#F0E442", "#E69F00", "#D55E00")
_LAYOUT = {"A": (0, 0), "B": (1, 0), "C": (2, 0), "D": (0, 1), "E": (1, 1), "F": (2, 1)}


def brixia_figure(
    pixels: np.ndarray,
    scores: Mapping[str, float] | pd.DataFrame,
    *,
    lung_box: tuple[float, float, float, float] = (0.10, 0.88, 0.12, 0.88),
    title: str | None = None,
    show_table: bool = True,
) -> Any:
    """Radiograph with the Brixia zone grid, each zone's score and the total.

    Parameters
    ----------
    pixels : 2-D array
        Display pixels (e.g. ``load_radiograph(path).pixels``; 0 black, 1 white).
    scores : mapping zone -> score, or DataFrame readers x zones (A-F)
        One reader's scores, or several readers' (the grid shows the first reader's, or the mean when several
        readers are given with ``"mean"`` as a row; the table lists every reader with the total).
    lung_box : (top, bottom, left, right)
        Lung region as fractions of the image height/width.
    title : str, optional
        Figure title.
    show_table : bool
        Draw the per-reader table beside the image.

    Returns
    -------
    matplotlib Figure
    """
    frame = pd.DataFrame([scores]) if isinstance(scores, Mapping) else scores.copy()
    missing = [z for z in _LAYOUT if z not in frame.columns]
    if missing:
        raise ValueError(f"scores lack Brixia zones {missing} (columns: {list(frame.columns)})")
    shown = frame.loc["mean"] if "mean" in frame.index else frame.iloc[0]
    frame = frame[list(_LAYOUT)]
    frame["total"] = frame.sum(axis=1)
    rows, cols = pixels.shape
    top, bottom, left, right = lung_box
    y0, y1, x0, x1 = top * rows, bottom * rows, left * cols, right * cols
    zone_h, zone_w = (y1 - y0) / 3, (x1 - x0) / 2
    with publication_style():
        fig = plt.figure(figsize=(7.2 if show_table else 4.0, 4.2))
        ax = fig.add_axes((0.02, 0.04, 0.52 if show_table else 0.94, 0.86))
        ax.imshow(pixels, cmap="gray", vmin=0, vmax=1, interpolation="lanczos")
        ax.set_axis_off()
        for zone, (r, c) in _LAYOUT.items():
            value = float(shown[zone])
            grade = int(np.clip(np.rint(value), 0, 3))
            ax.add_patch(Rectangle((x0 + c * zone_w, y0 + r * zone_h), zone_w, zone_h, fill=True, alpha=0.18,
                                   facecolor=BRIXIA_GRADE_COLOURS[grade], edgecolor="white", linewidth=1.2))  # fmt: skip
            label = f"{zone}\n{value:g}" if value == int(value) else f"{zone}\n{value:.1f}"
            ax.text(x0 + (c + 0.5) * zone_w, y0 + (r + 0.5) * zone_h, label, ha="center", va="center", color="white",
                    fontsize=10, fontweight="bold",
                    bbox={"boxstyle": "round,pad=0.2", "facecolor": BRIXIA_GRADE_COLOURS[grade], "alpha": 0.75})  # fmt: skip
        ax.text(0.02 * cols, 0.05 * rows, "R", color="white", fontsize=11, fontweight="bold", va="top")
        total = float(shown[list(_LAYOUT)].sum())
        ax.set_title(title or f"Brixia score {total:g} / 18", fontsize=10)
        if show_table:
            tab = fig.add_axes((0.63, 0.10, 0.36, 0.75))
            tab.set_axis_off()
            cells = [[f"{v:g}" if v == int(v) else f"{v:.1f}" for v in row] for row in frame.to_numpy(dtype=float)]
            table = tab.table(cellText=cells, rowLabels=[str(i) for i in frame.index], colLabels=list(frame.columns),
                              loc="upper center", cellLoc="center")  # fmt: skip
            table.auto_set_font_size(False)
            table.set_fontsize(8)
            table.scale(1.0, 1.4)
            tab.text(0.0, 0.02, "A-C right lung, D-F left lung (upper, middle, lower);\n"
                     "0 none, 1 interstitial, 2 mixed, 3 alveolar; total 0-18\n(Borghesi & Maroldi 2020)",
                     fontsize=7, va="bottom", transform=tab.transAxes)  # fmt: skip
    return fig
