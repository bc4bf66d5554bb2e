# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Privacy probe of APPLE: can a *fresh* classifier still recover the group from the latent the decoder sees?

APPLE (Xu et al., arXiv 2403.05114) claims the frozen decoder "receives no fairness-related features". The
training discriminator cannot certify that (it is the perturber's adversary, and a perturber can fool one
particular discriminator without removing the information). The probe protocol, run in every APPLE evaluation:

1. pool every perturbed latent site as the discriminator does (:func:`~monai_fair.methods.apple.pool_latent`,
   mean and max per channel, sites concatenated), for the deployed model alone (``f_o``, "before") and with the
   perturbers (``f_p``, "after");
2. fit a fresh probe per kind on the **validation** latents: ``"linear"`` (standardisation + logistic regression)
   and ``"mlp"`` (standardisation + one hidden layer), with the group-balanced cross-entropy
   (:class:`~monai_fair.methods.apple.DiscriminatorLoss`), full-batch Adam, weight decay, a fixed seed;
3. score it on the **test** latents: group ROC AUC and balanced accuracy with percentile bootstrap intervals
   (:func:`~monai_fair.methods.apple.compute_attribute_recoverability`, which names the method in ``ci_method``).

Fitting on validation and scoring on test keeps the probe out of the data the perturber was trained on. With few
validation images the MLP probe is a weak lower bound; the linear probe is the more stable of the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from monai.utils import look_up_option
from torch import nn

from monai_fair.engines.utils import get_batch_group
from monai_fair.methods.apple.losses import DiscriminatorLoss
from monai_fair.methods.apple.metrics import compute_attribute_recoverability
from monai_fair.methods.apple.networks.discriminator import pool_latent
from monai_fair.methods.apple.networks.segmentor import PerturbedSegmentor

__all__ = ["collect_pooled_latents", "fit_probe", "privacy_probe", "run_privacy_probe", "PROBE_KINDS"]

#: the probe classifiers
PROBE_KINDS = ("linear", "mlp")


