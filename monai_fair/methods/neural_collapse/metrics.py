# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Neural-collapse (NC1-NC4) metrics, overall and per demographic subgroup.

Neural collapse (Papyan, Han & Donoho, "Prevalence of neural collapse during the terminal phase of deep learning
training", PNAS 2020) describes the geometry of the penultimate-layer features ``h_i`` (the input of the last
``Linear`` layer ``W h + b``, ``W`` in R^{C x D}) when training is continued past zero training error. Mouheb et al.
("Evaluating the Fairness of Neural Collapse in Medical Image Classification", MICCAI 2024) follow NC per demographic
subgroup under label bias. With ``mu_c`` the class means, ``mu_G`` the global mean and ``M = [mu_c - mu_G]_c``:

* **NC1** (within-class variability collapse): ``Tr(Sigma_W Sigma_B^+) / C`` with
  ``Sigma_W = 1/N sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T`` and ``Sigma_B = 1/C M M^T``. It is computed through the
  C x C reduced form ``Tr(G^+ A G^+)``, ``G = M^T M``, ``A = M^T Sigma_W M`` (exact because
  ``Sigma_B^+ = C (M^+)^T M^+`` and ``M^+ = G^+ M^T``): O(D^2 C) work and only a C x C pseudo-inverse
  (``eigh`` with relative cut-off ``rtol``), instead of an O(D^3) D x D pseudo-inverse.
