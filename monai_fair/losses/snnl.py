# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Soft Nearest Neighbour Loss (SNNL), computed in log space, as a regulariser and as a channel scorer.

Frosst, Papernot & Hinton, "Analyzing and Improving Representations with the Soft Nearest Neighbor Loss",
ICML 2019 (arXiv 1902.01889); used on the *sensitive attribute* by Kong et al., "Achieving Fairness Through
Channel Pruning for Dermatological Disease Diagnosis", MICCAI 2024 (arXiv 2405.08681).

For a batch ``{(x_i, y_i)}_{i=1..b}``, a distance ``d`` and a temperature ``T``:

.. math::

    \\ell_{SN} = -\\frac{1}{|V|} \\sum_{i \\in V}
        \\log \\frac{\\sum_{j \\ne i, y_j = y_i} e^{-d(x_i, x_j)/T}}{\\sum_{k \\ne i} e^{-d(x_i, x_k)/T}}

where ``V`` is the set of anchors that have at least one same-label partner. Anchors without one (a label
seen once in the batch) have an empty numerator; they are dropped and counted instead of being patched with
an ``eps`` (which would bias the value). Low SNNL = same-label points are each other's nearest neighbours
(labels are separable in the features); high SNNL = labels are entangled.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

__all__ = ["snnl_per_anchor", "compute_snnl", "SoftNearestNeighborLoss"]

_DISTANCES = ("cosine", "sqeuclidean")


def _pairwise_distance(x: torch.Tensor, distance: str, eps: float) -> torch.Tensor:
    """Pairwise distances of ``x`` (..., b, D) -> (..., b, b), clamped at 0."""
    if distance == "cosine":
        xn = F.normalize(x, p=2.0, dim=-1, eps=eps)
        d = 1.0 - xn @ xn.transpose(-1, -2)
    elif distance == "sqeuclidean":
        sq = (x * x).sum(-1)
        d = sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2.0 * (x @ x.transpose(-1, -2))
    else:
        raise ValueError(f"distance must be one of {_DISTANCES}, got {distance!r}.")
    return d.clamp_min(0.0)


