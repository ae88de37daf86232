"""Shared plotting style and cohort-level figures (publication quality, vector output)."""

from kicc_analysis.figures.style import PALETTE, figure, publication_style

__all__ = ["PALETTE", "figure", "publication_style"]
