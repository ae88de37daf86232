"""Make the README's teaching figure (docs/img/teaching_comparison.png) from the demo repository.

Reproducible: the demo repository is generated from a seed (8 patients, seed 19, the test suite's demo), the first
patient with two CT studies and a radiograph on each CT's day is shown, and the PNG is byte-identical on every run
(``Comparison.save``: no date or software string; then a 256-colour palette for size). The figure passes the case's identifier check before it is
written (the patient's DICOM identifiers, table dates, site code and pseudonym).

Usage::

    .venv/bin/python docs/make_comparison_figure.py [--repository DEMO] [--out docs/img/teaching_comparison.png]
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import pandas as pd
from PIL import Image

from kicc_analysis.cohort import load_cohort
from kicc_analysis.demo import generate_demo
from kicc_analysis.teaching import build_case, check_bytes, comparison_figure, repository_studies

HERE = Path(__file__).resolve().parent
DPI = 120  # README size; journal figures use the default 300 dpi
COLOURS = 256  # palette PNG for the README (< 300 kB); quantisation is deterministic


def pick_subject(repository: Path) -> str:
    """The first subject (sorted) with two CT studies and a radiograph on the day of each."""
    studies = pd.read_csv(repository / "clinical" / "imaging_studies.csv", dtype={"img_day": float})
    for subject, group in studies.groupby("subjid", sort=True):
        ct_days = set(group.loc[group["img_modality"] == "CT", "img_day"])
        xr_days = set(group.loc[group["img_modality"].isin(["CR", "DX"]), "img_day"])
        if len(ct_days) >= 2 and ct_days <= xr_days:
            return str(subject)
    raise SystemExit(f"{repository}: no subject with two CTs and a radiograph on each CT day")


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, help="a demo repository (default: generate one, 8 patients)")
    parser.add_argument("--out", type=Path, default=HERE / "img" / "teaching_comparison.png")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        repository = args.repository
        if repository is None:
            repository = Path(tmp) / "demo"
            generate_demo(repository, n_patients=8, seed=19, show_progress=False)
        subject = pick_subject(repository)
        case = build_case(load_cohort(repository, show_progress=False), subject, repository=repository)
        studies = repository_studies(repository, subject)
        ct_days = sorted({s.day for s in studies if s.modality == "CT"})[:2]
        # one CT and one radiograph per CT day: the first two CT days side by side
        keep = []
        for day in ct_days:
            for modality in ("CT", "radiograph"):
                keep.append(next(s for s in studies if s.day == day and s.modality == modality))
        case.studies = keep
        figure = comparison_figure(case, width_mm=174)
        full = figure.save(Path(tmp) / "figure.png", case=case, dpi=DPI)  # checked for identifiers
        with Image.open(full) as im:
            small = im.convert("RGB").quantize(
                colors=COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
            )
        buffer = io.BytesIO()
        small.save(buffer, format="PNG", optimize=True, dpi=(DPI, DPI))
        check_bytes(buffer.getvalue(), case, args.out.name)  # the re-encoded file too, before it is written
        args.out.parent.mkdir(parents=True, exist_ok=True)
        path = args.out
        path.write_bytes(buffer.getvalue())
    print(f"{path}: {path.stat().st_size / 1024:.0f} kB; levels " + ", ".join(
        f"day {p['day']} {p['modality']} slice {p['level'].get('index')}" for p in figure.panels))  # fmt: skip
    return path


if __name__ == "__main__":
    main()
