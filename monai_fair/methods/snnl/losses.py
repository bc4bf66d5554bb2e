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

Public kernel API (no autograd; what channel scoring, :mod:`monai_fair.methods.snnl.scoring`, builds on): the
labels are indexed once per batch (:func:`snnl_label_index`), the per-sample statistic of every feature set once
(:func:`snnl_sample_stats`), then :func:`snnl_kernel` gives the per-anchor terms of any block of feature sets::

    index = snnl_label_index(groups)                    # (b,) labels -> dense index, one-hot, valid anchors
    stats = snnl_sample_stats(feats, "cosine")          # feats (C, b, D) fp32 -> (C, b)
    terms = snnl_kernel(feats[:16], stats[:16], index)  # (16, b) per-anchor terms, NaN where not valid
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from monai.utils import look_up_option
from torch.nn.modules.loss import _Loss

__all__ = [
    "SNNL_DISTANCES",
    "check_snnl_options",
    "SNNLLabelIndex",
    "snnl_label_index",
    "snnl_sample_stats",
    "snnl_kernel",
    "snnl_per_anchor",
    "compute_snnl",
    "SoftNearestNeighborLoss",
]

SNNL_DISTANCES = ("cosine", "sqeuclidean")


def check_snnl_options(temperature: float, distance: str) -> str:
    """Validate a temperature (``> 0``) and a distance name (:data:`SNNL_DISTANCES`); return the distance."""
    if not temperature > 0:
        raise ValueError(f"SNNL temperature must be > 0, got {temperature}.")
    if distance not in SNNL_DISTANCES:
        raise ValueError(f"SNNL distance must be one of {SNNL_DISTANCES}, got {distance!r}.")
    return look_up_option(distance, SNNL_DISTANCES)


def _pairwise_distance(x: torch.Tensor, distance: str, eps: float) -> torch.Tensor:
    """Pairwise distances of ``x`` (..., b, D) -> (..., b, b), clamped at 0."""
    if distance == "cosine":
        xn = F.normalize(x, p=2.0, dim=-1, eps=eps)
        d = 1.0 - xn @ xn.transpose(-1, -2)
    elif distance == "sqeuclidean":
        sq = (x * x).sum(-1)
        d = sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2.0 * (x @ x.transpose(-1, -2))
    else:
        raise ValueError(f"distance must be one of {SNNL_DISTANCES}, got {distance!r}.")
    return d.clamp_min(0.0)


class SNNLLabelIndex(NamedTuple):
    """The labels of one SNNL batch, indexed once (:func:`snnl_label_index`) and shared by every feature set.

    Attributes:
        inverse: ``(b,)`` dense label index ``0..G-1`` of every sample.
        onehot: ``(b, G)`` float one-hot matrix of ``inverse``.
        valid: ``(b,)`` bool, anchors that have a same-label partner (with ``legacy_self_term``: every anchor of a
            batch of >= 2 samples).
        legacy_self_term: whether ``valid`` (and :func:`snnl_kernel`) follow the SCP code's self term.
    """

    inverse: torch.Tensor
    onehot: torch.Tensor
    valid: torch.Tensor
    legacy_self_term: bool


def snnl_label_index(labels: torch.Tensor, legacy_self_term: bool = False) -> SNNLLabelIndex:
    """Index the ``(b,)`` labels of a batch once for :func:`snnl_kernel` (any integer labels; not re-validated).

    Args:
        labels: ``(b,)`` integer labels (for fairness scoring: group ids, validated by the caller with
            :func:`monai_fair.utils.check_group_ids`).
        legacy_self_term: the SCP code's numerator that includes the anchor itself (see :func:`snnl_per_anchor`).
    """
    labels = torch.as_tensor(labels).reshape(-1)
    _, inv = torch.unique(labels, return_inverse=True)
    onehot = F.one_hot(inv, int(inv.max()) + 1 if inv.numel() else 1).float()
    b = inv.numel()
    if legacy_self_term:
        valid = torch.full((b,), b > 1, dtype=torch.bool, device=inv.device)
    else:
        valid = onehot.sum(0)[inv] >= 2
    return SNNLLabelIndex(inv, onehot, valid, bool(legacy_self_term))


_TINY = 1e-31  # times b: fp32 sums of shifted exps below this may lose precision (denormals): recomputed exactly


