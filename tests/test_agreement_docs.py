"""The examples of docs/agreement.md run as written: doctest blocks match, code blocks define what they use."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import matplotlib
import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "agreement.md"


def test_agreement_doc_doctests_pass():
    text = DOC.read_text(encoding="utf-8")
    test = doctest.DocTestParser().get_doctest(text, {}, "agreement.md", str(DOC), 0)
    assert len(test.examples) >= 8
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


@pytest.mark.filterwarnings("error::kicc_analysis.agreement.AgreementWarning")
def test_agreement_doc_code_blocks_run_in_a_fresh_namespace():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    code = [b for b in blocks if not b.lstrip().startswith(">>>")]
    assert len(code) >= 3
    for block in code:
        namespace: dict = {}
        exec(compile(block, str(DOC), "exec"), namespace)  # each block on its own: every name must be defined in it
        plt.close("all")
    assert namespace["cons"].consensus.shape == namespace["mask_r1"].shape