def snnl_per_anchor(
    features: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 1.0,
    distance: str = "cosine",
    legacy_self_term: bool = False,
    eps: float = 1e-12,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-anchor SNNL terms for one or many feature sets sharing the same labels (log space, fp32).

    Args:
        features: ``(..., b, D)`` features; leading dimensions (e.g. channels ``C``) are independent feature
            sets scored on the same batch, so ``(C, b, D)`` gives all channels' values in one computation.
        labels: ``(b,)`` integer labels (for fairness scoring: the sensitive-attribute group ids).
        temperature: fixed temperature ``T > 0`` (no temperature optimisation, so values are comparable).
        distance: ``"cosine"`` (``1 - cos``, clamped at 0) or ``"sqeuclidean"``.
        legacy_self_term: reproduce the public SCP repository's quirk: the numerator's same-label mask includes
            the anchor itself (``exp(0) = 1``), i.e. the per-anchor ratio is ``(1 + sum_same) / sum_others``.
            Then every anchor has a "partner" and a single-group batch gives a small *negative* value.
        eps: numerical floor used only to normalise zero vectors for the cosine distance.

    Returns:
        ``(terms, valid)``: ``terms`` is ``(..., b)`` with ``-log(num/den)`` per anchor (NaN where the anchor is
        not valid) and ``valid`` is the ``(b,)`` bool mask of anchors that have a same-label partner (and at
        least one other sample in the batch).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    if features.ndim < 2:
        raise ValueError(f"features must be (..., b, D), got shape {tuple(features.shape)}.")
    labels = torch.as_tensor(labels, device=features.device).reshape(-1)
    b = features.shape[-2]
    if labels.numel() != b:
        raise ValueError(f"labels has {labels.numel()} entries but features has batch size {b}.")
    x = features.float()  # fp32 even under AMP
    if type(x) is not torch.Tensor:  # e.g. MONAI MetaTensor: no metadata bookkeeping on (.., b, b) tensors
        x = x.as_subclass(torch.Tensor)
    if not torch.isfinite(x).all():
        raise ValueError("SNNL features contain NaN or Inf values.")
    with torch.autocast(device_type=x.device.type, enabled=False):
        logits = -_pairwise_distance(x, distance, eps) / float(temperature)
        eye = torch.eye(b, dtype=torch.bool, device=x.device)
        same = labels.unsqueeze(0) == labels.unsqueeze(1)
        neg_inf = torch.tensor(float("-inf"), dtype=logits.dtype, device=logits.device)
        den_logits = torch.where(eye, neg_inf, logits)
        if legacy_self_term:
            num_logits = torch.where(eye, torch.zeros_like(logits), torch.where(same, logits, neg_inf))
            valid = torch.full((b,), b > 1, dtype=torch.bool, device=x.device)
        else:
            partner = same & ~eye
            num_logits = torch.where(partner, logits, neg_inf)
            valid = partner.any(-1)
        log_num = torch.logsumexp(num_logits, dim=-1)
        log_den = torch.logsumexp(den_logits, dim=-1)
        terms = torch.where(valid, log_den - log_num, torch.full_like(log_num, float("nan")))
    return terms, valid


def compute_snnl(
    features: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 1.0,
    distance: str = "cosine",
    legacy_self_term: bool = False,
    eps: float = 1e-12,
) -> tuple[torch.Tensor, int]:
    """Soft Nearest Neighbour Loss of a batch, mean over valid anchors (see module docstring for the formula).

    Args:
        features: ``(b, ...)`` features; everything after the batch dimension is flattened.
        labels: ``(b,)`` integer labels.
        temperature, distance, legacy_self_term, eps: see :func:`snnl_per_anchor`.

    Returns:
        ``(loss, num_dropped)``: the scalar loss (0, still attached to the graph, when no anchor is valid,
        e.g. every label occurs once) and the number of anchors dropped for lack of a same-label partner.
    """
    x = features.reshape(features.shape[0], -1)
    terms, valid = snnl_per_anchor(x, labels, temperature, distance, legacy_self_term, eps)
    n_valid = int(valid.sum())
    if n_valid == 0:
        return x.float().sum() * 0.0, int(valid.numel())
    return terms[valid].mean(), int(valid.numel()) - n_valid


class SoftNearestNeighborLoss(_Loss):
    """Soft Nearest Neighbour Loss (Frosst et al. 2019) in log space; ``loss(features, labels)``.

    ``-1/|V| sum_{i in V} log( sum_{j!=i, y_j=y_i} exp(-d_ij/T) / sum_{k!=i} exp(-d_ik/T) )``, computed with
    ``logsumexp`` (no underflow for far-apart points or small ``T``), in fp32 under AMP, diagonal excluded.
    Anchors with no same-label partner are dropped; their count is in ``self.last_num_dropped``.

    Usable as a regulariser on any layer's features (e.g. ``ce + alpha * snnl(feat, group)``: a positive weight
    *disentangles* the groups, a negative weight *entangles* them, i.e. hides the sensitive attribute), and as
    the scorer of :func:`monai_fair.networks.channel_scoring.score_channels_snnl`.

    Args:
        temperature: fixed temperature (the SCP code uses 1 with the cosine distance; cleverhans uses 100).
        distance: ``"cosine"`` or ``"sqeuclidean"`` (the original paper's choice).
        legacy_self_term: reproduce the public SCP code's numerator, which includes the anchor itself.
        eps: floor for normalising zero vectors (cosine).

    Example::

        loss = SoftNearestNeighborLoss(temperature=1.0, distance="cosine")
        value = loss(features, group)        # features (b, ...) and group ids (b,)
    """

    def __init__(
        self, temperature: float = 1.0, distance: str = "cosine", legacy_self_term: bool = False, eps: float = 1e-12
    ) -> None:
        super().__init__()
        if distance not in _DISTANCES:
            raise ValueError(f"distance must be one of {_DISTANCES}, got {distance!r}.")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.temperature = float(temperature)
        self.distance = distance
        self.legacy_self_term = legacy_self_term
        self.eps = eps
        self.last_num_dropped = 0

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss, dropped = compute_snnl(
            features, labels, self.temperature, self.distance, self.legacy_self_term, self.eps
        )
        self.last_num_dropped = dropped
        if dropped == features.shape[0]:
            warnings.warn("SoftNearestNeighborLoss: no anchor has a same-label partner in this batch; loss is 0.")
        return loss