def snnl_sample_stats(
    features: torch.Tensor, distance: str = "cosine", eps: float = 1e-12, check_finite: bool = False
) -> torch.Tensor:
    """Per-sample statistic of ``(..., b, D)`` fp32 features used by :func:`snnl_kernel`.

    The inverse norms ``1 / max(|x|, eps)`` (cosine) or the squared norms ``|x|^2`` (squared Euclidean): computed
    once for all feature sets of a batch, then sliced with the features.

    Args:
        features: ``(..., b, D)`` float32 features.
        distance: ``"cosine"`` or ``"sqeuclidean"``.
        eps: floor of the norm before inversion (cosine).
        check_finite: raise ``ValueError`` on NaN/Inf features, checked cheaply through the per-sample norms (a NaN
            or Inf in a sample makes its norm non-finite; the full scan runs only then, to tell it from a finite
            overflow).
    """
    distance = check_snnl_options(1.0, distance)
    if distance == "cosine":
        stat = torch.linalg.vector_norm(features, dim=-1)
    else:
        stat = (features * features).sum(-1)
    if check_finite and not torch.isfinite(stat).all() and not torch.isfinite(features).all():
        raise ValueError("SNNL features contain NaN or Inf values.")
    return stat.clamp_min_(eps).reciprocal_() if distance == "cosine" else stat


def snnl_kernel(
    features: torch.Tensor,
    stats: torch.Tensor,
    index: SNNLLabelIndex,
    temperature: float = 1.0,
    distance: str = "cosine",
) -> torch.Tensor:
    """Per-anchor SNNL terms ``(C, b)`` of ``C`` feature sets ``(C, b, D)`` (fp32) sharing one batch, no autograd.

    ``term_i = -log( sum_{j != i, y_j = y_i} exp(-d_ij/T) / sum_{k != i} exp(-d_ik/T) )`` (plus the anchor itself in
    the numerator when ``index.legacy_self_term``); NaN where the anchor is not valid (``index.valid``).

    ``stats`` is :func:`snnl_sample_stats`'s ``(C, b)`` output for the same features. One batched Gram matmul, scaled
    in place,
    gives the logits ``-d/T`` (``<= 0``, diagonal set to ``-inf`` in place); the exps are
    shifted by the row maximum (skipped for the cosine distance unless ``T`` is tiny: its logits lie in
    ``[-2/T, 0]``) and one matmul with the one-hot group matrix gives, for every anchor, the per-group sums of
    ``exp(logit - shift)``: the denominator is their total and the numerator the anchor's own group's entry
    (the shift cancels in the ratio). No ``(C, b, b)`` masks are built. Anchors whose numerator sum falls below
    ``b * 1e-31`` (a same-group partner more than ~65 logit units further than the nearest point) are recomputed
    exactly with a masked ``logsumexp``, so the result equals the textbook value in log space.

    Args:
        features: ``(C, b, D)`` float32 features (may be a strided view).
        stats: ``(C, b)`` from :func:`snnl_sample_stats` (same ``distance``).
        index: the batch's labels from :func:`snnl_label_index`.
        temperature: fixed ``T > 0``.
        distance: ``"cosine"`` or ``"sqeuclidean"``.
    """
    distance = check_snnl_options(temperature, distance)
    z, stat = features, stats
    inv, onehot, valid, legacy_self_term = index
    c, b, _ = z.shape
    inv_t = 1.0 / float(temperature)
    logits = torch.bmm(z, z.transpose(-1, -2))  # raw Gram matrices; z may be a strided view
    if distance == "cosine":  # logits = min(cos - 1, 0) / T, cos = x.y / (|x| |y|); stat = 1 / |x|
        r = stat * math.sqrt(inv_t)
        logits.mul_(r.unsqueeze(-1)).mul_(r.unsqueeze(-2)).sub_(inv_t)
    else:  # squared Euclidean: logits = min(2 x.y - |x|^2 - |y|^2, 0) / T; stat = |x|^2
        logits.mul_(2.0 * inv_t)
        s = stat * inv_t
        logits.sub_(s.unsqueeze(-1)).sub_(s.unsqueeze(-2))
    logits.clamp_max_(0.0)
    logits.diagonal(dim1=-2, dim2=-1).fill_(float("-inf"))
    tiny = _TINY * b
    if distance == "cosine" and math.exp(-2.0 * inv_t) >= 10.0 * tiny:  # cosine logits >= -2/T: no shift needed
        shift = None
        e = torch.exp(logits)
    else:
        shift = logits.amax(-1, keepdim=True).clamp_min_(-3.0e38)  # (C, b, 1); finite when b == 1
        e = torch.exp(logits - shift)
    sums = torch.matmul(e, onehot)  # (C, b, G) per-group sums of exp(logit - shift), diagonal excluded
    den = sums.sum(-1)
    num = sums.gather(-1, inv.view(1, b, 1).expand(c, b, 1)).squeeze(-1)
    if legacy_self_term:  # the anchor itself in the numerator: exp(0 - shift), added in log space
        log_num = torch.logaddexp(num.log(), torch.zeros_like(num) if shift is None else -shift.squeeze(-1))
        num = log_num.exp()  # only compared with tiny below (>= 1: never recomputed)
        terms = den.log_().sub_(log_num)
    else:
        terms = den.log_().sub_(num.log())
    bad = (num < tiny) & valid  # numerator (hence precision) lost to underflow: exact log space for these
    if bool(bad.any()):
        ci, ii = bad.nonzero(as_tuple=True)
        rows = logits[ci, ii]  # (n_bad, b) logits, diagonal -inf
        same = inv.unsqueeze(0) == inv[ii].unsqueeze(1)
        num_rows = torch.where(same, rows, torch.full_like(rows, float("-inf")))
        if legacy_self_term:
            num_rows[torch.arange(ii.numel(), device=ii.device), ii] = 0.0
        terms[ci, ii] = torch.logsumexp(rows, -1) - torch.logsumexp(num_rows, -1)
    terms.masked_fill_(~valid, float("nan"))
    return terms


