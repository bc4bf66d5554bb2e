# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Group fairness metrics for classification: per-group performance, gaps, equity scaling, EOpp/EOdds/DP, with
DeLong and (iid, stratified, cluster) bootstrap intervals.

Functional :func:`compute_group_classification_metrics` and the cumulative :class:`GroupClassificationMetric`.
:class:`ClassificationEngine` computes the same figures for several models on the same cases and resamples them
together (the paired model comparison, :func:`monai_fair.metrics.compare_models`, uses it).

Per group ``g`` (and overall): ``n``, ``accuracy``, ``balanced_accuracy`` (mean recall over the classes present,
as ``sklearn.metrics.balanced_accuracy_score``), ``auc`` (ROC AUC, Mann-Whitney with ties counted 1/2),
``f1``, ``tpr``, ``fpr``, ``tnr`` and, for binary tasks, ``selection_rate`` (P(y_hat = 1)).
Binary tasks use the positive class (label 1). Multi-class tasks are one-vs-rest and macro-averaged over
the classes where a value is defined (``tpr`` then equals ``balanced_accuracy``; ``f1`` equals sklearn's
``f1_score(average="macro")``; ``auc`` equals ``roc_auc_score(multi_class="ovr")`` when all classes are
present).

Fairness, over the *reported* groups (after suppression, see below) where the metric is defined; every figure
needs at least two such groups (else NaN, with its reason in ``fairness_nan_reason``):

* ``{m}_gap = max_g M_g - min_g M_g`` for accuracy, balanced accuracy, AUC, F1, TPR, FPR;
  ``worst_group_accuracy``, ``worst_group_auc = min_g M_g``.
* ``es_auc``, ``es_accuracy``: equity scaling of Harvard-GF / FairSeg,
  :math:`M_{all} / (1 + \\sum_g |M_{all} - M_g|)`.
* ``eodds``: equalized-odds difference in fairlearn's (``equalized_odds_difference``) max form,
  ``max(range_g TPR, range_g FPR)`` (multi-class: ``max(mean_c range_g TPR_c, mean_c range_g FPR_c)``).
