# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""DeLong confidence intervals and tests for per-group and overall ROC AUC, for one or several models on the same
cases, in O(N log N) and vectorised over groups.

DeLong, DeLong & Clarke-Pearson (Biometrics 44, 1988): with ``m`` positives and ``n`` negatives of a segment (a
group, or all samples), the structural components are

.. math:: V_{10}(x_i) = \\frac{1}{n}\\sum_j \\psi(x_i, y_j), \\qquad V_{01}(y_j) = \\frac{1}{m}\\sum_i \\psi(x_i, y_j),
          \\qquad \\psi(x, y) = [x > y] + \\tfrac12 [x = y]

and ``AUC = mean_i V10 = mean_j V01``. For AUCs ``r, s`` on the same cases

.. math:: \\mathrm{Cov}(\\hat\\theta^r, \\hat\\theta^s) = \\frac{S_{10}^{rs}}{m} + \\frac{S_{01}^{rs}}{n}, \\quad
          S_{10}^{rs} = \\frac{1}{m-1}\\sum_i (V^r_{10}(x_i) - \\hat\\theta^r)(V^s_{10}(x_i) - \\hat\\theta^s)

(``S01`` likewise over the negatives). The components come from mid-ranks (Sun & Xu, IEEE Signal Processing Letters
21, 2014): one sort of the scores, tie blocks, and cumulative sums of positives and negatives per segment, i.e.
O(N log N) for all groups and the overall AUC at once.

Here every AUC is written through its per-sample influence ``phi_k = (V_k - AUC) / m`` for a positive and
``(V_k - AUC) / n`` for a negative (0 for samples outside the segment). Then

* **DeLong** (iid cases): ``Cov = sum_k phi^r_k phi^s_k c_k`` with the unbiased factor ``c_k = m/(m-1)`` (positives)
  or ``n/(n-1)`` (negatives): exactly the formula above for AUCs of the same segment, and the natural estimate of
  the covariance between a group AUC and the overall AUC (the group's samples are part of both);
* **cluster-robust DeLong** (``cluster`` = patient ids): ``Cov = U/(U-1) sum_u (sum_{k in u} phi^r_k)
  (sum_{k in u} phi^s_k)`` over the ``U`` clusters, the sandwich form of Obuchowski (Biometrics 53, 1997) for
  clustered ROC data.

Multi-class AUCs are one-vs-rest and macro-averaged over the classes defined in the segment; their influence is
the mean of the classes' influences. A segment with fewer than two positives or negatives has no variance (NaN).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from monai_fair.metrics.group_counts import _tie_blocks
from monai_fair.metrics.inputs import auc_inputs
from monai_fair.metrics.resampling import cluster_index
from monai_fair.metrics.suppression import suppress_groups

__all__ = ["DeLongAUC", "normal_interval", "auc_differences", "delong_group_auc"]

_NAN = float("nan")


def _segment_starts(blk_seg: torch.Tensor) -> torch.Tensor:
    """For every block, the index of the first block of its segment (blocks are ordered by segment)."""
    _, counts = torch.unique_consecutive(blk_seg, return_counts=True)
    return torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)


