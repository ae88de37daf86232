"""A radiograph with its Brixia zone grid and zone scores (teaching and reporting figure).

The zone grid is drawn over the lung box of a frontal radiograph in the standard display orientation (patient
right on the viewer's left): two columns (right lung A-C on the left half, left lung D-F on the right half) of
three rows (upper, middle, lower). The lung box is given as fractions of the image (``lung_box``); without a lung
segmentation of radiographs (not part of this package) the default box fits a centred PA chest radiograph and can
be adjusted per image.

:func:`draw_zone_scores` draws the zones of any radiograph scheme of :data:`kicc_analysis.readings.SCHEMES` (Brixia
six zones, RALE four quadrants, Cohen per lung) on an axes; :func:`brixia_figure` and
:func:`kicc_analysis.teaching.key_image` both use it, so zones look the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from kicc_analysis.figures.style import publication_style

__all__ = ["BRIXIA_GRADE_COLOURS", "DEFAULT_LUNG_BOX", "ZONE_LAYOUTS", "brixia_figure", "draw_zone_scores"]

#: grade 0..3 colours (none, interstitial, mixed, alveolar), colour-blind safe
BRIXIA_GRADE_COLOURS = ("#56B4E9", "#F0E442", "#E69F00", "#D55E00")
_LAYOUT = {"A": (0, 0), "B": (1, 0), "C": (2, 0), "D": (0, 1), "E": (1, 1), "F": (2, 1)}
#: lung region of a centred frontal radiograph as fractions of the image: (top, bottom, left, right)
DEFAULT_LUNG_BOX = (0.10, 0.88, 0.12, 0.88)
#: zones of each radiograph scheme: (rows, columns of the grid, {zone: (row, column, items shown)}); column 0 is the
#: viewer's left = the patient's right on a frontal view
ZONE_LAYOUTS: dict[str, tuple[int, int, dict[str, tuple[int, int, tuple[str, ...]]]]] = {
    "brixia": (3, 2, {zone: (r, c, (zone,)) for zone, (r, c) in _LAYOUT.items()}),
    "rale": (2, 2, {q: (r, c, (f"{q}_extent", f"{q}_density"))
                    for q, (r, c) in {"RUQ": (0, 0), "RLQ": (1, 0), "LUQ": (0, 1), "LLQ": (1, 1)}.items()}),
    "cohen": (1, 2, {side: (0, c, (f"{side}_extent", f"{side}_opacity")) for side, c in (("right", 0), ("left", 1))}),
}  # fmt: skip


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
    with publication_style():
        fig = plt.figure(figsize=(7.2 if show_table else 4.0, 4.2))
        ax = fig.add_axes((0.02, 0.04, 0.52 if show_table else 0.94, 0.86))
        ax.imshow(pixels, cmap="gray", vmin=0, vmax=1, interpolation="lanczos")
        ax.set_axis_off()
        draw_zone_scores(ax, (rows, cols), {z: float(shown[z]) for z in _LAYOUT}, scheme="brixia", lung_box=lung_box)
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


def _fmt(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def draw_zone_scores(
    ax: Any,
    shape: tuple[int, int],
    scores: Mapping[str, float],
    *,
    scheme: str = "brixia",
    lung_box: tuple[float, float, float, float] = DEFAULT_LUNG_BOX,
    spacing: tuple[float, float] = (1.0, 1.0),
    fontsize: float = 10,
    multiline: bool = True,
) -> dict[str, Any]:
    """Draw a radiograph scheme's zones with their scores and return what was drawn.

    Parameters
    ----------
    ax : matplotlib Axes
        Axes showing the radiograph with pixel ``(row, column)`` centred at ``(row * spacing[0], column *
        spacing[1])`` in data coordinates (pixels: ``spacing=(1, 1)``; mm: the pixel spacing).
    shape : (rows, columns)
        Image size in pixels.
    scores : mapping item -> score
        The scheme's items (Brixia ``A``-``F``; RALE ``RUQ_extent``, ``RUQ_density``...; Cohen ``right_extent``...).
        A mean of several readers may be fractional.
    scheme : {"brixia", "rale", "cohen"}
    lung_box : (top, bottom, left, right)
        Lung region as fractions of the image height/width.
    spacing : (row, column) in mm or (1, 1)
    fontsize : float
    multiline : bool
        Zone name and score on two lines (``"A\\n2"``) or one (``"A 2"``).

    Returns
    -------
    dict
        ``scheme``, ``zones`` (zone -> text drawn), ``total_text`` (e.g. ``"Brixia 9 / 18"``), ``lung_box``.

    Raises
    ------
    ValueError
        Unknown scheme, or items of the scheme missing from ``scores`` (named).
    """
    from kicc_analysis.readings import SCHEMES

    if scheme not in ZONE_LAYOUTS:
        raise ValueError(f"zone scheme {scheme!r}: expected one of {sorted(ZONE_LAYOUTS)}")
    definition = SCHEMES[scheme]
    n_rows, n_cols, layout = ZONE_LAYOUTS[scheme]
    needed = [item for _, _, items in layout.values() for item in items]
    missing = [item for item in needed if item not in scores]
    if scheme == "rale":  # density may be left out where the extent is 0
        missing = [m for m in missing if not (m.endswith("_density") and scores.get(m[:-8] + "_extent") == 0)]
    if missing:
        raise ValueError(f"scores lack {definition.title} items {missing} (given: {sorted(scores)})")
    rows, cols = shape
    sr, sc = spacing
    top, bottom, left, right = lung_box
    y0, y1 = (top * rows - 0.5) * sr, (bottom * rows - 0.5) * sr
    x0, x1 = (left * cols - 0.5) * sc, (right * cols - 0.5) * sc
    zone_h, zone_w = (y1 - y0) / n_rows, (x1 - x0) / n_cols
    drawn: dict[str, str] = {}
    sep = "\n" if multiline else " "
    for zone, (r, c, items) in layout.items():
        values = [float(scores.get(item, 0.0)) for item in items]
        if scheme == "brixia":
            grade_value, text = values[0], f"{zone}{sep}{_fmt(values[0])}"
        elif scheme == "rale":
            grade_value = values[0] * values[1] / 4.0  # product 0-12 shown on the 0-3 colour scale
            text = f"{zone}{sep}{_fmt(values[0])}\u00d7{_fmt(values[1])}"
        else:
            grade_value = values[1]
            text = f"{zone}{sep}E{_fmt(values[0])} O{_fmt(values[1])}"
        grade = int(np.clip(np.rint(grade_value), 0, 3))
        ax.add_patch(Rectangle((x0 + c * zone_w, y0 + r * zone_h), zone_w, zone_h, fill=True, alpha=0.18,
                               facecolor=BRIXIA_GRADE_COLOURS[grade], edgecolor="white", linewidth=1.2,
                               gid=f"zone-{zone}"))  # fmt: skip
        ax.text(x0 + (c + 0.5) * zone_w, y0 + (r + 0.5) * zone_h, text, ha="center", va="center", color="white",
                fontsize=fontsize, fontweight="bold", gid=f"zone-score-{zone}",
                bbox={"boxstyle": "round,pad=0.2", "facecolor": BRIXIA_GRADE_COLOURS[grade], "alpha": 0.75})  # fmt: skip
        drawn[zone] = text
    parts = []
    for total in definition.totals:
        low, high = definition.total_range(total.name)
        value = definition.compute_total(total.name, {k: float(v) for k, v in scores.items()})
        name = definition.title.split(" (")[0] if total.name == "total" else total.name.replace("_total", "")
        parts.append(f"{name} {_fmt(value)} / {high}")
    return {"scheme": scheme, "zones": drawn, "total_text": ", ".join(parts), "lung_box": tuple(lung_box)}
