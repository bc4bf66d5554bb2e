# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Test oracle of the neural-collapse metrics: the textbook formulas on every stored feature with a D x D
``torch.linalg.pinv`` (checks the streaming, reduced-form :class:`NeuralCollapseAccumulator`; also used by
``benchmarks/nc_bench.py``)."""

from __future__ import annotations

import math
from typing import Any

import torch

from monai_fair.methods.neural_collapse.metrics import (
    NC_METRIC_NAMES,
    _as_inputs,
    _check_options,
    classifier_from_linear,
    two_row_logits,
)

__all__ = ["compute_neural_collapse_reference"]


def compute_neural_collapse_reference(
    features: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    group: torch.Tensor | None = None,
    logits: torch.Tensor | None = None,
    num_classes: int | None = None,
    num_groups: int | None = None,
    global_mean: str = "weighted",
    group_means: str = "own",
) -> dict[str, Any]:
    """Store-everything reference: the textbook formulas on all features with a D x D ``torch.linalg.pinv``.

    Same arguments and output as
    :func:`~monai_fair.methods.neural_collapse.accumulator.compute_neural_collapse`; memory O(N D + D^2), time
    O(N D^2 + D^3). It is
    deliberately written directly from the definitions (explicit centring, explicit ``Sigma_B``) to check the
    streaming, reduced-form implementation.
    """
    _check_options(global_mean, group_means)
    features, labels, group, num_classes, num_groups = _as_inputs(features, labels, group, num_classes, num_groups)
    w, b = classifier_from_linear(weight, bias)
    logits = features @ w.T + b if logits is None else two_row_logits(torch.as_tensor(logits)).to(features.device)
    pred = logits.argmax(1)
    c = num_classes
    nan = float("nan")

    def centres_of(h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.stack([h[y == k].mean(0) if (y == k).any() else torch.full_like(h[0], nan) for k in range(c)])

    def stats(h, y, mu, mu_g):
        m = (mu - mu_g).T  # D x C
        res = {k: nan for k in NC_METRIC_NAMES}
        dist = torch.cdist(h, mu[torch.isfinite(mu).all(1)])
        present = torch.nonzero(torch.isfinite(mu).all(1)).reshape(-1)
        agree = (pred_sel == present[dist.argmin(1)]).double().mean().item()
        res["nc4_agreement"], res["nc4_mismatch"] = agree, 1.0 - agree
        if not torch.isfinite(m).all():
            return res
        centred = h - mu[y]
        sigma_w = centred.T @ centred / h.shape[0]
        sigma_b = m @ m.T / c
        res["nc1"] = torch.trace(sigma_w @ torch.linalg.pinv(sigma_b)).item() / c
        target = (torch.eye(c, dtype=torch.float64) - torch.ones(c, c, dtype=torch.float64) / c) / math.sqrt(c - 1)
        for name, vecs in (("means", m.T), ("weights", w)):
            norms = vecs.norm(dim=1)
            res[f"nc2_equinorm_{name}"] = (norms.std() / norms.mean()).item()
            cos = (vecs / norms[:, None]) @ (vecs / norms[:, None]).T
            off = cos[~torch.eye(c, dtype=torch.bool)]
            res[f"nc2_maxangle_{name}"] = (off + 1 / (c - 1)).abs().sum().item() / (c * (c - 1))
            upper = cos[torch.triu(torch.ones(c, c, dtype=torch.bool), 1)]
            res[f"nc2_equiangular_{name}"] = upper.std().item() if c > 2 else nan
            gram = vecs @ vecs.T
            res[f"nc2_etf_{name}"] = torch.linalg.norm(gram / torch.linalg.norm(gram) - target).item()
        res["nc3_self_duality"] = (torch.linalg.norm(w.T / torch.linalg.norm(w) - m / torch.linalg.norm(m)) ** 2).item()
        wm = w @ m
        res["nc3_etf"] = torch.linalg.norm(wm / torch.linalg.norm(wm) - target).item()
        return res

    def global_centre(h, y, mu):
        return h.mean(0) if global_mean == "weighted" else mu.mean(0)

    mu_all = centres_of(features, labels)
    mu_g_all = global_centre(features, labels, mu_all)
    pred_sel = pred
    overall = stats(features, labels, mu_all, mu_g_all)
    groups: dict[int, dict[str, float]] = {}
    for g in range(num_groups):
        sel = group == g
        if not sel.any():
            groups[g] = {k: nan for k in NC_METRIC_NAMES}
            continue
        pred_sel = pred[sel]
        h, y = features[sel], labels[sel]
        if group_means == "own":
            mu = centres_of(h, y)
            groups[g] = stats(h, y, mu, global_centre(h, y, mu))
        else:
            groups[g] = stats(h, y, mu_all, mu_g_all)
    counts = torch.zeros(num_groups, c, dtype=torch.long)
    counts.index_put_((group, labels), torch.ones_like(labels), accumulate=True)
    return {"overall": overall, "groups": groups, "counts": counts.tolist()}
