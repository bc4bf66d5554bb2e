# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Vectorised per-group sufficient statistics: weighted confusion matrices and per-group ROC AUC.

Both functions accept bootstrap multiplicity weights ``(B, N)`` so that all replicates are computed in one
pass; ``weights=None`` is the plain data (``B = 1``). There is no Python loop over samples, groups or classes.

Per-group AUC (Mann-Whitney U with midranks for ties, i.e. the value of ``sklearn.metrics.roc_auc_score``): the
scores are sorted once (numpy's vectorised quicksort, the only comparison sort; a radix sort of the group ids then
gives the (group, score) order), every (score column, group, score) triple is a tie block, and for each block the
weighted number of negatives ranked strictly below it inside its (column, group) segment is an exclusive cumulative
sum. Then

.. math:: AUC_g = \\frac{\\sum_{i \\in pos_g} w_i\\,(N^{<}_i + \\tfrac{1}{2} N^{=}_i)}{W^{pos}_g\\, W^{neg}_g}
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["weighted_confusion", "segment_auc", "GroupAUC"]


def weighted_confusion(
    y: torch.Tensor,
    y_hat: torch.Tensor,
    group: torch.Tensor,
    num_groups: int,
    num_classes: int,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-group confusion matrices ``cm[b, g, true, pred]`` (float64).

    Args:
        y: ``(N,)`` true class ids in ``[0, num_classes)``.
        y_hat: ``(N,)`` predicted class ids.
        group: ``(N,)`` group ids in ``[0, num_groups)``.
        num_groups: number of groups ``G``.
        num_classes: number of classes ``C``.
        weights: ``(B, N)`` sample multiplicities, or ``None`` for one replicate of unit weights.
    """
    size = num_groups * num_classes * num_classes
    key = (group * num_classes + y) * num_classes + y_hat
    if weights is None:
        cm = torch.bincount(key, minlength=size).to(torch.float64)[None]
    else:
        cm = torch.zeros(weights.shape[0], size, dtype=torch.float64).index_add_(1, key, weights)
    return cm.view(-1, num_groups, num_classes, num_classes)


def _tie_blocks(
    flat_scores: np.ndarray, seg: np.ndarray, perm: np.ndarray, num_segments: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Order the entries by (segment, score) and label the tie blocks.

    ``perm`` sorts ``flat_scores``; a stable sort of the segment ids in that order (numpy's radix sort for
    16-bit ids) gives the (segment, score) order without a second comparison sort.
    """
    if num_segments == 1:  # one segment: the score order is the order
        order = perm
        seg_o = np.zeros(perm.size, dtype=np.int64)
    else:
        seg_sorted = seg[perm]
        if num_segments <= np.iinfo(np.uint16).max:
            seg_sorted = seg_sorted.astype(np.uint16)
        perm2 = np.argsort(seg_sorted, kind="stable")
        order = perm[perm2]
        seg_o = seg_sorted[perm2].astype(np.int64)
    s_o = flat_scores[order]
    new = np.empty(order.size, dtype=bool)
    new[:1] = True
    np.not_equal(s_o[1:], s_o[:-1], out=new[1:])
    if num_segments > 1:
        new[1:] |= seg_o[1:] != seg_o[:-1]
    block = np.cumsum(new) - 1
    blk_seg = seg_o[new]
    return torch.from_numpy(order), torch.from_numpy(block), torch.from_numpy(blk_seg), int(blk_seg.size)


def _auc_from_blocks(
    pos_o: torch.Tensor,
    w_o: torch.Tensor | None,
    block: torch.Tensor,
    blk_seg: torch.Tensor,
    num_blocks: int,
    n_seg: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mann-Whitney AUC per segment from entries in (segment, score) order; returns (auc, n_pos, n_neg) (B, n_seg)."""
    if w_o is None:
        wp = torch.bincount(block, weights=pos_o, minlength=num_blocks).to(torch.float64)[None]
        wn = torch.bincount(block, minlength=num_blocks).to(torch.float64)[None] - wp
    else:
        b = w_o.shape[0]
        wp = torch.zeros(b, num_blocks, dtype=torch.float64).index_add_(1, block, w_o * pos_o)
        wn = torch.zeros(b, num_blocks, dtype=torch.float64).index_add_(1, block, w_o) - wp
    cum_n = torch.cumsum(wn, dim=1) - wn  # exclusive cumulative negatives ...
    _, seg_counts = torch.unique_consecutive(blk_seg, return_counts=True)
    seg_start = torch.repeat_interleave(torch.cumsum(seg_counts, 0) - seg_counts, seg_counts)
    below = cum_n - cum_n[:, seg_start]  # ... restarted at the first block of every segment
    num = wp * (below + 0.5 * wn)
    b = wp.shape[0]
    u_stat = torch.zeros(b, n_seg, dtype=torch.float64).index_add_(1, blk_seg, num)
    n_pos = torch.zeros(b, n_seg, dtype=torch.float64).index_add_(1, blk_seg, wp)
    n_neg = torch.zeros(b, n_seg, dtype=torch.float64).index_add_(1, blk_seg, wn)
    denom = n_pos * n_neg
    auc = torch.where(denom > 0, u_stat / denom.clamp_min(1e-300), torch.full_like(denom, float("nan")))
    return auc, n_pos, n_neg


class GroupAUC:
    """Per-group and overall one-vs-rest ROC AUC with the sort done once, reusable for many weightings.

    Args:
        scores: ``(N, A)`` scores, one column per one-vs-rest problem (NaN-free).
        positive: ``(N, A)`` bool, True where the sample is a positive of that column.
        segment: ``(N,)`` segment (group) ids in ``[0, num_segments)``.
        num_segments: number of segments ``S``.
    """

    def __init__(self, scores: torch.Tensor, positive: torch.Tensor, segment: torch.Tensor, num_segments: int) -> None:
        n, a = scores.shape
        self.n, self.a, self.s = n, a, num_segments
        flat = scores.to(torch.float64).t().reshape(-1).numpy()  # column-major: entry k = (col k // N, sample k % N)
        seg_np = segment.numpy().astype(np.int64)
        col = np.repeat(np.arange(a, dtype=np.int64), n) if a > 1 else np.zeros(n, dtype=np.int64)
        seg_g = col * num_segments + np.tile(seg_np, a) if a > 1 else seg_np
        perm = np.argsort(flat)  # the only comparison sort
        self.groups = _tie_blocks(flat, seg_g, perm, a * num_segments)
        self.total = _tie_blocks(flat, col, perm, a)
        pos = positive.t().reshape(-1).to(torch.float64)
        self.pos_g = pos[self.groups[0]]
        self.pos_t = pos[self.total[0]]

    def __call__(self, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``auc_groups (B, S, A)`` and ``auc_overall (B, A)`` for weights ``(B, N)`` (``None``: unit weights)."""
        out = []
        for (order, block, blk_seg, nb), pos, n_seg in (
            (self.groups, self.pos_g, self.a * self.s),
            (self.total, self.pos_t, self.a),
        ):
            w_o = None if weights is None else weights[:, order % self.n]
            auc, _, _ = _auc_from_blocks(pos, w_o, block, blk_seg, nb, n_seg)
            out.append(auc)
        b = out[0].shape[0]
        return out[0].view(b, self.a, self.s).transpose(1, 2), out[1]


def segment_auc(
    scores: torch.Tensor,
    positive: torch.Tensor,
    segment: torch.Tensor,
    num_segments: int,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """ROC AUC ``(B, S, A)`` of every score column within every segment (ties counted one half; NaN where a
    segment has no positive or no negative). See :class:`GroupAUC`."""
    return GroupAUC(scores, positive, segment, num_segments)(weights)[0]
