"""Key images for teaching: CT slices and radiographs in radiological convention, reproducibly saved.

Conventions (what a radiologist expects):

- Radiological orientation: on axial and coronal images the patient's right is on the image left; on sagittal
  images anterior is on the image left; superior is up on coronal and sagittal images. Letters R/L/A/P (S/I on
  reformats) are drawn at the edges. For CT the orientation comes from the image direction (LPS, as
  :func:`kicc_analysis.imaging.load_ct` returns it), never from assumptions.
- The aspect ratio comes from the pixel spacing (the image is drawn in mm).
- The window (level/width, HU) is printed on the image.
- A scale bar of ``scale_bar_mm`` (default 50 mm = ``50 / spacing`` pixels); without a spacing there is none and
  the figure says so.
- Overlays in Okabe-Ito colour-blind-safe colours that differ also by line style: GGO dashed sky blue,
  consolidation solid orange, lungs dotted bluish green.
- Arrows are given in patient coordinates (mm, LPS) for CT and in mm from the top-left corner for radiographs.
- Radiograph reader scores (``scores=``) are drawn as the scheme's zones over the lung region (Brixia six zones A-F,
  RALE quadrants, Cohen per lung; :func:`kicc_analysis.figures.radiograph_figures.draw_zone_scores`) with the total.
- Nothing but the pseudonym-free facts above is drawn: no identifier is ever burned into a figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.patheffects as patheffects
import numpy as np
import SimpleITK as sitk
from matplotlib.figure import Figure  # figures not kept by pyplot (no leaks in batch use, any backend)

from ..errors import KiccError
from ..imaging import WINDOW_PRESETS
from ..quantification.opacity import CONSOLIDATION, GGO
from ..radiography import Radiograph

#: Overlay styles: colour (Okabe-Ito) and line style, so GGO and consolidation differ without colour vision.
OVERLAY_STYLES: dict[str, dict[str, Any]] = {
    "ggo": {"color": "#56B4E9", "linestyles": "dashed", "label": "GGO (dashed)"},
    "consolidation": {"color": "#E69F00", "linestyles": "solid", "label": "consolidation (solid)"},
    "lungs": {"color": "#009E73", "linestyles": "dotted", "label": "lungs (dotted)"},
}

# desired display: plane -> (column axis, column sign, row axis, row sign); axes 0=x (L+), 1=y (P+), 2=z (S+)
_DISPLAY = {
    "axial": (0, 1, 1, 1),  # columns towards patient left, rows towards posterior
    "coronal": (0, 1, 2, -1),  # columns towards patient left, rows towards inferior
    "sagittal": (1, 1, 2, -1),  # columns towards posterior, rows towards inferior
}
_LETTERS = {(0, 1): "L", (0, -1): "R", (1, 1): "P", (1, -1): "A", (2, 1): "S", (2, -1): "I"}
_PLANE_OF_NORMAL = {0: "sagittal", 1: "coronal", 2: "axial"}


class TeachingError(KiccError):
    """A teaching image or case cannot be made as asked (the message says what was expected and found)."""


@dataclass
class KeyImage:
    """A key image and every choice that went into it.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
    plane : str
        ``"axial"``, ``"coronal"``, ``"sagittal"`` or ``"radiograph"``.
    index : int or None
        Slice index along the plane's normal in the input array (``None`` for single slices and radiographs).
    index_rule : str
        How the slice was chosen (recorded for the manifest).
    window : tuple of float or None
        (level, width) in HU for CT; ``None`` for radiographs (their own VOI is described in ``window_text``).
    window_text : str
        The window as printed on the image.
    display : ndarray of float, shape (rows, columns)
        The windowed pixels (0 = black, 1 = white) in display orientation.
    spacing_mm : tuple of float or None
        (row, column) spacing of ``display`` in mm.
    scale_bar_px : float or None
        Scale bar length in display pixels (``scale_bar_mm / column spacing``); ``None`` without spacing.
    letters : dict
        Orientation letters at ``left``, ``right``, ``top``, ``bottom`` (empty when unknown).
    arrows_px : list of (column, row)
        Arrow tips in display pixel coordinates.
    notes : list of str
    zone_scores : dict
        Radiographs with ``scores``: ``scheme``, ``zones`` (zone -> text drawn), ``total_text``, ``lung_box``
        (empty otherwise).
    """

    figure: Any
    plane: str
    index: int | None
    index_rule: str
    window: tuple[float, float] | None
    window_text: str
    display: np.ndarray
    spacing_mm: tuple[float, float] | None
    scale_bar_px: float | None
    letters: dict[str, str]
    arrows_px: list[tuple[float, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    zone_scores: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The choices as a flat, JSON-ready dict (for a case manifest)."""
        return {
            "plane": self.plane,
            "index": self.index,
            "index_rule": self.index_rule,
            "window": list(self.window) if self.window else None,
            "window_text": self.window_text,
            "spacing_mm": list(self.spacing_mm) if self.spacing_mm else None,
            "scale_bar_px": self.scale_bar_px,
            "letters": self.letters,
            "notes": list(self.notes),
            "zone_scores": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.zone_scores.items()},
        }


