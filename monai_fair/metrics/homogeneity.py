# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Tests of equal group values behind the verdicts of range-type fairness figures (see
:mod:`monai_fair.metrics.verdict`): the Wald chi-square homogeneity test with the bootstrap (or DeLong) covariance.
Used by the interval layer (:func:`monai_fair.metrics.core.bootstrap_intervals`); imports only torch."""

from __future__ import annotations

import math

import torch

from monai_fair.metrics.figures import FIGURES, tested_rates

__all__ = ["homogeneity_test", "homogeneity_reason", "bootstrap_homogeneity", "gap_tests", "normal_quantile"]

_NAN = float("nan")


def normal_quantile(q: float) -> float:
    """Standard normal quantile ``z_q``."""
    return math.sqrt(2.0) * float(torch.special.erfinv(torch.tensor(2.0 * q - 1.0, dtype=torch.float64)))


def homogeneity_test(values: torch.Tensor, cov: torch.Tensor) -> tuple[float, int]:
    """Wald chi-square test that all ``K`` entries of ``values`` are equal, given their covariance ``(K, K)``.

    NaN entries (undefined groups) are left out. Returns the p-value and the degrees of freedom ``K - 1`` (NaN and
    0 with fewer than two entries; see :func:`homogeneity_reason` for when it is NaN)."""
    p, df, _ = homogeneity_reason(values, cov)
    return p, df


def homogeneity_reason(values: torch.Tensor, cov: torch.Tensor) -> tuple[float, int, str | None]:
    """:func:`homogeneity_test` with the reason why the p-value is NaN (``None`` when it is defined).

    The contrast covariance ``L S L^T`` can be singular on valid data (small groups, a rate of 0 or 1 in a group,
    perfectly correlated group values on every resample); it is then tested in the directions that have variance
    (its rank is the degrees of freedom), never a solver error. A non-zero difference in a direction without
    variance gives ``p = 0`` (as with a zero covariance); no variance and no difference gives NaN with the
    reason."""
    ok = ~torch.isnan(values) & ~torch.isnan(torch.diagonal(cov))
    v, s = values[ok].to(torch.float64), cov[ok][:, ok].to(torch.float64)
    k = v.numel()
    if k < 2:
        return _NAN, 0, "fewer than two reported groups have a defined value"
    lmat = torch.cat([-torch.ones(k - 1, 1, dtype=torch.float64), torch.eye(k - 1, dtype=torch.float64)], 1)
    d, sd = lmat @ v, lmat @ s @ lmat.t()
    if not bool((torch.diagonal(sd) > 0).all()):
        if bool((d == 0).all()):
            return _NAN, k - 1, "every group has the same value on every resample (zero variance)"
        return 0.0, k - 1, None
    evals, evecs = torch.linalg.eigh(sd)
    if not bool(torch.isfinite(evals).all()):
        return _NAN, k - 1, "the covariance of the group contrasts is not finite"
    if float(evals[0]) > 1e-12 * float(evals[-1]):
        stat, df = float(d @ torch.linalg.solve(sd, d)), k - 1
    else:  # singular (e.g. two groups with a constant rate): test where there is variance
        var = evals > evals.max() * 1e-12
        proj = evecs.t() @ d
        if bool((proj[~var].abs() > 1e-12 * max(1.0, float(d.abs().max()))).any()):
            return 0.0, k - 1, None  # a difference without variance is certain (as with a zero covariance)
        stat, df = float((proj[var] ** 2 / evals[var]).sum()), int(var.sum())
    half = torch.tensor([df / 2.0, stat / 2.0], dtype=torch.float64)
    return float(torch.special.gammaincc(half[0], half[1])), df, None


def bootstrap_homogeneity(point: torch.Tensor, reps: torch.Tensor, mask: torch.Tensor) -> float:
    """:func:`homogeneity_test` of the groups in ``mask`` with the covariance of bootstrap replicates ``(B, G)``."""
    return _bootstrap_homogeneity(point, reps, mask)[0]


def _bootstrap_homogeneity(point: torch.Tensor, reps: torch.Tensor, mask: torch.Tensor) -> tuple[float, str | None]:
    r = reps[:, mask]
    keep = ~torch.isnan(r).any(1)
    r = r[keep]
    if r.shape[0] < 3:
        return _NAN, "fewer than 3 resamples with a defined value in every reported group"
    cov = torch.cov(r.t()).reshape(r.shape[1], r.shape[1])
    p, _, reason = homogeneity_reason(point[mask], cov)
    return p, reason


def gap_tests(
    point: dict[str, torch.Tensor],
    reps: dict[str, torch.Tensor],
    mask: torch.Tensor,
    binary: bool,
    reasons: dict[str, str] | None = None,
):
    """Homogeneity p-value of every range-type fairness figure from per-group values ``(G,)`` and bootstrap
    replicates ``(B, G)``: ``<m>_gap`` tests metric ``m``; for binary tasks ``eopp1``/``eopp0``/DP/``eodds_mean``
    test TPR/TNR/selection rate/(TPR+FPR)/2, and ``eodds`` is Bonferroni over TPR and FPR (``2 min(p_TPR, p_FPR)``).

    A test without a p-value (e.g. every group has the same FPR on every resample: zero variance) cannot reject;
    it counts as ``p = 1`` in the Bonferroni minimum, so a significant TPR gap still decides ``eodds``. ``eodds`` has
    no p-value only when neither test has one. ``reasons`` (a dict, filled in place) receives the reason of every
    figure whose p-value is NaN.
    """
    pt, rp = dict(point), dict(reps)
    if binary and "tpr" in pt and "fpr" in pt:
        pt["eodds_c"], rp["eodds_c"] = 0.5 * (pt["tpr"] + pt["fpr"]), 0.5 * (rp["tpr"] + rp["fpr"])
    tested = {m: _bootstrap_homogeneity(pt[m], rp[m], mask) for m in pt}
    p = {m: v for m, (v, _) in tested.items()}
    out = {f"{m}_gap": v for m, v in p.items() if m != "eodds_c"}
    rates = tested_rates()
    registered = {f.key for f in FIGURES.values() if f.formula is not None}
    if binary and "tpr" in p:
        out.update({f: p[m] for f, m in rates.items() if m in p})
        defined = [v for v in (p["tpr"], p.get("fpr", _NAN)) if v == v]
        out["eodds"] = min(1.0, 2 * min(defined)) if defined else _NAN
    else:  # registered figures with a formula are tested on their rate in every task
        out.update({f: p[m] for f, m in rates.items() if m in p and f in registered})
    if reasons is not None:
        why = {f"{m}_gap": r for m, (_, r) in tested.items()} | {f: tested[m][1] for f, m in rates.items() if m in p}
        why["eodds"] = why.get("tpr_gap")
        reasons.update({f: why.get(f) or "no test" for f, v in out.items() if v != v})
    return out
