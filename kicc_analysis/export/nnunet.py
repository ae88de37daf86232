"""nnU-Net v2 raw dataset layout (``imagesTr/``, ``labelsTr/``, ``imagesTs/``, ``dataset.json``).

As nnU-Net's dataset-format documentation (``documentation/dataset_format.md`` of MIC-DKFZ/nnUNet) describes: image
files ``<case>_<XXXX>.nii.gz`` with a four-digit channel suffix (one channel, ``0000``, named ``CT`` so that nnU-Net
applies its CT normalisation), labels ``<case>.nii.gz`` with the same geometry, consecutive integers from background
0; ``dataset.json`` with ``channel_names`` (index -> name), ``labels`` (name -> integer), ``numTraining`` and
``file_ending``. Training cases are our ``train`` and ``validation`` splits (nnU-Net cross-validates itself);
``splits_final.json`` gives that cross-validation as patient-level folds (copy it into
``nnUNet_preprocessed/DatasetXXX_NAME/`` to use them). ``imagesTs/`` holds the test split; its labels go to
``labelsTs/`` (nnU-Net ignores them; they are there for evaluation).
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pandas as pd

FILE_ENDING = ".nii.gz"
REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending")


def paths(cases: pd.DataFrame) -> pd.DataFrame:
    """``image`` and ``label`` relative paths of each case (by ``split``)."""
    training = cases["split"].isin(["train", "validation"])
    image = [
        str(PurePosixPath("imagesTr" if tr else "imagesTs") / f"{case}_0000{FILE_ENDING}")
        for case, tr in zip(cases["case_id"], training, strict=True)
    ]
    label = [
        str(PurePosixPath("labelsTr" if tr else "labelsTs") / f"{case}{FILE_ENDING}")
        for case, tr in zip(cases["case_id"], training, strict=True)
    ]
    return cases.assign(image=image, label=label)


def dataset_json(cases: pd.DataFrame, labels: dict[str, int], *, name: str, description: str, licence: str) -> dict:
    """The ``dataset.json`` of the layout."""
    return {
        "channel_names": {"0": "CT"},
        "labels": dict(labels),
        "numTraining": int(cases["split"].isin(["train", "validation"]).sum()),
        "file_ending": FILE_ENDING,
        "name": name,
        "description": description,
        "licence": licence,
        "overwrite_image_reader_writer": "SimpleITKIO",
    }


def splits_final(cases: pd.DataFrame) -> list[dict[str, list[str]]]:
    """nnU-Net's ``splits_final.json``: one ``{"train": [...], "val": [...]}`` per patient-level fold (``fold``)."""
    training = cases[cases["split"].isin(["train", "validation"]) & cases["fold"].notna()]
    out = []
    for fold in sorted(training["fold"].unique()):
        out.append(
            {
                "train": sorted(training.loc[training["fold"] != fold, "case_id"]),
                "val": sorted(training.loc[training["fold"] == fold, "case_id"]),
            }
        )
    return out
