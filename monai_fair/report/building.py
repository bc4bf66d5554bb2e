# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Building the fairness report dictionary (``report.json``) from typed inputs: :func:`build_fairness_report`.

The Markdown of a report is :mod:`monai_fair.report.markdown`, its files and plots :mod:`monai_fair.report.files`.

What the report holds (``report.json``; ``report.md`` and the summary line show the same):

* per reported group and overall: ``n``, the metrics (classification with scores: also ECE and Brier score) with
  their intervals and the interval method of each metric;
* per fairness figure (``figures``): value, interval, interval method and, for difference-type figures (gaps,
  EOpp, EOdds, DP, the calibration gap), the **verdict** against the user's ``tolerance`` ("disparity" /
  "no disparity shown" / "insufficient evidence", :func:`monai_fair.metrics.disparity_verdict`), the p-value of the
  test of equal group values behind it, and the **smallest gap** the current group sizes could detect
  (:func:`monai_fair.metrics.detectable_gaps`);
* where the decision threshold came from (default 0.5 / user / fitted on validation / a predicted-label column);
* flags: a group whose selection rate is 0 or 1 (the model predicts one class for all its cases, which makes
  TPR/FPR gaps and the equalized-odds difference look perfect);
* notes: why a figure is missing (e.g. one group left after suppression: no gap, worst-group or ES figure).

**Suppression** (the privacy rule): only groups with ``n >= min_group_size`` that survive *secondary*
suppression (:func:`monai_fair.metrics.suppress_groups`: no suppressed group can be recovered as *overall minus the
reported groups*) appear in any output: they are neither listed nor plotted, they are left out of every group-level
figure, and warnings that name a hidden group are not passed on. Only the number of hidden groups is reported.
The hidden groups' cases still count in ``overall``. No per-case value is written.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from monai_fair.metrics import (
    FairnessMetricWarning,
    compute_group_calibration,
    compute_group_classification_metrics,
    compute_group_segmentation_metrics,
    detectable_gaps,
    disparity_verdict,
    suppress_groups,
)
from monai_fair.metrics.figures import figure_keys, get_figure, headline_figures, is_difference
from monai_fair.metrics.utils import group_label, to_flat_tensor
from monai_fair.report.inputs import ClassificationInputs, ReportInputs, ReportOptions, SegmentationInputs
from monai_fair.utils.serialization import to_json_safe

__all__ = ["VERDICTS", "build_fairness_report", "headline_figures", "is_gap_figure", "verdict_rule"]

#: the three verdicts of a difference-type figure
VERDICTS = ("disparity", "no disparity shown", "insufficient evidence")


def verdict_rule(alpha: float) -> str:
    """The verdict rule in words, at significance level ``alpha`` (recorded in the report and its Markdown)."""
    return (
        f"disparity: the group values differ (test of equal group values at alpha = {alpha:g}; for a signed "
        "difference, the CI excludes 0) and the estimate exceeds the tolerance; no disparity shown: the whole CI lies "
        "within ± tolerance (an equivalence claim, two one-sided tests); insufficient evidence: otherwise"
    )


#: a detectable gap is computed for FPR; TNR = 1 - FPR on the same negatives has the same variance, hence the same
#: detectable gap (the registry names TNR as the rate of eopp0, whose test is on TNR)
_SAME_DETECTABLE_GAP = {"tnr": "fpr"}


def is_gap_figure(key: str) -> bool:
    """Whether a fairness key is a between-group difference (reference 0), i.e. gets a disparity verdict (the
    registry's ``difference``, :func:`monai_fair.metrics.figures.is_difference`)."""
    return is_difference(key)


