"""Make the README's case-page screenshot (docs/img/case_page.png) from the demo repository.

Usage (from the repository root)::

    .venv/bin/python docs/make_readme_screenshot.py [--repository DEMO] [--out docs/img/case_page.png]

Without ``--repository`` a small demo (8 patients, seed 19) is generated in a temporary folder. The first case
that :func:`kicc_analysis.teaching.propose_cases` proposes is built with the opacity overlay and rendered in quiz
mode; Debian's headless Chromium (``/usr/bin/chromium``, or ``$KICC_CHROMIUM``) takes the screenshot, which is
reduced to a 256-colour PNG (< 300 kB).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

MAX_BYTES = 300_000


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", help="demo repository (default: generate 8 patients in a temporary folder)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "img" / "case_page.png"))
    parser.add_argument("--width", type=int, default=900, help="browser width (CSS px)")
    parser.add_argument("--height", type=int, default=1300, help="browser height (CSS px)")
    args = parser.parse_args(argv)

    from PIL import Image

    from kicc_analysis.pipeline import quantify_cohort
    from kicc_analysis.teaching import build_case, propose_cases, render_case

    chromium = Path(os.environ.get("KICC_CHROMIUM", "/usr/bin/chromium"))
    if not chromium.exists():
        raise SystemExit(f"needs Chromium at {chromium} (Debian package 'chromium')")
    with tempfile.TemporaryDirectory() as tmp:
        repository = Path(args.repository) if args.repository else Path(tmp) / "demo"
        if not args.repository:
            from kicc_analysis.demo import generate_demo

            generate_demo(repository, n_patients=8, seed=19, show_progress=False)
        cohort = quantify_cohort(repository, show_progress=False).cohort
        readings = repository / "readings" / "reader_scores.csv"
        subject = propose_cases(cohort, readings=readings if readings.is_file() else None)["subjid"].iloc[0]
        educator = {
            "title": {"en": "Weekly chest case: how did it change?", "ko": "주간 흉부 증례"},
            "question": {"en": "Compare the CT studies: how has the pneumonia changed?"},
            "options": ["Progression", "Improvement", "No change"],
            "answer": "Progression",
        }
        case = build_case(cohort, subject, repository=repository, educator=educator, overlay=True, stack_step=2)
        page = render_case(case, Path(tmp) / "case", quiz=True)
        shot = Path(tmp) / "shot.png"
        subprocess.run(
            [str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--disable-background-networking", f"--window-size={args.width},{args.height}",
             f"--screenshot={shot}", page.as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(shot) as im:
            im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    size = out.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{out}: {size} bytes, expected at most {MAX_BYTES}")
    print(f"{out}: {size} bytes (case of {subject})")
    return out


if __name__ == "__main__":
    main()
