# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Input normalisation of the classification statistics (the bottom layer of :mod:`monai_fair.metrics`): labels
(class ids or one-hot rows), one model's scores and decisions, and the inputs of the AUC functions, with one error
naming the argument for every malformed input. Imports only torch."""

from __future__ import annotations

from typing import Any

import torch

from monai_fair.metrics.utils import to_flat_tensor
from monai_fair.utils.validation import check_group_ids

__all__ = ["parse_labels", "parse_model", "auc_inputs"]


def parse_labels(y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N,)`` long labels (one-hot rows -> argmax) and the rows whose label is NaN."""
    yt = to_flat_tensor(y, "y")
    if yt.ndim == 2 and yt.shape[1] > 1:  # one-hot labels
        yt = yt.argmax(1)
    yt = yt.reshape(-1)
    nan_rows = torch.zeros(yt.numel(), dtype=torch.bool)
    if yt.is_floating_point():
        nan_rows = torch.isnan(yt)
        yt = torch.nan_to_num(yt, nan=0.0)
        if not torch.equal(yt, yt.round()):
            raise ValueError("`y` must hold integer class labels (or one-hot rows).")
    return yt.long(), nan_rows


def parse_model(
    y_score: Any, y_pred: Any, yt: torch.Tensor, threshold: float, num_classes: int | None
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, int]:
    """One model's score columns ``(N, A)`` (or None), predictions ``(N,)``, NaN rows and number of classes."""
    n = yt.numel()
    s_cols, y_hat, nan_rows = None, None, torch.zeros(n, dtype=torch.bool)
    if y_score is not None:
        st = to_flat_tensor(y_score, "y_score", torch.float64)
        if st.ndim not in (1, 2):
            raise ValueError(f"`y_score` must be (N,) or (N, C), got shape {tuple(st.shape)}.")
        st = st.reshape(-1, 1) if st.ndim == 1 else st
        c_score = 2 if st.shape[1] == 1 else st.shape[1]
        if st.shape[0] != n:
            raise ValueError(f"`y_score` has {st.shape[0]} rows but `y` has {n}.")
        if num_classes is not None and num_classes != c_score:
            raise ValueError(f"num_classes={num_classes} but `y_score` has {c_score} class columns.")
        num_classes = c_score
        nan_rows = torch.isnan(st).any(1)
        st = torch.nan_to_num(st, nan=0.0)
        s_cols = st[:, -1:].contiguous() if c_score == 2 else st
        y_hat = (s_cols[:, 0] >= threshold).long() if c_score == 2 else st.argmax(1)
    if y_pred is not None:
        yp = to_flat_tensor(y_pred, "y_pred")
        yp = (yp.argmax(1) if yp.ndim == 2 and yp.shape[1] > 1 else yp).reshape(-1)
        if yp.numel() != n:
            raise ValueError(f"`y_pred` has {yp.numel()} entries but `y` has {n}.")
        if yp.is_floating_point():
            nan_rows = nan_rows | torch.isnan(yp)
            yp = torch.nan_to_num(yp, nan=0.0)
        y_hat = yp.long()
        if num_classes is None:
            num_classes = max(int(yt.max()) if n else 0, int(y_hat.max()) if n else 0, 1) + 1
    if y_hat is None:
        raise ValueError("give `y_score` (probabilities) and/or `y_pred` (predicted labels).")
    if n and (int(y_hat.min()) < 0 or int(y_hat.max()) >= num_classes):
        raise ValueError(f"`y_pred` labels must be in [0, {num_classes}).")
    return s_cols, y_hat, nan_rows, int(num_classes)


def auc_inputs(y_score: Any, y: Any, group: Any, num_groups: int | None):
    """``scores (N, A)``, ``positive (N, A)``, group ids and ``G`` for AUC functions (NaN-free inputs required)."""
    yt, nan_y = parse_labels(y)
    s_cols, _, nan_s, c = parse_model(y_score, None, yt, 0.5, None)
    if bool((nan_y | nan_s).any()):
        raise ValueError("`y_score`/`y` contain NaN; drop those samples first.")
    g = check_group_ids(group, num_groups, num_samples=yt.numel())
    num_groups = num_groups if num_groups is not None else max(int(g.max()) + 1 if g.numel() else 1, 1)
    positive = (yt == 1)[:, None] if c == 2 else yt[:, None] == torch.arange(c)[None, :]
    return s_cols, positive, g, num_groups
