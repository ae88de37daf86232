"""Comparison figures: baseline and follow-up side by side on matched anatomical levels.

:func:`comparison_figure` draws every study of a patient (CT and radiograph) in one figure: one column per day
(relative days only, never dates), the CT on top and the radiograph of the same day below it. Each panel is a
:func:`~kicc_analysis.teaching.images.key_image` (one source of truth for windows, orientation letters and scale
bars), captioned with the study's quantification (opacity %, GGO and consolidation volumes, lung volume) and the
reader scores when given; radiograph zone scores are drawn on the image.

Matching rule (stated in the figure's record and in ``docs/teaching.md``)
-------------------------------------------------------------------------
``rule="lung_fraction"`` (default): every CT is shown at the same fraction ``f`` of the lungs' extent along the
plane's normal, measured from each study's own lung mask (labels > 0) between the centres of the first and last
slices that hold lung. ``f = 0`` is the lung apex and ``f = 1`` the lung base on axial images (cranio-caudal
extent); on coronal images 0 is the most anterior and 1 the most posterior lung slice; on sagittal images 0 is the
patient's right and 1 the left. ``f`` is set by the reference study (``reference``, default the first): by
``fraction`` or by ``index`` (one of them) when given, else by the reference's slice of largest opacity burden,
else the middle of its lungs. Every other CT takes the slice whose position is nearest to ``f``; the fraction reached
differs from ``f`` by at most half a slice spacing over that study's lung extent (recorded as ``fraction`` and
``fraction_error``).

``rule="carina"``: the level is the same distance (mm, along the normal of an axial plane) from each study's
carina, the slice where the trachea divides; the carina slice is given (``carina=``, one index per CT study) or
found by :func:`find_carina` on the airway lumen outside the lung mask. The reference's offset from its carina is
kept in every other study.

Single CT slices (no stack to choose from) are shown as acquired; their level is recorded as such.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import PrivacyError
from ..privacy import CALENDAR_DATE, assert_no_identifiers
from ..quantification.opacity import CONSOLIDATION, GGO
from ..radiography import Radiograph
from .images import KeyImage, TeachingError, key_image, save_figure

__all__ = [
    "MATCH_RULES",
    "Comparison",
    "ComparisonStudy",
    "comparison_figure",
    "find_carina",
    "lung_level",
    "repository_studies",
]

#: the level-matching rules of :func:`comparison_figure` and what each means
MATCH_RULES = {
    "lung_fraction": "same fraction of the lungs' extent along the plane normal (lung mask; 0 apex/anterior/right, "
    "1 base/posterior/left), nearest slice",
    "carina": "same distance (mm) from the carina (the slice where the trachea divides), nearest slice",
}
_WANTED_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}  # patient axis (LPS x, y, z) normal to the plane
_START_AT_MAX = {"axial": True, "coronal": False, "sagittal": False}  # fraction 0 at the apex (largest z)
MM_PER_INCH = 25.4
_HANGUL = re.compile("[\uac00-\ud7a3\u3131-\u318e]")


@dataclass
class ComparisonStudy:
    """One study of a comparison figure.

    Attributes
    ----------
    image : SimpleITK.Image or Radiograph
        A CT in HU (:func:`kicc_analysis.imaging.load_ct`; volume or single slice) or a radiograph
        (:func:`kicc_analysis.radiography.load_radiograph`).
    day : int or None
        Days from admission (relative; never a date).
    label : str
        Short role shown in the caption (``"baseline"``, ``"follow-up"``...).
    lungs : SimpleITK.Image or ndarray, optional
        CT: lung labels on the image grid (> 0 lung), e.g. ``segment_lungs(image).labels``; needed to match levels
        (computed with :func:`~kicc_analysis.segmentation.segment_lungs` when missing and ``quantify=True``).
    opacity : SimpleITK.Image or ndarray, optional
        CT: opacity labels (1 GGO, 2 consolidation) on the image grid, drawn as the overlay and used for the key
        slice of the reference (computed with :func:`~kicc_analysis.quantification.segment_opacities` when
        missing, the lungs are known and ``quantify=True``).
    quantification : mapping, optional
        Numbers for the caption: ``opacity_pct``, ``ggo_ml``, ``consolidation_ml``, ``volume_ml`` (lungs),
        ``ggo_pct``, ``consolidation_pct``, ``severity_total`` (any present are shown; computed with
        :func:`~kicc_analysis.quantification.quantify` when missing and ``quantify=True``: volumes for a CT
        volume, shares of the lung area for a single slice, ``scope="slice"``).
    scores : mapping item -> score, optional
        Reader scores (one reader or the readers' mean) of ``scheme``: drawn as zones on a radiograph, summed into
        the caption of a CT (e.g. ``ct_lobe`` RUL..LLL).
    scheme : str, optional
        Scheme of ``scores`` in :data:`kicc_analysis.readings.SCHEMES` (default ``brixia`` for radiographs,
        ``ct_lobe`` for CT).
    n_readers : int or None
        How many readers ``scores`` averages (said in the caption).
    burned_in_cleared : bool
        Radiographs: the de-identification audit cleared the image (see :func:`key_image`).
    redaction : sequence of (row0, col0, row1, col1), optional
        Radiographs: pixel boxes blacked out (burned-in text).
    lung_box : (top, bottom, left, right), optional
        Radiographs: the lung region (fractions of the image) the zones are drawn in (see :func:`key_image`).
    """

    image: Any
    day: int | None = None
    label: str = ""
    lungs: Any = None
    opacity: Any = None
    quantification: Mapping[str, float] | None = None
    scores: Mapping[str, float] | None = None
    scheme: str | None = None
    n_readers: int | None = None
    burned_in_cleared: bool = False
    redaction: Sequence[Sequence[int]] | None = None
    lung_box: tuple[float, float, float, float] | None = None

    @property
    def modality(self) -> str:
        """``"CT"`` or ``"radiograph"``."""
        return "radiograph" if isinstance(self.image, Radiograph) else "CT"


@dataclass
class Comparison:
    """A comparison figure and every choice that went into it.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
    rule : str
        The level-matching rule (a key of :data:`MATCH_RULES`).
    rule_text : str
        The rule in words.
    target : dict
        What set the level: ``reference`` (study number), ``how`` (``"fraction given"``, ``"index given"``,
        ``"largest opacity burden"``, ``"middle of the lungs"``), ``fraction`` (lung_fraction rule) or
        ``offset_mm`` (carina rule).
    panels : list of dict
        One per study, in input order: ``study``, ``modality``, ``day``, ``label``, ``column``, ``row``, ``caption``,
        ``level`` (CT: ``index``, ``n_slices``, ``position_mm``, ``fraction``, ``fraction_error``,
        ``lung_first_mm``, ``lung_last_mm``, ``carina_index``...) and ``key_image`` (:meth:`KeyImage.record`).
    key_images : list of KeyImage
    width_mm : float
        Figure width (mm).
    footer : str
        The line under the panels (level rule, overlay key, warnings).
    case : TeachingCase or None
        The case the figure was made from (its identifying values are checked on :meth:`save`).
    """

    figure: Any
    rule: str
    rule_text: str
    target: dict[str, Any]
    panels: list[dict[str, Any]]
    key_images: list[KeyImage] = field(default_factory=list)
    width_mm: float = 174.0
    footer: str = ""
    case: Any = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        """The choices as a JSON-ready dict (for a case manifest)."""
        return json.loads(
            json.dumps(
                {"rule": self.rule, "rule_text": self.rule_text, "target": self.target, "panels": self.panels,
                 "width_mm": self.width_mm},
                default=_jsonable,
            )
        )  # fmt: skip

    def captions(self) -> list[str]:
        """Every panel's caption, in input order."""
        return [p["caption"] for p in self.panels]

    def save(self, path: str | Path, *, case: Any = None, dpi: int = 300) -> Path:
        """Write the figure (PNG/SVG/PDF by suffix, byte-reproducible) after the identifier check.

        The captions and the record are checked by the identifier detector (:mod:`kicc_analysis.privacy`); with a
        :class:`~kicc_analysis.teaching.TeachingCase` the file bytes are also checked against the case's
        identifying values (:func:`kicc_analysis.teaching.check_bytes`); a figure made from a case is checked
        against that case by default. Nothing is written when a check fails.
        """
        path = Path(path)
        case = self.case if case is None else case
        text = json.dumps(self.record(), ensure_ascii=False)  # every caption, as drawn (glyphs are not text in PNG)
        with tempfile.TemporaryDirectory() as tmp:
            data = save_figure(self.figure, Path(tmp) / f"figure{path.suffix.lower()}", dpi=dpi).read_bytes()
        for caption in [*self.captions(), self.footer]:  # relative days only: no calendar date in any caption
            if (found := CALENDAR_DATE.search(caption)) is not None:
                raise PrivacyError(
                    f"{path.name} (captions): a calendar date at character {found.start()}: expected relative days"
                )
        if case is None:
            assert_no_identifiers(text, where=f"{path.name} (captions)")
        else:
            from .case import check_bytes

            check_bytes(text, case, f"{path.name} (captions)")
            check_bytes(path.name, case, f"file name {path.name}")
            check_bytes(data, case, path.name)
        path.write_bytes(data)
        return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def _array(labels: Any, image: sitk.Image, what: str) -> np.ndarray | None:
    if labels is None:
        return None
    array = sitk.GetArrayFromImage(labels) if isinstance(labels, sitk.Image) else np.asarray(labels)
    shape = sitk.GetArrayViewFromImage(image).shape
    if array.shape != shape:
        if array.shape == shape[1:] and shape[0] == 1:
            return array[None]
        raise TeachingError(f"{what} of shape {array.shape}: expected the image's array shape {shape}")
    return array


def _normal(image: sitk.Image, plane: str) -> int:
    """Index axis (0 i, 1 j, 2 k) along the plane's normal."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    return int(np.argmax(np.abs(direction[_WANTED_AXIS[plane], :])))


def _positions(image: sitk.Image, plane: str) -> np.ndarray:
    """Patient coordinate (mm, LPS) along the plane's normal of each slice centre."""
    m = _normal(image, plane)
    n = image.GetSize()[m]
    index = [0, 0, 0]
    out = np.empty(n)
    for k in range(n):
        index[m] = k
        out[k] = image.TransformIndexToPhysicalPoint(index)[_WANTED_AXIS[plane]]
    return out


def lung_level(image: sitk.Image, lungs: Any, *, plane: str = "axial") -> dict[str, Any]:
    """The lungs' extent along the plane's normal and each slice's fraction of it.

    Parameters
    ----------
    image : SimpleITK.Image
        CT volume.
    lungs : SimpleITK.Image or ndarray
        Lung labels on the image grid (> 0 lung).
    plane : {"axial", "coronal", "sagittal"}

    Returns
    -------
    dict
        ``positions_mm`` (slice centres along the normal, mm), ``fractions`` (per slice; 0 apex / anterior /
        right, 1 base / posterior / left), ``first_mm`` and ``last_mm`` (centres of the first and last lung slices
        in that order), ``extent_mm``, ``step`` (fraction between neighbouring slices) and ``cut`` (the lungs
        reach the first or last slice: the scan may not cover them whole, so their extent and the fractions are
        uncertain).

    Raises
    ------
    TeachingError
        No lung in the mask, or the lungs in a single slice along the normal.

    Examples
    --------
    >>> ct = sitk.Image([4, 4, 10], sitk.sitkInt16)  # 1 mm slices, z = 0 ... 9 mm
    >>> lungs = np.zeros((10, 4, 4), dtype=np.uint8)
    >>> lungs[2:8] = 1  # lungs from z = 2 (base) to z = 7 mm (apex)
    >>> level = lung_level(ct, lungs)
    >>> level["fractions"][[7, 5, 2]].tolist(), level["extent_mm"], level["cut"]
    ([0.0, 0.4, 1.0], 5.0, False)
    """
    if plane not in _WANTED_AXIS:
        raise TeachingError(f"plane {plane!r}: expected axial, coronal or sagittal")
    mask = _array(lungs, image, "lung mask")
    assert mask is not None
    m = _normal(image, plane)
    numpy_axis = 2 - m
    present = np.flatnonzero((mask > 0).any(axis=tuple(a for a in range(3) if a != numpy_axis)))
    if present.size == 0:
        raise TeachingError("lung mask is empty: the lungs' extent (and a matched level) cannot be found")
    positions = _positions(image, plane)
    lung_positions = positions[present]
    start, end = (lung_positions.max(), lung_positions.min()) if _START_AT_MAX[plane] else (
        lung_positions.min(), lung_positions.max())  # fmt: skip
    extent = abs(end - start)
    if extent == 0:
        raise TeachingError(f"the lungs occupy one {plane} slice: their extent along the normal is unknown")
    fractions = (positions - start) / (end - start)
    return {
        "positions_mm": positions,
        "fractions": fractions,
        "first_mm": float(start),
        "last_mm": float(end),
        "extent_mm": float(extent),
        "step": float(image.GetSpacing()[m] / extent),
        "cut": bool(present[0] == 0 or present[-1] == positions.size - 1),
    }


def find_carina(
    image: sitk.Image, lungs: Any, *, lumen_hu: float = -900.0, min_area_mm2: float = 30.0, narrow: float = 0.6
) -> int:
    """Axial slice index (of the image's normal axis) of the carina: the last slice where the trachea is one lumen.

    The airway lumen is air (< ``lumen_hu``) outside the lung mask and inside the body (not connected, within
    each axial slice, to the image border). The trachea is the lumen component (26-connected in 3-D) nearest the
    body's midline in the most cranial slice that has lumen. Followed caudally, the carina is the last slice in
    which it is one lumen of at least ``narrow`` times its median area: the next slice shows the two main bronchi
    (two lumina of at least ``min_area_mm2`` each), or only one of them (the other entering the lung mask), or
    the narrowing where the trachea divides.

    Raises
    ------
    TeachingError
        Not axial slices, no airway lumen, or a trachea that does not divide within the image.
    """
    mask = _array(lungs, image, "lung mask")
    assert mask is not None
    hu = sitk.GetArrayViewFromImage(image)
    if _normal(image, "axial") != 2:
        raise TeachingError("find_carina expects axial slices (the image's third index axis along z)")
    order = np.argsort(-_positions(image, "axial"), kind="stable")  # cranial first
    air = hu < lumen_hu
    lumen = np.zeros(hu.shape, dtype=bool)
    for k in range(hu.shape[0]):
        lab, _ = ndimage.label(air[k])
        border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        lumen[k] = air[k] & ~np.isin(lab, border[border > 0]) & (mask[k] == 0)
    pixel_mm2 = image.GetSpacing()[0] * image.GetSpacing()[1]
    lab3, n3 = ndimage.label(lumen, structure=np.ones((3, 3, 3)))
    if n3 == 0:
        raise TeachingError("no airway lumen outside the lungs: the carina cannot be found")
    trachea = 0
    for k in order:  # the most cranial slice with lumen: its component nearest the body's midline
        ids = np.unique(lab3[k][lab3[k] > 0])
        if ids.size:
            cols = np.flatnonzero((~air[k]).any(axis=0))
            mid = (cols[0] + cols[-1]) / 2 if cols.size else hu.shape[2] / 2
            centres = ndimage.center_of_mass(lumen[k], lab3[k], ids)
            trachea = int(ids[int(np.argmin([abs(c[1] - mid) for c in centres]))])
            break
    comp = lab3 == trachea
    areas_of: dict[int, np.ndarray] = {}
    for k in order:
        if comp[k].any():
            lab2, n2 = ndimage.label(comp[k], structure=np.ones((3, 3)))
            areas_of[int(k)] = ndimage.sum_labels(comp[k], lab2, np.arange(1, n2 + 1)) * pixel_mm2
    if not areas_of:
        raise TeachingError("no trachea found: the carina cannot be found")
    tracheal = float(np.median([a.max() for a in areas_of.values()]))
    previous = None
    for k in order:
        areas = areas_of.get(int(k))
        single = areas is not None and int((areas >= min_area_mm2).sum()) == 1 and areas.max() >= narrow * tracheal
        if not single:
            if previous is not None:
                return previous
            continue
        previous = int(k)
    raise TeachingError("the trachea does not divide within the image: the carina cannot be found")


def _prepare_ct(study: ComparisonStudy, quantify: bool) -> tuple[np.ndarray | None, np.ndarray | None, dict]:
    """Lung and opacity arrays and the caption numbers of a CT study (computed when missing and allowed)."""
    image = study.image
    lungs = _array(study.lungs, image, "lung mask")
    opacity = _array(study.opacity, image, "opacity labels")
    numbers = dict(study.quantification or {})
    if quantify and lungs is None:
        from ..segmentation import segment_lungs

        lungs = sitk.GetArrayFromImage(segment_lungs(image).labels)
    if quantify and lungs is not None and (opacity is None or not numbers):
        from ..quantification import quantify as quantify_ct
        from ..quantification import segment_opacities

        lung_image = sitk.GetImageFromArray((lungs > 0).astype(np.uint8))
        lung_image.CopyInformation(image)
        if opacity is None:
            opacity = sitk.GetArrayFromImage(segment_opacities(image, lung_image))
        if not numbers:
            opacity_image = sitk.GetImageFromArray(opacity.astype(np.uint8))
            opacity_image.CopyInformation(image)
            row = quantify_ct(image, lung_image, opacity_labels=opacity_image).set_index("region").loc["both"]
            if min(image.GetSize()) > 1:
                numbers = {k: float(row[k]) for k in ("opacity_pct", "ggo_ml", "consolidation_ml", "volume_ml")}
            else:  # one slice: shares of its lung area, not volumes
                numbers = {k: float(row[k]) for k in ("opacity_pct", "ggo_pct", "consolidation_pct")}
                numbers["scope"] = "slice"
            numbers["source"] = "kicc_analysis.quantification"
    return lungs, opacity, numbers


def _native_plane(image: sitk.Image) -> str:
    """Plane of a single CT slice (from its direction)."""
    flat = [m for m in range(3) if image.GetSize()[m] == 1]
    if not flat:
        return "axial"
    normal = np.array(image.GetDirection()).reshape(3, 3)[:, flat[0]]
    return {0: "sagittal", 1: "coronal", 2: "axial"}[int(np.argmax(np.abs(normal)))]


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def _caption(study: ComparisonStudy, numbers: Mapping[str, Any], level: Mapping[str, Any], plane: str) -> str:
    day = "day ?" if study.day is None else f"day {int(study.day)}"
    head = f"{day}" + (f" ({study.label})" if study.label else "")
    lines = []
    if study.modality == "CT":
        where = f"CT {plane}"
        if level.get("index") is not None:
            where += f" slice {level['index'] + 1}/{level['n_slices']}"
            if level.get("fraction") is not None:
                where += f", lung level {level['fraction']:.2f}"
        else:
            where += ", single slice"
        lines.append(f"{head}: {where}")
        parts = []
        if "opacity_pct" in numbers:
            scope = " of the lung in this slice" if numbers.get("scope") == "slice" else ""
            parts.append(f"opacity {_fmt(float(numbers['opacity_pct']))} %{scope}")
        if "ggo_pct" in numbers or "consolidation_pct" in numbers:
            parts.append(f"GGO {_fmt(float(numbers.get('ggo_pct', np.nan)))} %, "
                         f"consolidation {_fmt(float(numbers.get('consolidation_pct', np.nan)))} %")  # fmt: skip
        if "ggo_ml" in numbers or "consolidation_ml" in numbers:
            parts.append(f"GGO {_fmt(float(numbers.get('ggo_ml', np.nan)), 0)} mL, "
                         f"consolidation {_fmt(float(numbers.get('consolidation_ml', np.nan)), 0)} mL")  # fmt: skip
        if "volume_ml" in numbers:
            parts.append(f"lungs {_fmt(float(numbers['volume_ml']), 0)} mL")
        if "severity_total" in numbers:
            parts.append(f"CT severity {float(numbers['severity_total']):g}/30 (6 zones x 0-5)")
        if parts:
            lines.append("; ".join(parts))
    else:
        view = study.image.view_position or "view unknown"
        lines.append(f"{head}: radiograph {view}")
    if study.scores:
        from ..readings import SCHEMES

        scheme = study.scheme or ("brixia" if study.modality == "radiograph" else "ct_lobe")
        definition = SCHEMES.get(scheme)
        if definition is None:
            raise TeachingError(f"scores of scheme {scheme!r}: expected one of {sorted(SCHEMES)}")
        readers = "" if not study.n_readers else f" (mean of {study.n_readers} readers)"
        if definition.totals:
            totals = []
            for total in definition.totals:
                value = definition.compute_total(total.name, {k: float(v) for k, v in study.scores.items()})
                name = definition.title.split(" (")[0] if total.name == "total" else total.name.replace("_", " ")
                shown = "n/a" if not np.isfinite(value) else f"{value:g}" if value == int(value) else f"{value:.1f}"
                totals.append(f"{name} {shown}/{definition.total_range(total.name)[1]}")
            lines.append(", ".join(totals) + readers)
        else:
            lines.append(", ".join(f"{k} {float(v):.3g}" for k, v in study.scores.items()) + readers)
    return "\n".join(lines)


def comparison_figure(
    case_or_studies: Any,
    *,
    plane: str = "axial",
    rule: str = "lung_fraction",
    reference: int = 0,
    fraction: float | None = None,
    index: int | None = None,
    carina: Sequence[int | None] | None = None,
    window: str | tuple[float, float] = "lung",
    overlay: bool = True,
    quantify: bool = True,
    width_mm: float = 174.0,
) -> Comparison:
    """Baseline and follow-up side by side on matched anatomical levels, with each study's numbers in its caption.

    Parameters
    ----------
    case_or_studies : TeachingCase or sequence of ComparisonStudy
        A :class:`~kicc_analysis.teaching.TeachingCase` (its ``studies``) or the studies themselves. Studies are
        placed in columns by ``day`` (CT above the radiograph of the same day).
    plane : {"axial", "coronal", "sagittal"}
        Plane of the CT panels.
    rule : {"lung_fraction", "carina"}
        Level-matching rule (:data:`MATCH_RULES`; module docstring).
    reference : int
        Position (in the input) of the CT study that sets the level.
    fraction : float, optional
        lung_fraction rule: the level as a fraction of the lungs' extent (0 apex ... 1 base on axial images).
    index : int, optional
        The reference's slice index (along the plane's normal); default its slice of largest opacity burden.
    carina : sequence of int or None, optional
        carina rule: the carina slice index of each study (one entry per study, or one per CT volume in input
        order); ``None`` entries, or no sequence: found by :func:`find_carina`.
    window : str or (level, width)
        CT window (preset of :data:`kicc_analysis.imaging.WINDOW_PRESETS` or HU).
    overlay : bool
        Draw lungs (dotted), GGO (dashed) and consolidation (solid) contours on the CT panels.
    quantify : bool
        Compute missing lung masks, opacity labels and caption numbers with the package's segmentation and
        quantification (``False``: draw and caption only what is given).
    width_mm : float
        Figure width (mm; 174 = a journal's double column, 84 = single column).

    Returns
    -------
    Comparison
        The figure, the rule, the target level, each panel's caption and level (index, position, fraction).

    Raises
    ------
    TeachingError
        No studies, an unknown rule or plane, a reference that is not a CT volume with a lung mask.
    """
    from .case import TeachingCase

    is_case = isinstance(case_or_studies, TeachingCase)
    studies = list(case_or_studies.studies if is_case else case_or_studies)
    if not studies:
        raise TeachingError(
            "the case has no studies: set case.studies = repository_studies(repository, subject)"
            if is_case
            else "no studies to compare: give ComparisonStudy objects (or a TeachingCase with studies)"
        )
    for i, study in enumerate(studies):
        if not isinstance(study, ComparisonStudy):
            raise TeachingError(f"study {i}: expected a ComparisonStudy, found {type(study).__name__}")
    if rule not in MATCH_RULES:
        raise TeachingError(f"rule {rule!r}: expected one of {sorted(MATCH_RULES)}")
    if plane not in _WANTED_AXIS:
        raise TeachingError(f"plane {plane!r}: expected axial, coronal or sagittal")
    if rule == "carina" and plane != "axial":
        raise TeachingError(f"the carina rule matches axial levels: plane {plane!r} given")
    if fraction is not None and (index is not None or rule != "lung_fraction"):
        raise TeachingError("fraction: expected with rule='lung_fraction' and without index (one sets the level)")

    prepared: dict[int, tuple[np.ndarray | None, np.ndarray | None, dict]] = {}
    levels: dict[int, dict[str, Any]] = {}
    volumes = []
    for i, study in enumerate(studies):
        if study.modality != "CT":
            continue
        prepared[i] = _prepare_ct(study, quantify)
        if min(study.image.GetSize()) > 1:
            volumes.append(i)
    target: dict[str, Any] = {"reference": None, "how": "no CT volume: levels as acquired"}
    if volumes:
        if reference not in volumes:
            raise TeachingError(f"reference {reference}: expected the position of a CT volume, one of {volumes}")
        target = _target(studies, prepared, levels, volumes, reference, plane, rule, fraction, index, carina)
    for i, study in enumerate(studies):
        if study.modality == "CT" and i not in levels:
            levels[i] = {"index": None, "n_slices": 1, "how": "single slice as acquired", "fraction": None}

    # layout: columns by day (sorted; unknown day last), the CT above the radiograph of the same day; a day with two
    # studies of one kind gets as many columns
    days = sorted({s.day for s in studies}, key=lambda d: (d is None, d if d is not None else 0))
    row_kinds = [k for k in ("CT", "radiograph") if any(s.modality == k for s in studies)]
    cells: dict[tuple[int, int], int] = {}
    n_cols = 0
    for day in days:
        width = 0
        for r, kind in enumerate(row_kinds):
            members = [i for i, s in enumerate(studies) if s.day == day and s.modality == kind]
            for j, i in enumerate(members):
                cells[(r, n_cols + j)] = i
            width = max(width, len(members))
        n_cols += width

    import textwrap

    from matplotlib.figure import Figure

    width_in = width_mm / MM_PER_INCH
    gap_in, font_pt, line_in = 0.04, 6.5, 6.5 * 1.3 / 72
    panel_w = (width_in - gap_in * (n_cols + 1)) / n_cols
    panel_h = panel_w  # square panels; images keep their mm aspect inside (letterboxed in white)
    font_scale = float(min(1.0, max(0.5, panel_w / 2.4)))  # letters and labels of narrow panels shrink with them
    chars = max(20, int(panel_w * 72 / (font_pt * 0.56)))  # characters of a caption line (DejaVu Sans ~0.56 em)
    captions: dict[int, str] = {}
    numbers_of: dict[int, dict[str, Any]] = {}
    for i, study in enumerate(studies):
        if study.modality == "CT":
            numbers_of[i] = prepared[i][2]
            shown_plane = plane if levels[i]["index"] is not None else _native_plane(study.image)
            text = _caption(study, numbers_of[i], levels[i], shown_plane)
        else:
            numbers_of[i] = dict(study.quantification or {})
            text = _caption(study, numbers_of[i], {}, "radiograph")
        captions[i] = "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))
    caption_rows = [
        max((captions[i].count("\n") + 1 for (r, _), i in cells.items() if r == row), default=1) * line_in + 0.1
        for row in range(len(row_kinds))
    ]
    footer = []
    if volumes:
        footer.append(f"Level: {MATCH_RULES[rule]}.")
    if overlay and any(s.modality == "CT" for s in studies):
        footer.append("Contours: lungs dotted, GGO dashed, consolidation solid.")
    if target.get("warning"):
        footer.append(f"Note: {target['warning']}.")
    footer_text = textwrap.fill(" ".join(footer), int(width_in * 72 / (5.5 * 0.56)))
    footer_in = (footer_text.count("\n") + 1) * 5.5 * 1.3 / 72 + 0.08
    height_in = len(row_kinds) * (panel_h + gap_in) + sum(caption_rows) + footer_in
    fig = Figure(figsize=(width_in, height_in), dpi=100, facecolor="white")
    fig.text(0.5, 0.04 / height_in, footer_text, ha="center", va="bottom", fontsize=5.5, gid="footer")
    family = ["DejaVu Sans"]
    if any(_HANGUL.search(text) for text in captions.values()):  # Korean labels: a font with Hangul glyphs
        from .images import hangul_font

        if hangul_font() is not None:
            family = ["NanumGothic", "DejaVu Sans"]
    panels: list[dict[str, Any]] = [{} for _ in studies]
    keys: list[KeyImage] = []
    for (r, c), i in sorted(cells.items()):
        study = studies[i]
        left = (gap_in + c * (panel_w + gap_in)) / width_in
        top_in = r * (panel_h + gap_in) + sum(caption_rows[:r]) + gap_in  # from the top of the figure
        bottom = (height_in - top_in - panel_h) / height_in
        ax = fig.add_axes((left, bottom, panel_w / width_in, panel_h / height_in))
        if study.modality == "CT":
            lungs, opacity, _ = prepared[i]
            labels = None
            if overlay and (lungs is not None or opacity is not None):
                labels = np.zeros(sitk.GetArrayViewFromImage(study.image).shape, dtype=np.uint8)
                if lungs is not None:
                    labels[lungs > 0] = 3
                if opacity is not None:
                    lesion = np.isin(opacity, (GGO, CONSOLIDATION))
                    labels[lesion] = opacity[lesion]
            key = key_image(study.image, plane=None if levels[i]["index"] is None else plane,
                            index=levels[i]["index"], window=window, overlay=labels, ax=ax,
                            font_scale=font_scale)  # fmt: skip
        else:
            key = key_image(study.image, scores=study.scores, scheme=study.scheme or "brixia", ax=ax,
                            burned_in_cleared=study.burned_in_cleared, redaction=study.redaction,
                            lung_box=study.lung_box, font_scale=font_scale)  # fmt: skip
        fig.text(left + 0.5 * panel_w / width_in, bottom - 0.04 / height_in, captions[i], ha="center", va="top",
                 fontsize=font_pt, linespacing=1.3, gid=f"caption-{i}", family=family)  # fmt: skip
        keys.append(key)
        panels[i] = {
            "study": i,
            "modality": study.modality,
            "day": study.day,
            "label": study.label,
            "row": r,
            "column": c,
            "caption": captions[i],
            "numbers": dict(numbers_of[i]),
            "level": dict(levels.get(i, {})),
            "key_image": key.record(),
        }
    return Comparison(
        figure=fig,
        rule=rule,
        rule_text=MATCH_RULES[rule],
        target=target,
        panels=panels,
        key_images=keys,
        width_mm=float(width_mm),
        footer=footer_text,
        case=case_or_studies if is_case else None,
    )


def _target(
    studies: list[ComparisonStudy],
    prepared: Mapping[int, tuple[np.ndarray | None, np.ndarray | None, dict]],
    levels: dict[int, dict[str, Any]],
    volumes: list[int],
    reference: int,
    plane: str,
    rule: str,
    fraction: float | None,
    index: int | None,
    carina: Sequence[int | None] | None,
) -> dict[str, Any]:
    """Fill ``levels`` for every CT volume; return what set the level."""
    ref_image = studies[reference].image
    ref_lungs, ref_opacity, _ = prepared[reference]
    n_ref = ref_image.GetSize()[_normal(ref_image, plane)]
    if index is not None:
        if not 0 <= index < n_ref:
            raise TeachingError(f"reference {plane} index {index}: expected 0..{n_ref - 1}")
        ref_index, how = int(index), "index given"
    elif fraction is not None and rule == "lung_fraction":
        ref_index, how = None, "fraction given"
    elif ref_opacity is not None and np.isin(ref_opacity, (GGO, CONSOLIDATION)).any():
        axis = 2 - _normal(ref_image, plane)
        burden = np.isin(ref_opacity, (GGO, CONSOLIDATION)).sum(axis=tuple(a for a in range(3) if a != axis))
        ref_index, how = int(np.argmax(burden)), f"largest opacity burden ({int(burden.max())} voxels)"
    else:
        ref_index, how = None, "middle of the lungs"
    target: dict[str, Any] = {"reference": reference, "how": how}
    if rule == "lung_fraction":
        extents = {}
        for i in volumes:
            lungs = prepared[i][0]
            if lungs is None:
                raise TeachingError(
                    f"study {i} (day {studies[i].day}): the lung_fraction rule needs its lung mask (lungs=..., or "
                    "quantify=True to segment it)"
                )
            extents[i] = lung_level(studies[i].image, lungs, plane=plane)
        if ref_index is not None:
            f = float(extents[reference]["fractions"][ref_index])
        else:
            f = 0.5 if fraction is None else float(fraction)
        target["fraction"] = f
        cut = [i for i in volumes if extents[i]["cut"]]
        if cut:
            target["warning"] = (f"lungs reach the edge of the scan in studies {cut}: their extent is incomplete and "
                                 "the matched level uncertain")  # fmt: skip
        for i in volumes:
            ext = extents[i]
            k = (
                int(ref_index)
                if i == reference and ref_index is not None
                else int(np.argmin(np.abs(ext["fractions"] - f)))
            )
            levels[i] = {
                "index": k,
                "n_slices": int(ext["fractions"].size),
                "position_mm": float(ext["positions_mm"][k]),
                "fraction": float(ext["fractions"][k]),
                "fraction_error": float(abs(ext["fractions"][k] - f)),
                "fraction_step": ext["step"],
                "lung_first_mm": ext["first_mm"],
                "lung_last_mm": ext["last_mm"],
                "lungs_cut": ext["cut"],
                "how": "reference" if i == reference else "nearest slice to the reference's lung fraction",
            }
        return target
    # carina rule
    carinas = {}
    for n, i in enumerate(volumes):
        given = None if carina is None else list(carina)[i] if len(carina) == len(studies) else list(carina)[n]
        if given is None:
            lungs = prepared[i][0]
            if lungs is None:
                raise TeachingError(f"study {i}: finding the carina needs the lung mask (lungs=... or quantify=True)")
            carinas[i] = (find_carina(studies[i].image, lungs), "found (find_carina)")
        else:
            carinas[i] = (int(given), "given")
    positions = {i: _positions(studies[i].image, "axial") for i in volumes}
    ref_carina = positions[reference][carinas[reference][0]]
    if ref_index is None:
        ref_index = carinas[reference][0]
        target["how"] = "carina level (no opacity labels)"
    offset = float(positions[reference][ref_index] - ref_carina)
    target["offset_mm"] = offset
    for i in volumes:
        wanted = positions[i][carinas[i][0]] + offset
        k = int(ref_index) if i == reference else int(np.argmin(np.abs(positions[i] - wanted)))
        levels[i] = {
            "index": k,
            "n_slices": int(positions[i].size),
            "position_mm": float(positions[i][k]),
            "carina_index": int(carinas[i][0]),
            "carina": carinas[i][1],
            "offset_mm": float(positions[i][k] - positions[i][carinas[i][0]]),
            "fraction": None,
            "lung_first_mm": None
            if prepared[i][0] is None
            else lung_level(studies[i].image, prepared[i][0])["first_mm"],
            "how": "reference" if i == reference else "nearest slice to the reference's offset from the carina",
        }
    return target


def repository_studies(
    repository: str | Path,
    subject: str,
    *,
    modalities: Sequence[str] = ("CT", "CR", "DX"),
    readings: bool = True,
) -> list[ComparisonStudy]:
    """Every CT and radiograph study of ``subject`` in a repository, as :class:`ComparisonStudy` (read only).

    Days come from ``clinical/imaging_studies.csv`` (``img_day`` per study, days from admission) when it lists
    the study, else from the study dates relative to the subject's first study (the dates themselves are never
    kept). Each CT study shows its series with the most slices; each radiograph study the image the cohort
    scores (:func:`~kicc_analysis.repository.cxr_selection.select_radiographs`: frontal before lateral, for
    presentation before for processing, PA before AP). Headers are read with the scanner's reader
    (:func:`~kicc_analysis.repository.header.read_header`). Reader scores: ``readings/radiograph_scores.csv`` (the readers' mean per
    zone of each radiograph study) and ``readings/reader_scores.csv`` (CT per-lobe scores, readers' mean; rows
    without a study belong to the subject's first CT, which readers score). The first study is labelled
    ``"baseline"``, later ones ``"follow-up"``.

    Raises
    ------
    TeachingError
        No DICOM folder for the subject, or no study of the requested modalities.
    """
    import pandas as pd

    from ..cohort import dicom_root
    from ..imaging import load_ct
    from ..radiography import load_radiograph
    from ..repository.cxr_selection import select_radiographs
    from ..repository.header import read_header

    repository = Path(repository)
    folders = sorted(p for p in dicom_root(repository).glob(f"*/{subject}") if p.is_dir())
    if not folders:
        raise TeachingError(f"{subject}: no DICOM folder under {dicom_root(repository).name}/<site>/{subject}")
    rows = []
    for path in sorted(f for folder in folders for f in folder.rglob("*") if f.is_file()):
        record = read_header(path).record  # the scanner's header reader; None: not DICOM, not a study file
        if record and str(record.get("modality") or "") in modalities:
            rows.append({**record, "relpath": str(path)})
    files = pd.DataFrame(rows)
    if files.empty:
        raise TeachingError(f"{subject}: no {'/'.join(modalities)} image in {', '.join(f.name for f in folders)}")
    chosen_radiograph = dict(zip(*select_radiographs(files)[["study_uid", "relpath"]].to_numpy().T, strict=True))
    listed: dict[str, float] = {}
    table = repository / "clinical" / "imaging_studies.csv"
    if table.is_file():
        studies_csv = pd.read_csv(table, dtype=str, encoding="utf-8-sig")
        mine = studies_csv[studies_csv.get("subjid", pd.Series(dtype=str)) == subject]
        listed = dict(zip(mine["img_study_uid"], pd.to_numeric(mine["img_day"], errors="coerce"), strict=False))
    dates = pd.to_datetime(files.groupby("study_uid")["study_date"].first(), format="%Y%m%d", errors="coerce")
    first_date = dates.min()
    scores = _repository_scores(repository, subject) if readings else {}
    out: list[ComparisonStudy] = []
    for study_uid, group in files.groupby("study_uid", sort=False):
        day = listed.get(study_uid)
        if day is None or pd.isna(day):
            date = dates.get(study_uid)
            day = None if pd.isna(date) or pd.isna(first_date) else (date - first_date).days
        day = None if day is None else int(day)
        modality = group["modality"].iloc[0]
        if modality == "CT":
            series = group.groupby("series_uid").size().sort_values(ascending=False, kind="stable").index[0]
            image = load_ct(list(group.loc[group["series_uid"] == series, "relpath"]))
            given = scores.get(study_uid)
            study = ComparisonStudy(image, day=day, scheme="ct_lobe")
        else:
            image = load_radiograph(chosen_radiograph[study_uid])
            given = scores.get(study_uid)
            study = ComparisonStudy(image, day=day, scheme="brixia")
        if given:
            study.scores, study.n_readers, study.scheme = given["scores"], given["n_readers"], given["scheme"]
        out.append(study)
    out.sort(key=lambda s: (s.day is None, s.day if s.day is not None else 0, s.modality))
    first_ct = next((s for s in out if s.modality == "CT"), None)
    subject_level = scores.get(("CT", None))
    if first_ct is not None and first_ct.scores is None and subject_level:  # readers score the first CT
        first_ct.scores, first_ct.n_readers = subject_level["scores"], subject_level["n_readers"]
    first_day = out[0].day
    for s in out:
        s.label = "baseline" if s.day == first_day else "follow-up"
    return out


def _repository_scores(repository: Path, subject: str) -> dict[Any, dict[str, Any]]:
    """Readers' mean score per item, keyed by study UID (``("CT", None)`` for CT rows without a study)."""
    from ..readings import SCHEMES, read_reader_scores

    out: dict[Any, dict[str, Any]] = {}
    for name, scheme in (("radiograph_scores.csv", "brixia"), ("reader_scores.csv", "ct_lobe")):
        path = repository / "readings" / name
        if not path.is_file():
            continue
        table = read_reader_scores(path)
        items = list(SCHEMES[scheme].items)  # declared totals are recomputed from the items
        table = table[(table["subject"] == subject) & (table["scheme"] == scheme) & table["score"].notna()
                      & table["item"].isin(items)]  # fmt: skip
        for study, group in table.groupby(table["study"].fillna(""), sort=True):
            key = study if study else ("CT", None)
            means = group.groupby("item")["score"].mean()
            out[key] = {"scores": {k: float(v) for k, v in means.items()}, "n_readers": int(group["reader"].nunique()),
                        "scheme": scheme}  # fmt: skip
    return out
