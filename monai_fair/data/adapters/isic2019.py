# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""ISIC 2019 challenge training data -> monai-fair datalist.

Inputs:

* ``ISIC_2019_Training_Metadata.csv``: ``image,age_approx,anatom_site_general,lesion_id,sex`` (``sex`` is
  ``male``/``female``/empty, ``age_approx`` a multiple of 5 or empty, ``lesion_id`` may be empty),
* ``ISIC_2019_Training_GroundTruth.csv``: ``image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK`` one-hot floats
  (``1.0``/``0.0``); the class is the column holding 1.0 (``UNK`` is empty in the training set),
* the image folder with ``<image>.jpg``.

Verified: the column names against public code reading these files; the one-hot class columns as listed.
Splits keep the images of a ``lesion_id`` together.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from monai_fair.data.adapters._common import DEFAULT_AGE_BINS, demographic_spec, find_images, read_csv_rows, to_float
from monai_fair.data.records import build_fair_datalist

__all__ = ["ISIC2019_CLASSES", "isic2019_datalist"]

ISIC2019_CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
META_COLUMNS = ("image", "age_approx", "anatom_site_general", "lesion_id", "sex")


def isic2019_datalist(
    metadata: str | os.PathLike,
    ground_truth: str | os.PathLike,
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    attribute: str = "sex",
    unknown: str = "separate",
    drop_unk: bool = True,
    age_bins: Sequence[float] = DEFAULT_AGE_BINS,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    check_images: bool = True,
) -> Path:
    """Build the datalist.

    Args:
        metadata / ground_truth: the two CSV files (joined on ``image``; an image missing from either is an error).
        images: folder with ``<image>.jpg``.
        out: datalist JSON to write.
        attribute: ``"sex"``, ``"age"`` (from ``age_approx``) or ``"sex_age"``.
        unknown: policy for empty sex/age: ``"separate"`` (default, an ``unknown`` group), ``"error"`` or ``"drop"``.
        drop_unk: leave out the ``UNK`` class column (8 classes, the training-set convention).
    """
    meta = read_csv_rows(metadata, META_COLUMNS)
    gt = read_csv_rows(ground_truth, ("image",) + ISIC2019_CLASSES)
    classes = ISIC2019_CLASSES[:-1] if drop_unk else ISIC2019_CLASSES
    gt_by_image = {r["image"]: (i, r) for i, r in enumerate(gt)}
    missing = [r["image"] for r in meta if r["image"] not in gt_by_image]
    if missing:
        raise ValueError(f"{ground_truth}: no ground truth for image(s) {missing[:10]} listed in {metadata}.")
    onehot = np.array([[to_float(r[c]) or 0.0 for c in classes] for r in gt], dtype=float)
    bad = np.flatnonzero(~np.isclose(onehot.sum(1), 1.0) | ~np.all(np.isin(onehot, (0.0, 1.0)), axis=1))
    if bad.size:
        raise ValueError(
            f"{ground_truth}: row(s) {(bad[:10] + 2).tolist()} are not one-hot over {list(classes)} "
            f"(e.g. image {gt[int(bad[0])]['image']!r})."
        )
    labels = onehot.argmax(1)
    paths = find_images([r["image"] for r in meta], images, check=check_images)
    records = []
    for r in meta:
        label = int(labels[gt_by_image[r["image"]][0]])
        records.append(
            {
                "image": paths[r["image"]],
                "label": label,
                "image_id": r["image"],
                "lesion_id": r["lesion_id"] or None,
                "sex": r["sex"],
                "age": to_float(r["age_approx"]),
                "site": r["anatom_site_general"] or None,
            }
        )
    return build_fair_datalist(
        records,
        out,
        demographic_spec(attribute, unknown, age_bins),
        keep_keys=["image_id", "lesion_id", "sex", "age", "site"],
        split_fractions=split_fractions,
        seed=seed,
        label_names=list(classes),
        row_offset=2,
        source=str(metadata),
        cluster=[r["lesion_id"] or r["image"] for r in meta],
        extra={"source": {"dataset": "ISIC2019", "file": Path(metadata).name, "attribute": attribute}},
    )
