"""A casebook: an index page for a series of teaching cases, each case page linked, all offline and checked.

:func:`render_casebook` writes ``index.html`` (one card per case: title, presentation, key-image thumbnail, link)
and one folder per case (``case_01/case.html``... from :func:`~kicc_analysis.teaching.case.case_outputs`, with a
link back to the index), plus ``casebook.json`` (the cases, their folders and the SHA-256 of every file).

The index carries the case pages' Content-Security-Policy (no request of any kind; the links are relative, so
the book works from a folder, a USB stick or a zip file). Folder names are numbers, never pseudonyms. Fail
closed: every file of every case and the index are checked against the identifying values of *every* case
before anything is written; one finding and nothing is written.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from .case import LANGS, TeachingCase, case_outputs, check_bytes, page_head
from .images import TeachingError


def _thumbnail(case: TeachingCase, width_px: int = 240) -> bytes | None:
    """A small PNG of the case's first key image (from its windowed display pixels; no metadata chunks)."""
    from PIL import Image

    if not case.key_images:
        return None
    display = next(iter(case.key_images.values())).display
    pixels = np.rint(np.clip(np.nan_to_num(display), 0, 1) * 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    image.thumbnail((width_px, width_px))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _index_html(cases: Sequence[TeachingCase], folders: list[str], *, title: str, lang: str) -> str:
    def t(field_: dict[str, str]) -> str:
        return html.escape(field_.get(lang) or field_.get("en", ""))

    cards = []
    for number, (case, folder) in enumerate(zip(cases, folders, strict=True), start=1):
        thumb = _thumbnail(case)
        img = (
            f'<img alt="" src="data:image/png;base64,{base64.b64encode(thumb).decode()}">' if thumb is not None else ""
        )
        cards.append(
            f'<li class="card"><a class="case" href="{folder}/case.html">{img}'
            f"<span>{number}. {t(case.title)}</span></a><p>{t(case.presentation)}</p></li>"
        )
    heading = html.escape(title)
    return f"""{page_head(heading, lang)}
ol{{list-style:none;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:12px}}
.card{{border:1px solid #ccc;border-radius:6px;padding:8px}} .card img{{width:100%;height:auto;display:block;
background:#000}} .card a{{font-weight:bold;text-decoration:none}}
</style></head><body>
<h1>{heading}</h1>
<p>{len(cases)} {"증례" if lang == "ko" else "cases"}</p>
<ol id="cases">{"".join(cards)}</ol>
</body></html>
"""


def render_casebook(
    cases: Sequence[TeachingCase],
    out_dir: str | Path,
    *,
    quiz: bool = True,
    lang: str = "en",
    title: str = "KICC-19 teaching cases",
) -> Path:
    """Write a casebook of ``cases`` into ``out_dir``; return the path of ``index.html``.

    Parameters
    ----------
    cases : sequence of TeachingCase
        From :func:`~kicc_analysis.teaching.case.build_case`, in the order of the book.
    out_dir : path
        Output folder (created); ``index.html``, ``casebook.json`` and ``case_01/``, ``case_02/``...
    quiz : bool
        Answers hidden until revealed on every case page.
    lang : {"en", "ko"}
        Language of the pages.
    title : str
        The index page's title (checked like everything else).

    Raises
    ------
    TeachingError
        No cases, or an unknown language.
    kicc_analysis.errors.PrivacyError
        Any file holds an identifier of any case; nothing is written.
    """
    if not cases:
        raise TeachingError("render_casebook: expected at least one case, found none")
    if lang not in LANGS:
        raise TeachingError(f"lang {lang!r}: expected one of {LANGS}")
    width = max(2, len(str(len(cases))))
    folders = [f"case_{i:0{width}d}" for i in range(1, len(cases) + 1)]
    files: dict[str, bytes] = {}
    for case, folder in zip(cases, folders, strict=True):
        for name, data in case_outputs(case, quiz=quiz, lang=lang, index_href="../index.html").items():
            files[f"{folder}/{name}"] = data
    files["index.html"] = _index_html(cases, folders, title=title, lang=lang).encode("utf-8")
    book = {
        "kicc_analysis": __version__,
        "title": title,
        "quiz": quiz,
        "lang": lang,
        "cases": [
            {"folder": f, "title": c.title.get(lang) or c.title.get("en", "")}
            for c, f in zip(cases, folders, strict=True)
        ],
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    files["casebook.json"] = json.dumps(book, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8")
    owners = {f"{folder}/": case for case, folder in zip(cases, folders, strict=True)}
    for case in cases:  # a case's identifiers must not appear in any file of the book (index, other cases)
        for name, data in files.items():
            owner = owners.get(name[: name.find("/") + 1])
            if owner is case:  # already checked by case_outputs
                continue
            check_bytes(name, case, f"file name {name}")
            content: str | bytes = data.decode("utf-8") if name.endswith((".html", ".json")) else data
            if owner is not None and owner is not case and owner.allow_pseudonym and isinstance(content, str):
                content = content.replace(owner.subject, "[pseudonym]")  # shown on purpose on its own page
            check_bytes(content, case, name)
    out_dir = Path(out_dir)
    for name, data in files.items():
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return out_dir / "index.html"


#: keys of a casebook file (``kicc teach book CASES.yaml``) and of each of its cases
BOOK_KEYS = ("repository", "title", "lang", "quiz", "overlay", "quantify", "cases")
CASE_KEYS = ("subject", "text", "allow_pseudonym", "comparison")


def load_casebook_spec(path: str | Path) -> dict:
    """Read a casebook file (YAML): the repository, the book's options and its cases in order.

    ::

        repository: ../demo_repository   # relative to this file (kicc teach book --repository overrides it)
        title: "Weekly chest cases"
        lang: en                         # en or ko
        quiz: true
        overlay: true                    # draw the quantification module's opacity labels on the key images
        quantify: true                   # show the (cached) CT quantification of each case
        cases:
          - subject: KICC-S02-0001
            text: week19.md              # the educator's text (YAML or Markdown), relative to this file
          - subject: KICC-S03-0001
            question: {en: "What changed?", ko: "무엇이 변했는가?"}   # or the educator's fields inline

    Returns the mapping with ``repository`` and every case's ``text`` resolved against the file's folder.

    Raises
    ------
    TeachingError
        Unreadable YAML, an unknown key, no cases, a case without ``subject`` (named by file and case number).
    """
    import yaml

    from .case import EDUCATOR_LIST_FIELDS, EDUCATOR_TEXT_FIELDS

    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TeachingError(f"{path.name}: cannot read the casebook file ({type(exc).__name__})") from exc
    if not isinstance(spec, dict):
        raise TeachingError(f"{path.name}: expected a mapping with 'cases', found {type(spec).__name__}")
    unknown = sorted(set(spec) - set(BOOK_KEYS))
    if unknown:
        raise TeachingError(f"{path.name}: unknown key(s) {unknown}; expected {', '.join(BOOK_KEYS)}")
    cases = spec.get("cases")
    if not isinstance(cases, list) or not cases:
        raise TeachingError(f"{path.name}: expected a non-empty list 'cases', found {type(cases).__name__}")
    base = path.resolve().parent
    if spec.get("repository"):
        spec["repository"] = str(base / spec["repository"])
    allowed = set(CASE_KEYS) | set(EDUCATOR_TEXT_FIELDS) | set(EDUCATOR_LIST_FIELDS)
    for number, case in enumerate(cases, start=1):
        if not isinstance(case, dict) or not case.get("subject"):
            raise TeachingError(f"{path.name}: case {number}: expected a mapping with 'subject'")
        extra = sorted(set(case) - allowed)
        if extra:
            raise TeachingError(f"{path.name}: case {number}: unknown key(s) {extra}; expected {sorted(allowed)}")
        if case.get("text"):
            case["text"] = str(base / case["text"])
    return spec


def build_casebook(
    spec: str | Path | dict,
    out_dir: str | Path,
    *,
    cohort: pd.DataFrame,
    repository: str | Path | None = None,
    build: Any = None,
    **overrides,
) -> Path:
    """Build and render the casebook a casebook file describes (:func:`load_casebook_spec`); return the index.

    ``cohort`` is the repository's cohort table (with the CT columns of
    :func:`kicc_analysis.pipeline.quantify_cohort` to show the quantification; ``kicc teach book`` runs it when
    the file says ``quantify: true``). ``repository`` overrides the file's; ``overrides`` (``quiz``, ``lang``,
    ``title``, ``overlay``) override its options when not None. ``build`` (the repository's
    :class:`~kicc_analysis.cohort.CohortBuild`) is built once when not given.
    """
    from .case import build_case

    spec = load_casebook_spec(spec) if not isinstance(spec, dict) else spec
    spec = {**spec, **{k: v for k, v in overrides.items() if v is not None}}
    repository = repository or spec.get("repository")
    if not repository:
        raise TeachingError("casebook: no repository (give 'repository:' in the file or --repository)")
    if build is None:
        from ..cohort import build_cohort

        build = build_cohort(repository, show_progress=False)
    cases = []
    for entry in spec["cases"]:
        inline = {k: v for k, v in entry.items() if k not in CASE_KEYS}
        educator = dict(inline) if inline else None
        if entry.get("text"):
            from .case import load_educator_text

            educator = {**load_educator_text(entry["text"]), **inline}
        cases.append(
            build_case(
                cohort,
                str(entry["subject"]),
                repository=repository,
                build=build,
                educator=educator,
                allow_pseudonym=bool(entry.get("allow_pseudonym", False)),
                comparison=bool(entry.get("comparison", True)),
                overlay=bool(spec.get("overlay", False)),
                stack_step=2,
            )
        )
    return render_casebook(
        cases,
        out_dir,
        quiz=bool(spec.get("quiz", True)),
        lang=str(spec.get("lang", "en")),
        title=str(spec.get("title", "KICC-19 teaching cases")),
    )
