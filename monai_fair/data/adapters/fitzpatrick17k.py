# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Fitzpatrick17k (Groh et al., CVPR-W 2021) -> monai-fair datalist.

Input: ``fitzpatrick17k.csv`` with the columns
``md5hash,fitzpatrick_scale,fitzpatrick_centaur,label,nine_partition_label,three_partition_label,qc,url,url_alphanum``
and a folder of ``<md5hash>.jpg`` images. ``fitzpatrick_scale`` (self-described) and ``fitzpatrick_centaur``
(Centaur Labs annotation) are integers 1..6, with ``-1`` for unknown. ``label`` is one of 114 conditions,
``three_partition_label`` is ``benign``/``malignant``/``non-neoplastic``.

Skin-tone groups: ``grouping="binary"``: light (types I-III) / dark (IV-VI); ``grouping="six"``: one group per
type. Unknown (-1 or empty) is handled by the explicit ``unknown`` policy (``"separate"`` by default: an ``unknown``
group; ``"error"`` or ``"drop"``): it is never silently merged into a tone group. (Some public code maps -1 into
the dark group; see docs/data.md.)

Verified: the column list, the -1 code and the ``<md5hash>.jpg`` naming against public code and data dictionaries
that read this file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from monai_fair.data.adapters._common import find_images, read_csv_rows, to_float
from monai_fair.data.groups import GroupSpec
from monai_fair.data.records import build_fair_datalist

__all__ = ["fitzpatrick17k_datalist"]

COLUMNS = (
    "md5hash",
    "fitzpatrick_scale",
    "fitzpatrick_centaur",
    "label",
    "nine_partition_label",
    "three_partition_label",
    "qc",
    "url",
    "url_alphanum",
)
LABEL_COLUMNS = ("label", "nine_partition_label", "three_partition_label")


def fitzpatrick17k_datalist(
    metadata: str | os.PathLike,
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    grouping: str = "binary",
    scale_col: str = "fitzpatrick_scale",
    label_col: str = "three_partition_label",
    unknown: str = "separate",
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    check_images: bool = True,
) -> Path:
    """Build the datalist.

    Args:
        metadata: ``fitzpatrick17k.csv``.
        images: folder with ``<md5hash>.jpg``.
        out: datalist JSON to write.
        grouping: ``"binary"`` (light I-III = 0, dark IV-VI = 1) or ``"six"`` (types 1..6 -> ids 0..5).
        scale_col: ``"fitzpatrick_scale"`` or ``"fitzpatrick_centaur"``.
        label_col: which label column is the class (sorted unique names -> ids, stored as ``label_names``).
        unknown: policy for a scale of -1/empty: ``"separate"`` (default: an ``unknown`` group), ``"error"`` (lists
            the rows) or ``"drop"``.
    """
    if grouping not in ("binary", "six"):
        raise ValueError(f"grouping must be 'binary' or 'six', got {grouping!r}.")
    if scale_col not in ("fitzpatrick_scale", "fitzpatrick_centaur"):
        raise ValueError(f"scale_col must be fitzpatrick_scale or fitzpatrick_centaur, got {scale_col!r}.")
    if label_col not in LABEL_COLUMNS:
        raise ValueError(f"label_col must be one of {LABEL_COLUMNS}, got {label_col!r}.")
    rows = read_csv_rows(metadata, COLUMNS)
    names = sorted({r[label_col] for r in rows})
    if "" in names:
        bad = next(i for i, r in enumerate(rows) if not r[label_col])
        raise ValueError(f"{metadata}: row {bad + 2} has an empty {label_col!r}.")
    paths = find_images([r["md5hash"] for r in rows], images, check=check_images)
    records = []
    for i, r in enumerate(rows):
        value = to_float(r[scale_col])
        if value is not None and value != -1 and (value not in (1, 2, 3, 4, 5, 6)):
            raise ValueError(f"{metadata}: row {i + 2}: {scale_col}={r[scale_col]!r} is not 1..6 or -1 (unknown).")
        tone = None if value is None or value == -1 else int(value)
        records.append(
            {
                "image": paths[r["md5hash"]],
                "label": names.index(r[label_col]),
                "md5hash": r["md5hash"],
                "fitzpatrick": tone,
                "condition": r["label"],
            }
        )
    if grouping == "binary":
        spec = GroupSpec.binned("fitzpatrick", [1, 4, 7], labels=["light", "dark"], unknown=unknown)
    else:
        spec = GroupSpec.categorical("fitzpatrick", [str(k) for k in range(1, 7)], unknown=unknown)
    return build_fair_datalist(
        records,
        out,
        spec,
        keep_keys=["md5hash", "fitzpatrick", "condition"],
        split_fractions=split_fractions,
        seed=seed,
        label_names=names,
        row_offset=2,
        source=str(metadata),
        extra={
            "source": {
                "dataset": "Fitzpatrick17k",
                "file": Path(metadata).name,
                "scale_col": scale_col,
                "grouping": grouping,
            }
        },
    )
