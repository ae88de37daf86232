"""One place for progress bars (``tqdm.auto`` renders in JupyterLab and terminals)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled(requested: bool | None = None) -> bool:
    """Decide whether to show a progress bar.

    ``requested`` wins when given; otherwise bars are shown unless the
    environment variable ``KICC_NO_PROGRESS`` is set (tests and CI set it).
    """
    if requested is not None:
        return requested
    return not os.environ.get("KICC_NO_PROGRESS")


def progress_bar(iterable: Iterable[T] | None = None, *, show: bool | None = None, **kwargs: Any) -> Any:
    """Wrap ``iterable`` in a tqdm bar, or return it untouched when bars are off."""
    return tqdm(iterable, disable=not progress_enabled(show), **kwargs)