def _f(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def _merge_calibration(res: dict[str, Any], cal: dict[str, Any]) -> None:
    """Add ECE/Brier (values, intervals, methods, tests) of ``compute_group_calibration`` to a metrics result."""
    for scope in ("overall",):
        for m in ("ece", "brier"):
            res[scope][m] = cal[scope][m]
        if "ci" in cal[scope]:
            res[scope].setdefault("ci", {}).update(cal[scope]["ci"])
    for k, e in res["groups"].items():
        c = cal["groups"].get(k)
        if c is None:
            continue
        for m in ("ece", "brier"):
            e[m] = c[m]
        if "ci" in c:
            e.setdefault("ci", {}).update(c["ci"])
    res["fairness"].update(cal["fairness"])
    for key in ("fairness_ci", "ci_method", "fairness_p_value", "fairness_test"):
        if key in cal:
            res.setdefault(key, {}).update(cal[key])
    res["reliability"] = cal.get("reliability")


def _groups_and_suppression(
    group: Any, group_names: Sequence[str] | None, min_group_size: int
) -> tuple[torch.Tensor, int, list[str], torch.Tensor, list[int]]:
    """Group ids, number of groups, group names, group sizes and the hidden (suppressed) group ids."""
    g = to_flat_tensor(group, "group").reshape(-1).long()
    num_groups = max(len(group_names) if group_names is not None else 0, int(g.max()) + 1 if g.numel() else 1)
    names = list(group_names) if group_names is not None else []
    names += [str(k) for k in range(len(names), num_groups)]
    if len(set(names)) != len(names):
        raise ValueError(f"group_names must be unique, got {names}.")
    n_g = torch.bincount(g, minlength=num_groups)
    hide = torch.nonzero(~suppress_groups(n_g, min_group_size)).flatten().tolist()
    return g, num_groups, names, n_g, hide


def _classification_results(
    y: Any,
    g: torch.Tensor,
    num_groups: int,
    y_score: Any,
    y_pred: Any,
    threshold: float,
    min_group_size: int,
    alpha: float,
    common: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], tuple[str, ...], tuple[str, ...]]:
    """Classification metrics (with calibration when there are scores), detectable gaps and the metric names."""
    binary_scores = False
    res = compute_group_classification_metrics(y_score, y, g, num_groups, threshold, y_pred=y_pred, **common)
    group_metrics = figure_keys("classification", "group")
    fairness_names = figure_keys("classification", "fairness")
    if y_score is not None:
        _merge_calibration(res, compute_group_calibration(y_score, y, g, num_groups, **common))
        group_metrics = (*group_metrics, *figure_keys("classification", "group", scores=True))
        fairness_names = (*fairness_names, *figure_keys("classification", "fairness", scores=True))
        s = to_flat_tensor(y_score, "y_score")
        binary_scores = s.ndim == 1 or (s.ndim == 2 and s.shape[1] <= 2)
    mdg: dict[str, Any] = {}
    if "selection_rate" in res["overall"]:  # binary task (the detectable gaps are binary rates and AUC)
        mdg = detectable_gaps(
            g,
            y=y,
            y_score=y_score if binary_scores else None,
            y_pred=y_pred if y_pred is not None or binary_scores else None,
            threshold=threshold,
            min_group_size=min_group_size,
            alpha=alpha,
        )
    return res, mdg, group_metrics, fairness_names


def _segmentation_results(
    dice: Any, iou: Any, g: torch.Tensor, num_groups: int, min_group_size: int, alpha: float, common: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], tuple[str, ...], tuple[str, ...]]:
    """Segmentation metrics, detectable gaps and the metric names."""
    if dice is None:
        raise ValueError("task='segmentation' needs per-image `dice` (and optionally `iou`).")
    res = compute_group_segmentation_metrics(dice, iou, g, num_groups, **common)
    mdg = detectable_gaps(g, dice=dice, min_group_size=min_group_size, alpha=alpha)
    return res, mdg, figure_keys("segmentation", "group"), figure_keys("segmentation", "fairness")