* **NC2** (convergence to a simplex equiangular tight frame):
  ``nc2_equinorm_means`` / ``nc2_equinorm_weights``: coefficient of variation (std with ddof=1, as the reference
  notebook's ``torch.std``, over mean) of ``||mu_c - mu_G||`` / of the classifier rows ``||w_c||``;
  ``nc2_equiangular_*``: std (ddof=1) over pairs c < c' of the cosines; ``nc2_maxangle_*``:
  ``1/(C(C-1)) sum_{c != c'} |cos + 1/(C-1)|``; ``nc2_etf_*``:
  ``|| X X^T / ||X X^T||_F - (I - 11^T/C)/sqrt(C-1) ||_F`` with ``X = M^T`` (means) or ``X = W`` (weights).
* **NC3** (self-duality): ``nc3_self_duality = || W^T/||W||_F - M/||M||_F ||_F^2`` (squared, the Papyan notebook
  form) and ``nc3_etf = || W M / ||W M||_F - (I - 11^T/C)/sqrt(C-1) ||_F`` (the ETF form of Zhu et al. 2021).
* **NC4** (simplification to the nearest class centre): ``nc4_agreement = 1/N sum_i 1[argmax_c (W h_i + b)_c ==
  argmin_c ||h_i - mu_c||]`` and ``nc4_mismatch = 1 - nc4_agreement``.

Conventions (all selectable):

* ``global_mean="weighted"`` (default): ``mu_G`` is the sample-weighted mean of all features (the paper's definition);
  ``"unweighted"``: the mean of the class means (the Papyan notebook). They differ under class imbalance.
* ``group_means="own"`` (default): a subgroup's metrics use the subgroup's own class means ``mu_{g,c}`` and
  ``mu_{g,G}`` (its own NC configuration) with the shared classifier ``W``; ``"global"``: the overall class means are
  the centres, so only NC1 (within-class scatter of the subgroup around the global centres) and NC4 differ from
  the overall values (NC2/NC3 are then the overall ones).
* Binary tasks (C = 2): ``Sigma_B`` has rank 1 and the ETF is two antipodal vectors; the equiangularity (std of a
  single cosine) is undefined and returned as NaN (no warning). Moreover the NC2 **means** metrics carry no
  information about training when C = 2: the two centred means are always antiparallel,
  ``mu_1 - mu_G = (n_2/N)(mu_1 - mu_2)`` and ``mu_2 - mu_G = -(n_1/N)(mu_1 - mu_2)`` with the weighted ``mu_G``, so
  ``nc2_equinorm_means = sqrt(2)|n_1 - n_2|/(n_1 + n_2)``, ``nc2_maxangle_means = 0`` and ``nc2_etf_means`` are
  functions of the class counts alone (all exactly "collapsed" with the unweighted ``mu_G``). For binary tasks read
  NC1, the NC2 **weights** metrics, NC3 and NC4.
* A class absent from a subgroup (own means) makes NC1-NC3 undefined for that subgroup: NaN with a warning; NC4
  stays defined (nearest among the centres that exist).

The streaming implementation is :class:`monai_fair.methods.neural_collapse.NeuralCollapseAccumulator` (and
:func:`~monai_fair.methods.neural_collapse.accumulator.compute_neural_collapse` on tensors held in memory); the
store-everything reference with a D x D ``torch.linalg.pinv`` is a test oracle in
``tests/methods/neural_collapse/nc_reference.py``.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "NC_METRIC_NAMES",
    "classifier_from_linear",
    "two_row_logits",
    "nc_metrics_from_statistics",
]

NC_METRIC_NAMES = (
    "nc1",
    "nc2_equinorm_means",
    "nc2_equinorm_weights",
    "nc2_equiangular_means",
    "nc2_equiangular_weights",
    "nc2_maxangle_means",
    "nc2_maxangle_weights",
    "nc2_etf_means",
    "nc2_etf_weights",
    "nc3_self_duality",
    "nc3_etf",
    "nc4_agreement",
    "nc4_mismatch",
)

_GLOBAL_MEANS = ("weighted", "unweighted")
_GROUP_MEANS = ("own", "global")


def classifier_from_linear(
    linear: torch.nn.Module | torch.Tensor, bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the classifier ``(W, b)`` as float64 ``(C, D)`` and ``(C,)`` tensors, with at least two rows.

    A single-logit head (``W`` of shape ``(1, D)``, trained with a sigmoid/BCE loss) is mapped to the two-row
    classifier ``W = [-w/2; w/2]``, ``b = [-b/2; b/2]``, whose argmax equals ``sigmoid(w h + b) > 0.5``.

    Args:
        linear: an ``nn.Linear`` (its ``weight`` and ``bias``) or a weight tensor of shape ``(C, D)``.
        bias: the bias when ``linear`` is a tensor (``None``: zeros).
    """
    if isinstance(linear, torch.nn.Module):
        if not isinstance(getattr(linear, "weight", None), torch.Tensor) or linear.weight.ndim != 2:
            raise ValueError(f"module {type(linear).__name__} has no 2-D 'weight'; name the final nn.Linear layer.")
        weight, bias = linear.weight, getattr(linear, "bias", None)
    else:
        weight = linear
    weight = weight.detach().to(torch.float64)
    if weight.ndim != 2:
        raise ValueError(f"classifier weight must be 2-D (C, D), got shape {tuple(weight.shape)}.")
    b = torch.zeros(weight.shape[0], dtype=torch.float64, device=weight.device) if bias is None else bias
    b = b.detach().to(device=weight.device, dtype=torch.float64).reshape(-1)
    if weight.shape[0] == 1:
        weight, b = torch.cat([-weight / 2, weight / 2]), torch.cat([-b / 2, b / 2])
    return weight, b


def two_row_logits(logits: torch.Tensor) -> torch.Tensor:
    """Flatten network outputs to ``(N, C)`` logits; a single logit ``z`` becomes ``[-z/2, z/2]`` (same argmax)."""
    logits = logits.detach().reshape(logits.shape[0], -1) if logits.ndim != 1 else logits.detach()[:, None]
    if logits.shape[1] == 1:
        logits = torch.cat([-logits / 2, logits / 2], dim=1)
    return logits


def _check_options(global_mean: str, group_means: str) -> None:
    if global_mean not in _GLOBAL_MEANS:
        raise ValueError(f"global_mean must be one of {_GLOBAL_MEANS}, got {global_mean!r}.")
    if group_means not in _GROUP_MEANS:
        raise ValueError(f"group_means must be one of {_GROUP_MEANS}, got {group_means!r}.")


def _etf_distance(gram: torch.Tensor) -> torch.Tensor:
    """``|| X / ||X||_F - (I - 11^T/C)/sqrt(C-1) ||_F`` for a batch of C x C Gram-like matrices."""
    c = gram.shape[-1]
    target = (torch.eye(c, dtype=gram.dtype, device=gram.device) - 1.0 / c) / math.sqrt(c - 1)
    fro = torch.linalg.matrix_norm(gram, keepdim=True)
    return torch.linalg.matrix_norm(gram / fro - target)


def _angle_stats(vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Equiangularity (std ddof=1 of pairwise cosines) and max-angle term for ``(..., C, D)`` row vectors."""
    c = vectors.shape[-2]
    unit = vectors / torch.linalg.vector_norm(vectors, dim=-1, keepdim=True)
    cos = unit @ unit.transpose(-1, -2)
    iu = torch.triu_indices(c, c, offset=1, device=vectors.device)
    pairs = cos[..., iu[0], iu[1]]
    maxangle = (pairs + 1.0 / (c - 1)).abs().mean(-1)
    if pairs.shape[-1] < 2:  # C == 2: a single cosine, equiangularity undefined (documented)
        equiangular = torch.full_like(maxangle, float("nan"))
    else:
        equiangular = pairs.std(dim=-1, correction=1)
    return equiangular, maxangle


def _cov(x: torch.Tensor) -> torch.Tensor:
    """Coefficient of variation (std ddof=1 / mean) along the last dimension."""
    return x.std(dim=-1, correction=1) / x.mean(dim=-1)


def nc_metrics_from_statistics(
    counts: torch.Tensor,
    sums: torch.Tensor,
    second: torch.Tensor,
    weight: torch.Tensor,
    centres: torch.Tensor | None = None,
    global_centre: torch.Tensor | None = None,
    global_mean: str = "weighted",
    rtol: float | None = None,
) -> dict[str, torch.Tensor]:
    """NC1-NC3 from sufficient statistics, batched over ``B`` independent sets (e.g. overall + each subgroup).

    Args:
        counts: ``(B, C)`` samples per class.
        sums: ``(B, C, D)`` per-class feature sums (features may be shifted by any common vector).
        second: ``(B, D, D)`` raw second moments ``sum_i h_i h_i^T`` (same shift as ``sums``).
        weight: ``(C, D)`` classifier weight (see :func:`classifier_from_linear`).
        centres: ``(B, C, D)`` class centres to measure the within-class scatter and ``M`` against (same shift);
            ``None``: each set's own class means ``sums / counts``.
        global_centre: ``(B, D)`` global centre ``mu_G`` (same shift); ``None``: from ``global_mean``.
        global_mean: ``"weighted"`` or ``"unweighted"`` (see module docstring).
        rtol: relative eigenvalue cut-off of the C x C pseudo-inverse; ``None``: ``max(D, C) * eps`` (the default of
            ``torch.linalg.pinv`` on the D x D ``Sigma_B``).

    Returns:
        ``{name: (B,) float64 tensor}`` for the NC1-NC3 names of :data:`NC_METRIC_NAMES`; sets with an empty class
        (when ``centres`` is None) or no samples are NaN.
    """
    _check_options(global_mean, "own")
    counts, sums, second = counts.to(torch.float64), sums.to(torch.float64), second.to(torch.float64)
    weight = weight.to(device=sums.device, dtype=torch.float64)
    b, c, d = sums.shape
    if weight.shape != (c, d):
        raise ValueError(f"classifier weight has shape {tuple(weight.shape)}, expected ({c}, {d}) from the features.")
    n = counts.sum(-1)
    valid = n > 0
    if centres is None:
        valid = valid & (counts > 0).all(-1)
        mu = sums / counts.clamp_min(1)[..., None]
    else:
        mu = centres.to(torch.float64)
    if global_centre is None:
        mu_g = sums.sum(1) / n.clamp_min(1)[:, None] if global_mean == "weighted" else mu.mean(1)
    else:
        mu_g = global_centre.to(torch.float64)
    m = mu - mu_g[:, None, :]  # (B, C, D): rows are mu_c - mu_G (M^T in the paper's notation)
    # Sigma_W = 1/N (S - sum_c (s_c mu_c^T + mu_c s_c^T) + sum_c n_c mu_c mu_c^T)
    cross = torch.einsum("bcd,bce->bde", sums, mu)
    sigma_w = second - cross - cross.transpose(-1, -2) + torch.einsum("bc,bcd,bce->bde", counts, mu, mu)
    sigma_w = sigma_w / n.clamp_min(1)[:, None, None]
    gram = m @ m.transpose(-1, -2)  # G = M^T M, (B, C, C)
    a = m @ sigma_w @ m.transpose(-1, -2)  # A = M^T Sigma_W M
    evals, evecs = torch.linalg.eigh(gram)
    cut = (max(d, c) * torch.finfo(torch.float64).eps if rtol is None else rtol) * evals.amax(-1, keepdim=True)
    inv = torch.where(evals > cut, 1.0 / evals.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(evals))
    gram_pinv = (evecs * inv[..., None, :]) @ evecs.transpose(-1, -2)
    nc1 = torch.diagonal(gram_pinv @ a @ gram_pinv, dim1=-2, dim2=-1).sum(-1)

    eq_m, max_m = _angle_stats(m)
    eq_w, max_w = _angle_stats(weight)
    wm = weight @ m.transpose(-1, -2)  # W M, (B, C, C)
    w_unit = weight / torch.linalg.matrix_norm(weight)
    m_unit = m / torch.linalg.matrix_norm(m, keepdim=True)
    ones = torch.ones(b, dtype=torch.float64, device=sums.device)
    out = {
        "nc1": nc1,
        "nc2_equinorm_means": _cov(torch.linalg.vector_norm(m, dim=-1)),
        "nc2_equinorm_weights": _cov(torch.linalg.vector_norm(weight, dim=-1)) * ones,
        "nc2_equiangular_means": eq_m,
        "nc2_equiangular_weights": eq_w * ones,
        "nc2_maxangle_means": max_m,
        "nc2_maxangle_weights": max_w * ones,
        "nc2_etf_means": _etf_distance(gram),
        "nc2_etf_weights": _etf_distance(weight @ weight.T) * ones,
        "nc3_self_duality": ((w_unit - m_unit) ** 2).sum((-1, -2)),
        "nc3_etf": _etf_distance(wm),
    }
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=sums.device)
    return {k: torch.where(valid, v, nan) for k, v in out.items()}


def _as_inputs(
    features: torch.Tensor,
    labels: torch.Tensor,
    group: torch.Tensor | None,
    num_classes: int | None,
    num_groups: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
    features = torch.as_tensor(features).detach().to(torch.float64)
    features = features.reshape(features.shape[0], -1)
    labels = torch.as_tensor(labels).reshape(-1).long().to(features.device)
    group = torch.zeros_like(labels) if group is None else torch.as_tensor(group).reshape(-1).long().to(features.device)
    num_classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    num_groups = int(group.max()) + 1 if num_groups is None else int(num_groups)
    return features, labels, group, num_classes, num_groups