def resolve_window(window: str | tuple[float, float]) -> tuple[float, float]:
    """(level, width) in HU from a preset name in :data:`kicc_analysis.imaging.WINDOW_PRESETS` or a pair.

    Examples
    --------
    >>> resolve_window("lung"), resolve_window((40, 400))
    ((-600.0, 1500.0), (40.0, 400.0))
    """
    if isinstance(window, str):
        if window not in WINDOW_PRESETS:
            raise TeachingError(f"window {window!r}: expected one of {sorted(WINDOW_PRESETS)} or (level, width)")
        return WINDOW_PRESETS[window]
    level, width = (float(v) for v in window)
    if width <= 0:
        raise TeachingError(f"window width {width:g} HU: expected > 0")
    return level, width


def apply_window(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """Linear window: ``level - width/2`` HU -> 0 (black), ``level + width/2`` HU -> 1 (white), clipped.

    Examples
    --------
    >>> apply_window(np.array([-1350.0, -600.0, 150.0, 1000.0]), -600, 1500).tolist()
    [0.0, 0.5, 1.0, 1.0]
    """
    return np.clip((np.asarray(hu, dtype=float) - (level - width / 2.0)) / width, 0.0, 1.0)


def _axis_of(vector: np.ndarray) -> tuple[int, int]:
    axis = int(np.argmax(np.abs(vector)))
    return axis, 1 if vector[axis] > 0 else -1


def _slice_ct(
    image: sitk.Image, plane: str | None, index: int | None, labels: sitk.Image | None
) -> tuple[str, int | None, str, list[tuple[str, Any]], dict[str, np.ndarray | None]]:
    """Pick the 2-D slice; return plane, index, rule, and the arrays with their (row, column) index axes."""
    size = image.GetSize()  # (i, j, k)
    direction = np.array(image.GetDirection()).reshape(3, 3)  # column m = physical direction of index axis m
    arr = sitk.GetArrayViewFromImage(image)  # (k, j, i)
    lab = sitk.GetArrayViewFromImage(labels) if labels is not None else None
    if labels is not None and labels.GetSize() != size:
        raise TeachingError(f"overlay labels of size {labels.GetSize()}: expected the image size {size}")
    flat = [m for m in range(3) if size[m] == 1]
    if flat:  # a single slice: its own plane
        normal_axis = flat[0]
        native = _PLANE_OF_NORMAL[_axis_of(direction[:, normal_axis])[0]]
        if plane not in (None, native):
            raise TeachingError(f"single {native} slice: cannot show it as {plane}")
        plane, index, rule = native, None, "single slice"
    else:
        plane = plane or "axial"
        if plane not in _DISPLAY:
            raise TeachingError(f"plane {plane!r}: expected axial, coronal or sagittal")
        wanted = {"sagittal": 0, "coronal": 1, "axial": 2}[plane]
        normal_axis = int(np.argmax(np.abs(direction[wanted, :])))
        n = size[normal_axis]
        if index is not None:
            if not 0 <= index < n:
                raise TeachingError(f"{plane} index {index}: expected 0..{n - 1}")
            rule = "given index"
        elif lab is not None and np.any(lab):
            sum_axes = tuple(a for a in range(3) if a != 2 - normal_axis)
            burden = np.isin(lab, (GGO, CONSOLIDATION)).sum(axis=sum_axes)
            index = int(np.argmax(burden))
            rule = f"largest opacity burden ({int(burden[index])} voxels)"
        else:
            index = n // 2
            rule = "middle slice (no opacity labels given)"
    take = [slice(None)] * 3
    take[2 - normal_axis] = 0 if index is None else index
    in_plane = [m for m in range(3) if m != normal_axis]  # index axes, i before j before k
    # numpy order of the remaining axes is reversed (k, j, i): rows = larger index axis
    row_axis, col_axis = in_plane[1], in_plane[0]
    out = {
        "hu": np.asarray(arr[tuple(take)], dtype=float),
        "labels": None if lab is None else np.asarray(lab[tuple(take)]),
    }
    geometry = [
        ("row", (direction[:, row_axis], image.GetSpacing()[row_axis])),
        ("col", (direction[:, col_axis], image.GetSpacing()[col_axis])),
    ]
    return plane, index, rule, geometry, out


def _orient(
    plane: str, geometry: list[tuple[str, Any]], arrays: dict[str, np.ndarray | None]
) -> tuple[dict[str, np.ndarray | None], tuple[float, float], dict[str, str], list[tuple[str, Any]]]:
    """Transpose/flip the 2-D arrays to radiological display; return the ops to map points the same way."""
    (_, (row_dir, row_sp)), (_, (col_dir, col_sp)) = geometry
    col_axis, col_sign, row_axis, row_sign = _DISPLAY[plane]
    ops: list[tuple[str, Any]] = []
    if _axis_of(col_dir)[0] != col_axis:  # rows and columns swapped relative to the display
        arrays = {k: (None if v is None else v.T) for k, v in arrays.items()}
        row_dir, col_dir, row_sp, col_sp = col_dir, row_dir, col_sp, row_sp
        ops.append(("transpose", None))
    shape = next(v for v in arrays.values() if v is not None).shape
    if _axis_of(col_dir)[1] != col_sign:
        arrays = {k: (None if v is None else v[:, ::-1]) for k, v in arrays.items()}
        ops.append(("flip_cols", shape[1]))
    if _axis_of(row_dir)[1] != row_sign:
        arrays = {k: (None if v is None else v[::-1, :]) for k, v in arrays.items()}
        ops.append(("flip_rows", shape[0]))
    letters = {
        "right": _LETTERS[(col_axis, col_sign)],
        "left": _LETTERS[(col_axis, -col_sign)],
        "bottom": _LETTERS[(row_axis, row_sign)],
        "top": _LETTERS[(row_axis, -row_sign)],
    }
    return arrays, (float(row_sp), float(col_sp)), letters, ops


def _map_point(row: float, col: float, ops: list[tuple[str, Any]]) -> tuple[float, float]:
    for op, n in ops:
        if op == "transpose":
            row, col = col, row
        elif op == "flip_cols":
            col = n - 1 - col
        elif op == "flip_rows":
            row = n - 1 - row
    return row, col


def key_image(
    image: sitk.Image | Radiograph,
    *,
    plane: str | None = None,
    index: int | None = None,
    window: str | tuple[float, float] = "lung",
    overlay: sitk.Image | np.ndarray | None = None,
    style: str = "contour",
    arrows: Sequence[Sequence[float]] = (),
    scale_bar_mm: float = 50.0,
    orientation_labels: bool = True,
    ax: Any = None,
    width_in: float = 3.5,
    redaction: Sequence[Sequence[int]] | None = None,
    burned_in_cleared: bool = False,
    scores: Mapping[str, float] | None = None,
    scheme: str = "brixia",
    lung_box: tuple[float, float, float, float] | None = None,
    font_scale: float = 1.0,
) -> KeyImage:
    """Draw one key image of a CT (volume or single slice) or a radiograph in radiological convention.

    Parameters
    ----------
    image : SimpleITK.Image (HU) or Radiograph
        A CT from :func:`kicc_analysis.imaging.load_ct` or a radiograph from
        :func:`kicc_analysis.radiography.load_radiograph`.
    plane : {"axial", "coronal", "sagittal"}, optional
        For volumes (default axial); single slices are shown in their own plane.
    index : int, optional
        Slice index along the plane's normal; by default the slice of largest opacity burden when ``overlay``
        labels (0 none, 1 GGO, 2 consolidation, other >0 lung) are given, else the middle slice. Recorded.
    window : str or (level, width)
        A preset of :data:`kicc_analysis.imaging.WINDOW_PRESETS` or HU values (CT only).
    overlay : SimpleITK.Image or ndarray, optional
        Labels on the image grid (CT) or the radiograph's pixel grid.
    style : {"contour", "fill"}
    arrows : sequence of points
        CT: (x, y, z) patient coordinates in mm (LPS). Radiograph: (x, y) mm from the top-left corner.
    scale_bar_mm : float
        Scale bar length (mm); none, and said so on the image, without a known spacing.
    orientation_labels : bool
    ax : matplotlib Axes, optional
        Draw into this axes instead of a new figure.
    width_in : float
        Figure width (inches; 3.5 = single journal column).
    redaction : sequence of (row0, col0, row1, col1), optional
        Radiographs: pixel boxes blacked out before drawing (burned-in text).
    burned_in_cleared : bool
        Radiographs: the de-identification audit cleared this image of burned-in text.
    scores : mapping item -> score, optional
        Radiographs: one reader's (or the readers' mean) scores of ``scheme``, drawn as zones with the total.
    scheme : {"brixia", "rale", "cohen"}
        Radiographs: the scheme of ``scores`` (:data:`kicc_analysis.readings.SCHEMES`).
    lung_box : (top, bottom, left, right), optional
        Radiographs: the lung region as fractions of the image (default
        :data:`kicc_analysis.figures.radiograph_figures.DEFAULT_LUNG_BOX`, a centred frontal chest radiograph).
    font_scale : float
        Size of the letters and labels relative to a 3.5-inch-wide image (9 pt letters, 6 pt labels); smaller
        panels (comparison figures in one column) pass less than 1.

    Returns
    -------
    KeyImage
    """
    notes: list[str] = []
    if scores is not None and not isinstance(image, Radiograph):
        raise TeachingError("zone scores are drawn on radiographs: expected a Radiograph, found a CT image")
    if isinstance(image, Radiograph):
        if image.burned_in_annotation != "NO" and not redaction and not burned_in_cleared:
            raise TeachingError(
                f"{image.source}: BurnedInAnnotation is {image.burned_in_annotation!r}: expected 'NO', a redaction "
                "region or an audit clearance (burned_in_cleared=True) before it is shown"
            )
        display = np.array(image.pixels, dtype=float)
        for row0, col0, row1, col1 in redaction or ():
            display[int(row0) : int(row1), int(col0) : int(col1)] = 0.0
        if redaction:
            notes.append(f"{len(redaction)} region(s) redacted")
        labels = None if overlay is None else np.asarray(overlay)
        spacing = image.spacing_mm
        plane_name, idx, rule, level_width = "radiograph", None, "radiograph", None
        kind = image.window.get("kind", "")
        if kind == "window":
            window_text = f"W {image.window.get('width', 0):g} / L {image.window.get('center', 0):g} (header)"
        else:
            window_text = f"VOI: {kind or 'none'}"
        letters: dict[str, str] = {}
        if image.view_position in ("PA", "AP"):
            letters = {"left": "R", "right": "L"}
            notes.append(
                f"{image.view_position} view: letters follow the frontal display convention (patient right on image left)"
            )
        else:
            notes.append(f"view position {image.view_position or 'unknown'}: no orientation letters")
        arrows_px = []
        for point in arrows:
            if spacing is None:
                raise TeachingError("arrows in mm need the radiograph's pixel spacing, which is unknown")
            arrows_px.append((float(point[0]) / spacing[1], float(point[1]) / spacing[0]))
    else:
        level_width = resolve_window(window)
        label_image = overlay if isinstance(overlay, sitk.Image) or overlay is None else None
        if overlay is not None and label_image is None:
            label_image = sitk.GetImageFromArray(np.asarray(overlay).astype(np.uint8))
            label_image.CopyInformation(image)
        plane_name, idx, rule, geometry, arrays = _slice_ct(image, plane, index, label_image)
        arrays, spacing, letters, ops = _orient(plane_name, geometry, arrays)
        display = apply_window(arrays["hu"], *level_width)
        labels = arrays["labels"]
        window_text = f"W {level_width[1]:g} / L {level_width[0]:g} HU"
        arrows_px = []
        for point in arrows:
            ci = image.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in point))
            # the slice's (row, column) index axes: find them again from the direction (same rule as _slice_ct)
            size = image.GetSize()
            flat = [m for m in range(3) if size[m] == 1]
            if flat:
                normal = flat[0]
            else:
                wanted = {"sagittal": 0, "coronal": 1, "axial": 2}[plane_name]
                normal = int(np.argmax(np.abs(np.array(image.GetDirection()).reshape(3, 3)[wanted, :])))
            in_plane = [m for m in range(3) if m != normal]
            r, c = _map_point(ci[in_plane[1]], ci[in_plane[0]], ops)
            arrows_px.append((c, r))
    if not orientation_labels:
        letters = {}

    rows, cols = display.shape
    sr, sc = spacing if spacing is not None else (1.0, 1.0)
    if ax is None:
        height_in = width_in * (rows * sr) / (cols * sc)
        fig = Figure(figsize=(width_in, height_in), dpi=100)  # not kept by pyplot: no figure leaks in batch use
        ax = fig.add_axes((0, 0, 1, 1))
    else:
        fig = ax.figure
    extent = (-0.5 * sc, (cols - 0.5) * sc, (rows - 0.5) * sr, -0.5 * sr)  # pixel centres at index * spacing
    ax.imshow(display, cmap="gray", vmin=0.0, vmax=1.0, extent=extent, interpolation="nearest")
    ax.set_aspect("equal")
    ax.set_axis_off()
    if labels is not None and labels.shape == display.shape:
        _draw_overlay(ax, labels, style, sr, sc)
    zone_scores: dict[str, Any] = {}
    if scores is not None:
        from ..figures.radiograph_figures import DEFAULT_LUNG_BOX, draw_zone_scores

        if image.view_position not in ("PA", "AP", ""):
            raise TeachingError(f"{image.source}: zone scores need a frontal view, found {image.view_position!r}")
        try:
            zone_scores = draw_zone_scores(ax, display.shape, scores, scheme=scheme, lung_box=lung_box or
                                           DEFAULT_LUNG_BOX, spacing=(sr, sc), fontsize=6 * font_scale)  # fmt: skip
        except ValueError as exc:
            raise TeachingError(f"{image.source}: {exc}") from exc
        notes.append(f"zone scores: {zone_scores['total_text']}")
    outline = [patheffects.withStroke(linewidth=2, foreground="black")]  # legible on white bone and air alike
    text = {"color": "white", "fontsize": 9 * font_scale, "fontweight": "bold", "path_effects": outline}
    pos = {
        "left": (0.02, 0.5, "left", "center"),
        "right": (0.98, 0.5, "right", "center"),
        "top": (0.5, 0.98, "center", "top"),
        "bottom": (0.5, 0.02, "center", "bottom"),
    }
    for where, letter in letters.items():
        x, y, ha, va = pos[where]
        ax.text(x, y, letter, transform=ax.transAxes, ha=ha, va=va, **text)
    ax.text(
        0.02,
        0.98,
        window_text,
        transform=ax.transAxes,
        ha="left",
        va="top",
        color="white",
        fontsize=6 * font_scale,
        path_effects=outline,
    )
    scale_bar_px = None
    if spacing is not None and scale_bar_mm > 0:
        scale_bar_px = float(scale_bar_mm / sc)
        x1 = (cols - 0.5) * sc - 0.05 * cols * sc
        y = (rows - 0.5) * sr - 0.05 * rows * sr
        ax.plot(
            [x1 - scale_bar_mm, x1],
            [y, y],
            color="white",
            linewidth=2,
            solid_capstyle="butt",
            path_effects=[patheffects.withStroke(linewidth=3.5, foreground="black")],
            gid="scale-bar",
        )
        ax.text(
            x1 - scale_bar_mm / 2,
            y - 0.015 * rows * sr,
            f"{scale_bar_mm:g} mm",
            ha="center",
            va="bottom",
            color="white",
            fontsize=6 * font_scale,
            path_effects=outline,
        )
    else:
        notes.append("pixel spacing unknown: no scale bar")
        ax.text(
            0.98,
            0.02,
            "no scale (spacing unknown)",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            color="white",
            fontsize=6 * font_scale,
            path_effects=outline,
        )
    if zone_scores:
        ax.text(0.02, 0.02, zone_scores["total_text"], transform=ax.transAxes, ha="left", va="bottom",
                color="white", fontsize=6 * font_scale, fontweight="bold", path_effects=outline,
                gid="zone-total")  # fmt: skip
    for col_px, row_px in arrows_px:
        tip = (col_px * sc, row_px * sr)
        tail = (tip[0] + 0.08 * cols * sc, tip[1] - 0.08 * rows * sr)
        ax.annotate("", xy=tip, xytext=tail, arrowprops={"arrowstyle": "-|>", "color": "#F0E442", "lw": 1.5})
    return KeyImage(
        figure=fig,
        plane=plane_name,
        index=idx,
        index_rule=rule,
        window=level_width,
        window_text=window_text,
        display=display,
        spacing_mm=None if spacing is None else (float(sr), float(sc)),
        scale_bar_px=scale_bar_px,
        letters=letters,
        arrows_px=[(float(c), float(r)) for c, r in arrows_px],
        notes=notes,
        zone_scores=zone_scores,
    )


