# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""``python -m monai_fair report``: the fairness report from a predictions CSV.

Classification::

    python -m monai_fair report preds.csv --label-col label --pred-col pred --score-col score \\
        --group-col group --out report/

Segmentation (the pred/label columns hold NIfTI mask paths, relative to the CSV's folder)::

    python -m monai_fair report preds.csv --task segmentation --label-col label --pred-col pred \\
        --group-col group --out report/
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.utils import optional_import

from monai_fair.metrics.group_segmentation import compute_per_image_dice_iou
from monai_fair.report.writer import format_report_summary, write_fairness_report

nib, has_nib = optional_import("nibabel")

__all__ = ["add_report_parser", "run_report", "read_predictions_csv"]


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to an ``argparse`` subparsers object (sets ``func``)."""
    p = subparsers.add_parser(
        "report",
        help="fairness report (JSON, Markdown, PNG) from a predictions CSV",
        description="Write report.json, report.md and PNG plots of per-group metrics and fairness metrics.",
    )
    p.add_argument("predictions", help="CSV file with one row per sample")
    p.add_argument("--task", choices=["classification", "segmentation"], default="classification")
    p.add_argument("--label-col", default="label", help="true label (classification) or label mask path")
    p.add_argument("--pred-col", default="pred", help="predicted label (classification) or predicted mask path")
    p.add_argument(
        "--score-col",
        nargs="+",
        default=None,
        help="positive-class probability column (binary), or one column per class (multi-class); gives AUC",
    )
    p.add_argument("--group-col", default="group", help="group id (0..K-1) or group name")
    p.add_argument("--group-names", default=None, help="comma-separated names of group ids 0..K-1")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--min-group-size", type=int, default=10)
    p.add_argument("--n-bootstrap", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ci", type=float, default=0.95)
    p.add_argument(
        "--stratified-bootstrap",
        action="store_true",
        help="resample within each group (group sizes fixed) instead of over all rows",
    )
    p.add_argument("--num-classes", type=int, default=2, help="segmentation: label values 0..C-1 (2: mask > 0)")
    p.add_argument("--include-background", action="store_true", help="segmentation: include label 0 in Dice/IoU")
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(func=run_report)
    return p


def read_predictions_csv(path: str | Path, columns: Sequence[str]) -> dict[str, list[str]]:
    """Read ``columns`` of a CSV file; raises ``ValueError`` naming a missing column or an empty cell."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions CSV not found: {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; the header has {header}.")
        out: dict[str, list[str]] = {c: [] for c in columns}
        for i, row in enumerate(reader, start=2):
            for c in columns:
                v = (row.get(c) or "").strip()
                if v == "":
                    raise ValueError(f"{path}: empty value in column {c!r} at line {i}.")
                out[c].append(v)
    return out


def _groups(values: list[str], names_arg: str | None, path: Path, col: str) -> tuple[np.ndarray, list[str]]:
    names = [n.strip() for n in names_arg.split(",")] if names_arg else None
    if all(v.lstrip("-").isdigit() for v in values):
        ids = np.array([int(v) for v in values], dtype=np.int64)
        if ids.min() < 0:
            raise ValueError(f"{path}: negative group id in column {col!r}.")
        k = int(ids.max()) + 1
        if names is None:
            names = [str(i) for i in range(k)]
        elif len(names) < k:
            raise ValueError(f"{path}: group id {k - 1} in column {col!r} has no name in --group-names {names}.")
        return ids, names
    if names is None:
        names = sorted(set(values))
    lookup = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(values) - set(lookup))
    if unknown:
        raise ValueError(f"{path}: unknown group(s) {unknown} in column {col!r} (known: {names}).")
    return np.array([lookup[v] for v in values], dtype=np.int64), names


