# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
r"""Seed-aware comparison of two training *methods*: the training run is a unit of replication.

A paired test on the same test cases with each arm's seeds averaged answers "do *these trained models* differ on
this test set" (the *conditional* interval of :func:`monai_fair.metrics.compare_models`). A method claim ("does
reweighting improve worst-group AUC") is about the method: another training seed gives another model, and the
seed-to-seed spread of a figure is often as large as its test-set sampling error. This module gives the interval and
test of the method effect that contain both sources of variance.

**Model.** Arm A (base) has seeds ``s = 1..S``, arm B (other) seeds ``t = 1..T``, all scored on the same ``N`` test
cases. A figure of a model (AUC, a gap, a worst-group Dice, ...) is

.. math:: F(A_s) = \mu_A + b_s + c_A + u_s,

with ``b_s`` the seed effect (variance :math:`\sigma_A^2`, between seeds), ``c_A`` the test-set sampling error that
every model of the arm shares and ``u_s`` the part of the test-set error specific to the model (variance
:math:`\tau_A^2`). The method effect is :math:`\delta = \mu_B - \mu_A`, estimated by the difference of the
seed-averaged figures :math:`D = \bar F(B) - \bar F(A)`.

**Estimator** (random effects over seeds with the case-level covariance inside, method of moments):

* the case-level covariance :math:`\Sigma` (``M x M``, ``M = S + T``) of the models' figures is the covariance of
  the paired case-bootstrap replicates of :func:`~monai_fair.metrics.compare_models` (the same resampled cases for
  every model; for AUC figures the draws from the joint DeLong covariance); ``w = (-1/S, ..., 1/T, ...)`` gives the
  conditional variance :math:`w^T \Sigma w`;
* the model-specific case variance of an arm is :math:`\hat\tau^2 = \overline{\mathrm{diag}\,\Sigma_{AA}} -
  \overline{\mathrm{offdiag}\,\Sigma_{AA}}` (zero with one seed);
* **independent seeds** (the default): the per-seed sample variances :math:`s_A^2, s_B^2` estimate
  :math:`\sigma^2 + \tau^2`, so

  .. math:: \hat V = \frac{s_A^2}{S} + \frac{s_B^2}{T} + \max\Big(0,\ w^T\Sigma w - \frac{\hat\tau_A^2}{S}
            - \frac{\hat\tau_B^2}{T}\Big),

  the last term being the test-set error shared by the arms (counted once). With one seed on a side, that side's
  seed variance is taken to equal the other side's (stated in the result);
* **paired seeds** (seed ``i`` of both arms fixes a shared initialisation and data order, e.g. two checkpoints of
  the same training run): the per-seed differences :math:`d_i = F(B_i) - F(A_i)` with sample variance
  :math:`s_d^2` replace the two arms' variances, and :math:`\hat\tau_d^2` is computed the same way from the
  covariance of :math:`e(B_i) - e(A_i)`;
* interval :math:`D \pm t_{\nu,\,1-\alpha/2}\sqrt{\hat V}` and a two-sided t-test, with Satterthwaite's degrees of
  freedom :math:`\nu = \hat V^2 / \sum_k (v_k^2 / \nu_k)` over the seed terms (``S - 1``, ``T - 1``, or ``S - 1``
  paired; the case term counts as known).

**Sources.** Two-stage variance decomposition of hierarchical (runs x cases) data as in Bouthillier et al.,
*Accounting for Variance in Machine Learning Benchmarks* (MLSys 2021) and the hierarchical model of Corani et al.
(Machine Learning 2017); the seed-level t-test with Welch-Satterthwaite degrees of freedom (Welch, Biometrika 1947;
Satterthwaite, Biometrics Bulletin 1946); Dietterich (Neural Computation 1998) for why tests that ignore training
variability reject too often.

**Assumptions.** Seeds are exchangeable draws of the training randomness of each arm; seed effects are independent
of the test-set error; the figure is close to normal over seeds (a t-interval with few seeds is exact for normal
seed effects and conservative-ish otherwise); with independent seeds the arms' runs share nothing but the test set.
Coverage and type-I error are checked by simulation in ``benchmarks/coverage_bench.py --scenario seeds``
(``docs/benchmarks/coverage.md``). Adding seeds after looking at a verdict (``trial --add-seeds``) is a sequential
design this interval does not correct for: its error rate holds for a number of seeds fixed in advance.

**Planning.** With 80 % power at two-sided level ``alpha`` the smallest method effect the design can detect is
:math:`(t_{\nu,1-\alpha/2} + t_{\nu,0.8})\sqrt{\hat V}`; the seeds per arm needed for a tolerance scale the seed
terms of :math:`\hat V` by ``S/n`` and ``T/n`` (the shared test-set term does not shrink with seeds).
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = [
    "SEED_PAIRINGS",
    "seed_aware_difference",
    "student_t_sf",
    "student_t_ppf",
    "seeds_needed",
    "apply_seed_aware",
    "CONDITIONAL_LABEL",
]

#: how seed ``i`` of two arms relates: ``"independent"`` (nothing shared but the test set) or ``"paired"``
SEED_PAIRINGS = ("independent", "paired")
_POWER = 0.8


def _betacf(a: torch.Tensor, b: torch.Tensor, x: torch.Tensor, iters: int = 200) -> torch.Tensor:
    """Continued fraction of the regularised incomplete beta function (modified Lentz), elementwise."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = torch.ones_like(x)
    d = 1.0 - qab * x / qap
    d = torch.where(d.abs() < tiny, torch.full_like(d, tiny), d)
    d = 1.0 / d
    h = d.clone()
    for m in range(1, iters + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = torch.where(d.abs() < tiny, torch.full_like(d, tiny), d)
        c = 1.0 + aa / c
        c = torch.where(c.abs() < tiny, torch.full_like(c, tiny), c)
        d = 1.0 / d
        h = h * d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = torch.where(d.abs() < tiny, torch.full_like(d, tiny), d)
        c = 1.0 + aa / c
        c = torch.where(c.abs() < tiny, torch.full_like(c, tiny), c)
        d = 1.0 / d
        h = h * d * c
    return h


def _betainc(a: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Regularised incomplete beta ``I_x(a, b)`` (float64, elementwise; the symmetric form where it converges)."""
    x = x.clamp(0.0, 1.0)
    lbeta = torch.lgamma(a + b) - torch.lgamma(a) - torch.lgamma(b)
    xs = x.clamp(1e-300, 1 - 1e-16)
    front = torch.exp(lbeta + a * torch.log(xs) + b * torch.log1p(-xs))
    direct = front * _betacf(a, b, xs) / a
    swapped = 1.0 - front * _betacf(b, a, 1.0 - xs) / b
    out = torch.where(x < (a + 1.0) / (a + b + 2.0), direct, swapped)
    return torch.where(x <= 0, torch.zeros_like(x), torch.where(x >= 1, torch.ones_like(x), out))


def student_t_sf(t: Any, df: Any) -> torch.Tensor:
    """Two-sided tail probability ``P(|T_df| >= |t|)`` of Student's t (``df`` may be fractional or ``inf``)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    df = torch.as_tensor(df, dtype=torch.float64).expand_as(t).clone()
    inf = torch.isinf(df)
    dff = torch.where(inf, torch.ones_like(df), df)
    p = _betainc(dff / 2.0, torch.full_like(dff, 0.5), dff / (dff + t * t))
    normal = torch.erfc(t.abs() / math.sqrt(2.0))
    return torch.where(inf, normal, p).where(~torch.isnan(t) & ~torch.isnan(df), torch.full_like(t, float("nan")))


def _student_t_pdf(t: torch.Tensor, df: torch.Tensor) -> torch.Tensor:
    lc = torch.lgamma((df + 1) / 2) - torch.lgamma(df / 2) - 0.5 * torch.log(df * math.pi)
    return torch.exp(lc - (df + 1) / 2 * torch.log1p(t * t / df))


def student_t_ppf(q: float, df: Any) -> torch.Tensor:
    """Quantile ``t`` with ``P(T_df <= t) = q`` (``q > 0.5``), elementwise.

    Newton's method on the CDF from the normal quantile: the CDF is concave above 0 and the normal quantile lies
    below the t quantile, so the iterates rise monotonically to the root. ``df > 1e5`` is treated as normal.
    """
    if not 0.5 < q < 1:
        raise ValueError(f"q must lie in (0.5, 1), got {q}.")
    df = torch.as_tensor(df, dtype=torch.float64)
    z = math.sqrt(2.0) * float(torch.erfinv(torch.tensor(2.0 * q - 1.0, dtype=torch.float64)))
    normal = (torch.isinf(df) | (df > 1e5)) & ~torch.isnan(df)
    d = torch.where(normal | torch.isnan(df), torch.ones_like(df), df)
    t = torch.full_like(d, z)
    tail = 2.0 * (1.0 - q)
    for _ in range(60):
        step = (student_t_sf(t, d) - tail) / (2.0 * _student_t_pdf(t, d))
        t = t + step.clamp_min(0)
        if bool((step.abs() <= 1e-12 * t.abs().clamp_min(1.0)).all()):
            break
    out = torch.where(normal, torch.full_like(t, z), t)
    return torch.where(torch.isnan(df), df, out)


def _case_covariance(reps: torch.Tensor) -> torch.Tensor:
    """Covariance ``(F, M, M)`` of the models' replicates ``(B, M, F)`` (replicates with a NaN model left out)."""
    valid = ~torch.isnan(reps).any(1)  # (B, F)
    n = valid.sum(0).to(reps.dtype)  # (F,)
    x = torch.where(valid[:, None, :], reps, torch.zeros_like(reps))
    mean = x.sum(0) / n.clamp_min(1)  # (M, F)
    xc = torch.where(valid[:, None, :], reps - mean, torch.zeros_like(reps))
    cov = torch.einsum("bmf,bnf->fmn", xc, xc) / (n - 1).clamp_min(1)[:, None, None]
    return torch.where((n >= 3)[:, None, None], cov, torch.full_like(cov, float("nan")))


def _specific_variance(cov: torch.Tensor) -> torch.Tensor:
    """Mean diagonal minus mean off-diagonal of ``(F, k, k)``: the model-specific part of the case variance."""
    k = cov.shape[-1]
    if k < 2:
        return torch.zeros(cov.shape[0], dtype=cov.dtype)
    diag = torch.diagonal(cov, dim1=-2, dim2=-1).mean(-1)
    off = (cov.sum((-2, -1)) - torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1)) / (k * (k - 1))
    return (diag - off).clamp_min(0)


def seed_aware_difference(
    point: Any, reps: Any, n_base: int, pairing: str = "independent", ci: float = 0.95
) -> dict[str, Any]:
    """The method effect ``other - base`` of every figure with its seed-aware interval and t-test (module docstring).

    Args:
        point: ``(M, F)`` figure values of the ``M = S + T`` models (base seeds first).
        reps: ``(B, M, F)`` paired case-level replicates of the same figures (same resampled cases for all models).
        n_base: ``S``, the number of base seeds.
        pairing: ``"independent"`` or ``"paired"`` (requires ``S == T``).
        ci: interval level.

    Returns:
        Tensors of shape ``(F,)``: ``"difference"``, ``"se"``, ``"df"``, ``"lo"``, ``"hi"``, ``"p_value"``,
        ``"seed_variance"`` (the seed part of the variance of ``D``), ``"case_variance"`` (the shared test-set
        part), ``"detectable"`` (smallest effect detectable with 80 % power at ``1 - ci``); ``"seed_terms"``
        (``[(variance, df, seeds), ...]``), ``"pairing"`` and ``"note"`` (with one seed on a side, the assumption).

    Raises:
        ValueError: an unknown pairing, ``"paired"`` with unequal seed counts, or fewer than two seeds in all.
    """
    if pairing not in SEED_PAIRINGS:
        raise ValueError(f"pairing must be one of {SEED_PAIRINGS}, got {pairing!r}.")
    point = torch.as_tensor(point, dtype=torch.float64)
    reps = torch.as_tensor(reps, dtype=torch.float64)
    m = point.shape[0]
    s, t = int(n_base), m - int(n_base)
    if s < 1 or t < 1 or m < 3:
        raise ValueError(f"a seed-aware comparison needs >= 1 seed per side and >= 3 models in all, got {s} + {t}.")
    if pairing == "paired" and s != t:
        raise ValueError(f"paired seeds need the same number of seeds on both sides, got {s} and {t}.")
    a, b = point[:s], point[s:]
    diff = b.mean(0) - a.mean(0)
    cov = _case_covariance(reps)
    w = torch.tensor([-1.0 / s] * s + [1.0 / t] * t, dtype=torch.float64)
    cond = torch.einsum("m,fmn,n->f", w, cov, w).clamp_min(0)
    note = ""
    if pairing == "paired":
        d = b - a
        pmat = torch.cat([-torch.eye(s), torch.eye(s)], 1).to(torch.float64)  # (S, M): e(B_i) - e(A_i)
        cov_d = torch.einsum("im,fmn,jn->fij", pmat, cov, pmat)
        tau = _specific_variance(cov_d) / s
        terms = [(d.var(0, unbiased=True) / s, s - 1, float(s))]
    else:
        var = lambda v: v.var(0, unbiased=True)  # noqa: E731
        tau_a = _specific_variance(cov[:, :s, :s])
        tau_b = _specific_variance(cov[:, s:, s:])
        if s > 1 and t > 1:
            terms = [(var(a) / s, s - 1, float(s)), (var(b) / t, t - 1, float(t))]
            tau = tau_a / s + tau_b / t
        else:  # one seed on one side: that side's seed variance taken equal to the other side's
            many, k, tau_k = (a, s, tau_a) if s > 1 else (b, t, tau_b)
            terms = [(var(many) * (1.0 / s + 1.0 / t), k - 1, 2.0 / (1.0 / s + 1.0 / t))]
            tau = tau_k * (1.0 / s + 1.0 / t)
            note = "one seed on one side: its seed variance is taken equal to the other side's"
    case = (cond - tau).clamp_min(0)
    seed_var = sum(v for v, _, _ in terms)
    total = seed_var + case
    denom = sum(v * v / nu for v, nu, _ in terms)
    df = torch.where(denom > 0, total * total / denom.clamp_min(1e-300), torch.full_like(total, math.inf))
    se = total.sqrt()
    tq = student_t_ppf(0.5 + ci / 2.0, df)
    stat = torch.where(se > 0, diff / se, torch.full_like(se, float("nan")))
    p = student_t_sf(stat, df)
    power_q = student_t_ppf(_POWER, df)
    return {
        "difference": diff,
        "se": se,
        "df": df,
        "lo": diff - tq * se,
        "hi": diff + tq * se,
        "p_value": p,
        "seed_variance": seed_var,
        "case_variance": case,
        "detectable": (tq + power_q) * se,
        "seed_terms": terms,
        "pairing": pairing,
        "note": note,
    }


def seeds_needed(
    seed_terms: Any, case_variance: float, tolerance: float, ci: float = 0.95, max_seeds: int = 200
) -> int | None:
    """Seeds per arm for which the smallest detectable method effect (80 % power) falls to ``tolerance``.

    Args:
        seed_terms: ``[(variance contribution, df, seeds behind it), ...]`` as measured (a figure's
            ``"seed_terms"``); with ``n`` seeds per arm a term becomes ``variance * seeds / n`` with ``n - 1`` df.
        case_variance: the shared test-set variance (does not shrink with more seeds).
        tolerance: the method effect the design should detect.
        ci: interval level (two-sided ``alpha = 1 - ci``).
        max_seeds: the largest number of seeds considered.

    Returns:
        The number of seeds per arm, or ``None`` when no number up to ``max_seeds`` suffices (e.g. the test set
        alone is too small) or the variances are unknown.
    """
    terms = [(v, k) for v, _, k in seed_terms if v is not None]
    if not tolerance > 0 or case_variance is None or len(terms) != len(seed_terms) or not terms:
        return None
    if any(not math.isfinite(v) for v, _ in terms) or not math.isfinite(case_variance):
        return None
    ns = torch.arange(2, max_seeds + 1, dtype=torch.float64)
    v = torch.full_like(ns, float(case_variance))
    den = torch.zeros_like(ns)
    for x, k in terms:
        term = x * k / ns
        v = v + term
        den = den + term * term / (ns - 1)
    df = torch.where(den > 0, v * v / den.clamp_min(1e-300), torch.full_like(v, math.inf))
    mde = (student_t_ppf(0.5 + ci / 2.0, df) + student_t_ppf(_POWER, df)) * v.sqrt()
    ok = torch.nonzero(mde <= tolerance).flatten()
    return int(ns[ok[0]]) if ok.numel() else None


#: what the conditional (secondary) interval measures
CONDITIONAL_LABEL = "conditional: these trained models on this test set (training randomness not included)"


def apply_seed_aware(
    figures: list[dict[str, Any]], point: Any, reps: Any, n_base: int, pairing: str = "independent", ci: float = 0.95
) -> dict[str, Any]:
    """Make the seed-aware interval and test the primary ones of every figure of a comparison, in place.

    Each figure's ``ci``, ``p_value``, ``ci_method`` and ``p_method`` become the seed-aware ones; the case-only
    (conditional) interval moves to ``figure["conditional"]`` (``{"ci", "p_value", "ci_method", "label"}``); added:
    ``seed_se``, ``seed_df``, ``seed_variance``, ``case_variance``, ``detectable_effect`` and ``seed_terms``.

    Returns:
        ``{"estimator", "pairing", "note"}`` for the comparison's header.
    """
    res = seed_aware_difference(point, reps, n_base, pairing=pairing, ci=ci)
    fl = lambda v: float(v) if math.isfinite(float(v)) else None  # noqa: E731
    method = f"seed-aware t ({pairing} seeds; random effects over seeds + shared case covariance, Satterthwaite df)"
    for i, f in enumerate(figures):
        f["conditional"] = {
            "ci": f.get("ci"), "p_value": f.get("p_value"), "ci_method": f.get("ci_method"), "label": CONDITIONAL_LABEL,
        }  # fmt: skip
        f["ci"] = [float(res["lo"][i]), float(res["hi"][i])]  # NaN kept: Holm and JSON handle it
        f["p_value"] = float(res["p_value"][i])
        f["ci_method"], f["p_method"] = method, "seed-aware t-test"
        f["seed_se"], f["seed_df"] = fl(res["se"][i]), fl(res["df"][i])
        f["seed_variance"], f["case_variance"] = fl(res["seed_variance"][i]), fl(res["case_variance"][i])
        f["detectable_effect"] = fl(res["detectable"][i])
        f["seed_terms"] = [[fl(v[i]), int(nu), k] for v, nu, k in res["seed_terms"]]
    return {
        "estimator": "seed-aware: difference of seed means; variance = seed variance (per-seed spread) + shared "
        "test-set variance (paired case bootstrap covariance); t-interval with Satterthwaite df",
        "pairing": pairing,
        "note": res["note"],
    }
