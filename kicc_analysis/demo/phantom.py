"""Synthetic chest CT phantom with COVID-19-pattern lesions of known volume.

The phantom is an *analytic* adult chest: every tissue is an implicit shape (ellipses, ellipsoids, tubes, a domed
diaphragm) evaluated in a **reference frame** of 345 mm (left-right) x 345 mm (antero-posterior) x 300 mm
(cranio-caudal). Any requested grid is mapped onto that frame, so a 128 x 128 x 60 phantom and a 512 x 512 x 240
phantom with the same ``seed`` show the same anatomy and the same lesions (only sampled differently).

Array and patient axes
----------------------
Arrays are ``(z, y, x)``. Index ``x`` increases towards the patient's LEFT, ``y`` towards POSTERIOR and ``z``
towards SUPERIOR (LPS, identity direction cosines, as SimpleITK and ``ImagePositionPatient`` use them). Hence the
RIGHT lung has the smaller ``x`` indices and slice ``z = 0`` is the most caudal (lung bases / upper abdomen).

What is simulated (HU values are the *intended* values before blur and noise)
-------------------------------------------------------------------------------
- air outside the body -1000, a curved CT table, subcutaneous fat -100, chest-wall muscle +45;
- ribs (sloping, +450 HU), sternum, vertebral bodies (+250 cancellous, +700 cortical rim, discs +80),
  spinal canal +20, posterior elements and paraspinal muscles;
- mediastinal fat -90, heart (+40) with pericardial fat, ascending/arch/descending aorta, pulmonary trunk and
  arteries, oesophagus;
- trachea and main bronchi: air lumen (-1000) with a soft-tissue wall. They are **not** part of ``lung_labels``;
- lungs: parenchyma about -850 HU with a gravity gradient (-865 anterior to -835 posterior) and a smooth texture,
  a branching intrapulmonary vessel tree (+40 HU tubes, included in ``lung_labels`` as a clinical lung mask is);
- domed diaphragm (right dome higher), liver +60, spleen/stomach soft tissue and a gastric air bubble;
- lesions: ground-glass opacity (GGO, -550 HU mean, texture kept within -640...-460) and consolidation (-30 HU mean,
  texture kept within -80...+5), bilateral, peripheral (sub-pleural), posterior and lower-zone predominant, with
  consolidation as cores inside GGO (as in organising pneumonia); lesions replace vessels inside them.

Partial volume and noise: the intended HU image is blurred with a small Gaussian point-spread function
(sigma 0.4 voxel in-plane, 0.3 voxel along z by default), which only changes voxels at tissue boundaries,
then white Gaussian noise of ``noise_hu`` is added. The truth masks are the *intended* regions (before blur),
so thresholding at the quantification bins (GGO -700...-300, consolidation -300...+50 HU) recovers them up to the
boundary voxels: -700 is half-way between the GGO mean (-550) and parenchyma (-850), so a voxel half GGO and half
lung sits on the bin edge and boundary voxels gained and lost cancel (GGO recovered within ~1 %). Intrapulmonary
vessels (part of the lung mask, +40 HU before blur) fall in the consolidation bin: ``volumes_ml["vessel"]`` is that
expected excess. With a wider blur (sigma 0.5) staircase boundary voxels of the lung next to the chest wall reach
the GGO bin (~4 % of lung volume), hence the narrow default.

Why hand-written: no maintained library produces anatomical chest CT phantoms with labelled COVID-19 lesions
(XCAT and similar are licensed software, not Python packages); the heavy lifting (filters, interpolation) is SciPy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import ndimage

from kicc_analysis.errors import ImagingError

__all__ = [
    "LOBE_NAMES",
    "ChestPhantom",
    "Lesion",
    "chest_phantom",
    "lesion_score_field",
]

#: Reference field of view (mm) onto which every grid is mapped: (z, y, x).
REF_EXTENT_MM: tuple[float, float, float] = (300.0, 345.0, 345.0)

#: Lobe codes of :attr:`ChestPhantom.lobe_labels`.
LOBE_NAMES: dict[int, str] = {1: "RUL", 2: "RML", 3: "RLL", 4: "LUL", 5: "LLL"}

# --- tissue codes (internal) -------------------------------------------------------------------------------------
AIR, FAT, MUSCLE, BONE, LUNG_R, LUNG_L, AIRWAY, AIRWAY_WALL, BLOOD, LIVER = range(10)
VESSEL, TABLE, CSF, GAS, CANCELLOUS, MED_FAT, DISC, SOFT = range(10, 18)

_BASE_HU = np.zeros(18, dtype=np.float32)
_BASE_HU[[AIR, FAT, MUSCLE, BONE, LUNG_R, LUNG_L, AIRWAY, AIRWAY_WALL, BLOOD, LIVER]] = [
    -1000,
    -100,
    45,
    450,
    -850,
    -850,
    -1000,
    30,
    40,
    60,
]
_BASE_HU[[VESSEL, TABLE, CSF, GAS, CANCELLOUS, MED_FAT, DISC, SOFT]] = [40, -250, 20, -1000, 250, -90, 80, 45]

#: amplitude (HU) of the smooth texture per tissue (lung parenchyma, liver and muscle, bone heterogeneity)
_TEXTURE_HU = np.zeros(18, dtype=np.float32)
_TEXTURE_HU[[LUNG_R, LUNG_L]] = 8.0
_TEXTURE_HU[[LIVER, MUSCLE]] = 5.0
_TEXTURE_HU[BONE] = 150.0
_IS_LUNG = np.zeros(18, dtype=bool)
_IS_LUNG[[LUNG_R, LUNG_L]] = True

GGO_MEAN_HU = -550.0
GGO_RANGE_HU = (-640.0, -460.0)
CONSOLIDATION_MEAN_HU = -30.0
CONSOLIDATION_RANGE_HU = (-80.0, 5.0)
HU_MIN, HU_MAX = -1024, 3071


@dataclass(frozen=True)
class Lesion:
    """One explicit ellipsoidal lesion.

    Parameters
    ----------
    center_mm : (z, y, x) in mm in the reference frame (origin at the centre of the 345 x 345 x 300 mm field,
        +x patient left, +y posterior, +z superior). The right lung centre is about (0, 15, -75).
    radii_mm : (z, y, x) semi-axes in mm (reference frame).
    kind : ``"ggo"`` or ``"consolidation"``. Consolidation overrides GGO where they overlap.
    """

    center_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    kind: Literal["ggo", "consolidation"] = "ggo"


@dataclass(frozen=True, eq=False)
class ChestPhantom:
    """A synthetic chest CT and its ground truth.

    Attributes
    ----------
    hu : int16 array (z, y, x), Hounsfield units, clipped to [-1024, 3071].
    lung_labels : uint8 array, 1 right lung, 2 left lung (vessels inside included, trachea/main bronchi excluded).
    lesion_labels : uint8 array, 1 GGO, 2 consolidation; non-zero only inside ``lung_labels``.
    spacing_mm : (z, y, x) voxel spacing in mm.
    volumes_ml : truth volumes (mL): ``lung_right``, ``lung_left``, ``lung_total``, ``ggo``, ``consolidation``,
        ``lesion_total``, ``vessel`` and ``opacity_pct`` (lesion / lung x 100, a percentage, not mL).
    lobe_labels : uint8 array, lobes coded as :data:`LOBE_NAMES` (1 RUL, 2 RML, 3 RLL, 4 LUL, 5 LLL).
    lobe_involvement : fraction (0-1) of each lobe's volume covered by lesion, keyed by lobe name.
    seed : the anatomy/lesion seed.
    """

    hu: np.ndarray
    lung_labels: np.ndarray
    lesion_labels: np.ndarray
    spacing_mm: tuple[float, float, float]
    volumes_ml: dict[str, float]
    lobe_labels: np.ndarray
    lobe_involvement: dict[str, float] = field(default_factory=dict)
    seed: int = 0


# ----------------------------------------------------------------------------------------------------------------
# Anatomy parameters (per patient, jittered from the seed)
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Anatomy:
    body_a: float  # body lateral semi-axis (mm)
    body_b: float  # body AP semi-axis (mm)
    yc: float  # body centre y (mm)
    fat: float  # subcutaneous fat thickness (mm)
    dome_r: float  # right hemidiaphragm dome height (z, mm)
    dome_l: float
    heart: tuple[float, float, float, float, float, float]  # cz, cy, cx, rz, ry, rx
    apex: float  # lung apex z (mm)
    tubes: tuple[tuple[np.ndarray, np.ndarray, float, int], ...]  # (p0, p1, radius, tissue) mediastinal tubes
    airways: tuple[tuple[np.ndarray, np.ndarray, float], ...]  # (p0, p1, lumen radius)

    @property
    def cavity(self) -> tuple[float, float]:
        return self.body_a - self.fat - 20.0, self.body_b - self.fat - 20.0


def _p(z: float, y: float, x: float) -> np.ndarray:
    return np.array([z, y, x], dtype=np.float64)


def _make_anatomy(rng: np.random.Generator, body_scale: float) -> _Anatomy:
    j = rng.uniform(-1.0, 1.0, size=8)
    fat = float(np.clip(12.0 * body_scale**3 + 2.0 * j[0], 4.0, 30.0))
    carina = _p(35.0 + 5 * j[1], 20.0, 0.0)
    tubes = (
        (_p(-120, 48, 22), _p(55, 48, 22), 12.0, BLOOD),  # descending aorta
        (_p(55, 48, 22), _p(68, 15, 10), 12.0, BLOOD),  # arch, posterior half
        (_p(68, 15, 10), _p(58, -20, -5), 13.0, BLOOD),  # arch, anterior half
        (_p(58, -20, -5), _p(-10, -20, -5), 14.0, BLOOD),  # ascending aorta
        (_p(-5, -38, 14), _p(25, -22, 14), 13.0, BLOOD),  # pulmonary trunk
        (_p(25, -22, 14), _p(25, 2, 48), 9.0, BLOOD),  # left pulmonary artery
        (_p(22, -22, 8), _p(15, 8, -46), 9.0, BLOOD),  # right pulmonary artery
        (_p(-140, 40, 6), _p(150, 40, 6), 8.0, SOFT),  # oesophagus
        (_p(60, -20, -22), _p(150, -10, -30), 8.0, BLOOD),  # superior vena cava / brachiocephalic
    )
    airways = (
        (_p(150, 15, 0.0), carina, 9.0),  # trachea
        (carina, _p(carina[0] - 30, 25, -40), 7.0),  # right main bronchus (short, steep)
        (carina, _p(carina[0] - 28, 28, 46), 6.5),  # left main bronchus (longer, more horizontal)
    )
    return _Anatomy(
        body_a=155.0 * body_scale,
        body_b=112.0 * body_scale,
        yc=5.0,
        fat=fat,
        dome_r=-58.0 + 8 * j[2],
        dome_l=-74.0 + 8 * j[3],
        heart=(-38.0 + 6 * j[4], -25.0 + 5 * j[5], 22.0 + 6 * j[6], 50.0, 45.0, 52.0 + 5 * j[7]),
        apex=125.0,
        tubes=tubes,
        airways=airways,
    )


def _segment_distance(z: float | np.ndarray, y: np.ndarray, x: np.ndarray, p0: np.ndarray, p1: np.ndarray):
    """Euclidean distance (mm) from points to the segment p0-p1 (all in reference mm, (z, y, x) order)."""
    d = p1 - p0
    dd = float(d @ d) or 1e-9
    t = ((z - p0[0]) * d[0] + (y - p0[1]) * d[1] + (x - p0[2]) * d[2]) / dd
    t = np.clip(t, 0.0, 1.0)
    return np.sqrt((z - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2 + (x - p0[2] - t * d[2]) ** 2)


def _diaphragm_z(y: np.ndarray, x: np.ndarray, an: _Anatomy) -> np.ndarray:
    """z (mm) of the lung base at (y, x): two domes, lower laterally and posteriorly (costophrenic recesses)."""
    _, b_c = an.cavity
    dome = np.where(x < 5.0, an.dome_r, an.dome_l)
    lateral = 55.0 * ((np.abs(x - 5.0) - 60.0) / 90.0) ** 2
    posterior = 35.0 * np.clip((y - an.yc) / b_c, 0.0, None) ** 2
    return np.maximum(dome - lateral - posterior, -142.0)


def _window(y: np.ndarray, x: np.ndarray, p0: np.ndarray, p1: np.ndarray, r: float) -> tuple[slice, slice]:
    """In-plane index window of a 2-D (y, x) grid covering the bounding box of segment p0-p1 dilated by r (mm)."""
    ycol, xrow = y[:, 0], x[0, :]
    j0 = int(np.searchsorted(ycol, min(p0[1], p1[1]) - r, side="left"))
    j1 = int(np.searchsorted(ycol, max(p0[1], p1[1]) + r, side="right"))
    i0 = int(np.searchsorted(xrow, min(p0[2], p1[2]) - r, side="left"))
    i1 = int(np.searchsorted(xrow, max(p0[2], p1[2]) + r, side="right"))
    return slice(j0, j1), slice(i0, i1)


def _slice_tissue(z: float, y: np.ndarray, x: np.ndarray, an: _Anatomy) -> np.ndarray:
    """Tissue codes of one axial slice at height ``z`` (reference mm) on the in-plane grid (y, x) (2-D arrays)."""
    shape = np.broadcast_shapes(y.shape, x.shape)
    y, x = np.broadcast_to(y, shape), np.broadcast_to(x, shape)
    lab = np.full(shape, AIR, dtype=np.uint8)
    yc = an.yc
    # table under the patient (curved carbon-fibre couch)
    table_y = yc + an.body_b + 12.0 + 0.0008 * x**2
    lab[(y > table_y) & (y < table_y + 10.0) & (np.abs(x) < 170.0)] = TABLE
    body = (x / an.body_a) ** 2 + ((y - yc) / an.body_b) ** 2 <= 1.0
    lab[body] = FAT
    muscle = (x / (an.body_a - an.fat)) ** 2 + ((y - yc) / (an.body_b - an.fat)) ** 2 <= 1.0
    lab[muscle] = MUSCLE
    # paraspinal muscles stay muscle; the thoracic cavity narrows towards the apex
    a_c0, b_c0 = an.cavity
    z_mid = 15.0
    s = 1.0 if z <= z_mid else math.sqrt(max(0.0, 1.0 - ((z - z_mid) / (an.apex - z_mid)) ** 2))
    a_c, b_c = a_c0 * s, b_c0 * (0.5 + 0.5 * s)
    cyc = yc + (1.0 - s) * 25.0
    if s > 0.0:
        rc = (x / a_c) ** 2 + ((y - cyc) / b_c) ** 2
        cavity = rc <= 1.0
        # ribs: a band just outside the cavity, sloping down anteriorly, about 9 mm tall every 25 mm
        ynorm = np.clip((y - cyc) / b_c, -1.0, 1.0)
        band = (rc > 1.0) & ((x / (a_c + 9.0)) ** 2 + ((y - cyc) / (b_c + 9.0)) ** 2 <= 1.0)
        rib_phase = np.mod((z + 150.0 + 22.0 * (1.0 - ynorm)) / 25.0, 1.0)
        not_cartilage = ~((np.abs(x) < 30.0) & (ynorm < -0.6))
        if z > -135.0:
            lab[band & (rib_phase < 0.36) & not_cartilage] = BONE
    else:
        cavity = np.zeros(shape, dtype=bool)
    z_d = _diaphragm_z(y, x, an)
    thorax = cavity & (z > z_d)
    abdomen = cavity & ~thorax
    lab[abdomen] = np.where(x[abdomen] < 25.0, LIVER, SOFT)
    # gastric air bubble under the left dome
    gas = ((x - 60.0) / 28.0) ** 2 + ((y + 25.0) / 22.0) ** 2 + ((z - an.dome_l + 35.0) / 18.0) ** 2 <= 1.0
    lab[abdomen & gas] = GAS
    lab[thorax] = np.where(x[thorax] < 5.0, LUNG_R, LUNG_L)
    # mediastinum: a central column of fat from the sternum to the spine
    lab[thorax & (np.abs(x - 5.0) < 20.0)] = MED_FAT
    # heart with pericardial fat
    cz, cy, cx, rz, ry, rx = an.heart
    hz = ((z - cz) / rz) ** 2
    if hz < 1.2:
        r_h = hz + ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2
        peri = ((z - cz) / (rz + 5)) ** 2 + ((y - cy) / (ry + 5)) ** 2 + ((x - cx) / (rx + 5)) ** 2 <= 1.0
        lab[cavity & peri] = FAT
        lab[cavity & (r_h <= 1.0)] = BLOOD
    # great vessels and oesophagus (each evaluated in its in-plane bounding box only)
    for p0, p1, r, tissue in an.tubes:
        if min(p0[0], p1[0]) - r <= z <= max(p0[0], p1[0]) + r:
            w = _window(y, x, p0, p1, r)
            sub = lab[w]
            sub[_segment_distance(z, y[w], x[w], p0, p1) <= r] = tissue
    # airways: wall then lumen (lumen overrides lungs: never part of the lung mask)
    for p0, p1, r in an.airways:
        if min(p0[0], p1[0]) - r - 2.5 <= z <= max(p0[0], p1[0]) + r + 2.5:
            w = _window(y, x, p0, p1, r + 2.0)
            sub = lab[w]
            dist = _segment_distance(z, y[w], x[w], p0, p1)
            sub[dist <= r + 2.0] = AIRWAY_WALL
            sub[dist <= r] = AIRWAY
    # spine: vertebral body (cortical rim + cancellous core, discs), canal, posterior elements
    vy = yc + b_c0 - 17.0
    disc = np.mod(z + 150.0, 28.0) < 6.0
    vb = x**2 + (y - vy) ** 2
    lab[vb <= 19.0**2] = BONE
    lab[vb <= 16.0**2] = DISC if disc else CANCELLOUS
    lab[x**2 + (y - vy - 27.0) ** 2 <= 8.0**2] = CSF
    post = ((x / 16.0) ** 2 + ((y - vy - 42.0) / 7.0) ** 2 <= 1.0) | ((np.abs(x) < 4.0) & (y > vy + 40) & (y < vy + 58))
    lab[post & (lab != CSF)] = BONE
    # sternum (manubrium/body) in front of the mediastinum
    if z > -100.0:
        lab[(x / 17.0) ** 2 + ((y - (yc - b_c0 - 8.0)) / 7.0) ** 2 <= 1.0] = BONE
    return lab


# ----------------------------------------------------------------------------------------------------------------
# Vessel tree
# ----------------------------------------------------------------------------------------------------------------
def _vessel_segments(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Branching intrapulmonary vessel tree (segments in reference mm) from both hila."""
    segments: list[tuple[np.ndarray, np.ndarray, float]] = []
    hila = {-1.0: _p(10.0, 8.0, -50.0), 1.0: _p(15.0, 12.0, 52.0)}
    for side, hilum in hila.items():
        # trunks: upper, anterior-lateral (middle/lingula), lateral-basal, posterior-basal
        trunk_dirs = [(1.0, -0.1, 0.35), (-0.15, -0.9, 0.5), (-0.8, 0.0, 0.6), (-0.75, 0.55, 0.25)]
        for dz, dy, dx in trunk_dirs:
            d = np.array([dz, dy, dx * side])
            stack = [(hilum, d / np.linalg.norm(d), 42.0, 4.5, 0)]
            while stack:
                p0, d, length, r, gen = stack.pop()
                p1 = p0 + d * length
                segments.append((p0, p1, r))
                if gen < 3:
                    for sign in (-1.0, 1.0):
                        axis = rng.normal(size=3)
                        axis -= axis @ d * d
                        axis /= np.linalg.norm(axis) or 1.0
                        ang = math.radians(rng.uniform(22.0, 38.0)) * sign
                        nd = d * math.cos(ang) + axis * math.sin(ang)
                        stack.append((p1, nd / np.linalg.norm(nd), length * 0.78, r * 0.72, gen + 1))
    return segments