def _float(values: list[str], path: Path, col: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{path}: non-numeric value in column {col!r}: {e}") from e


def _load_mask(p: str, base: Path) -> np.ndarray:
    f = Path(p) if Path(p).is_absolute() else base / p
    if not f.is_file():
        raise FileNotFoundError(f"mask file not found: {f}")
    try:
        return np.asarray(nib.load(str(f)).dataobj)
    except Exception as e:  # nibabel raises several types for corrupt files
        raise ValueError(f"cannot read mask {f}: {e}") from e


def _per_image_scores(
    preds: list[str], labels: list[str], base: Path, num_classes: int, include_background: bool
) -> tuple[np.ndarray, np.ndarray]:
    dice, iou = np.empty(len(preds)), np.empty(len(preds))
    for k, (pp, lp) in enumerate(zip(preds, labels)):  # one image at a time: volumes may be large
        pm, lm = _load_mask(pp, base), _load_mask(lp, base)
        if pm.shape != lm.shape:
            raise ValueError(f"prediction {pp} {pm.shape} and label {lp} {lm.shape} differ in shape.")
        pt = torch.as_tensor(np.rint(pm).astype(np.int64))
        lt = torch.as_tensor(np.rint(lm).astype(np.int64))
        if num_classes == 2:
            pt, lt = (pt > 0).long(), (lt > 0).long()
        elif int(max(pt.max(), lt.max())) >= num_classes:
            raise ValueError(f"label value >= --num-classes {num_classes} in {pp} or {lp}.")
        p1 = torch.nn.functional.one_hot(pt, num_classes).movedim(-1, 0)[None].float()
        l1 = torch.nn.functional.one_hot(lt, num_classes).movedim(-1, 0)[None].float()
        d, i = compute_per_image_dice_iou(p1, l1, include_background=include_background)
        dice[k], iou[k] = float(d[0]), float(i[0])
    return dice, iou


def run_report(args: argparse.Namespace) -> int:
    """Run the ``report`` subcommand; prints the summary and returns 0."""
    path = Path(args.predictions)
    if args.task == "classification":
        cols = [args.label_col, args.pred_col, args.group_col] + list(args.score_col or [])
        data = read_predictions_csv(path, cols)
        group, names = _groups(data[args.group_col], args.group_names, path, args.group_col)
        y = _float(data[args.label_col], path, args.label_col)
        y_pred = _float(data[args.pred_col], path, args.pred_col)
        for col, v in ((args.label_col, y), (args.pred_col, y_pred)):
            if not np.all(v == np.round(v)):
                raise ValueError(f"{path}: column {col!r} must hold integer class labels.")
        y_score = None
        if args.score_col:
            sc = np.stack([_float(data[c], path, c) for c in args.score_col], 1)
            y_score = sc[:, 0] if sc.shape[1] == 1 else sc
        report = write_fairness_report(
            args.out,
            "classification",
            y.astype(np.int64),
            group,
            names,
            y_score=y_score,
            y_pred=y_pred.astype(np.int64),
            min_group_size=args.min_group_size,
            n_bootstrap=args.n_bootstrap,
            seed=args.seed,
            ci=args.ci,
            plots=not args.no_plots,
            stratified_bootstrap=args.stratified_bootstrap,
        )
    else:
        if not has_nib:
            raise ImportError("nibabel is needed for --task segmentation.")
        data = read_predictions_csv(path, [args.label_col, args.pred_col, args.group_col])
        group, names = _groups(data[args.group_col], args.group_names, path, args.group_col)
        dice, iou = _per_image_scores(
            data[args.pred_col], data[args.label_col], path.parent, args.num_classes, args.include_background
        )
        report = write_fairness_report(
            args.out,
            "segmentation",
            None,
            group,
            names,
            dice=dice,
            iou=iou,
            min_group_size=args.min_group_size,
            n_bootstrap=args.n_bootstrap,
            seed=args.seed,
            ci=args.ci,
            plots=not args.no_plots,
            stratified_bootstrap=args.stratified_bootstrap,
        )
    print(format_report_summary(report))
    print(f"report written to {args.out}")
    return 0