def _pass_on_warnings(caught: list[warnings.WarningMessage], hide: list[int], names: list[str]) -> None:
    """Re-issue the caught warnings, except fairness warnings that name a hidden group."""
    hidden_labels = [group_label(k, names) for k in hide] + [repr(names[k]) for k in hide]
    for w in caught:
        msg = str(w.message)
        if issubclass(w.category, FairnessMetricWarning) and any(h in msg for h in hidden_labels):
            continue  # never name a hidden group
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _group_results(
    inputs: ReportInputs,
    g: torch.Tensor,
    num_groups: int,
    options: ReportOptions,
    common: dict[str, Any],
    hide: list[int],
    names: list[str],
) -> tuple[dict[str, Any], dict[str, Any], tuple[str, ...], tuple[str, ...]]:
    """The task's metric results, detectable gaps and metric names; warnings naming a hidden group are dropped."""
    mgs, alpha = options.min_group_size, options.alpha
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FairnessMetricWarning)
        if isinstance(inputs, ClassificationInputs):
            out = _classification_results(
                inputs.y, g, num_groups, inputs.y_score, inputs.y_pred, inputs.decision_threshold, mgs, alpha, common
            )
        else:
            out = _segmentation_results(inputs.dice, inputs.iou, g, num_groups, mgs, alpha, common)
    _pass_on_warnings(caught, hide, names)
    return out


def build_fairness_report(inputs: ReportInputs, options: ReportOptions | None = None) -> dict[str, Any]:
    """The report dictionary (``report.json``; nothing is written); see the module docstring.

    Args:
        inputs: :class:`~monai_fair.report.inputs.ClassificationInputs` or
            :class:`~monai_fair.report.inputs.SegmentationInputs` (what both prediction-table readers return); the
            task follows from the type.
        options: statistics and context (:class:`~monai_fair.report.inputs.ReportOptions`; default: its defaults).

    Returns:
        the JSON-safe report dictionary.
    """
    if not isinstance(inputs, (ClassificationInputs, SegmentationInputs)):
        raise TypeError(f"inputs must be ClassificationInputs or SegmentationInputs, got {type(inputs).__name__}.")
    options = options or ReportOptions()
    cls = isinstance(inputs, ClassificationInputs)
    g, num_groups, names, n_g, hide = _groups_and_suppression(inputs.group, inputs.group_names, options.min_group_size)
    common: dict[str, Any] = dict(
        group_names=names,
        min_group_size=max(int(options.min_group_size), 1),
        n_bootstrap=options.n_bootstrap,
        ci=options.ci,
        seed=options.seed,
        stratified_bootstrap=options.stratified_bootstrap,
        cluster=inputs.cluster,
    )
    res, mdg, group_metrics, fairness_names = _group_results(inputs, g, num_groups, options, common, hide, names)
    shown = [k for k in res["groups"] if k not in hide and int(n_g[k]) > 0]
    return _assemble(
        inputs.task,
        res,
        mdg,
        names,
        shown,
        hide,
        group_metrics,
        fairness_names,
        min_group_size=options.min_group_size,
        n_bootstrap=options.n_bootstrap,
        seed=options.seed,
        ci=options.ci,
        alpha=options.alpha,
        threshold=inputs.decision_threshold if cls else None,
        threshold_source=inputs.threshold_source if cls else None,
        y_pred_given=cls and inputs.y_pred is not None,
        binary=cls and "selection_rate" in res["overall"],
        stratified_bootstrap=options.stratified_bootstrap,
        cluster=inputs.cluster is not None,
        tolerance=options.tolerance,
        attribute=options.attribute,
        split=options.split,
        n_omitted=inputs.n_omitted,
        class_names=inputs.class_names if cls else None,
    )


def _no_test(test: str | None) -> str | None:
    """The reason a homogeneity test has no p-value (``"...; no p-value: <reason>"``), else ``None``."""
    return test if test and "no p-value:" in test else None


def _detectable(mdg: dict[str, Any], figure: str) -> tuple[float | None, str | None]:
    figs = mdg.get("figures", {})
    if figure == "eodds":
        c = [figs[m] for m in ("tpr", "fpr") if m in figs and _f(figs[m]["detectable_gap"])]
        if not c:
            return None, None
        best = min(c, key=lambda e: e["detectable_gap"])
        return _f(best["detectable_gap"]), f"{best['variance_model']} (the smaller of the TPR and FPR gaps)"
    f = get_figure(figure)
    m = f.rate if f is not None else (figure[: -len("_gap")] if figure.endswith("_gap") else None)
    m = _SAME_DETECTABLE_GAP.get(m, m) if m else m
    e = figs.get(m) if m else None
    d = _f(e["detectable_gap"]) if e else None
    return (d, e["variance_model"]) if d else (None, None)  # 0: a degenerate variance (e.g. a rate of 0), not a gap