def _rasterize_tubes(
    mask_shape: tuple[int, int, int],
    axes: tuple[np.ndarray, np.ndarray, np.ndarray],
    segments: Sequence[tuple[np.ndarray, np.ndarray, float]],
    min_radius_mm: tuple[float, float, float],
) -> np.ndarray:
    """Boolean mask of the union of tubes, each evaluated only inside its bounding box.

    A tube thinner than half a voxel is widened to half a voxel so that it stays connected on coarse grids.
    """
    out = np.zeros(mask_shape, dtype=bool)
    az, ay, ax = axes
    r_floor = 0.5 * max(min_radius_mm[1], min_radius_mm[2])
    for p0, p1, r in segments:
        r_eff = max(r, r_floor)
        lo = np.minimum(p0, p1) - r_eff
        hi = np.maximum(p0, p1) + r_eff
        idx = []
        for a, lo_a, hi_a in zip((az, ay, ax), lo, hi, strict=True):
            i0 = int(np.searchsorted(a, lo_a, side="left"))
            i1 = int(np.searchsorted(a, hi_a, side="right"))
            idx.append(slice(i0, i1))
        if any(s.stop <= s.start for s in idx):
            continue
        zz = az[idx[0]][:, None, None]
        yy = ay[idx[1]][None, :, None]
        xx = ax[idx[2]][None, None, :]
        out[idx[0], idx[1], idx[2]] |= _segment_distance(zz, yy, xx, p0, p1) <= r_eff
    return out