def _components(blocks: tuple, pos: torch.Tensor, num_seg: int):
    """AUC per segment ``(num_seg,)``, per-entry raw and DeLong-scaled influence (entry order restored) and whether
    each segment's DeLong variance is defined (>= 2 positives and >= 2 negatives).

    All arithmetic is per tie block; the entries only gather their block's value (one gather, one scatter)."""
    order, block, blk_seg, nb = blocks
    p_o = pos[order]
    wp = torch.bincount(block, weights=p_o, minlength=nb).to(torch.float64)
    wn = torch.bincount(block, minlength=nb).to(torch.float64) - wp
    n_pos = torch.zeros(num_seg, dtype=torch.float64).index_add_(0, blk_seg, wp)
    n_neg = torch.zeros(num_seg, dtype=torch.float64).index_add_(0, blk_seg, wn)
    start = _segment_starts(blk_seg)
    cn = torch.cumsum(wn, 0) - wn
    below = cn - cn[start]  # negatives strictly below the block, within its segment
    cp = torch.cumsum(wp, 0)
    above = n_pos[blk_seg] - (cp - (cp - wp)[start])  # positives strictly above the block
    mb, nbg = n_pos[blk_seg].clamp_min(1), n_neg[blk_seg].clamp_min(1)
    v10, v01 = (below + 0.5 * wn) / nbg, (above + 0.5 * wp) / mb
    ok = (n_pos > 0) & (n_neg > 0)
    theta = torch.zeros(num_seg, dtype=torch.float64).index_add_(0, blk_seg, wp * v10) / n_pos.clamp_min(1)
    theta = torch.where(ok, theta, torch.full_like(theta, _NAN))
    th_b, ok_b = torch.nan_to_num(theta)[blk_seg], ok[blk_seg]
    raw_b = torch.stack([(v01 - th_b) / nbg, (v10 - th_b) / mb], 1) * ok_b[:, None]  # column 1 = positives
    unb = torch.stack([nbg / (nbg - 1).clamp_min(1), mb / (mb - 1).clamp_min(1)], 1)
    key = block * 2 + p_o.long()
    raw_o, sc_o = raw_b.view(-1)[key], (raw_b * torch.sqrt(unb)).view(-1)[key]
    raw, scaled = torch.empty_like(raw_o), torch.empty_like(sc_o)
    raw[order], scaled[order] = raw_o, sc_o
    return theta, raw, scaled, (n_pos >= 2) & (n_neg >= 2)


def _macro(theta: torch.Tensor, raw: torch.Tensor, scaled: torch.Tensor, var_ok: torch.Tensor, seg_of: torch.Tensor):
    """Macro over the defined classes: ``theta``/``var_ok`` ``(S, A)``, entry influences ``(A, N)`` of samples in
    segment ``seg_of (N,)``. Returns the macro AUC ``(S,)``, raw and scaled influences ``(N,)`` and ``(S,)`` whether
    the variance is defined (every defined class has one)."""
    defined = ~torch.isnan(theta)
    n_def = defined.sum(1)
    if theta.shape[1] == 1:  # binary: nothing to average
        return theta[:, 0], raw[0], scaled[0], var_ok[:, 0] & defined[:, 0]
    auc = torch.nan_to_num(theta).sum(1) / n_def.clamp_min(1)
    auc = torch.where(n_def > 0, auc, torch.full_like(auc, _NAN))
    w_e = (defined.to(torch.float64) / n_def.clamp_min(1)[:, None])[seg_of].t()  # (A, N) macro weights
    ok = (var_ok | ~defined).all(1) & (n_def > 0)
    return auc, (w_e * raw).sum(0), (w_e * scaled).sum(0), ok