def _notes(n_omitted: int, shown: list[int]) -> list[str]:
    """Notes on omitted cases and on fairness figures left out for lack of reported groups."""
    notes: list[str] = []
    if n_omitted:
        notes.append(f"{n_omitted} case(s) with a missing value were left out (--nan-policy omit).")
    if len(shown) < 2:
        why = (
            "no group can be shown after suppression"
            if not shown
            else "only one group is left after suppression: a gap, a worst group or an equity-scaled figure needs "
            "at least two groups"
        )
        notes.append(f"{why}; no group-level fairness figure is reported.")
    return notes


def _figure_entries(
    res: dict[str, Any],
    mdg: dict[str, Any],
    shown: list[int],
    fairness_names: Sequence[str],
    method_of: Callable[[str], str | None],
    tolerance: float,
    alpha: float,
) -> dict[str, dict[str, Any]]:
    """Per fairness figure: value, interval and its method; for gap figures also verdict, test and detectable gap."""
    fairness_ci = res.get("fairness_ci") or {}
    p_values = res.get("fairness_p_value") or {}
    tests = res.get("fairness_test") or {}
    figures: dict[str, dict[str, Any]] = {}
    for m in fairness_names:
        value = _f(res["fairness"].get(m)) if len(shown) >= 2 else None
        lo, hi = [_f(v) for v in fairness_ci.get(m, [None, None])] if value is not None else [None, None]
        entry: dict[str, Any] = {
            "value": value,
            "ci": [lo, hi] if lo is not None else None,
            "ci_method": method_of(m) if lo is not None else None,
        }
        if is_gap_figure(m):
            p = _f(p_values.get(m))
            signed = res.get("fairness_form") == "signed" and m in ("eopp0", "eopp1", "eodds_mean")
            d, model = _detectable(mdg, m) if value is not None else (None, None)
            entry["verdict"] = (
                disparity_verdict(
                    value,
                    [lo, hi],
                    tolerance,
                    None if signed else (math.nan if p is None else p),
                    alpha,
                    d,
                )
                if value is not None and lo is not None
                else None
            )
            entry["p_value"] = p
            entry["test"] = tests.get(m) if p is not None else _no_test(tests.get(m))
            entry["min_detectable_gap"] = d
            entry["min_detectable_gap_method"] = model
        figures[m] = entry
    return figures


def _selection_flags(
    res: dict[str, Any], names: list[str], shown: list[int], figures: dict[str, dict[str, Any]], binary: bool
) -> list[str]:
    """Flags for groups predicted all one class; adds a caveat to the threshold figures (in ``figures``) if any."""
    flags: list[str] = []
    if binary:
        for k in shown:
            sr = _f(res["groups"][k].get("selection_rate"))
            if sr is not None and sr in (0.0, 1.0):
                flags.append(
                    f"group {names[k]!r}: selection rate {sr:.0f}: the model predicts "
                    f"{'positive' if sr == 1 else 'negative'} for every case of this group at the threshold, so "
                    "its TPR/FPR are trivially 0 or 1 and the equalized-odds difference can look perfect."
                )
    if flags:  # figures at the threshold are degenerate for a group predicted all one class
        for m, e in figures.items():
            f = get_figure(m)
            if f is not None and f.threshold and e["value"] is not None:
                e["caveat"] = "a group's selection rate is 0 or 1 at the threshold (see flags)"
    return flags


def _threshold_entry(task: str, info: dict[str, Any]) -> dict[str, Any] | None:
    """The decision threshold and its source (classification), else ``None``."""
    if task != "classification":
        return None
    src = info["threshold_source"] or (
        "predicted labels given (threshold not known)" if info["y_pred_given"] else "default 0.5"
    )
    return {"value": info["threshold"] if not info["y_pred_given"] else None, "source": src}