def _terms_autograd(
    x: torch.Tensor, labels: torch.Tensor, temperature: float, distance: str, legacy_self_term: bool, eps: float
) -> torch.Tensor:
    """Per-anchor SNNL terms with masked ``logsumexp`` over ``(..., b, b)`` (differentiable regulariser path)."""
    b = x.shape[-2]
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
    return torch.where(valid, log_den - log_num, torch.full_like(log_num, float("nan")))


def _check_inputs(
    features: torch.Tensor, labels: torch.Tensor, temperature: float, distance: str, check_finite: bool = True
) -> torch.Tensor:
    """Validate SNNL inputs once; returns the labels as a ``(b,)`` tensor on the features' device."""
    check_snnl_options(temperature, distance)
    if features.ndim < 2:
        raise ValueError(f"features must be (..., b, D), got shape {tuple(features.shape)}.")
    labels = torch.as_tensor(labels, device=features.device).reshape(-1)
    b = features.shape[-2]
    if labels.numel() != b:
        raise ValueError(f"labels has {labels.numel()} entries but features has batch size {b}.")
    if check_finite and not torch.isfinite(features).all():
        raise ValueError("SNNL features contain NaN or Inf values.")
    return labels


def snnl_per_anchor(
    features: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 1.0,
    distance: str = "cosine",
    legacy_self_term: bool = False,
    eps: float = 1e-12,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-anchor SNNL terms for one or many feature sets sharing the same labels (log space, fp32).

    Without autograd (``torch.no_grad()`` or features that do not require grad, e.g. channel scoring) the terms
    come from one batched similarity matmul and one matmul of the shifted exps with the one-hot group matrix
    (see :func:`snnl_kernel`); with autograd, from masked ``logsumexp`` over ``(..., b, b)``. Both equal the
    textbook formula (tested against a float64 loop).

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
    labels = _check_inputs(features, labels, temperature, distance)
    x = features.float()  # fp32 even under AMP
    if type(x) is not torch.Tensor:  # e.g. MONAI MetaTensor: no metadata bookkeeping on (.., b, b) tensors
        x = x.as_subclass(torch.Tensor)
    with torch.autocast(device_type=x.device.type, enabled=False):
        index = snnl_label_index(labels, legacy_self_term)
        if torch.is_grad_enabled() and x.requires_grad:
            terms = _terms_autograd(x, labels, temperature, distance, legacy_self_term, eps)
            return terms, index.valid
        lead, (b, d) = x.shape[:-2], x.shape[-2:]
        z = x.reshape(-1, b, d)
        terms = snnl_kernel(z, snnl_sample_stats(z, distance, eps), index, temperature, distance)
    return terms.reshape(*lead, b), index.valid


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
    the scorer of :func:`monai_fair.methods.snnl.scoring.score_channels_snnl`.

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
        distance = check_snnl_options(temperature, distance)
        self.temperature = float(temperature)
        self.distance = distance
        self.legacy_self_term = legacy_self_term
        self.eps = eps
        self.last_num_dropped = 0

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss, dropped = compute_snnl(features, labels, self.temperature, self.distance, self.legacy_self_term, self.eps)
        self.last_num_dropped = dropped
        if dropped == features.shape[0]:
            warnings.warn(
                "SoftNearestNeighborLoss: no anchor has a same-label partner in this batch; loss is 0.", stacklevel=2
            )
        return loss