class DeLongAUC:
    """Per-group and overall (macro) AUC of ``M`` score sets on the same cases with their joint DeLong covariance.

    Args:
        scores: ``(M, N, A)`` scores (``A = 1`` binary positive-class score; ``A = C`` one-vs-rest columns).
        positive: ``(N, A)`` bool, the sample is a positive of column ``a``.
        group: ``(N,)`` group ids in ``0..G-1``.
        num_groups: ``G``.

    Attributes:
        theta: ``(M, G + 1)`` AUC of every group and (last) overall, per model.
        var_defined: ``(M, G + 1)`` whether the DeLong variance is defined.
    """

    def __init__(self, scores: torch.Tensor, positive: torch.Tensor, group: torch.Tensor, num_groups: int) -> None:
        m_, n, a = scores.shape
        self.m, self.n, self.g = m_, n, num_groups
        self.group = group.long()
        col = np.repeat(np.arange(a, dtype=np.int64), n)
        seg = col * num_groups + np.tile(self.group.numpy(), a)
        pos = positive.t().reshape(-1).to(torch.float64)
        theta, raw, scaled, ok = [], [], [], []
        for k in range(m_):  # one sort per model; everything else is vectorised
            flat = scores[k].to(torch.float64).t().reshape(-1).numpy()
            perm = np.argsort(flat)  # ties need no order: tie blocks are labelled after the sort
            tg, rg, sg, og = _components(_tie_blocks(flat, seg, perm, a * num_groups), pos, a * num_groups)
            ta, ra, sa, oa = _components(_tie_blocks(flat, col, perm, a), pos, a)
            mg = _macro(
                tg.view(a, num_groups).t(), rg.view(a, n), sg.view(a, n), og.view(a, num_groups).t(), self.group
            )
            ma = _macro(ta.view(1, a), ra.view(a, n), sa.view(a, n), oa.view(1, a), torch.zeros(n, dtype=torch.long))
            theta.append(torch.cat([mg[0], ma[0]]))
            raw.append(torch.stack([mg[1], ma[1]], 1))
            scaled.append(torch.stack([mg[2], ma[2]], 1))
            ok.append(torch.cat([mg[3], ma[3]]))
        self.theta = torch.stack(theta)
        self.var_defined = torch.stack(ok)
        self._raw, self._scaled = torch.stack(raw), torch.stack(scaled)  # (M, N, 2)

    def _design(self, phi: torch.Tensor) -> torch.Tensor:
        """Dense influence matrix ``(N, M * (G + 1))``: each sample loads on its group's and the overall column."""
        k = self.g + 1
        idx = torch.stack([self.group, torch.full_like(self.group, self.g)], 1)  # (N, 2)
        idx = (idx[None] + k * torch.arange(self.m)[:, None, None]).permute(1, 0, 2).reshape(self.n, -1)
        return torch.zeros(self.n, self.m * k, dtype=torch.float64).scatter_(
            1, idx, phi.permute(1, 0, 2).reshape(self.n, -1)
        )

    def covariance(self, cluster: Any = None) -> torch.Tensor:
        """Joint covariance ``(M (G + 1), M (G + 1))`` of :attr:`theta` (flattened model-major): DeLong, or
        cluster-robust DeLong with ``cluster`` (``(N,)`` patient ids). Rows/columns without a variance are NaN."""
        if cluster is None:
            d = self._design(self._scaled)
            cov = d.t() @ d
        else:
            cl, u = cluster_index(cluster, self.n)
            sums = torch.zeros(u, self.m * (self.g + 1), dtype=torch.float64)
            sums.index_add_(0, torch.from_numpy(cl), self._design(self._raw))
            cov = sums.t() @ sums * (u / (u - 1) if u > 1 else _NAN)
        bad = ~self.var_defined.reshape(-1)
        cov[bad, :] = _NAN
        cov[:, bad] = _NAN
        return cov

    def draws(self, cov: torch.Tensor, n: int, rng: np.random.Generator) -> torch.Tensor:
        """``(n, M, G + 1)`` parametric draws ``theta + N(0, cov)`` (NaN where the AUC or its variance is
        undefined): the replicates of AUC-derived figures (gaps, worst group, ES-AUC) in the bootstrap. Draws are
        clipped to the AUC's range ``[0, 1]``, so every derived interval stays inside its figure's range (an AUC gap
        never exceeds 1)."""
        th = self.theta.reshape(-1)
        ok = ~torch.isnan(th) & ~torch.isnan(torch.diagonal(cov))
        sub = cov[ok][:, ok]
        empty = (torch.zeros(0, dtype=torch.float64), torch.zeros(0, 0, dtype=torch.float64))
        evals, evecs = torch.linalg.eigh(sub) if sub.numel() else empty
        root = evecs * torch.sqrt(evals.clamp_min(0))[None, :]
        z = torch.from_numpy(rng.standard_normal((n, int(ok.sum()))))
        out = torch.full((n, th.numel()), _NAN, dtype=torch.float64)
        out[:, ok] = (th[ok][None] + z @ root.t()).clamp(0.0, 1.0)
        return out.view(n, self.m, self.g + 1)


