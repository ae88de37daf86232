"""results/index.html in headless Chromium: renders, every link resolves, nothing from the network, fits a phone."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from PIL import Image, ImageStat

from kicc_analysis.study import run_study

PROBE = """# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: kicc-analysis, language: python, name: python3}
# ---

# %% [markdown]
# # Cohort probe
#
# Builds a small cohort flow, a table with units and a figure for the front page.

# %% tags=["parameters"]
repository = "x"
output_dir = "y"

# %%
import matplotlib.pyplot as plt
import pandas as pd
from kicc_analysis.provenance import OutputWriter
out = OutputWriter(output_dir, notebook="01_cohort", version="1.2.0", cohort_version="50dd5792421e0431",
                   parameters={"repository": repository, "seed": 19})
out.table(pd.DataFrame({"step": ["Rows in the clinical table", "Patients with a baseline CT"], "n": [12, 10],
                        "excluded": [0, 2], "reason": ["", "no CT study in the repository"]}), "cohort_flow",
          title="Cohort flow", description="Patients at each inclusion step")
out.table(pd.DataFrame({"subjid": [f"KICC-S01-{i:04d}" for i in range(10)], "lung_volume_ml": range(4000, 4010),
                        "opacity_pct": [i / 3 for i in range(10)], "a_rather_long_column_name_to_test_wrapping": 1}),
          "ct_quantification", title="CT quantification per patient")
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(range(10), [i * i for i in range(10)], marker="o")
ax.set_title("Opacity over time")
out.figure(fig, "opacity_over_time", title="Opacity over time", description="Mean opacity (%) by day")
"""

FAILING = (
    PROBE.split("# %% [markdown]")[0]
    + """# %% [markdown]
# # Failing probe
#
# Fails on a missing input file.

# %% tags=["parameters"]
repository = "x"
output_dir = "y"

# %%
from pathlib import Path
(Path(repository) / "clinical" / "kicc_clinical.csv").read_text()
"""
)


@pytest.fixture(scope="module")
def results_page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("front-page")
    notebooks = root / "notebooks"
    notebooks.mkdir()
    (notebooks / "01_cohort.py").write_text(PROBE)
    (notebooks / "02_failing.py").write_text(FAILING)
    (root / "demo_repository").mkdir()
    run = run_study(root / "demo_repository", root / "results", notebook_dir=notebooks, show_progress=False)
    assert len(run.failed) == 1
    return run.index_html


@pytest.mark.slow
def test_results_page_on_a_phone(results_page, browser_page):
    page = browser_page
    page.set_viewport(390, 844)
    page.open(results_page)
    page.wait_until("Array.from(document.images).every(img => img.complete)")
    shot = page.screenshot("results_index_390px")

    # renders something (not a blank page): several distinct colours, not one flat tone
    image = Image.open(shot).convert("L")
    assert image.width == 390 and image.height > 844
    assert ImageStat.Stat(image).stddev[0] > 20

    # fits a 390 px phone: nothing wider than the viewport, no horizontal scrolling of the page
    width = page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
    assert width <= 390

    # failures prominent: the banner comes first and names notebook, cell and input file
    banner = page.evaluate("document.querySelector('#failures').innerText")
    assert "02_failing" in banner and "Cell" in banner and "kicc_clinical.csv" in banner
    top = page.evaluate("document.querySelector('#failures').getBoundingClientRect().top")
    assert top < 844

    # images decoded; every link and image resolves to a file beside the page
    assert page.evaluate("Array.from(document.images).every(img => img.naturalWidth > 0)")
    targets = page.evaluate(
        "[...Array.from(document.querySelectorAll('a[href]'), a => a.href),"
        " ...Array.from(document.images, img => img.src)]"
    )
    files = [t for t in targets if not urlparse(t).fragment or urlparse(t).path != urlparse(page.page.url).path]
    assert len(files) >= 6
    for target in files:
        parsed = urlparse(target)
        assert parsed.scheme == "file", target
        assert Path(unquote(parsed.path)).is_file(), target
    anchors = page.evaluate("Array.from(document.querySelectorAll('a[href^=\"#\"]'), a => a.getAttribute('href'))")
    for anchor in anchors:
        assert page.evaluate(f"!!document.getElementById({anchor[1:]!r})"), anchor

    # provenance on demand
    assert page.evaluate("document.querySelectorAll('details summary').length") >= 3
    # no network request: only the page itself and its files
    assert all(url.startswith("file:") for url in page.network_requests()), page.network_requests()


@pytest.mark.slow
def test_results_page_on_a_desktop(results_page, browser_page):
    page = browser_page
    page.open(results_page)
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    shot = page.screenshot("results_index_desktop")
    assert Image.open(shot).width == 1280
    assert page.network_requests(external_only=True) == []
