"""Lobe truth of the demo repository, written as a TotalSegmentator-layout mask.

For each lung-kernel CT series the generator writes ``ground_truth/lobes/<SeriesInstanceUID>.nii.gz``: the phantom's
lobes (its geometry, :attr:`~kicc_analysis.demo.phantom.ChestPhantom.lobe_labels`) as the multi-label file of
TotalSegmentator's ``total`` task (v2 class map: 10 lung_upper_lobe_left, 11 lung_lower_lobe_left,
12 lung_upper_lobe_right, 13 lung_middle_lobe_right, 14 lung_lower_lobe_right), on the series' grid (LPS). The
soft-tissue series get none, so a cohort run has series with and without an external mask::

    kicc quantify --repository demo_repository --masks demo_repository/ground_truth/lobes

The demo is a lower layer than :mod:`kicc_analysis.segmentation`, so the class map is written out here; a test checks
it against ``kicc_analysis.segmentation.external.CONVENTIONS["totalsegmentator"]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

__all__ = ["LOBE_FOLDER", "TOTALSEG_TOTAL_LOBES", "write_lobe_truth"]

#: folder (inside ``ground_truth/``) of the lobe masks
LOBE_FOLDER = "lobes"
#: phantom lobe code (1 RUL, 2 RML, 3 RLL, 4 LUL, 5 LLL) -> TotalSegmentator v2 ``total`` label
TOTALSEG_TOTAL_LOBES: dict[int, int] = {1: 12, 2: 13, 3: 14, 4: 10, 5: 11}


def write_lobe_truth(phantom, geometry, ground_truth: Path, series_uid: str, role: str = "lung") -> Path | None:
    """Write the phantom's lobes as ``<ground_truth>/lobes/<series_uid>.nii.gz`` (lung-kernel series only).

    Parameters
    ----------
    phantom : ChestPhantom
        The series' phantom (``lobe_labels`` (z, y, x)).
    geometry : SeriesGeometry
        The series' geometry (origin (x, y, z) mm, spacing (z, y, x) mm; identity direction, LPS).
    ground_truth : path
        The repository's ``ground_truth`` folder.
    series_uid : str
        SeriesInstanceUID (the file name).
    role : str
        ``"lung"`` writes; any other role (``"soft_tissue"``) writes nothing and returns None.

    Returns
    -------
    pathlib.Path or None
        The file written.
    """
    if role != "lung":
        return None
    lut = np.zeros(256, dtype=np.uint8)
    for code, label in TOTALSEG_TOTAL_LOBES.items():
        lut[code] = label
    image = sitk.GetImageFromArray(lut[np.asarray(phantom.lobe_labels, dtype=np.uint8)])
    sz, sy, sx = geometry.spacing_mm
    image.SetSpacing((float(sx), float(sy), float(sz)))
    image.SetOrigin(tuple(float(v) for v in geometry.origin_mm))
    folder = Path(ground_truth) / LOBE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{series_uid}.nii.gz"
    sitk.WriteImage(image, str(path), useCompression=True)
    return path