@torch.no_grad()
def collect_pooled_latents(
    network: PerturbedSegmentor,
    loader: Iterable,
    perturbed: bool,
    device: torch.device | str | None = None,
    pool: str = "avgmax",
    latent_types: str | Sequence[str] = "spatial",
    image_key: str = "image",
    group_key: str = "group",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled latents ``(N, F)`` and group ids ``(N,)`` of every batch of ``loader``.

    The network runs in eval mode on whole inputs (give it images of the training patch size); ``perturbed``
    selects ``f_p`` (True) or ``f_o`` (False). The network's perturbation switch is restored afterwards.
    """
    was_training, was_enabled = network.training, network.enabled
    device = torch.device(device) if device is not None else next(network.parameters()).device
    types = [latent_types] * len(network.latent_modules) if isinstance(latent_types, str) else list(latent_types)
    feats, groups = [], []
    network.eval()
    network.set_perturbation_enabled(perturbed)
    try:
        for batch in loader:
            network(torch.as_tensor(batch[image_key]).to(device))
            pooled = [pool_latent(f.float(), t, pool) for f, t in zip(network.latents_out, types)]
            feats.append(torch.cat(pooled, dim=1).cpu())
            groups.append(get_batch_group(batch, group_key, "cpu"))
    finally:
        network.set_perturbation_enabled(was_enabled)
        network.train(was_training)
    if not feats:
        raise ValueError("the probe's data loader yielded no batch.")
    return torch.cat(feats), torch.cat(groups)


class _Standardise(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def fit_probe(
    features: torch.Tensor,
    group: torch.Tensor,
    num_groups: int,
    kind: str = "linear",
    hidden: int = 64,
    steps: int = 300,
    lr: float = 1e-2,
    weight_decay: float = 1e-3,
    seed: int = 0,
) -> nn.Module:
    """Fit a fresh probe ``features -> group`` (standardised inputs, group-balanced CE, full-batch Adam).

    Args:
        features: ``(N, F)`` pooled latents; group: ``(N,)`` ids; num_groups: K.
        kind: ``"linear"`` (logistic regression) or ``"mlp"`` (one hidden layer of ``hidden`` units, ReLU).
        steps, lr, weight_decay: optimisation (Adam on the whole set per step).
        seed: initialisation seed.
    """
    kind = look_up_option(kind, PROBE_KINDS)
    x = features.float()
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    gen = torch.random.fork_rng(devices=[])
    with gen:
        torch.manual_seed(int(seed))
        head: nn.Module = (
            nn.Linear(x.shape[1], num_groups)
            if kind == "linear"
            else nn.Sequential(nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, num_groups))
        )
    probe = nn.Sequential(_Standardise(mean, std), head)
    opt = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = DiscriminatorLoss(num_groups)
    for _ in range(int(steps)):
        opt.zero_grad(set_to_none=True)
        loss_fn(probe(x), group).backward()
        opt.step()
    return probe.eval()


def privacy_probe(
    fit_features: torch.Tensor,
    fit_group: torch.Tensor,
    score_features: torch.Tensor,
    score_group: torch.Tensor,
    num_groups: int,
    kinds: Sequence[str] = PROBE_KINDS,
    n_bootstrap: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    min_group_size: int = 1,
    **fit_kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """Fit each probe kind on ``fit_*`` and score it on ``score_*``: ``{kind: {"auc", "balanced_accuracy", "n",
    "ci"}}`` (see :func:`compute_attribute_recoverability`).

    When a group has fewer than ``min_group_size`` samples in the fitting or the scoring set, every figure is NaN
    and ``"suppressed": True`` (a per-group recall of a tiny group must not be derivable from the output).
    """
    counts = [torch.bincount(g.long(), minlength=num_groups) for g in (fit_group, score_group)]
    small = any(bool((c < int(min_group_size)).any()) for c in counts)
    out: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        if small:
            nan = float("nan")
            out[kind] = {"auc": nan, "balanced_accuracy": nan, "n": int(score_group.numel()), "suppressed": True}
            continue
        probe = fit_probe(fit_features, fit_group, num_groups, kind=kind, seed=seed, **fit_kwargs)
        with torch.no_grad():
            scores = torch.softmax(probe(score_features.float()), dim=1)
        out[kind] = compute_attribute_recoverability(scores, score_group, num_groups, n_bootstrap, ci, seed)
    return out


def run_privacy_probe(
    network: PerturbedSegmentor,
    fit_loader: Iterable,
    score_loader: Iterable,
    num_groups: int,
    device: torch.device | str | None = None,
    kinds: Sequence[str] = PROBE_KINDS,
    n_bootstrap: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    min_group_size: int = 1,
    pool: str = "avgmax",
    latent_types: str | Sequence[str] = "spatial",
    **fit_kwargs: Any,
) -> dict[str, Any]:
    """The probe protocol of the module docstring, before (``f_o``) and after (``f_p``).

    Returns:
        ``{"before": {kind: figures}, "after": {kind: figures}, "protocol": {...}}``; figures as in
        :func:`privacy_probe`. Nothing is written (:func:`~monai_fair.methods.apple.write_apple_comparison` writes).
    """
    result: dict[str, Any] = {}
    for stage, perturbed in (("before", False), ("after", True)):
        fit = collect_pooled_latents(network, fit_loader, perturbed, device, pool, latent_types)
        score = collect_pooled_latents(network, score_loader, perturbed, device, pool, latent_types)
        result[stage] = privacy_probe(
            *fit, *score, num_groups, kinds, n_bootstrap, ci, seed, min_group_size, **fit_kwargs
        )
    result["protocol"] = {
        "fit": "validation latents",
        "score": "test latents",
        "features": f"{pool} pooling per channel of {list(network.latent_modules)}",
        "kinds": list(kinds),
        "loss": "group-balanced cross-entropy, full-batch Adam",
        "ci": f"{ci:.0%} intervals, {n_bootstrap} bootstrap replicates, seed {seed}",
    }
    return result
