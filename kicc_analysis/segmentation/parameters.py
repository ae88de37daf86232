"""The parameters of :func:`~kicc_analysis.segmentation.segment_lungs`: one frozen object, :class:`LungParameters`.

Every threshold and distance of the classical lung mask is a field here (HU, mm, degrees, shares 0-1); the rules of
both paths read them from the object passed down from :func:`segment_lungs`. Rules of step 6 (dense recovery) are
switched off by name with ``disabled_rules`` (names: :data:`RULE_NAMES`; see
:func:`kicc_analysis.segmentation.lungs.dense_rules` for their order), and so are the single-slice rules of
:mod:`kicc_analysis.segmentation.planes` (:data:`SLICE_RULE_NAMES`) and the step-7 rules of single axial slices in
:mod:`kicc_analysis.segmentation.boundary_2d` (:data:`BOUNDARY_RULE_NAMES`), and the thoracic-cavity rule of single
axial slices in :mod:`kicc_analysis.segmentation.cavity_2d` (:data:`CAVITY_RULE_NAMES`).

Examples
--------
>>> from kicc_analysis.segmentation import LungParameters
>>> p = LungParameters(disabled_rules=frozenset({"dependent_2d"}))
>>> p.rule_enabled("dependent_2d"), p.rule_enabled("rib_cage"), p.bone_hu
(False, True, 200.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import SegmentationError

#: Step-6 rule names (both paths; a path runs only its own), in the order they run.
RULE_NAMES = (
    "hull_deficit",
    "rib_cage",
    "mediastinum_2d",
    "between_slices",
    "dependent_2d",
    "bronchograms_2d",
    "dependent_cavity_2d",
    "posterior_2d",
    "below_dome_2d",
    "mediastinal_block_2d",
    "cage_2d",
    "lung_base",
    "gutter",
    "costophrenic_recess",
    "halo_gate",
)

#: Rules of single slices outside step 6 (:mod:`kicc_analysis.segmentation.planes`,
#: :mod:`kicc_analysis.segmentation.airways_2d`), switched off by the same ``disabled_rules``: bowel / stomach gas on
#: axial slices, the airway tube and pure gas on coronal / sagittal slices, the main bronchus joined to the lung on
#: axial slices (``hilar_airway_2d``).
SLICE_RULE_NAMES = ("abdominal_gas_2d", "airway_tube_plane", "gas_plane", "hilar_airway_2d")

#: Step-7 rules of single axial slices on the input grid (:mod:`kicc_analysis.segmentation.boundary_2d`), in the
#: order they run, switched off by the same ``disabled_rules``: the pleural-line cut, partly aerated lung, holes.
BOUNDARY_RULE_NAMES = ("pleural_line_2d", "partial_aeration_2d", "fill_holes_2d")

#: Rules of the thoracic cavity of single axial slices (:mod:`kicc_analysis.segmentation.cavity_2d`), switched off
#: by the same ``disabled_rules``: the ring beside the spine follows the rib line, not the vertebral body's front;
#: a field of view that cuts the arms or touches the body still has a cavity when its rib ring is closed inside it.
CAVITY_RULE_NAMES = ("cavity_rib_line_2d", "cavity_fov_2d")


@dataclass(frozen=True)
class LungParameters:
    """Every setting of the classical lung mask (frozen; ``dataclasses.replace`` makes a variant).

    The first six fields are the arguments of :func:`~kicc_analysis.segmentation.segment_lungs`; the others are the
    rule thresholds, grouped by the module whose rules read them. ``disabled_rules`` (names from
    :data:`RULE_NAMES`, :data:`SLICE_RULE_NAMES`, :data:`BOUNDARY_RULE_NAMES`, :data:`CAVITY_RULE_NAMES`) switches rules off;
    ``recover_dense=False`` switches all of step 6 off and ``halo_gate=False`` is the same as disabling
    ``"halo_gate"``.
    """

    working_spacing_mm: float = 2.5  # approximate working-grid spacing (mm); input block-averaged, never upsampled
    air_threshold_hu: float = -400.0  # voxels below this (HU) are air-like (aerated lung, airways, outside air)
    # step 7 on single slices (2-D axial path, coronal / sagittal): in the input-grid boundary band a pixel below this
    # (HU) is lung -- the visible pleural boundary that hand outlines follow (a partial-volume pixel about a quarter
    # air: -850 x 0.25 + 40 x 0.75 = -180 HU). Volumes (3-D path) keep air_threshold_hu there: with -200 HU the
    # 512 x 512 x 300 benchmark lung grew 7 % and its consolidation bin 71 -> 255 mL (partial-volume pleural rim)
    boundary_max_hu: float = -200.0
    # 2-D axial path (single slices, thin stacks): number of working-grid phases segmented and voted per input pixel
    # (4: the in-plane block-averaging grid shifted by 0 or half the factor in y and in x; an input pixel is lung when
    # more than half of the runs (3 of 4) say so, its side by majority). 1 = one run on the unshifted grid (lungs-1.10
    # masks bit for bit). The mask then no longer depends on where the grid falls on the anatomy (a one-pixel shift of
    # a covid_ny_sbu slice changed its Dice by up to 0.05 with 1); cost: the 2-D path runs this many times.
    phase_votes: int = 4
    recover_dense: bool = True  # run step 6 (dense recovery)
    dense_max_hu: float = 150.0  # upper HU limit of recovered dense lung (bone, contrast-filled vessels above)
    halo_gate: bool = True  # 3-D path: halo gate on the rib-cage band and the outline interpolation
    disabled_rules: frozenset[str] = field(default_factory=frozenset)  # step-6 rules switched off (RULE_NAMES)
    # --- QA: low_confidence (the mask is likely wrong: use an external mask); measured on covid_ny_sbu, docs/ct.md
    low_confidence_dense_fraction: float = 0.3  # more than this share (0-1) of the mask was added by dense recovery
    low_confidence_lr_ratio_3d: float = 0.5  # volume: smaller / larger lung below this
    low_confidence_lr_ratio_2d: float = 0.25  # single slice (the left lung is smaller beside the heart): below this
    # --- steps 1-6a (lungs.py): outside air, gas, airways, hull deficit
    tight_crop_border_air: float = 0.5  # slices whose border is < 50 % air are crops through the body
    tight_crop_outside_max_hu: float = -980.0  # ... where only pure air (~-1000 HU) touching the border is outside air
    airway_lumen_hu: float = -900.0  # airway tracking: lumen darker than lung parenchyma (~-850 HU)
    # central airway lumen joined to the lung on a single axial slice (hilar_airway_2d, airways_2d.py): thin part of
    # the lung candidate = not covered by an opening with a disk of this radius (mm; main bronchus 10-20 mm wide)
    hilar_airway_open_mm: float = 7.5
    hilar_airway_fill_max_mm2: float = 80.0  # ... after filling holes up to this area (mm^2; vessels inside the lung)
    hilar_airway_midline_mm: float = 20.0  # ... reaching within this (mm) of the midline (carina) ...
    hilar_airway_min_anterior_mm: float = 10.0  # ... there at least this far (mm) in front of the vertebral body
    hilar_airway_max_anterior_mm: float = 60.0  # ... and at most this far (mm; oesophagus behind, heart in front)
    hilar_airway_min_lumen_share: float = 0.05  # ... with at least this share (0-1) darker than airway_lumen_hu
    # DICOM PatientPosition values for which the abdominal-gas rule holds (gas anterior)
    supine_positions: tuple[str, ...] = ("HFS", "FFS")
    # abdominal-gas rule (3-D): a component with less than this share of its voxels in the
    gas_max_posterior_share: float = 0.1
    # posterior half of the trunk (per slice) is non-dependent (gas rises anteriorly in the supine abdomen; every lung
    # reaches the posterior ribs beside the spine: measured lung shares 0.49-0.90, stomach/bowel gas 0.00)
    # ... and whose interior (1-voxel eroded) median HU is below this is pure gas (stomach/bowel
    gas_max_hu: float = -940.0
    # gas -955..-980 HU; aerated lung -900..-750 HU, the emphysematous COPDGene ct64 lung -930 HU -- HU alone is not
    # trusted, see the docstring of _drop_abdominal_gas)
    # single axial slices (planes.drop_abdominal_gas_2d): on a slice where no air component reaches the posterior half
    # of the trunk (below the lung bases), anterior-only air with an interior median below this (HU) is bowel gas
    # (thin loops average gas, wall and content: -924..-959 HU measured; parenchyma -900..-700 HU)
    gas_slice_max_hu: float = -900.0
    lateral_min: float = 0.05  # hull-deficit rule: component centroid lateral of the lung centroid (x lung width)
    posterior_min: float = 0.15  # ... or posterior of it (x lung height) and away from the medial edge
    max_deficit_to_lung: float = 0.5  # ... and at most half the lung area of the slice
    # --- rules of both paths (_common.py): rib-cage band, outline interpolation, vertebral body
    n_rays: int = 180  # sub-pleural (rib-cage) rule: rays per slice (also the costophrenic-recess rule, 3-D)
    min_band_mm: float = 8.0  # ... a band thinner than this (mm) is not recovered
    # ... rib cage = first pixel at least this dense (HU) outside the lung (bone in the other rules too)
    bone_hu: float = 200.0
    cage_margin_mm: float = 6.0  # ... pleura + intercostal soft tissue inside the ribs (mm), never lung
    cage_max_gap_deg: float = 12.0  # ... rays farther than this (degrees) from a rib hit get no cage
    # ... 3-D path: a ray between ribs takes the cage from slices within this distance (mm)
    cage_z_reach_mm: float = 15.0
    cage_z_anterior_deg: float = 60.0  # ... but not within this angle (degrees) of anterior (heart against the sternum)
    cage_margin_3d_mm: float = 4.0  # ... 3-D path, outside that anterior sector: pleura + intercostal margin (mm)
    min_band_3d_mm: float = 5.0  # ... 3-D path, outside that anterior sector: thinnest recovered band (mm)
    # ... 3-D path: upper share of the lung height treated as in 2-D (oblique ribs)
    cage_apex_fraction: float = 1.0 / 3.0
    interp_window_mm: float = 25.0  # outline interpolation: lung above and below within this distance (mm)
    # vertebral body (3-D gutter, 2-D paravertebral band): centre within this (mm) of midline
    gutter_midline_mm: float = 20.0
    # ... thickest inscribed radius (mm) of a vertebral body (thinner bone: rib, sternum)
    gutter_min_radius_mm: float = 8.0
    # ... gutter = up to this far (mm) lateral of the vertebral body's lateral edge (3-D rule)
    gutter_width_mm: float = 25.0
    # --- 2-D path rules (dense_2d.py): dependent consolidation, air bronchograms, mediastinum filter
    dependent_bone_below_top_hu: float = 40.0  # dependent rule: bone = within this (HU) of the image maximum when that
    # maximum is below bone_hu (display-converted teaching images clip bone at the window top, level + width / 2)
    dependent_min_bone_px: int = 3  # ... smaller bone specks (working-grid pixels) are image noise, not rib
    # ... image maximum below this (HU): soft tissue saturates too, no cage is modelled
    dependent_min_top_hu: float = 120.0
    # ... pleura + intercostal soft tissue in front of the posterior cage (mm), never lung
    dependent_margin_mm: float = 6.0
    # (also the air-bronchogram rule's distance from bone)
    dependent_min_band_mm: float = 8.0  # ... a column band thinner than this (mm) is not recovered
    dependent_max_depth_mm: float = 80.0  # ... at most this far (mm) behind the deepest lung pixel of the column
    # ... posterior cage = rolling minimum depth of the first bone over this width (mm)
    dependent_cage_window_mm: float = 20.0
    dependent_medial_mm: float = 10.0  # ... columns closer than this (mm) to the vertebral body's edge are never filled
    dependent_aorta_mm: float = 30.0  # ... on the left (descending aorta beside the vertebral body) this (mm)
    dependent_lung_medial: float = 0.35  # ... columns in the medial share (x lung width) of each lung are never filled
    # ... nor the lateral share (x lung width): the column runs along the chest wall there
    dependent_lung_lateral: float = 0.1
    dependent_min_columns: int = 3  # ... bands narrower than this many working-grid columns are dropped (opening)
    dependent_max_hu: float = 150.0  # ... walked tissue up to this (HU); brighter = bone / contrast, stops the walk
    bronchogram_max_area_mm2: float = 400.0  # air-bronchogram rule: enclosed air pockets up to this area (mm^2)
    # ... whose one-pixel surrounding ring is at least this share dense (-400..+150 HU)
    bronchogram_ring_dense: float = 0.9
    # ... the rule fires only on slices with at least this many such pockets (consolidation)
    bronchogram_min_count: int = 5
    # ... counting only pockets with at least this share (0-1) of their area inside the thoracic cavity (air in an arm
    # or an object on the chest is no bronchogram; 0: no cavity test)
    bronchogram_cavity_share: float = 0.5
    bronchogram_posterior: float = -0.3  # ... pocket centre posterior of trunk centre + this x trunk half-height
    bronchogram_radius_mm: float = 25.0  # ... dense tissue within this distance (mm) of an accepted pocket is lung
    # ... mediastinum = between the two lungs' medial edges within +- this (mm) of the row
    bronchogram_rows_mm: float = 10.0
    bronchogram_midline_mm: float = 60.0  # ... but at most this far (mm) from the body midline on each side
    # (these two also bound the mediastinum filter, _mediastinum_2d)
    # thoracic cavity of a single axial slice (cage_2d, :func:`~kicc_analysis.segmentation.dense_2d.thoracic_cavity_2d`):
    # the cage radius per ray is the running median of the first-bone radii over this window (degrees)
    cavity_median_deg: float = 30.0
    # ... first pass: the first bone beyond the aerated lung and beyond this share of the trunk radius on the ray
    cavity_inner_share: float = 0.45
    cavity_harmonics: int = 3  # ... a smooth ring (Fourier series up to this order) is fitted to those hits
    cavity_band: float = 0.15  # ... second pass: the innermost bone within this share of the ring's radius
    cavity_min_hit_share: float = 0.25  # ... no cavity (rule off) when fewer rays meeting lung than this share hit bone
    cavity_max_border_share: float = 0.1  # ... nor for a crop whose border is more than this share (0-1) body
    # cavity_fov_2d (fov11): ... unless the rib ring is closed inside the field (arms or soft tissue cut by the edge,
    # the lungs not): the aerated lung touches no image border, at least this share (0-1) of all rays meets bone
    # beyond the lung, and the fitted ring lies at least cavity_fov_margin_mm inside the image border on at least
    # cavity_fov_inside_share of the rays (a teaching crop through the lungs has lung and chest wall on its border)
    cavity_fov_min_ring_hits: float = 0.3
    cavity_fov_inside_share: float = 0.85
    cavity_fov_margin_mm: float = 5.0
    cavity_inside_share: float = 0.5  # aerated components with less than this share inside the cavity are dropped
    cavity_margin_mm: float = 2.0  # dense recovered pixels must lie at least this (mm) inside the cage
    # cavity_rib_line_2d (cavity11): a ray whose first bone hit lies behind the rays' centre within this (mm) of the
    # vertebral body's centre column is a spine ray, left out of the ring fit and of the other rays' running median
    # (thoracic vertebral bodies are 25-45 mm wide, the rib heads articulate on their sides; lateral of them the
    # first bone is the rib neck / transverse process, on the posterior rib line)
    cavity_spine_half_mm: float = 20.0
    # ... posterior rays without a rib hit take the rib line interpolated across gaps up to this (degrees; an
    # intercostal space seen from the cavity centre spans about 5-15 degrees)
    cavity_rib_gap_deg: float = 20.0
    # ... a ray moves out to the rib line only when most of the added segment is below this smoothed HU
    # (block_sigma_mm): partly aerated lung; pleural fluid is water density, 0-20 HU (exudate up to ~30)
    cavity_fluid_hu: float = -20.0
    cavity_pleura_mm: float = 4.0  # dependent_cavity_2d: pleura + intercostal tissue inside the cage (mm), never lung
    # posterior_2d (lungs-1.9): columns at least this far (mm) lateral of the vertebral body (paravertebral line)
    posterior_spine_mm: float = 5.0
    posterior_max_smooth_hu: float = -70.0  # ... smoothed HU (block_sigma_mm) below this: partly aerated consolidation
    posterior_reach_mm: float = 40.0  # ... reached from the lung within this (mm)
    posterior_min_thickness_px: int = 3  # ... parts at least this many working-grid pixels thick (square opening)
    posterior_max_hole_mm2: float = 300.0  # ... enclosing no new hole larger than this (mm^2; a ring around the heart)
    # below_dome_2d (base_2d.py): a lung-base slice has less than this share (0-1) of its aerated lung in front of the
    # cavity's anterior-posterior midpoint (the dome fills the front; measured 0.00-0.15 at the TotalSegmentator bases,
    # 0.39-0.83 on the six outlined COVID-19 slices at carina-to-heart level)
    dome_max_anterior_share: float = 0.25
    # ... on it, a recovered component with aerated lung behind it in at least this share (0-1) of its columns is under
    # the dome (dependent consolidation lies behind the aerated lung, abdomen in the crescent's concavity in front)
    dome_min_lung_behind_share: float = 0.5
    # step 7 on the input grid, 2-D axial path (boundary_2d.py, edge11): the parietal pleura runs along the inner
    # surface of the ribs and across each intercostal space on the line joining them
    pleura_rays: int = 720  # ... rays from the cavity centre (0.5 degree: < 1.5 mm arc at 150 mm, finer than a rib)
    pleura_band_mm: float = 8.0  # ... input-grid bone within this (mm) of the working-grid cavity ring is the rib cage
    # ... dense-recovered pixels must lie this far (mm) inside the ribs' inner surface: the intercostal stripe (parietal
    # pleura, endothoracic fascia, innermost intercostal muscle) is 1-2 mm on thin-section CT (Im et al., Radiology
    # 1989;171:125-131)
    pleura_margin_mm: float = 2.0
    # ... bone pieces smaller than this (mm^2) are not rib (a contrast-filled peripheral vessel, a calcified granuloma;
    # a rib's cortex in an axial slice covers tens of mm^2)
    pleura_min_bone_mm2: float = 5.0
    # partial_aeration_2d: input pixels from this (HU) up to boundary_max_hu are partly aerated lung (darker: aerated
    # parenchyma or an airway lumen, never crossed, so no bronchus is joined to the lung) ...
    partial_min_hu: float = -800.0
    partial_reach_mm: float = 5.0  # ... reached from the mask through such pixels within this (mm: two working blocks)
    # mediastinal soft-tissue block of a single axial slice (filter mediastinal_block_2d, lungs-1.9): smoothed HU
    # (Gaussian of this sigma, mm) at or above block_min_hu is solid soft tissue (mediastinum, hilar vessels;
    # consolidated lung on the outlined covid_ny_sbu slices is mostly below it, partly aerated)
    block_sigma_mm: float = 2.5
    block_min_hu: float = -100.0
    # ... the block is the solid tissue connected to the seed zone between the lungs after an opening of this radius
    block_opening_mm: float = 4.0
    block_reach_mm: float = 25.0  # ... and at most this far (mm) beyond the seed zone (0: no limit)
    block_component_share: float = 0.5  # ... a recovered component with at least this share in the block is dropped
    # --- single coronal / sagittal slices (lungs.py, _segment_plane_array)
    plane_min_parenchyma: float = 0.5  # lung: at least this share (0-1) of the interior at -960..-500 HU (gas: < -960)
    plane_min_lung_mm2: float = 1500.0  # ... and the main lung at least this area (mm^2)
    plane_max_row_share: float = 0.6  # ... with its centroid in this upper share (0-1) of the body's height
    # airway tube (planes.airway_tube_plane): pure-air lumen (< airway_lumen_hu) at most this wide (mm; 75th percentile
    # of the per-row width; tracheal diameter <= ~25 mm, a lung section is wider)
    plane_airway_max_width_mm: float = 30.0
    # ... centroid within this (mm) of the body centre (sagittal: the slice within it of the scanner x = 0): the trachea
    # lies up to ~20 mm right of the midline (aortic arch), the body centre is off by the field of view (arms, crop)
    plane_airway_midline_mm: float = 40.0
    # pure-gas rule (gas_plane): a component whose interior median is below gas_max_hu is lung only when at least
    # this large (mm^2): an emphysematous lung section (COPDGene ct-64 coronal: -941..-944 HU, 129-175 cm^2); bowel
    # loops, stomach bubbles and airways are smaller on a slice (covid_ny_sbu: <= 33 cm^2)
    plane_gas_min_lung_mm2: float = 5000.0
    # low_confidence when more than this share (0-1) of a coronal / sagittal mask is denser than halo_abnormal_hu (the
    # air-based plane mask then misses consolidated lung; measured 0.20-0.57 on clear or mild slices, 0.88-0.99 on the
    # consolidated A046441 slices)
    plane_low_confidence_abnormal_share: float = 0.7
    # --- 3-D path rules (dense_3d.py): lung base, gutter, costophrenic recess, halo gate
    base_fit_degree: int = 2  # lung-base rule: polynomial degree of the dome model (2: quadratic; 3, 4 tried: worse)
    base_fit_iterations: int = 12  # ... iterations of the asymmetric (lower-envelope) dome fit
    base_fit_asymmetry: float = 0.05  # ... weight of columns whose base lies above the fitted dome (1 - this below it)
    # ... a column whose base is at least this far (mm) above the dome is raised by dense lung
    base_raised_mm: float = 5.0
    # ... and at most this far (mm): higher bases are apex / mediastinal overhang, not base
    base_max_raise_mm: float = 40.0
    base_min_lung_height_mm: float = 120.0  # ... lungs shorter than this (mm) in the scan are not modelled (bases only)
    # ... columns closer than this (mm) to the body midline (spine, aorta) are never filled
    base_midline_mm: float = 20.0
    # (also the costophrenic-recess rule's distance from the trunk midline)
    # paravertebral-gutter rule: dense voxels at most this far (mm) anterior of the rib / vertebra
    gutter_depth_mm: float = 25.0
    # behind them (the vertebral body and the gutter width: gutter_* above)
    recess_max_gap_deg: float = 90.0  # costophrenic-recess rule: widest angular gap (degrees) bridged between lung rays
    # ... the gap's outer edge moves out to the rib cage when it lies within this (mm)
    recess_cage_reach_mm: float = 10.0
    # halo gate: an aerated-lung pixel denser than this (HU) is abnormal (GGO bin lower edge)
    halo_abnormal_hu: float = -700.0
    # ... a recovered component is kept when at least this share (0-1) of its halo is abnormal
    halo_min_share: float = 0.3
    # ... the halo is the lung ring just beyond this distance (mm; at least one pixel) around it
    halo_gap_mm: float = 3.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "disabled_rules", frozenset(self.disabled_rules))
        known = RULE_NAMES + SLICE_RULE_NAMES + BOUNDARY_RULE_NAMES + CAVITY_RULE_NAMES
        unknown = sorted(self.disabled_rules - set(known))
        if unknown:
            raise SegmentationError(
                f"LungParameters.disabled_rules: unknown rule name(s) {unknown}; expected some of {list(known)}"
            )
        if self.phase_votes not in (1, 4):
            raise SegmentationError(f"LungParameters.phase_votes: expected 1 or 4, got {self.phase_votes!r}")

    def rule_enabled(self, name: str) -> bool:
        """Whether step-6 rule ``name`` runs (``halo_gate=False`` disables ``"halo_gate"``)."""
        if name == "halo_gate" and not self.halo_gate:
            return False
        return name not in self.disabled_rules


DEFAULT_PARAMETERS = LungParameters()
