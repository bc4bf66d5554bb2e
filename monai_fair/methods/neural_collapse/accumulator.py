# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Streaming, memory-bounded accumulator of the neural-collapse statistics (overall and per subgroup).

One pass over the data accumulates, in float64, per (group g, class c) the count ``n_{g,c}`` and the feature sum
``s_{g,c}``, and per group the raw second moment ``S_g = sum_{i in g} (h_i - t)(h_i - t)^T`` (``t``: an optional
common shift). Memory is O(K C D + K D^2) (e.g. 2 groups x 512^2 x 8 B = 4 MB), independent of the number of samples.
Every state is a sum, so partial accumulators merge by addition (:meth:`NeuralCollapseAccumulator.merge`) and DDP
needs only an all-reduce (:meth:`NeuralCollapseAccumulator.all_reduce`).

``Sigma_W`` is recovered as ``1/N (S - sum_c n_c mu_c mu_c^T)``, a difference of raw moments that cancels badly in
float32 when features have a large common offset; float64 accumulation plus the shift ``t`` (e.g. the previous
evaluation's global mean, see ``shift``) keep it accurate. NC1-NC3 are invariant to ``t``.

NC4 needs the class centres before it can classify a sample, so it is a second accumulation
(:meth:`update_nc4`) against centres frozen from the moment pass (exact, **two passes**), or against centres set with
:meth:`set_nc4_centres` (e.g. the previous evaluation's means: one pass, lagged).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from monai_fair.methods.neural_collapse.metrics import (
    NC_METRIC_NAMES,
    _as_inputs,
    _check_options,
    classifier_from_linear,
    nc_metrics_from_statistics,
    two_row_logits,
)
from monai_fair.utils import check_group_ids

__all__ = ["NeuralCollapseAccumulator", "compute_neural_collapse"]


class NeuralCollapseAccumulator:
    """Accumulate NC1-NC4 sufficient statistics batch by batch; :meth:`compute` returns the metrics.

    Args:
        num_classes: number of classes C (>= 2).
        num_groups: number of subgroups K (group ids ``0..K-1``; 1 for overall only).
        feature_dim: D; ``None``: taken from the first batch.
        shift: optional ``(D,)`` vector subtracted from every feature before accumulation (numerical stability
            only; it must be the same on every DDP rank).
        device: where the float64 states live.

    Example::

        acc = NeuralCollapseAccumulator(num_classes=2, num_groups=2)
        for h, y, g in loader_features:       # first pass
            acc.update(h, y, g)
        for h, logits, g in loader_features:  # second pass (exact NC4)
            acc.update_nc4(h, logits, g)
        result = acc.compute(weight)          # {"overall": {...}, "groups": {0: {...}, 1: {...}}, ...}
    """

    def __init__(
        self,
        num_classes: int,
        num_groups: int = 1,
        feature_dim: int | None = None,
        shift: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2 for neural collapse, got {num_classes}.")
        if int(num_groups) < 1:
            raise ValueError(f"num_groups must be >= 1, got {num_groups}.")
        self.num_classes, self.num_groups = int(num_classes), int(num_groups)
        self.device = torch.device(device)
        self.feature_dim = feature_dim
        self.shift = None if shift is None else torch.as_tensor(shift, dtype=torch.float64, device=self.device)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Drop every accumulated statistic (keeps the shift and the NC4 centres set by :meth:`set_nc4_centres`)."""
        self.counts = torch.zeros(self.num_groups, self.num_classes, dtype=torch.float64, device=self.device)
        self.sums: torch.Tensor | None = None
        self.second: torch.Tensor | None = None
        self.nc4_total = torch.zeros(self.num_groups, dtype=torch.float64, device=self.device)
        self.nc4_agree_own = torch.zeros_like(self.nc4_total)
        self.nc4_agree_global = torch.zeros_like(self.nc4_total)
        self._nc4_centres: tuple[torch.Tensor, torch.Tensor] | None = getattr(self, "_fixed_centres", None)
        if self.feature_dim is not None:
            self._allocate(self.feature_dim)

    def _allocate(self, dim: int) -> None:
        self.feature_dim = dim
        self.sums = torch.zeros(self.num_groups, self.num_classes, dim, dtype=torch.float64, device=self.device)
        self.second = torch.zeros(self.num_groups, dim, dim, dtype=torch.float64, device=self.device)
        if self.shift is not None and self.shift.shape != (dim,):
            raise ValueError(f"shift has shape {tuple(self.shift.shape)}, expected ({dim},).")

    def state_tensors(self) -> list[torch.Tensor]:
        """The additive states (for merging, all-reduce, checkpointing)."""
        return [self.counts, self.sums, self.second, self.nc4_total, self.nc4_agree_own, self.nc4_agree_global]

    def merge(self, other: NeuralCollapseAccumulator) -> NeuralCollapseAccumulator:
        """Add another accumulator's statistics (same C, K, D and shift) into this one."""
        if (other.num_classes, other.num_groups) != (self.num_classes, self.num_groups):
            raise ValueError("cannot merge accumulators with different num_classes/num_groups.")
        if other.sums is None:
            return self
        if self.sums is None:
            self._allocate(other.feature_dim)
        for mine, theirs in zip(self.state_tensors(), other.state_tensors()):
            mine += theirs.to(mine.device)
        return self

    def all_reduce(self, which: str = "all") -> None:
        """Sum the states over DDP ranks (no-op unless ``torch.distributed`` is initialised).

        Args:
            which: ``"moments"`` (after the first pass, so every rank has the same NC4 centres), ``"nc4"`` (after
                the second pass) or ``"all"`` (both, once at the end).
        """
        if which not in ("all", "moments", "nc4"):
            raise ValueError(f"which must be 'all', 'moments' or 'nc4', got {which!r}.")
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            if self.sums is None:
                raise RuntimeError("all_reduce needs feature_dim set on every rank (pass feature_dim=...).")
            states = self.state_tensors()
            states = states[:3] if which == "moments" else states[3:] if which == "nc4" else states
            for t in states:
                torch.distributed.all_reduce(t)

    # ----------------------------------------------------------------- checks
    def _prepare(
        self, features: torch.Tensor, group: torch.Tensor | None, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        h = torch.as_tensor(features).detach().as_subclass(torch.Tensor)  # a MetaTensor's metadata is not a statistic
        h = h.reshape(h.shape[0], -1).to(device=self.device, dtype=torch.float64)
        if not torch.isfinite(h).all():
            raise ValueError("neural-collapse features contain NaN or Inf (check the network / hooked layer).")
        if self.sums is None:
            self._allocate(h.shape[1])
        if h.shape[1] != self.feature_dim:
            raise ValueError(f"features have dimension {h.shape[1]}, the accumulator holds {self.feature_dim}.")
        n = h.shape[0]
        if group is None:
            g = torch.zeros(n, dtype=torch.long, device=self.device)
        else:
            g = check_group_ids(group, self.num_groups, name="neural-collapse group", num_samples=n, device=self.device)
            g = g.as_subclass(torch.Tensor)
        y = None
        if labels is not None:
            y = torch.as_tensor(labels).as_subclass(torch.Tensor).reshape(-1).to(self.device).long()
            if y.numel() != n:
                raise ValueError(f"labels have {y.numel()} entries for {n} feature rows.")
            if n and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ValueError(f"labels must be in 0..{self.num_classes - 1}, got values {sorted(set(y.tolist()))}.")
        if self.shift is not None:
            h = h - self.shift
        return h, g, y

    # ---------------------------------------------------------------- updates
    def update(self, features: torch.Tensor, labels: torch.Tensor, group: torch.Tensor | None = None) -> None:
        """First pass: add ``(N, D)`` features with their ``(N,)`` class labels and ``(N,)`` group ids."""
        h, g, y = self._prepare(features, group, labels)
        gc = g * self.num_classes + y
        k, c = self.num_groups, self.num_classes
        self.counts += torch.bincount(gc, minlength=k * c).reshape(k, c).to(torch.float64)
        self.sums.view(k * c, -1).index_add_(0, gc, h)
        # per-group second moments: scatter sum of outer products without materialising N x D x D
        if k == 1:
            self.second += (h.T @ h)[None]
        else:
            onehot = torch.nn.functional.one_hot(g, k).to(torch.float64)  # (N, K)
            hk = (onehot[:, :, None] * h[:, None, :]).reshape(h.shape[0], -1)  # (N, K*D), zero outside own group
            self.second += (hk.T @ h).reshape(k, -1, h.shape[1])

    def class_means(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Unshifted class means: overall ``(C, D)`` and per group ``(K, C, D)`` (NaN where a class is empty)."""
        if self.sums is None:
            raise RuntimeError("no features accumulated yet.")
        shift = 0.0 if self.shift is None else self.shift
        overall = self.sums.sum(0) / self.counts.sum(0)[:, None] + shift
        groups = self.sums / self.counts[..., None] + shift
        return overall, groups

    def set_nc4_centres(self, overall: torch.Tensor, groups: torch.Tensor) -> None:
        """Fix the NC4 centres (e.g. the previous evaluation's :meth:`class_means`) for one-pass NC4."""
        self._fixed_centres = (
            torch.as_tensor(overall, dtype=torch.float64, device=self.device),
            torch.as_tensor(groups, dtype=torch.float64, device=self.device),
        )
        self._nc4_centres = self._fixed_centres

    def update_nc4(self, features: torch.Tensor, logits: torch.Tensor, group: torch.Tensor | None = None) -> None:
        """Second pass: count agreements of ``argmax logits`` with the nearest class centre (global and own-group).

        The centres are those set by :meth:`set_nc4_centres`, else the class means of the statistics accumulated so
        far, frozen at the first call (call it after the whole first pass).
        """
        if self._nc4_centres is None:
            self._nc4_centres = self.class_means()
        h, g, _ = self._prepare(features, group)
        if self.shift is not None:
            h = h + self.shift
        pred = two_row_logits(torch.as_tensor(logits).as_subclass(torch.Tensor)).to(self.device).argmax(1)
        overall, groups = self._nc4_centres
        inf = torch.tensor(float("inf"), dtype=torch.float64, device=self.device)
        # ||h - mu||^2 up to the per-sample constant ||h||^2; empty classes are never the nearest
        d_glob = (overall**2).sum(-1) - 2 * h @ overall.T
        d_glob = torch.where(torch.isfinite(d_glob), d_glob, inf)
        own = groups[g]  # (N, C, D)
        d_own = (own**2).sum(-1) - 2 * torch.einsum("nd,ncd->nc", h, own)
        d_own = torch.where(torch.isfinite(d_own), d_own, inf)
        ones = torch.ones_like(g, dtype=torch.float64)
        self.nc4_total.index_add_(0, g, ones)
        self.nc4_agree_global.index_add_(0, g, (d_glob.argmin(1) == pred).to(torch.float64))
        self.nc4_agree_own.index_add_(0, g, (d_own.argmin(1) == pred).to(torch.float64))

    # ---------------------------------------------------------------- compute
    def compute(
        self,
        weight: torch.Tensor,
        global_mean: str = "weighted",
        group_means: str = "own",
        rtol: float | None = None,
        report_groups: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """NC1-NC4 overall (row ``"overall"``) and per group.

        Args:
            weight: classifier weight ``(C, D)`` (a single-logit ``(1, D)`` weight is mapped to 2 rows).
            global_mean: ``"weighted"`` or ``"unweighted"`` ``mu_G``.
            group_means: ``"own"`` (each group's own class means) or ``"global"`` (overall centres).
            rtol: C x C pseudo-inverse cut-off (see :func:`nc_metrics_from_statistics`).
            report_groups: optional ``(K,)`` bool mask of the groups that may be named in the warning about absent
                classes (suppressed groups are never named; see :func:`monai_fair.metrics.suppress_groups`).

        Returns:
            ``{"overall": {name: float}, "groups": {gid: {name: float}}, "counts": [[n_{g,c}]],
            "options": {...}}``; NC4 entries are NaN when :meth:`update_nc4` was never called.
        """
        _check_options(global_mean, group_means)
        if self.sums is None:
            raise RuntimeError("no features accumulated; call update() first.")
        from monai_fair.methods.neural_collapse.metrics import classifier_from_linear

        w, _ = classifier_from_linear(weight)
        k, c = self.num_groups, self.num_classes
        counts = torch.cat([self.counts.sum(0, keepdim=True), self.counts])
        sums = torch.cat([self.sums.sum(0, keepdim=True), self.sums])
        second = torch.cat([self.second.sum(0, keepdim=True), self.second])
        centres = global_centre = None
        if group_means == "global":
            mu = sums[0] / counts[0].clamp_min(1)[:, None]
            mu_g = sums[0].sum(0) / counts[0].sum().clamp_min(1) if global_mean == "weighted" else mu.mean(0)
            centres = mu.expand(k + 1, c, -1)
            global_centre = mu_g.expand(k + 1, -1)
            if (counts[0] == 0).any():
                centres = None  # an empty class overall: fall back to own means, which flags it as NaN
        metrics = nc_metrics_from_statistics(counts, sums, second, w, centres, global_centre, global_mean, rtol)
        total = torch.cat([self.nc4_total.sum(0, keepdim=True), self.nc4_total])
        agree_own = self.nc4_agree_global if group_means == "global" else self.nc4_agree_own
        agree = torch.cat([self.nc4_agree_global.sum(0, keepdim=True), agree_own]) / total
        metrics["nc4_agreement"] = agree
        metrics["nc4_mismatch"] = 1.0 - agree

        n = counts.sum(-1)
        empty = (counts == 0) & (n[:, None] > 0)
        if report_groups is not None:  # never name a suppressed group, even in a warning
            shown = torch.cat([torch.ones(1, dtype=torch.bool), torch.as_tensor(report_groups, dtype=torch.bool)])
            empty &= shown.to(empty.device)[:, None]
        if group_means == "own" and empty.any():
            where = [("overall" if r == 0 else f"group {r - 1}", cls) for r, cls in torch.nonzero(empty).tolist()]
            warnings.warn(
                f"neural collapse: class absent from {where} (as (set, class)); NC1-NC3 are NaN there, NC4 uses the "
                "centres that exist.",
                stacklevel=2,
            )
        table = torch.stack([metrics[name] for name in NC_METRIC_NAMES], 1).tolist()  # one host transfer
        rows = [dict(zip(NC_METRIC_NAMES, r)) for r in table]
        for r, nr in zip(rows, n.tolist()):
            r["n"] = int(nr)
        return {
            "overall": rows[0],
            "groups": {gid: rows[gid + 1] for gid in range(k)},
            "counts": self.counts.long().tolist(),
            "options": {"global_mean": global_mean, "group_means": group_means, "nc1_scale": "1/C"},
        }


def compute_neural_collapse(
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
    rtol: float | None = None,
) -> dict[str, Any]:
    """NC1-NC4 overall and per subgroup for in-memory features (through the streaming accumulator).

    Args:
        features: ``(N, D)`` penultimate features (input of the final ``Linear``).
        labels: ``(N,)`` class ids (the training labels, noisy ones included, for the memorisation signal).
        weight: ``(C, D)`` classifier weight, or ``(1, D)`` for a single-logit head (see
            :func:`classifier_from_linear`).
        bias: ``(C,)`` (or ``(1,)``) classifier bias.
        group: ``(N,)`` group ids ``0..K-1`` (``None``: one group).
        logits: ``(N, C)`` or ``(N,)``/``(N, 1)`` network outputs for NC4; ``None``: ``W h + b``.
        num_classes, num_groups: C and K (``None``: inferred from the data).
        global_mean, group_means, rtol: see the module docstring and :func:`nc_metrics_from_statistics`.

    Returns:
        ``{"overall": {name: float}, "groups": {gid: {name: float}}, "counts": [[n_{g,c}]], "options": {...}}``.
    """
    features, labels, group, num_classes, num_groups = _as_inputs(features, labels, group, num_classes, num_groups)
    w, b = classifier_from_linear(weight, bias)
    acc = NeuralCollapseAccumulator(num_classes=num_classes, num_groups=num_groups)
    acc.update(features, labels, group)
    acc.update_nc4(features, (features @ w.T + b) if logits is None else logits, group)
    return acc.compute(w, global_mean=global_mean, group_means=group_means, rtol=rtol)
