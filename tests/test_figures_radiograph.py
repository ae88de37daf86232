"""Tests of kicc_analysis.figures.radiograph_figures.brixia_figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from kicc_analysis.figures.radiograph_figures import brixia_figure


def test_zone_grid_scores_and_table(tmp_path):
    pixels = np.linspace(0, 1, 100 * 80, dtype=np.float32).reshape(100, 80)
    scores = pd.DataFrame({"A": [3, 2], "B": [2, 2], "C": [1, 0], "D": [0, 0], "E": [1, 1], "F": [2, 3]},
                          index=["senior", "junior"])  # fmt: skip
    fig = brixia_figure(pixels, scores)
    image_ax = fig.axes[0]
    labels = sorted(t.get_text() for t in image_ax.texts if "\n" in t.get_text())
    assert labels == ["A\n3", "B\n2", "C\n1", "D\n0", "E\n1", "F\n2"]
    assert image_ax.get_title() == "Brixia score 9 / 18"
    # zone A (right upper) is drawn on the viewer's left, upper third of the lung box
    rects = [p for p in image_ax.patches]
    assert len(rects) == 6 and rects[0].get_x() < rects[3].get_x() and rects[0].get_y() < rects[1].get_y()
    cells = fig.axes[1].tables[0].get_celld()
    totals = [cells[(r, 6)].get_text().get_text() for r in (1, 2)]
    assert totals == ["9", "8"]
    fig.savefig(tmp_path / "brixia.png")
    plt.close(fig)
    single = brixia_figure(pixels, {"A": 1, "B": 1, "C": 1, "D": 1, "E": 1, "F": 1}, show_table=False)
    assert len(single.axes) == 1
    plt.close(single)
    with pytest.raises(ValueError, match="lack Brixia zones"):
        brixia_figure(pixels, {"A": 1})
