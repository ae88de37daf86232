"""The examples of docs/prognosis.md run as written (every variable they use is defined in them)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import matplotlib

DOC = Path(__file__).resolve().parents[1] / "docs" / "prognosis.md"


def test_prognosis_doc_examples_run() -> None:
    matplotlib.use("Agg")
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    runnable = [b for b in blocks if "rng = np.random.default_rng" in b]
    assert runnable, "docs/prognosis.md has no self-contained example block"
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the docs use no deprecated name
        exec(compile(runnable[0], str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    assert namespace["unpaired"].method == "delong_test_unpaired"
    assert set(namespace["km"]) == {"F", "M"}
    assert namespace["m"].concordance.method == "harrell_c"