def _draw_overlay(ax: Any, labels: np.ndarray, style: str, sr: float, sc: float) -> None:
    rows, cols = labels.shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    masks = {"lungs": labels > 0, "ggo": labels == GGO, "consolidation": labels == CONSOLIDATION}
    for name, mask in masks.items():
        if not mask.any() or (name == "lungs" and not np.any(labels > CONSOLIDATION)):
            continue
        st = OVERLAY_STYLES[name]
        if style == "fill" and name != "lungs":
            tint = np.zeros((rows, cols, 4))
            tint[mask] = (*matplotlib.colors.to_rgb(st["color"]), 0.35)
            ax.imshow(tint, extent=(-0.5 * sc, (cols - 0.5) * sc, (rows - 0.5) * sr, -0.5 * sr))
        contours = ax.contour(
            xx * sc, yy * sr, mask.astype(float), [0.5], colors=st["color"], linestyles=st["linestyles"], linewidths=0.8
        )
        contours.set_gid(name)


def save_figure(fig: Any, path: str | Path, *, dpi: int = 300) -> Path:
    """Save ``fig`` as PNG/SVG/PDF (by suffix) with no timestamp or software string: same input, same bytes."""
    path = Path(path)
    suffix = path.suffix.lower()
    metadata: dict[str, Any]
    if suffix == ".png":
        metadata = {"Software": None}
    elif suffix == ".svg":
        metadata = {"Date": None, "Creator": None}
    elif suffix == ".pdf":
        metadata = {"Creator": None, "Producer": None, "CreationDate": None}
    else:
        raise TeachingError(f"{path.name}: expected a .png, .svg or .pdf file name")
    with matplotlib.rc_context({"svg.hashsalt": "kicc-teaching", "svg.fonttype": "path", "pdf.fonttype": 42}):
        fig.savefig(path, dpi=dpi, metadata=metadata)
    return path


def hangul_font(family: str = "NanumGothic") -> str | None:
    """Register the system's Nanum font with matplotlib (its font cache may predate the install); return its
    file path, or ``None`` when absent (Debian package ``fonts-nanum``, which ``.ci/run`` installs)."""
    from matplotlib import font_manager

    try:
        return font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
    except ValueError:
        pass
    for path in sorted(font_manager.findSystemFonts()):
        if Path(path).stem == family:
            font_manager.fontManager.addfont(path)
            return path
    return None