def normal_interval(est: torch.Tensor, se: torch.Tensor, ci: float, bounds: tuple[float, float] | None = None):
    """``est -/+ z_{(1+ci)/2} se`` (clipped to ``bounds``) and the two-sided p-value of ``est = 0``."""
    z = math.sqrt(2.0) * torch.special.erfinv(torch.tensor(ci, dtype=torch.float64))
    lo, hi = est - z * se, est + z * se
    if bounds is not None:
        lo, hi = lo.clamp(*bounds), hi.clamp(*bounds)
    p = torch.special.erfc(est.abs() / (se * math.sqrt(2.0)))
    return lo, hi, p


def auc_differences(theta: torch.Tensor, cov: torch.Tensor, reported: torch.Tensor, ci: float) -> list[dict]:
    """DeLong interval and z-test of ``AUC_g - AUC_h`` for every pair of the ``reported`` group ids.

    ``Var = Var_g + Var_h - 2 Cov_gh`` (``Cov_gh = 0`` for iid cases; not with clusters spanning groups).
    ``theta``: ``(G + 1,)`` (group AUCs then overall); ``cov``: its covariance (top-left block is used).

    Returns:
        ``[{"groups": [g, h], "difference": AUC_g - AUC_h, "se", "ci": [lo, hi], "p_value"}]`` (``g < h``).
    """
    if reported.numel() < 2:
        return []
    i, j = torch.triu_indices(reported.numel(), reported.numel(), 1)
    a, b = reported[i], reported[j]
    diff = theta[a] - theta[b]
    se = torch.sqrt((cov[a, a] + cov[b, b] - 2 * cov[a, b]).clamp_min(0))
    lo, hi, p = normal_interval(diff, se, ci, (-1.0, 1.0))
    return [
        {
            "groups": [int(a[t]), int(b[t])],
            "difference": float(diff[t]),
            "se": float(se[t]),
            "ci": [float(lo[t]), float(hi[t])],
            "p_value": float(p[t]),
        }
        for t in range(diff.numel())
    ]


def delong_group_auc(
    y_score: Any,
    y: Any,
    group: Any,
    num_groups: int | None = None,
    *,
    cluster: Any = None,
    ci: float = 0.95,
    min_group_size: int = 1,
) -> dict[str, Any]:
    """DeLong CIs of the per-group and overall AUC and of every pairwise AUC difference between reported groups.

    Binary or multi-class one-vs-rest macro (as :func:`~monai_fair.metrics.compute_group_classification_metrics`);
    ``cluster`` switches to the cluster-robust DeLong covariance. Suppressed groups
    (:func:`~monai_fair.metrics.suppress_groups`) are neither reported nor used in differences. NaN-free inputs.

    Returns:
        ``{"overall": {"auc", "se", "ci"}, "groups": {g: {"n", "auc", "se", "ci"}}, "differences": [...]
        (:func:`auc_differences`), "ci_method", "ci_level", "suppression"}``.
    """
    scores, positive, g, num_groups = auc_inputs(y_score, y, group, num_groups)
    counts = torch.bincount(g, minlength=num_groups)
    rep = suppress_groups(counts, min_group_size)
    reported = torch.nonzero(rep & (counts > 0)).flatten()
    d = DeLongAUC(scores[None], positive, g, num_groups)
    cov = d.covariance(cluster)
    th, se = d.theta[0], torch.sqrt(torch.diagonal(cov))
    lo, hi, _ = normal_interval(th, se, ci, (0.0, 1.0))

    def entry(k: int) -> dict[str, Any]:
        return {"auc": float(th[k]), "se": float(se[k]), "ci": [float(lo[k]), float(hi[k])]}

    return {
        "overall": entry(num_groups),
        "groups": {k: {"n": int(counts[k]), **entry(k)} for k in reported.tolist()},
        "differences": auc_differences(th, cov, reported, ci),
        "ci_method": "DeLong, cluster-robust" if cluster is not None else "DeLong",
        "ci_level": float(ci),
        "suppression": {
            "min_group_size": int(min_group_size),
            "reported_groups": int(reported.numel()),
            "suppressed_groups": int((~rep).sum()),
        },
    }
