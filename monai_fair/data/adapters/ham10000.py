# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""HAM10000 (Tschandl et al., Sci. Data 2018) -> monai-fair datalist.

Input: ``HAM10000_metadata.csv`` with the columns ``lesion_id,image_id,dx,dx_type,age,sex,localization``
(one row per image; several images may share a ``lesion_id``), and the image folders
(``HAM10000_images_part_1``, ``HAM10000_images_part_2``) holding ``<image_id>.jpg``.

Encodings: ``dx`` in ``akiec, bcc, bkl, df, mel, nv, vasc``; ``sex`` ``male``/``female``/``unknown``; ``age`` a
number in steps of 5 or empty. ``unknown``/empty follow the ``unknown`` policy (default ``"separate"``: the
dataset's own ``unknown`` sex becomes the ``unknown`` group, never an error).

Verified: the column list and the ``<image_id>.jpg`` naming against public code that reads this file
(Kaggle "skin-cancer-mnist-ham10000" layout). The class list is the one of the dataset paper.

Splits keep all images of a lesion together (``lesion_id`` is the split cluster).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from monai_fair.data.adapters._common import DEFAULT_AGE_BINS, demographic_spec, find_images, read_csv_rows, to_float
from monai_fair.data.records import build_fair_datalist

__all__ = ["HAM10000_CLASSES", "HAM10000_MALIGNANT", "ham10000_datalist"]

HAM10000_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
HAM10000_MALIGNANT = ("akiec", "bcc", "mel")
COLUMNS = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")


def ham10000_datalist(
    metadata: str | os.PathLike,
    images: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    attribute: str = "sex",
    label_mode: str = "dx",
    unknown: str = "separate",
    age_bins: Sequence[float] = DEFAULT_AGE_BINS,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    check_images: bool = True,
) -> Path:
    """Build the datalist.

    Args:
        metadata: ``HAM10000_metadata.csv``.
        images: folder(s) with the JPEGs (a list, or a comma-separated string).
        out: datalist JSON to write.
        attribute: ``"sex"``, ``"age"`` (bins ``age_bins``) or ``"sex_age"``.
        label_mode: ``"dx"`` (7 classes, :data:`HAM10000_CLASSES` order) or ``"binary"`` (malignant = akiec, bcc,
            mel -> 1, as in fairness studies of HAM10000).
        unknown: policy for ``sex == "unknown"`` / empty age: ``"separate"`` (default), ``"error"`` or ``"drop"``.
    """
    rows = read_csv_rows(metadata, COLUMNS)
    if label_mode not in ("dx", "binary"):
        raise ValueError(f"label_mode must be 'dx' or 'binary', got {label_mode!r}.")
    paths = find_images([r["image_id"] for r in rows], images, check=check_images)
    records = []
    for i, r in enumerate(rows):
        dx = r["dx"].lower()
        if dx not in HAM10000_CLASSES:
            raise ValueError(f"{metadata}: row {i + 2}: unknown dx {r['dx']!r}; expected one of {HAM10000_CLASSES}.")
        label = HAM10000_CLASSES.index(dx) if label_mode == "dx" else int(dx in HAM10000_MALIGNANT)
        records.append(
            {
                "image": paths[r["image_id"]],
                "label": label,
                "image_id": r["image_id"],
                "lesion_id": r["lesion_id"],
                "sex": r["sex"],
                "age": to_float(r["age"]),
                "dx": dx,
            }
        )
    return build_fair_datalist(
        records,
        out,
        demographic_spec(attribute, unknown, age_bins),
        keep_keys=["image_id", "lesion_id", "sex", "age", "dx"],
        split_fractions=split_fractions,
        seed=seed,
        label_names=list(HAM10000_CLASSES) if label_mode == "dx" else ["benign", "malignant"],
        row_offset=2,
        source=str(metadata),
        cluster=[r["lesion_id"] or r["image_id"] for r in rows],
        extra={"source": {"dataset": "HAM10000", "file": Path(metadata).name, "attribute": attribute}},
    )