# ----------------------------------------------------------------------------------------------------------------
# Smooth random fields on a fixed coarse grid (resolution independent)
# ----------------------------------------------------------------------------------------------------------------
_COARSE_MM = 5.0


def _coarse_axes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(  # type: ignore[return-value]
        np.arange(-e / 2.0, e / 2.0 + _COARSE_MM / 2, _COARSE_MM) for e in REF_EXTENT_MM
    )


@functools.lru_cache(maxsize=48)
def _smooth_field(seed: int, stream: int, sigma_mm: float) -> np.ndarray:
    """Zero-mean, unit-variance smooth Gaussian random field on the coarse grid (cached: a patient's baseline,
    follow-up and soft-tissue phantoms share it). Returned read-only."""
    shape = tuple(len(a) for a in _coarse_axes())
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 101, int(stream)]))
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_mm / _COARSE_MM, mode="wrap")
    f = (f - f.mean()) / (f.std() or 1.0)
    f.setflags(write=False)
    return f


def _sample(field_c: np.ndarray, axes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Trilinear sample of a coarse-grid field at the grid given by reference-mm axes."""
    cax = _coarse_axes()
    coords = [(a - c[0]) / _COARSE_MM for a, c in zip(axes, cax, strict=True)]
    out = field_c
    # separable linear interpolation along each axis (cheaper than map_coordinates on the full 3-D grid)
    for dim, c in enumerate(coords):
        c = np.clip(c, 0, field_c.shape[dim] - 1)
        i0 = np.floor(c).astype(int)
        i1 = np.minimum(i0 + 1, field_c.shape[dim] - 1)
        w = (c - i0).astype(np.float32)
        shape = [1, 1, 1]
        shape[dim] = -1
        out = np.take(out, i0, axis=dim) * (1 - w).reshape(shape) + np.take(out, i1, axis=dim) * w.reshape(shape)
    return out.astype(np.float32)


def _grid_axes(shape: tuple[int, int, int], spacing: tuple[float, float, float], slice_position: float):
    """Reference-mm coordinates of voxel centres along (z, y, x) and the reference voxel size."""
    nz, ny, nx = shape
    sz, sy, sx = spacing
    scale_y = REF_EXTENT_MM[1] / (ny * sy)
    scale_x = REF_EXTENT_MM[2] / (nx * sx)
    ay = (np.arange(ny) - (ny - 1) / 2.0) * sy * scale_y
    ax = (np.arange(nx) - (nx - 1) / 2.0) * sx * scale_x
    if nz == 1:
        az = np.array([(slice_position - 0.5) * REF_EXTENT_MM[0]])
        ref_sz = sz
    else:
        az = ((np.arange(nz) + 0.5) / nz - 0.5) * REF_EXTENT_MM[0]
        ref_sz = REF_EXTENT_MM[0] / nz
    return (az, ay, ax), (ref_sz, sy * scale_y, sx * scale_x)


def _lobes(lung: np.ndarray, axes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Lobe codes from fissure planes: oblique fissure (posterior-high to anterior-low), right horizontal fissure."""
    az, ay, _ = axes
    zz = az[:, None, None]
    yy = ay[None, :, None]
    z_oblique = -70.0 + (yy + 75.0) * (130.0 / 160.0)
    lower = zz < z_oblique
    lobes = np.zeros(lung.shape, dtype=np.uint8)
    right = lung == 1
    left = lung == 2
    middle_zone = np.broadcast_to(zz < 8.0, lung.shape)
    lobes[right] = 1
    lobes[right & ~lower & middle_zone] = 2
    lobes[right & lower] = 3
    lobes[left] = 4
    lobes[left & lower] = 5
    return lobes


def lesion_score_field(
    lung_labels: np.ndarray,
    axes: tuple[np.ndarray, np.ndarray, np.ndarray],
    seed: int,
) -> np.ndarray:
    """COVID-19 lesion propensity of every voxel: smooth random blobs + peripheral, posterior and basal priors.

    Thresholding this score at a quantile inside each lung gives lesions of an exact target volume; raising the
    target grows the same lesions (progression), lowering it shrinks them (resolution).
    """
    return _sample(_coarse_score(seed, _coarse_lung(lung_labels, axes)), axes)


def _coarse_score(seed: int, coarse_lung: np.ndarray) -> np.ndarray:
    """Lesion score on the coarse grid (see :func:`lesion_score_field`)."""
    cax = _coarse_axes()
    blobs = 0.75 * _smooth_field(seed, 1, 9.0) + 0.45 * _smooth_field(seed, 2, 20.0)
    # peripheral prior: 1 - local lung density (high next to the pleura)
    periph = 1.0 - ndimage.gaussian_filter(coarse_lung, 14.0 / _COARSE_MM, truncate=3.0)
    zz = cax[0][:, None, None] / 150.0
    yy = cax[1][None, :, None] / 110.0
    return (blobs + 2.2 * periph + 1.0 * yy - 0.6 * zz).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _cached_score(
    seed: int,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    body_scale: float,
    slice_position: float,
) -> np.ndarray:
    """Lesion score of a cached anatomy (same key as :func:`_anatomy_volume`); read-only."""
    _, lung, _, _ = _anatomy_volume(seed, shape, spacing, body_scale, slice_position)
    axes, _ = _grid_axes(shape, spacing, slice_position)
    score = lesion_score_field(lung, axes, seed)
    score.setflags(write=False)
    return score


def _coarse_lung(lung_labels: np.ndarray, axes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Lung occupancy (0/1 float) resampled from the fine grid onto the coarse grid (nearest neighbour)."""
    cax = _coarse_axes()
    idx = []
    for a_fine, a_c in zip(axes, cax, strict=True):
        if len(a_fine) == 1:
            idx.append(np.zeros(len(a_c), dtype=int))
            continue
        i = np.searchsorted(a_fine, a_c).clip(1, len(a_fine) - 1)
        i = np.where(np.abs(a_fine[i - 1] - a_c) < np.abs(a_fine[i] - a_c), i - 1, i)
        idx.append(i)
    out = lung_labels[np.ix_(*idx)] > 0
    # outside the sampled z range (single slice) the lung is taken as the nearest slice: fine for a prior
    return out.astype(np.float32)


def _quantile_masks(
    vals: np.ndarray, region: np.ndarray, fraction: float, core_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Voxels of ``region`` with the highest scores: ``fraction`` of it as lesion, its top ``core_fraction`` as core.

    ``vals`` are the scores of the region's voxels in C order (``score[region]``). Top-k selection uses
    ``argpartition`` (linear time; a full sort of ~20 M lung voxels at full resolution takes seconds); the core is
    chosen among the lesion voxels, so core is always inside lesion.
    """
    n_region = int(region.sum())
    n_lesion = int(round(np.clip(fraction, 0.0, 1.0) * n_region))
    lesion = np.zeros(region.shape, dtype=bool)
    core = np.zeros(region.shape, dtype=bool)
    if n_lesion == 0:
        return lesion, core
    neg = -vals
    top = np.argpartition(neg, n_lesion - 1)[:n_lesion] if n_lesion < n_region else np.arange(n_region)
    sel = np.zeros(n_region, dtype=bool)
    sel[top] = True
    n_core = int(round(np.clip(core_fraction, 0.0, 1.0) * n_lesion))
    sel_core = np.zeros(n_region, dtype=bool)
    if n_core > 0:
        in_top = np.argpartition(neg[top], n_core - 1)[:n_core] if n_core < n_lesion else np.arange(n_lesion)
        sel_core[top[in_top]] = True
    lesion[region] = sel
    core[region] = sel_core
    return lesion, core


def _region_scores(
    lung: np.ndarray, axes: tuple[np.ndarray, np.ndarray, np.ndarray], seed: int, anatomy_args: tuple | None
) -> tuple[np.ndarray, np.ndarray]:
    """Lesion scores of the right-lung and left-lung voxels (C order), from the cache or slice by slice."""
    if anatomy_args is not None:
        score = _cached_score(*anatomy_args)
        return score[lung == 1], score[lung == 2]
    coarse = _coarse_score(seed, _coarse_lung(lung, axes))
    az, ay, ax = axes
    right, left = [], []
    for k in range(lung.shape[0]):
        sk = _sample(coarse, (az[k : k + 1], ay, ax))[0]
        right.append(sk[lung[k] == 1])
        left.append(sk[lung[k] == 2])
    return np.concatenate(right), np.concatenate(left)


@functools.lru_cache(maxsize=8)
def _anatomy_volume(
    seed: int,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    body_scale: float,
    slice_position: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tissue codes, lung labels, vessel mask and lobe labels of a patient's anatomy on a grid (read-only arrays).

    Cached because a patient's baseline, follow-up and radiograph phantoms share the anatomy (seed) and often the
    grid; only lesions and noise differ.
    """
    ss = np.random.SeedSequence(int(seed))
    rng_anat, rng_vessel, _ = (np.random.default_rng(s) for s in ss.spawn(3))
    an = _make_anatomy(rng_anat, body_scale)
    axes, ref_vox = _grid_axes(shape, spacing, slice_position)
    az, ay, ax = axes
    yy2 = ay[:, None]
    xx2 = ax[None, :]
    tissue = np.empty(shape, dtype=np.uint8)
    for k, z in enumerate(az):
        tissue[k] = _slice_tissue(float(z), yy2, xx2, an)
    lung = np.zeros(shape, dtype=np.uint8)
    lung[tissue == LUNG_R] = 1
    lung[tissue == LUNG_L] = 2
    # intrapulmonary vessels (inside the lung mask, part of it)
    vessels = _rasterize_tubes(shape, axes, _vessel_segments(rng_vessel), ref_vox) & (lung > 0)
    tissue[vessels] = VESSEL
    lobes = _lobes(lung, axes)
    for arr in (tissue, lung, vessels, lobes):
        arr.setflags(write=False)
    return tissue, lung, vessels, lobes


def chest_phantom(
    shape: tuple[int, int, int] = (60, 128, 128),
    spacing_mm: tuple[float, float, float] = (5.0, 2.7, 2.7),
    lesions: None | str | Sequence[Lesion] = None,
    seed: int = 0,
    noise_hu: float = 15.0,
    *,
    opacity_fraction: float = 0.10,
    consolidation_fraction: float = 0.25,
    right_share: float | None = None,
    body_scale: float = 1.0,
    noise_seed: int | None = None,
    slice_position: float = 0.45,
    blur_sigma_voxels: tuple[float, float, float] = (0.3, 0.4, 0.4),
) -> ChestPhantom:
    """Build a synthetic chest CT in HU with lung, lobe and lesion truth.

    Parameters
    ----------
    shape : (z, y, x) number of voxels. ``z = 1`` gives a single axial slice at ``slice_position``.
    spacing_mm : (z, y, x) voxel spacing in mm. The anatomy always fills the grid (see module docstring), so the
        physical size of the patient is ``shape * spacing`` scaled from the 345 x 345 x 300 mm reference.
    lesions : ``None`` (healthy lungs), ``"random"`` (COVID-19 pattern whose total volume is ``opacity_fraction`` of
        the lungs, ``consolidation_fraction`` of it consolidation), or a sequence of :class:`Lesion`.
    seed : anatomy, vessel tree and lesion layout. Same seed => identical phantom.
    noise_hu : standard deviation (HU) of the additive Gaussian noise (0 disables it).
    opacity_fraction : target lesion volume / lung volume (0-1) for ``lesions="random"``.
    consolidation_fraction : consolidation / lesion volume (0-1) for ``lesions="random"``.
    right_share : share (0-1) of the lesion volume in the right lung; default drawn from the seed around 0.55.
    body_scale : body habitus (0.8 slim ... 1.1 obese): scales the body outline and the fat layer.
    noise_seed : seed of the noise only (default ``seed``); lets a follow-up scan share anatomy but not noise.
    slice_position : for a single slice, its height from lung base (0) to apex (1) of the reference field.
    blur_sigma_voxels : Gaussian partial-volume blur (voxels) along (z, y, x).

    Returns
    -------
    ChestPhantom

    Raises
    ------
    ImagingError
        On a malformed shape, spacing, fraction or lesion list.
    """
    shape_t = _check_shape(shape, spacing_mm)
    spacing = tuple(float(s) for s in spacing_mm)
    if not 0.0 <= opacity_fraction <= 0.95 or not 0.0 <= consolidation_fraction <= 1.0:
        raise ImagingError(
            f"chest_phantom: opacity_fraction must be in [0, 0.95] and consolidation_fraction in [0, 1]; "
            f"got {opacity_fraction!r} and {consolidation_fraction!r}"
        )
    if noise_hu < 0 or not math.isfinite(noise_hu):
        raise ImagingError(f"chest_phantom: noise_hu must be a finite value >= 0 HU, got {noise_hu!r}")
    ss = np.random.SeedSequence(int(seed))
    rng_lesion = np.random.default_rng(ss.spawn(3)[2])
    rng_noise = np.random.default_rng(
        np.random.SeedSequence(int(seed if noise_seed is None else noise_seed)).spawn(5)[4]
    )
    anatomy_args = (int(seed), shape_t, spacing, float(body_scale), float(slice_position))
    if np.prod(shape_t) <= 8_000_000:
        tissue, lung, vessels, lobes = _anatomy_volume(*anatomy_args)
    else:  # full-resolution volumes are too large to keep in a cache
        tissue, lung, vessels, lobes = _anatomy_volume.__wrapped__(*anatomy_args)
    axes, ref_vox = _grid_axes(shape_t, spacing, slice_position)
    az, ay, ax = axes

    # --- lesions ---------------------------------------------------------------------------------------------
    lesion = np.zeros(shape_t, dtype=np.uint8)
    if isinstance(lesions, str):
        if lesions != "random":
            raise ImagingError(f"chest_phantom: lesions must be None, 'random' or a list of Lesion; got {lesions!r}")
        small = np.prod(shape_t) <= 8_000_000
        vals = _region_scores(lung, axes, int(seed), anatomy_args if small else None)
        share = float(rng_lesion.uniform(0.45, 0.65)) if right_share is None else float(right_share)
        n_r, n_l = int((lung == 1).sum()), int((lung == 2).sum())
        total = opacity_fraction * (n_r + n_l)
        f_r = min(0.95, share * total / n_r) if n_r else 0.0
        f_l = min(0.95, (total - f_r * n_r) / n_l) if n_l else 0.0
        for side, frac, v in ((1, f_r, vals[0]), (2, f_l, vals[1])):
            les, core = _quantile_masks(v, lung == side, frac, consolidation_fraction)
            lesion[les] = 1
            lesion[core] = 2
    elif lesions is not None:
        for item in lesions:
            if not isinstance(item, Lesion):
                raise ImagingError(f"chest_phantom: lesions list items must be Lesion, got {type(item).__name__}")
            c = item.center_mm
            r = item.radii_mm
            if min(r) <= 0:
                raise ImagingError(f"chest_phantom: lesion radii must be > 0 mm, got {r}")
            inside = (
                ((az[:, None, None] - c[0]) / r[0]) ** 2
                + ((ay[None, :, None] - c[1]) / r[1]) ** 2
                + ((ax[None, None, :] - c[2]) / r[2]) ** 2
            ) <= 1.0
            inside &= lung > 0
            if item.kind == "consolidation":
                lesion[inside] = 2
            elif item.kind == "ggo":
                lesion[inside & (lesion == 0)] = 1
            else:
                raise ImagingError(f"chest_phantom: lesion kind must be 'ggo' or 'consolidation', got {item.kind!r}")

    # --- intended HU, then partial-volume blur and noise (slice by slice where possible: full-resolution volumes
    # have 63 M voxels and whole-volume temporaries would cost gigabytes) ------------------------------------------
    nz, ny, nx = shape_t
    tex_field = _smooth_field(int(seed), 3, 6.0)
    gravity_y = (30.0 * np.clip((ay + 110.0) / 220.0, 0.0, 1.0) - 15.0).astype(np.float32)[:, None]
    hu = np.empty(shape_t, dtype=np.float32)
    for k in range(nz):
        tex = _sample(tex_field, (az[k : k + 1], ay, ax))[0]
        t = tissue[k]
        h = _BASE_HU[t] + _TEXTURE_HU[t] * np.where(t == BONE, np.clip(tex, -1.0, 1.0), tex)
        h += np.where(_IS_LUNG[t], gravity_y, np.float32(0.0))
        les = lesion[k]
        if les.any():
            h = np.where(les == 1, np.clip(GGO_MEAN_HU + 45.0 * tex, *GGO_RANGE_HU), h)
            h = np.where(les == 2, np.clip(CONSOLIDATION_MEAN_HU + 25.0 * tex, *CONSOLIDATION_RANGE_HU), h)
        hu[k] = h
    sigma = tuple(0.0 if n == 1 else float(s) for n, s in zip(shape_t, blur_sigma_voxels, strict=True))
    if any(s > 0 for s in sigma):
        hu = ndimage.gaussian_filter(hu, sigma, mode="nearest")
    hu_i16 = np.empty(shape_t, dtype=np.int16)
    for k in range(nz):
        h = hu[k]
        if noise_hu > 0:
            h += rng_noise.standard_normal((ny, nx), dtype=np.float32) * np.float32(noise_hu)
        hu_i16[k] = np.clip(np.rint(h), HU_MIN, HU_MAX)
    del hu

    vox_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0
    n_lung_r, n_lung_l = int((lung == 1).sum()), int((lung == 2).sum())
    n_ggo, n_con = int((lesion == 1).sum()), int((lesion == 2).sum())
    n_lung = n_lung_r + n_lung_l
    volumes = {
        "lung_right": n_lung_r * vox_ml,
        "lung_left": n_lung_l * vox_ml,
        "lung_total": n_lung * vox_ml,
        "ggo": n_ggo * vox_ml,
        "consolidation": n_con * vox_ml,
        "lesion_total": (n_ggo + n_con) * vox_ml,
        "vessel": int(vessels.sum()) * vox_ml,
        "opacity_pct": 100.0 * (n_ggo + n_con) / n_lung if n_lung else 0.0,
    }
    involvement = {}
    for code, name in LOBE_NAMES.items():
        in_lobe = lobes == code
        n = int(in_lobe.sum())
        involvement[name] = float((lesion[in_lobe] > 0).sum() / n) if n else 0.0
    return ChestPhantom(
        hu=hu_i16,
        lung_labels=lung.copy(),
        lesion_labels=lesion,
        spacing_mm=spacing,  # type: ignore[arg-type]
        volumes_ml=volumes,
        lobe_labels=lobes.copy(),
        lobe_involvement=involvement,
        seed=int(seed),
    )


def _check_shape(shape: Sequence[int], spacing_mm: Sequence[float]) -> tuple[int, int, int]:
    if len(shape) != 3 or len(spacing_mm) != 3:
        raise ImagingError(
            f"chest_phantom: shape and spacing_mm must be (z, y, x) triples; got shape={shape!r}, "
            f"spacing_mm={spacing_mm!r}"
        )
    try:
        shape_t = tuple(int(n) for n in shape)
        spacing = tuple(float(s) for s in spacing_mm)
    except (TypeError, ValueError) as exc:
        raise ImagingError(f"chest_phantom: non-numeric shape {shape!r} or spacing {spacing_mm!r}") from exc
    if min(shape_t) < 1 or shape_t[1] < 16 or shape_t[2] < 16:
        raise ImagingError(f"chest_phantom: need at least 1 slice and 16 x 16 pixels; got shape {shape_t}")
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ImagingError(f"chest_phantom: spacing_mm must be positive finite mm; got {spacing}")
    return shape_t  # type: ignore[return-value]