def _reliability_entry(res: dict[str, Any], names: list[str], shown: list[int]) -> dict[str, Any] | None:
    """Reliability curves of the overall cases and the reported groups (by name), or ``None``."""
    if not res.get("reliability"):
        return None
    rel = res["reliability"]
    return {
        "bin_edges": rel["bin_edges"],
        "overall": rel["overall"],
        "groups": {names[k]: v for k, v in rel["groups"].items() if k in shown},
    }


def _assemble(
    task: str,
    res: dict[str, Any],
    mdg: dict[str, Any],
    names: list[str],
    shown: list[int],
    hide: list[int],
    group_metrics: Sequence[str],
    fairness_names: Sequence[str],
    **info: Any,
) -> dict[str, Any]:
    """The JSON-safe report dictionary from the metric results, the reported groups and the run's settings."""
    ci = info["ci"]
    boot = "cluster" if info["cluster"] else ("stratified" if info["stratified_bootstrap"] else "iid")
    given = res.get("ci_method") or {}  # figure -> method, as named by the metric functions
    method = given.get("accuracy", given.get("dice")) if info["n_bootstrap"] else None

    def method_of(m: str) -> str | None:
        return given.get(m, method) if info["n_bootstrap"] else None

    metrics = [m for m in group_metrics if m in res["overall"]]
    groups = {names[k]: res["groups"][k] for k in shown}
    notes = _notes(info["n_omitted"], shown)
    overall = res["overall"]
    if int(res["overall"]["n"]) < int(info["min_group_size"]):  # the whole input is a small cell: nothing at all
        overall, metrics, res = {"n": None, "suppressed": True}, [], {**res, "reliability": None}
        notes.append(
            "the whole input has fewer cases than min_group_size: no figure is reported, overall included "
            "(a figure of a handful of cases, e.g. ECE or Brier score of one case, discloses their labels and scores)."
        )
    figures = _figure_entries(res, mdg, shown, fairness_names, method_of, info["tolerance"], info["alpha"])
    flags = _selection_flags(res, names, shown, figures, info["binary"])
    threshold = _threshold_entry(task, info)
    reliability = _reliability_entry(res, names, shown)
    report: dict[str, Any] = {
        "task": task,
        "attribute": info["attribute"] or "group",
        "split": info["split"],
        "min_group_size": int(info["min_group_size"]),
        "suppressed_groups": len(hide),
        "suppression": {
            "min_group_size": int(info["min_group_size"]),
            "hidden_groups": len(hide),
            "rule": "groups with n < min_group_size are hidden, and further groups by secondary suppression so "
            "that no hidden group can be derived from overall minus the reported groups",
        },
        "n_bootstrap": int(info["n_bootstrap"]),
        "ci_level": float(ci),
        "seed": int(info["seed"]),
        "bootstrap": boot,
        "stratified_bootstrap": bool(info["stratified_bootstrap"]),
        "ci_method": method,
        "ci_methods": {m: method_of(m) for m in [*metrics, *fairness_names]} if method else {},
        "tolerance": float(info["tolerance"]),
        "alpha": float(info["alpha"]),
        "verdict_rule": verdict_rule(info["alpha"]),
        "detectable_gap_rule": (
            f"smallest true difference between the two smallest reported groups detected by a two-sided test at "
            f"alpha = {info['alpha']:g} with power {mdg.get('power', 0.8):g}"
        ),
        "threshold": threshold,
        "class_names": list(info["class_names"]) if info.get("class_names") else None,
        "n_omitted": int(info["n_omitted"]),
        "overall": overall,
        "groups": groups,
        "fairness": {**{m: figures[m]["value"] for m in fairness_names}, "suppressed_groups": len(hide)},
        "fairness_ci": {m: e["ci"] for m, e in figures.items() if e["ci"]},
        "figures": figures,
        "reliability": reliability,
        "flags": flags,
        "notes": notes,
        "metrics": metrics,
    }
    return to_json_safe(report)
