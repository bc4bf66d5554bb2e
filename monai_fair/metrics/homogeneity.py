# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Tests of equal group values behind the verdicts of range-type fairness figures (see
:mod:`monai_fair.metrics.verdict`): the Wald chi-square homogeneity test with the bootstrap (or DeLong) covariance.
Used by the interval layer (:func:`monai_fair.metrics.core.bootstrap_intervals`); imports only torch."""

from __future__ import annotations

import math

import torch

from monai_fair.metrics.figures import FIGURES, tested_rates

__all__ = ["homogeneity_test", "bootstrap_homogeneity", "gap_tests", "normal_quantile"]

_NAN = float("nan")


def normal_quantile(q: float) -> float:
    """Standard normal quantile ``z_q``."""
    return math.sqrt(2.0) * float(torch.special.erfinv(torch.tensor(2.0 * q - 1.0, dtype=torch.float64)))


def homogeneity_test(values: torch.Tensor, cov: torch.Tensor) -> tuple[float, int]:
    """Wald chi-square test that all ``K`` entries of ``values`` are equal, given their covariance ``(K, K)``.

    NaN entries (undefined groups) are left out. Returns the p-value and the degrees of freedom ``K - 1`` (NaN and
    0 with fewer than two entries or a zero covariance). A singular contrast covariance (e.g. two groups whose rate
    is constant on every resample) is tested in the directions that have variance (its rank is the degrees of
    freedom); a non-zero difference in a direction without variance gives ``p = 0``."""
    ok = ~torch.isnan(values) & ~torch.isnan(torch.diagonal(cov))
    v, s = values[ok], cov[ok][:, ok]
    k = v.numel()
    if k < 2:
        return _NAN, 0
    lmat = torch.cat([-torch.ones(k - 1, 1, dtype=torch.float64), torch.eye(k - 1, dtype=torch.float64)], 1)
    d, sd = lmat @ v, lmat @ s @ lmat.t()
    if not bool((torch.diagonal(sd) > 0).all()):
        return (_NAN if bool((d == 0).all()) else 0.0), k - 1
    try:
        stat, df = float(d @ torch.linalg.solve(sd, d)), k - 1
    except torch.linalg.LinAlgError:  # singular (e.g. two groups with a constant rate): test where there is variance
        evals, evecs = torch.linalg.eigh(sd)
        var = evals > evals.max() * 1e-12
        proj = evecs.t() @ d
        if bool((proj[~var].abs() > 1e-12 * max(1.0, float(d.abs().max()))).any()):
            return 0.0, k - 1  # a difference without variance is certain (as with a zero covariance)
        stat, df = float((proj[var] ** 2 / evals[var]).sum()), int(var.sum())
    half = torch.tensor([df / 2.0, stat / 2.0], dtype=torch.float64)
    return float(torch.special.gammaincc(half[0], half[1])), df


def bootstrap_homogeneity(point: torch.Tensor, reps: torch.Tensor, mask: torch.Tensor) -> float:
    """:func:`homogeneity_test` of the groups in ``mask`` with the covariance of bootstrap replicates ``(B, G)``."""
    r = reps[:, mask]
    keep = ~torch.isnan(r).any(1)
    r = r[keep]
    if r.shape[0] < 3:
        return _NAN
    cov = torch.cov(r.t()).reshape(r.shape[1], r.shape[1])
    return homogeneity_test(point[mask], cov)[0]


def gap_tests(point: dict[str, torch.Tensor], reps: dict[str, torch.Tensor], mask: torch.Tensor, binary: bool):
    """Homogeneity p-value of every range-type fairness figure from per-group values ``(G,)`` and bootstrap
    replicates ``(B, G)``: ``<m>_gap`` tests metric ``m``; for binary tasks ``eopp1``/``eopp0``/DP/``eodds_mean``
    test TPR/TNR/selection rate/(TPR+FPR)/2, and ``eodds`` is Bonferroni over TPR and FPR (``2 min(p_TPR, p_FPR)``).

    A test without a p-value (e.g. every group has the same FPR on every resample: zero variance) cannot reject;
    it counts as ``p = 1`` in the Bonferroni minimum, so a significant TPR gap still decides ``eodds``. ``eodds`` has
    no p-value only when neither test has one.
    """
    pt, rp = dict(point), dict(reps)
    if binary and "tpr" in pt and "fpr" in pt:
        pt["eodds_c"], rp["eodds_c"] = 0.5 * (pt["tpr"] + pt["fpr"]), 0.5 * (rp["tpr"] + rp["fpr"])
    p = {m: bootstrap_homogeneity(pt[m], rp[m], mask) for m in pt}
    out = {f"{m}_gap": v for m, v in p.items() if m != "eodds_c"}
    rates = tested_rates()
    registered = {f.key for f in FIGURES.values() if f.formula is not None}
    if binary and "tpr" in p:
        out.update({f: p[m] for f, m in rates.items() if m in p})
        defined = [v for v in (p["tpr"], p.get("fpr", _NAN)) if v == v]
        out["eodds"] = min(1.0, 2 * min(defined)) if defined else _NAN
    else:  # registered figures with a formula are tested on their rate in every task
        out.update({f: p[m] for f, m in rates.items() if m in p and f in registered})
    return out
