# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: kicc-analysis, language: python, name: python3}
# ---

# %% [markdown]
# # 06 — Teaching cases
#
# De-identified teaching cases from the repository: the patients worth teaching (several CT timepoints, a large
# change in opacity, readers who disagree) proposed with the reason, a few of them built as case pages (history in
# age bands and relative days, key images, a scrollable CT stack, the opacity quantification and the readers'
# scores, a quiz) and gathered in a casebook that works offline. Every page passes the identifier check before it is
# written. Functions: `kicc_analysis.teaching` (conventions in `docs/teaching.md`).

# %% tags=["parameters"]
repository = "../demo_repository"  # path of the repository (demo or real), relative to notebooks/ in JupyterLab
output_dir = "../results"
n_cases = 3  # how many of the proposed cases go into the casebook
lang = "en"  # page language: "en" or "ko"
quiz = True  # answers hidden until "Show answer"
overlay = True  # draw the quantification module's opacity labels on the CT key image
stack_step = 2  # every n-th axial slice in the scrollable stack

# %%
NOTEBOOK_VERSION = "1.0.0"

from pathlib import Path

import pandas as pd

from kicc_analysis.cohort import build_cohort
from kicc_analysis.errors import KiccError
from kicc_analysis.pipeline import quantify_cohort
from kicc_analysis.provenance import OutputWriter
from kicc_analysis.teaching import build_case, propose_cases, render_casebook

build = build_cohort(repository)
out = OutputWriter(
    output_dir, notebook="06_teaching_cases", version=NOTEBOOK_VERSION, cohort_version=build.cohort_version,
    parameters={"repository": Path(repository).name, "n_cases": n_cases, "lang": lang, "quiz": quiz,
                "overlay": overlay, "stack_step": stack_step},
)  # fmt: skip
skipped = []  # cases that could not be built on this repository, with the reason

# %% [markdown]
# ## Proposed cases
#
# CT opacity (% of lung volume) and its change come from the quantification module (cached per series: notebook 02
# has computed them); reader disagreement is the range of the readers' CT lobe scores (0–25).

# %%
run = quantify_cohort(repository, build=build)
cohort = run.cohort
readings = Path(repository) / "readings" / "reader_scores.csv"
proposals = propose_cases(cohort, readings=readings if readings.is_file() else None, top=10)
_ = out.table(proposals, "teaching_case_proposals", title="Proposed teaching cases",
          description="Ranked by CT timepoints, |change in opacity| (%p) and reader range; the reason per case")  # fmt: skip

# %% [markdown]
# ## Case pages and the casebook
#
# The educator's text would come from a YAML or Markdown file (`educator=`); for the demo one question is asked of
# every case, and its answer is read off the measured change.

# %%
def demo_text(change: float | None) -> dict:
    """The demo's educator text: how did the opacity change between the baseline and the follow-up CT?"""
    options = [{"en": "Progression", "ko": "진행"}, {"en": "Improvement", "ko": "호전"}, {"en": "No change", "ko": "변화 없음"}]
    answer = options[2] if change is None or abs(change) < 5 else options[0] if change > 0 else options[1]
    return {
        "title": {"en": "How did it change?", "ko": "어떻게 변했는가?"},
        "question": {"en": "Compare the CT studies: how has the pneumonia changed?",
                     "ko": "CT 검사를 비교하시오. 폐렴은 어떻게 변했는가?"},
        "options": options,
        "answer": answer,
        "discussion": {"en": "Judge change on matched levels and with the same window; the quantification below "
                             "gives the opacity as % of the lung volume.",
                       "ko": "같은 높이와 같은 창에서 변화를 판단한다. 아래 정량 분석은 폐 용적 대비 음영 비율이다."},
        "teaching_points": [{"en": "Peripheral ground-glass opacity is typical of COVID-19 pneumonia.",
                             "ko": "말초 간유리 음영은 코로나19 폐렴의 전형적 소견이다."}],
    }  # fmt: skip


cases = []
for subject, change in zip(proposals["subjid"], proposals["opacity_change_pct"], strict=True):
    if len(cases) == n_cases:
        break
    try:
        text = demo_text(None if pd.isna(change) else change)
        cases.append(build_case(cohort, subject, repository=repository, build=build, educator=text, overlay=overlay,
                                stack_step=stack_step))  # fmt: skip
    except KiccError as exc:  # e.g. a radiograph with possible burned-in text: reported, never fatal
        skipped.append({"case": f"rank {len(cases) + len(skipped) + 1}", "reason": f"{type(exc).__name__}: {exc}"})
if cases:
    book = render_casebook(cases, Path(output_dir) / "teaching", quiz=quiz, lang=lang, title="KICC-19 teaching cases")
    print(f"casebook of {len(cases)} cases: {Path(output_dir).name}/{book.relative_to(output_dir).as_posix()}")
    key = next(iter(cases[0].key_images.values()))
    out.figure(key.figure, "teaching_case_key_image", title="Key image of the first proposed case",
               description=f"{key.plane}, {key.window_text}, {key.index_rule}; the casebook: teaching/index.html")  # fmt: skip
pd.DataFrame(skipped, columns=["case", "reason"])

# %% [markdown]
# ## The first case, inline
#
# The same page as in the casebook, in a sandboxed frame (its Content-Security-Policy forbids every request).

# %%
cases[0] if cases else "no case could be built"
