"""Hangul in teaching figures: a Nanum font (Debian fonts-nanum, installed by .ci/run) covers it."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from kicc_analysis.teaching.images import hangul_font

HANGUL = "코로나19 폐렴 간유리 음영"


def test_hangul_glyphs_are_not_empty_boxes():
    path = hangul_font()
    if path is None:
        pytest.skip("no NanumGothic font (Debian package fonts-nanum, installed by .ci/run)")
    from fontTools.ttLib import TTFont

    cmap = TTFont(path, fontNumber=0).getBestCmap()
    assert all(ord(ch) in cmap for ch in HANGUL if not ch.isspace())  # the font has a glyph for every syllable

    def ink(text: str, family: str) -> np.ndarray:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = Figure(figsize=(3, 0.6), dpi=100)
        FigureCanvasAgg(fig)
        fig.text(0.02, 0.3, text, family=family, fontsize=14)
        fig.canvas.draw()
        return np.asarray(fig.canvas.buffer_rgba())[..., 0] < 128

    # distinct syllables give distinct ink (empty boxes would all look the same)
    first, second = ink("코", "NanumGothic"), ink("폐", "NanumGothic")
    assert first.sum() > 0 and second.sum() > 0 and not np.array_equal(first, second)