* ``eopp0``, ``eopp1``, ``eodds_mean``, ``demographic_parity`` as in the public code of SCP (Kong et al.,
  "Achieving fairness through channel pruning", MICCAI 2023; ``fairness_metric.py``), one-vs-rest over classes:
  EOpp0 = mean_c dTNR_c, EOpp1 = mean_c dTPR_c, EOdd (here ``eodds_mean``) = mean_c 1/2 (dTPR_c + dFPR_c),
  DP = sum_c d(P(y_hat = c)); in ``eodds_mean`` opposite TPR and FPR differences can cancel.
  ``fairness_form="range"`` (default): ``d`` is the range over groups (for two groups SCP's absolute form);
  ``"signed"``: SCP's signed ``group_0 - group_1`` (exactly two reported groups, else NaN; ``eodds`` and DP stay
  absolute). Binary tasks use the positive class only (DP = fairlearn's ``demographic_parity_difference``).

**Suppression** (``min_group_size``, :func:`~monai_fair.metrics.suppress_groups`): groups with
``0 < n < min_group_size`` and, by secondary suppression, further groups so that the suppressed groups cannot be
recovered from ``overall`` and the reported groups, are left out of ``groups``, of every fairness figure and of
every warning; only their number is given (``suppression``). Their samples stay in ``overall``.

**Intervals** (``n_bootstrap > 0``): percentile bootstrap with ``n_bootstrap`` replicates, iid, stratified by
group (``stratified_bootstrap``) or over clusters (``cluster`` = patient ids: patients are resampled with all
their images; with ``stratified_bootstrap`` within their group). Confusion-count metrics use exact multinomial
replicate counts (:func:`~monai_fair.metrics.resampling.bootstrap_cell_counts`). With ``auc_ci="delong"``
(default) per-group and overall AUC get DeLong intervals (cluster-robust with ``cluster``) and ``auc_gap``,
``worst_group_auc``, ``es_auc`` percentiles of parametric draws from the joint DeLong covariance;
``auc_ci="bootstrap"`` recomputes AUC on every resample instead (O(B N)).

Undefined values (empty group, group with one class, NaN inputs) are NaN with a
:class:`~monai_fair.metrics.utils.FairnessMetricWarning` naming the (reported) group; they never raise.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from monai_fair.metrics.core import (
    GroupSetup,
    attach_intervals,
    bootstrap_intervals,
    build_result,
    collect_replicates,
    option,
    setup_groups,
)
from monai_fair.metrics.delong import DeLongAUC, auc_differences, normal_interval
from monai_fair.metrics.figures import figure_keys, formula_figures
from monai_fair.metrics.group_counts import GroupAUC
from monai_fair.metrics.homogeneity import homogeneity_reason
from monai_fair.metrics.inputs import parse_labels, parse_model
from monai_fair.metrics.resampling import bootstrap_cell_counts, bootstrap_scheme, bootstrap_weights, describe_bootstrap
from monai_fair.metrics.utils import (
    FairnessMetricWarning,
    equity_scaled,
    group_label,
    masked_max,
    masked_min,
    masked_range,
)

__all__ = [
    "compute_group_classification_metrics",
    "ClassificationEngine",
    "CLASSIFICATION_GROUP_METRICS",
    "CLASSIFICATION_FAIRNESS_METRICS",
    "FAIRNESS_FORMS",
    "AUC_CI_METHODS",
]

#: per-group (and overall) metric names, in report order (the built-in figures of :mod:`monai_fair.metrics.figures`)
CLASSIFICATION_GROUP_METRICS = figure_keys("classification", "group")
#: fairness figure names computed here (registered figures with a formula follow them in every result)
CLASSIFICATION_FAIRNESS_METRICS = figure_keys("classification", "fairness", formula=False)
FAIRNESS_FORMS = ("range", "signed")
#: ``"delong"``: DeLong CIs for AUC, parametric draws from the joint DeLong covariance for AUC-derived figures;
#: ``"bootstrap"``: AUC recomputed on every resample (weighted rank statistic, O(B N))
AUC_CI_METHODS = ("delong", "bootstrap")
_AUC_FIGURES = ("auc_gap", "worst_group_auc", "es_auc")
_NAN = float("nan")


def _nanmean(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    defined = ~torch.isnan(x)
    cnt = defined.sum(dim)
    s = torch.where(defined, x, torch.zeros_like(x)).sum(dim)
    return torch.where(cnt > 0, s / cnt.clamp_min(1), torch.full_like(s, _NAN))


def _div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b > 0, a / b.clamp_min(1e-300), torch.full_like(a, _NAN))


def _rates(cm: torch.Tensor, binary: bool) -> dict[str, torch.Tensor]:
    """Metrics from confusion matrices ``cm (..., C, C)`` (rows = truth)."""
    tp = torch.diagonal(cm, dim1=-2, dim2=-1)
    row = cm.sum(-1)  # true counts per class
    col = cm.sum(-2)  # predicted counts per class
    n = row.sum(-1)
    fn = row - tp
    fp = col - tp
    neg = n[..., None] - row
    tn = neg - fp
    tpr_c, fpr_c, tnr_c = _div(tp, row), _div(fp, neg), _div(tn, neg)
    f1_c = _div(2 * tp, 2 * tp + fp + fn)
    rate_c = _div(col, n[..., None].expand_as(col))
    out = {"n": n, "accuracy": _div(tp.sum(-1), n), "balanced_accuracy": _nanmean(tpr_c)}
    out.update(tpr_c=tpr_c, fpr_c=fpr_c, tnr_c=tnr_c, rate_c=rate_c)
    if binary:
        out.update(
            f1=f1_c[..., 1], tpr=tpr_c[..., 1], fpr=fpr_c[..., 1], tnr=tnr_c[..., 1], selection_rate=rate_c[..., 1]
        )
    else:
        out.update(f1=_nanmean(f1_c), tpr=_nanmean(tpr_c), fpr=_nanmean(fpr_c), tnr=_nanmean(tnr_c))
    return out


def _class_range(v: torch.Tensor, cmask: torch.Tensor) -> torch.Tensor:
    """Per class, the range over the groups ``(..., G, C) -> (..., C)``."""
    return masked_range(v, cmask, dim=-2)


def _fairness(
    per_group: dict[str, torch.Tensor], overall: dict[str, torch.Tensor], mask: torch.Tensor, binary: bool, form: str
) -> dict[str, torch.Tensor]:
    """Fairness metrics over the groups in ``mask`` for every leading index (replicates, models)."""
    out: dict[str, torch.Tensor] = {}
    for m in ("accuracy", "balanced_accuracy", "auc", "f1", "tpr", "fpr"):
        out[f"{m}_gap"] = masked_range(per_group[m], mask)
    for m in ("accuracy", "auc"):  # a worst group or an ES figure needs two groups: one group is not a comparison
        two = (~torch.isnan(torch.where(mask, per_group[m], torch.full_like(per_group[m], _NAN)))).sum(-1) >= 2
        nan = torch.full_like(overall[m], _NAN)
        out[f"worst_group_{m}"] = torch.where(two, masked_min(per_group[m], mask), nan)
        out[f"es_{m}"] = torch.where(two, equity_scaled(overall[m], per_group[m], mask), nan)
    cmask = mask[:, None]  # (G, 1) broadcasts over classes of (..., G, C)
    tpr_c, fpr_c, tnr_c, rate_c = per_group["tpr_c"], per_group["fpr_c"], per_group["tnr_c"], per_group["rate_c"]
    if binary:  # positive class only: the standard binary definitions
        tpr_c, fpr_c, tnr_c, rate_c = (t[..., 1:] for t in (tpr_c, fpr_c, tnr_c, rate_c))
    mean_c = 0.5 * (tpr_c + fpr_c)
    if form == "signed":  # two groups, SCP signed form: group 0 minus group 1
        idx = torch.nonzero(mask).flatten()
        if idx.numel() != 2:
            nan = torch.full(tpr_c.shape[:-2], _NAN, dtype=torch.float64)
            out.update(eopp0=nan, eopp1=nan.clone(), eodds_mean=nan.clone())
        else:
            g0, g1 = int(idx[0]), int(idx[1])
            out["eopp0"] = _nanmean(tnr_c[..., g0, :] - tnr_c[..., g1, :])
            out["eopp1"] = _nanmean(tpr_c[..., g0, :] - tpr_c[..., g1, :])
            out["eodds_mean"] = _nanmean(mean_c[..., g0, :] - mean_c[..., g1, :])
    else:  # range over groups per class (= the absolute two-group form), mean over classes
        out["eopp0"] = _nanmean(_class_range(tnr_c, cmask))
        out["eopp1"] = _nanmean(_class_range(tpr_c, cmask))
        out["eodds_mean"] = _nanmean(_class_range(mean_c, cmask))
    out["eodds"] = masked_max(
        torch.stack([_nanmean(_class_range(tpr_c, cmask)), _nanmean(_class_range(fpr_c, cmask))], -1)
    )
    dp_c = _class_range(rate_c, cmask)
    defined = ~torch.isnan(dp_c)
    out["demographic_parity"] = torch.where(
        defined.any(-1), torch.where(defined, dp_c, torch.zeros_like(dp_c)).sum(-1), torch.full_like(dp_c[..., 0], _NAN)
    )
    out.update(formula_figures("classification", per_group, overall, mask))
    return out


class ClassificationEngine:
    """All per-group, overall and fairness figures of ``M`` models on the same cases, on the data and on
    bootstrap replicates that resample the cases *once for all models* (paired).

    Args:
        y: ``(N,)`` labels.
        group: ``(N,)`` group ids.
        y_hat: ``(M, N)`` predictions.
        s_cols: ``(M, N, A)`` scores, or None.
        setup: the groups after NaN policy and suppression (:func:`~monai_fair.metrics.core.setup_groups`).
        num_classes: number of classes.
        binary: binary task.
        form: the EOdds form (``fairness_form`` of :func:`compute_group_classification_metrics`).
    """

    def __init__(
        self,
        y: torch.Tensor,
        group: torch.Tensor,
        y_hat: torch.Tensor,
        s_cols: torch.Tensor | None,
        setup: GroupSetup,
        num_classes: int,
        binary: bool,
        form: str,
    ) -> None:
        self.y, self.g, self.y_hat, self.s_cols, self.setup = y, group, y_hat, s_cols, setup
        self.c, self.binary, self.form = num_classes, binary, form
        self.m, self.ng = y_hat.shape[0], setup.num_groups
        self.positive = None
        if s_cols is not None:
            self.positive = (y == 1)[:, None] if binary else y[:, None] == torch.arange(num_classes)[None, :]
        self.delong = DeLongAUC(s_cols, self.positive, group, self.ng) if s_cols is not None else None
        if self.delong is not None and bool(setup.nan_groups.any()):  # propagate: those AUCs and overall are NaN
            bad = torch.cat([setup.nan_groups, torch.ones(1, dtype=torch.bool)])
            self.delong.theta[:, bad] = _NAN
            self.delong.var_defined[:, bad] = False

    def _finish(self, cm: torch.Tensor, auc_g: torch.Tensor, auc_o: torch.Tensor):
        """``(per_group, overall, fairness)`` from confusion matrices ``(b, M, G, C, C)`` and AUCs."""
        pg, ov = _rates(cm, self.binary), _rates(cm.sum(2), self.binary)
        pg["auc"], ov["auc"] = auc_g, auc_o
        bad = self.setup.nan_groups
        if bool(bad.any()):  # nan_policy="propagate": groups with NaN inputs and overall are NaN
            for k, v in pg.items():
                if k.endswith("_c"):  # class-wise rates (..., G, C)
                    v[..., bad, :] = _NAN
                elif k != "n":
                    v[..., bad] = _NAN
            for k, v in ov.items():
                if k != "n":
                    v.fill_(_NAN)
        fair = _fairness(pg, ov, self.setup.reported, self.binary, self.form)
        keep = [m for m in CLASSIFICATION_GROUP_METRICS if m in ov]
        return {m: pg[m] for m in keep}, {m: ov[m] for m in keep}, fair

    def point(self):
        """Figures on the data: per_group ``(1, M, G)``, overall ``(1, M)``, fairness ``(1, M)``."""
        size = self.ng * self.c**2
        key = ((self.g * self.c + self.y) * self.c)[None] + self.y_hat + (torch.arange(self.m) * size)[:, None]
        size = self.m * size
        cm = torch.bincount(key.reshape(-1), minlength=size).to(torch.float64).view(1, self.m, self.ng, self.c, self.c)
        if self.delong is None:
            nan = torch.full((1, self.m, self.ng + 1), _NAN, dtype=torch.float64)
        else:
            nan = self.delong.theta[None].clone()
        return self._finish(cm, nan[..., :-1], nan[..., -1])

    @functools.cached_property
    def _cells(self) -> tuple[np.ndarray, int, np.ndarray, torch.Tensor]:
        """Distinct (group, label, prediction of every model) rows: cell of every sample, number of cells, group of
        every cell and, per model, the flat ``(g, y, y_hat)`` confusion index of every cell ``(M, K)``."""
        cols = np.stack([self.g.numpy(), self.y.numpy(), *self.y_hat.numpy()], 1)
        radix = np.array([self.ng] + [self.c] * (self.m + 1), dtype=np.float64)
        if np.prod(radix) < 2**62:
            mult = np.cumprod(np.concatenate([[1], radix[:0:-1]]))[::-1].astype(np.int64)
            uniq_key, cell = np.unique(cols @ mult, return_inverse=True)
            rows = (uniq_key[:, None] // mult[None]) % radix.astype(np.int64)[None]
        else:
            rows, cell = np.unique(cols, axis=0, return_inverse=True)
        rows = torch.from_numpy(rows)
        conf = (rows[:, 0:1] * self.c + rows[:, 1:2]) * self.c + rows[:, 2:]  # (K, M)
        return cell.reshape(-1), rows.shape[0], rows[:, 0].numpy(), conf.t().contiguous()

    def _resampled(self, n_bootstrap: int, seed: int, stratified: bool, cluster: Any, auc_ci: str):
        """Chunks of ``(joint cell counts (b, K), AUC per group (b, M, G), overall AUC (b, M))``."""
        cell, k, cell_group, _ = self._cells
        if self.s_cols is not None and auc_ci == "bootstrap":  # one set of per-sample weights for counts and AUC
            aucs = [GroupAUC(s, self.positive, self.g, self.ng) for s in self.s_cols]
            strata = self.g if stratified else None
            for w in bootstrap_weights(self.y.numel(), n_bootstrap, seed, strata=strata, cluster=cluster):
                g, o = zip(*(a(w) for a in aucs))
                ag, ao = torch.stack(g, 1), torch.stack(o, 1)  # (b, M, G, A), (b, M, A)
                auc = (ag[..., 0], ao[..., 0]) if self.binary else (_nanmean(ag), _nanmean(ao))
                yield torch.zeros(w.shape[0], k, dtype=torch.float64).index_add_(1, torch.from_numpy(cell), w), *auc
            return
        strat = cell_group if stratified else None
        rng = np.random.default_rng([int(seed), 1])
        cov = self.delong.covariance(cluster) if self.delong is not None else None
        for cnt in bootstrap_cell_counts(cell, k, n_bootstrap, seed, cell_stratum=strat, cluster=cluster):
            b = cnt.shape[0]
            if cov is None:
                d = torch.full((b, self.m, self.ng + 1), _NAN, dtype=torch.float64)
            else:
                d = self.delong.draws(cov, b, rng)
            yield cnt, d[..., :-1], d[..., -1]

    def replicates(
        self, n_bootstrap: int, seed: int, stratified: bool, cluster: Any, auc_ci: str
    ) -> Iterator[tuple[dict, dict, dict]]:
        """Bootstrap replicates ``(per_group (b, M, G), overall (b, M), fairness (b, M))`` in chunks.

        Confusion matrices come from replicate counts of the joint (group, label, every model's prediction) cells,
        so all models see the same resampled cases. ``auc_ci="delong"``: counts by :func:`bootstrap_cell_counts`
        (exact multinomial; iid, stratified by group, or cluster) and AUCs drawn from the joint (cluster-robust)
        DeLong covariance of all models, groups and overall. ``"bootstrap"``: per-sample weights
        (:func:`bootstrap_weights`) give both the counts and the recomputed AUCs."""
        _, _, _, conf = self._cells
        size = self.ng * self.c**2
        idx = (conf + (torch.arange(self.m) * size)[:, None]).reshape(-1)
        for cnt, auc_g, auc_o in self._resampled(n_bootstrap, seed, stratified, cluster, auc_ci):
            b = cnt.shape[0]
            cm = torch.zeros(b, self.m * size, dtype=torch.float64).index_add_(1, idx, cnt.repeat(1, self.m))
            yield self._finish(cm.view(b, self.m, self.ng, self.c, self.c), auc_g, auc_o)


def _warn_single_class(setup: GroupSetup, y: torch.Tensor, num_classes: int, binary: bool, names, has_scores: bool):
    """Warn (reported groups only) where a group lacks classes, so AUC/TPR/FPR/F1 are NaN or averaged over fewer."""
    g, num_groups = setup.group, setup.num_groups
    present = torch.bincount(g * num_classes + y, minlength=num_groups * num_classes).view(num_groups, -1) > 0
    n_cls = present.sum(1)
    shown = setup.reported & (setup.counts > 0)
    for k in torch.nonzero(shown & (n_cls < 2)).flatten().tolist():
        what = "AUC, TPR/FPR and F1" if binary else "AUC and the class-wise rates"
        warnings.warn(
            f"{group_label(k, names)} has a single class: its {what} are NaN where undefined.",
            FairnessMetricWarning,
            stacklevel=3,
        )
    if not binary and has_scores:
        for k in torch.nonzero(shown & (n_cls >= 2) & (n_cls < num_classes)).flatten().tolist():
            warnings.warn(
                f"{group_label(k, names)} has {int(n_cls[k])} of {num_classes} classes: its macro AUC, TPR, "
                "FPR and F1 average the classes where they are defined.",
                FairnessMetricWarning,
                stacklevel=3,
            )


def prepare_classification(
    y_scores: Sequence[Any],
    y_preds: Sequence[Any],
    y: Any,
    group: Any,
    *,
    num_groups: int | None,
    threshold: float,
    num_classes: int | None,
    nan_policy: str,
    min_group_size: int,
    group_names: Sequence[str] | None,
    fairness_form: str,
    cluster: Any = None,
) -> tuple[ClassificationEngine, Any]:
    """Validate the inputs of ``M`` models on the same cases and build their :class:`ClassificationEngine`.

    Samples where any model's score or the label is NaN follow ``nan_policy`` (shared by the models, so they stay
    on the same cases). Returns the engine and the cluster ids of the kept samples."""
    form = option(fairness_form, FAIRNESS_FORMS, "fairness_form")
    yt, nan_rows = parse_labels(y)
    models = [parse_model(s, p, yt, threshold, num_classes) for s, p in zip(y_scores, y_preds)]
    c = models[0][3]
    if any(m[3] != c for m in models):
        raise ValueError(f"the models disagree on the number of classes: {[m[3] for m in models]}.")
    for m in models:
        nan_rows = nan_rows | m[2]
    n = yt.numel()
    if n and (int(yt.min()) < 0 or int(yt.max()) >= c):
        raise ValueError(f"`y` labels must be in [0, {c}), got [{int(yt.min())}, {int(yt.max())}].")
    setup = setup_groups(group, n, num_groups, nan_rows, nan_policy, min_group_size, group_names, "scores/labels")
    keep = setup.keep if setup.keep is not None else slice(None)
    if cluster is not None:
        cl = cluster.detach().cpu().numpy() if isinstance(cluster, torch.Tensor) else np.asarray(cluster)
        if cl.reshape(-1).size != n:
            raise ValueError(f"`cluster` has {cl.reshape(-1).size} entries, expected one per sample ({n}).")
        cluster = cl.reshape(-1)[keep.numpy() if isinstance(keep, torch.Tensor) else keep]
    y_hat = torch.stack([m[1][keep] for m in models])
    has_scores = all(m[0] is not None for m in models)
    s_cols = torch.stack([m[0][keep] for m in models]) if has_scores else None
    yk = yt[keep]
    _warn_single_class(setup, yk, c, c == 2, group_names, has_scores)
    return ClassificationEngine(yk, setup.group, y_hat, s_cols, setup, c, c == 2, form), cluster


def _auc_intervals(eng: ClassificationEngine, cluster: Any, ci: float):
    """DeLong intervals ``(lo, hi)`` of every group and overall AUC ``(M, G + 1)``, and the covariance."""
    cov = eng.delong.covariance(cluster)
    se = torch.sqrt(torch.diagonal(cov)).view(eng.m, eng.ng + 1)
    lo, hi, _ = normal_interval(eng.delong.theta, se, ci, (0.0, 1.0))
    return lo, hi, cov


def _intervals(
    result: dict[str, Any],
    eng: ClassificationEngine,
    point: dict[str, torch.Tensor],
    n_bootstrap: int,
    ci: float,
    seed: int,
    stratified: bool,
    cluster: Any,
    auc_ci: str,
) -> None:
    """Bootstrap (and DeLong) intervals of model 0, with the method of every figure, into ``result``."""
    reps = collect_replicates(eng.replicates(n_bootstrap, seed, stratified, cluster, auc_ci))
    reps = tuple({k: v[:, 0] for k, v in r.items()} for r in reps)
    boot = describe_bootstrap(bootstrap_scheme(stratified, cluster), n_bootstrap)
    iv = bootstrap_intervals(reps, {m: v[0, 0] for m, v in point.items()}, eng.setup, ci, boot, eng.binary)
    if auc_ci == "delong" and eng.delong is not None:
        lo, hi, cov = _auc_intervals(eng, cluster, ci)
        iv.groups["auc"], iv.overall["auc"] = (lo[0, :-1], hi[0, :-1]), (lo[0, -1], hi[0, -1])
        name = "DeLong, cluster-robust" if cluster is not None else "DeLong"
        iv.method["auc"] = name
        for f in _AUC_FIGURES:
            iv.method[f] = f"percentile of B={n_bootstrap} parametric draws from the joint {name} covariance"
        reported = torch.nonzero(eng.setup.reported & (eng.setup.counts > 0)).flatten()
        result["auc_differences"] = auc_differences(eng.delong.theta[0], cov, reported, ci)
        p_auc, _, why = homogeneity_reason(eng.delong.theta[0, reported], cov[reported][:, reported])
        iv.p_value["auc_gap"] = p_auc
        iv.test["auc_gap"] = f"{name} chi-square test of equal group AUCs" + (f"; no p-value: {why}" if why else "")
    attach_intervals(result, iv, ci)


def compute_group_classification_metrics(
    y_score: Any,
    y: Any,
    group: Any,
    num_groups: int | None = None,
    threshold: float = 0.5,
    *,
    y_pred: Any = None,
    num_classes: int | None = None,
    group_names: Sequence[str] | None = None,
    min_group_size: int = 1,
    fairness_form: str = "range",
    nan_policy: str = "propagate",
    n_bootstrap: int = 0,
    ci: float = 0.95,
    seed: int = 0,
    stratified_bootstrap: bool = False,
    cluster: Any = None,
    auc_ci: str = "delong",
) -> dict[str, Any]:
    """Per-group classification performance and group fairness metrics with intervals, fully vectorised.

    Figures, suppression and intervals: module docstring and ``docs/metrics.md``. Group-level figures use the
    reported groups where the metric is defined and need two of them (else NaN, reason in ``fairness_nan_reason``).

    Args:
        y_score: ``(N,)`` positive-class probabilities, or ``(N, C)`` class probabilities (``C = 2`` is binary,
            column 1 positive). May be ``None`` when ``y_pred`` is given (AUC is then NaN).
        y: ``(N,)`` integer labels or ``(N, C)`` one-hot.
        group: ``(N,)`` integer group ids ``0..K-1``.
        num_groups: ``K``; default ``max(group) + 1``. Groups absent from the data are empty (NaN, warned).
        threshold: decision threshold on the positive-class probability (binary); multi-class uses argmax.
        y_pred: optional predicted labels ``(N,)`` (or one-hot) overriding the thresholded/argmax prediction.
        num_classes: number of classes when only ``y_pred`` is given.
        group_names: names used in warnings (reported groups only).
        min_group_size: suppression threshold; 1 suppresses nothing.
        fairness_form: ``"range"`` (K groups, absolute) or ``"signed"`` (two groups, SCP signed form).
        nan_policy: ``"propagate"`` (a group with a NaN score or label gets NaN metrics, and so does
            ``overall``) or ``"omit"`` (those samples are dropped, with a warning).
        n_bootstrap, ci, seed: number of seeded bootstrap replicates (0: no intervals), level and seed.
        stratified_bootstrap: resample within each group (keeps the group sizes).
        cluster: ``(N,)`` cluster (patient) ids for the cluster bootstrap and the cluster-robust DeLong covariance.
        auc_ci: ``"delong"`` or ``"bootstrap"`` (see above).

    Returns:
        ``{"overall": {"n", <metric>: float}, "groups": {gid: {"n", <metric>: float}}, "fairness": {<figure>: float},
        "fairness_nan_reason": {<NaN figure>: code}, "suppression": {"min_group_size", "reported_groups",
        "suppressed_groups"}, "fairness_form"}``; ``groups`` holds the reported groups only (int ids). With
        ``n_bootstrap > 0`` also ``overall["ci"]`` and every group's ``"ci"`` (``{metric: [lo, hi]}``),
        ``"fairness_ci"``, ``"ci_method"`` (``{figure: method}``, e.g. ``{"auc": "DeLong", "accuracy": "percentile
        bootstrap, cluster, B=1000"}``), ``"ci_level"``, ``"fairness_p_value"``/``"fairness_test"`` (homogeneity
        tests for :func:`~monai_fair.metrics.fairness_verdicts`) and, with DeLong, ``"auc_differences"``.
    """
    auc_ci = option(auc_ci, AUC_CI_METHODS, "auc_ci")
    eng, cluster = prepare_classification(
        [y_score],
        [y_pred],
        y,
        group,
        num_groups=num_groups,
        threshold=threshold,
        num_classes=num_classes,
        nan_policy=nan_policy,
        min_group_size=min_group_size,
        group_names=group_names,
        fairness_form=fairness_form,
        cluster=cluster,
    )
    pg, ov, fair = eng.point()
    result = build_result(eng.setup, eng.y.numel(), (pg, ov, fair), figure_keys("classification", "fairness"))
    result["fairness_form"] = eng.form
    if n_bootstrap > 0 and eng.y.numel() > 0:
        _intervals(result, eng, pg, int(n_bootstrap), ci, seed, stratified_bootstrap, cluster, auc_ci)
    return result
