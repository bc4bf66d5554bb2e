# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Per-image Dice/IoU of a segmentation predictions CSV (report CLI): from its ``dice``/``iou`` columns (the bundles'
``predictions.csv``), or from the NIfTI masks its pred/label columns name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.utils import optional_import

from monai_fair.metrics.cumulative import compute_per_image_dice_iou
from monai_fair.report.inputs import SegmentationInputs
from monai_fair.report.predictions import (
    ReportInputError,
    group_ids,
    missing_cells,
    parse_floats,
    pick_column,
    read_csv_columns,
    stripped_cells,
)

nib, has_nib = optional_import("nibabel")

__all__ = ["read_segmentation_table"]


def _load_mask(p: str, base: Path) -> np.ndarray:
    f = Path(p) if Path(p).is_absolute() else base / p
    if not f.is_file():
        raise ReportInputError(f"mask file not found: {f}")
    try:
        return np.asarray(nib.load(str(f)).dataobj)
    except Exception as e:  # nibabel raises several types for corrupt files
        raise ReportInputError(f"cannot read mask {f}: {type(e).__name__}: {e}") from e


def read_segmentation_table(
    path: str | Path,
    *,
    label_col: str | None = None,
    pred_col: str | None = None,
    group_col: str | None = None,
    cluster_col: str | None = None,
    group_aliases: Mapping[str, str] | None = None,
    group_names: Sequence[str] | None = None,
    nan_policy: str = "omit",
    num_classes: int = 2,
    include_background: bool = False,
) -> SegmentationInputs:
    """Per-image Dice/IoU, groups, clusters and omitted count of a segmentation predictions CSV.

    With a ``dice`` column (and no ``label_col``/``pred_col`` given) the per-image scores are read from the
    ``dice`` and, when present, ``iou`` columns. Otherwise mask pairs are read (paths relative to the CSV's folder),
    one image at a time (volumes may be large).

    ``num_classes=2`` treats ``mask > 0`` as foreground; otherwise label values ``0..C-1`` are one-hot encoded and
    Dice/IoU averaged over the foreground classes (MONAI ``compute_dice``/``compute_iou``).
    """
    if not has_nib:
        raise ImportError("nibabel is needed for --task segmentation.")
    path = Path(path)
    header, cols = read_csv_columns(path, numeric=("dice", "iou"))
    if "dice" in header and label_col is None and pred_col is None:
        return _scores_from_columns(path, header, cols, group_col, cluster_col, group_aliases, group_names, nan_policy)
    lab_c = pick_column(header, label_col, "label", path, True)
    pr_c = pick_column(header, pred_col, "pred", path, True)
    grp_c = pick_column(header, group_col, "group", path, True)
    clu_c = pick_column(header, cluster_col, "cluster", path, False)
    raw = {c: stripped_cells(cols[c]) for c in (lab_c, pr_c, grp_c)}
    miss = np.zeros(len(raw[lab_c]), dtype=bool)
    for c, v in raw.items():
        m = missing_cells(v)
        if m.any() and nan_policy == "error":
            raise ReportInputError(f"{path}, line {int(np.flatnonzero(m)[0]) + 2}: column {c!r} is empty.")
        miss |= m
    keep = ~miss
    if not keep.any():
        raise ReportInputError(f"{path}: every row has an empty prediction, label or group.")
    group, names = group_ids(raw[grp_c][keep], path, grp_c, group_aliases or {}, group_names)
    _check_masks(raw[pr_c][keep], raw[lab_c][keep], path, pr_c)
    preds, labels = raw[pr_c][keep].tolist(), raw[lab_c][keep].tolist()
    dice, iou = np.empty(len(preds)), np.empty(len(preds))
    for k, (pp, lp) in enumerate(zip(preds, labels)):
        pm, lm = _load_mask(pp, path.parent), _load_mask(lp, path.parent)
        if pm.shape != lm.shape:
            raise ReportInputError(f"prediction {pp} {pm.shape} and label {lp} {lm.shape} differ in shape.")
        pt = torch.as_tensor(np.rint(pm).astype(np.int64))
        lt = torch.as_tensor(np.rint(lm).astype(np.int64))
        if num_classes == 2:
            pt, lt = (pt > 0).long(), (lt > 0).long()
        elif int(max(pt.max(), lt.max())) >= num_classes:
            raise ReportInputError(f"label value >= --num-classes {num_classes} in {pp} or {lp}.")
        p1 = torch.nn.functional.one_hot(pt, num_classes).movedim(-1, 0)[None].float()
        l1 = torch.nn.functional.one_hot(lt, num_classes).movedim(-1, 0)[None].float()
        d, i = compute_per_image_dice_iou(p1, l1, include_background=include_background)
        dice[k], iou[k] = float(d[0]), float(i[0])
    cluster = None
    if clu_c is not None:
        _, cluster = np.unique(stripped_cells(cols[clu_c])[keep], return_inverse=True)
    return SegmentationInputs(
        dice=dice, iou=iou, group=group, group_names=names, n_omitted=int(miss.sum()), cluster=cluster
    )


def _check_masks(preds: np.ndarray, labels: np.ndarray, path: Path, pred_col: str) -> None:
    if preds.size and not any(p.endswith((".nii", ".nii.gz")) for p in preds.tolist()):
        raise ReportInputError(
            f"{path}: column {pred_col!r} holds no NIfTI mask paths (e.g. {preds[0]!r}); give a CSV with mask paths or "
            "per-image dice/iou columns."
        )


def _scores_from_columns(
    path: Path,
    header: list[str],
    cols: dict[str, list[str]],
    group_col: str | None,
    cluster_col: str | None,
    group_aliases: Mapping[str, str] | None,
    group_names: Sequence[str] | None,
    nan_policy: str,
) -> SegmentationInputs:
    grp_c = pick_column(header, group_col, "group", path, True)
    clu_c = pick_column(header, cluster_col, "cluster", path, False)
    used = [grp_c, "dice"] + (["iou"] if "iou" in header else [])
    raw = {c: stripped_cells(cols[c]) for c in used}
    miss = np.zeros(len(raw["dice"]), dtype=bool)
    for c in used:
        m = missing_cells(raw[c])
        if m.any() and nan_policy == "error":
            raise ReportInputError(
                f"{path}, line {int(np.flatnonzero(m)[0]) + 2}: column {c!r} is empty or NaN; "
                "use --nan-policy omit to drop and count such rows."
            )
        miss |= m
    keep = ~miss
    if not keep.any():
        raise ReportInputError(f"{path}: every row has an empty value in one of the columns {used}.")
    group, names = group_ids(raw[grp_c][keep], path, grp_c, group_aliases or {}, group_names)
    dice = parse_floats(raw["dice"], path, "dice")[keep]
    iou = parse_floats(raw["iou"], path, "iou")[keep] if "iou" in raw else None
    for name, v in (("dice", dice), ("iou", iou)):
        if v is not None and ((v < 0) | (v > 1)).any():
            raise ReportInputError(f"{path}: column {name!r} holds values outside [0, 1].")
    cluster = None
    if clu_c is not None:
        _, cluster = np.unique(stripped_cells(cols[clu_c])[keep], return_inverse=True)
    return SegmentationInputs(
        dice=dice, iou=iou, group=group, group_names=names, n_omitted=int(miss.sum()), cluster=cluster
    )
