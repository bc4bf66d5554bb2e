# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Fairness report writer: ``report.json``, ``report.md`` and PNG plots from predictions, labels and groups.

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

import json
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from monai_fair.metrics import (
    CLASSIFICATION_FAIRNESS_METRICS,
    CLASSIFICATION_GROUP_METRICS,
    SEGMENTATION_FAIRNESS_METRICS,
    SEGMENTATION_GROUP_METRICS,
    FairnessMetricWarning,
    compute_group_calibration,
    compute_group_classification_metrics,
    compute_group_segmentation_metrics,
    detectable_gaps,
    disparity_verdict,
    suppress_groups,
)
from monai_fair.metrics.utils import group_label, to_flat_tensor
from monai_fair.report.glossary import glossary_lines, readable_name
from monai_fair.report.plots import (
    plot_forest,
    plot_group_bars,
    plot_group_roc,
    plot_message,
    plot_reliability,
)
from monai_fair.utils.serialization import to_json_safe

__all__ = [
    "VERDICTS",
    "build_fairness_report",
    "format_report_markdown",
    "format_report_summary",
    "is_gap_figure",
    "write_fairness_report",
]

#: headline fairness figures of the Markdown summary and the card (the JSON holds all)
CLS_HEADLINE = ("auc_gap", "worst_group_auc", "es_auc", "eodds", "demographic_parity", "accuracy_gap", "ece_gap")
SEG_HEADLINE = ("dice_gap", "worst_group_dice", "es_dice", "iou_gap", "ser")
#: the three verdicts of a difference-type figure
VERDICTS = ("disparity", "no disparity shown", "insufficient evidence")
_VERDICT_RULE = (
    "disparity: the group values differ (test of equal group values at alpha = 0.05; for a signed difference, the "
    "CI excludes 0) and the estimate exceeds the tolerance; no disparity shown: the whole CI lies within "
    "± tolerance (an equivalence claim, two one-sided tests); insufficient evidence: otherwise"
)
#: figures computed from the thresholded predictions (degenerate when a group is predicted all one class)
_THRESHOLD_FIGURES = (
    "accuracy_gap",
    "balanced_accuracy_gap",
    "f1_gap",
    "tpr_gap",
    "fpr_gap",
    "eopp0",
    "eopp1",
    "eodds",
    "eodds_mean",
    "demographic_parity",
)
#: per-group metric whose detectable gap bounds a fairness figure that is not named ``<metric>_gap``
_MDG_METRIC = {"eopp1": "tpr", "eopp0": "fpr", "demographic_parity": "selection_rate"}


def is_gap_figure(key: str) -> bool:
    """Whether a fairness key is a between-group difference (reference 0), i.e. gets a disparity verdict."""
    return key.endswith("_gap") or key in ("eopp0", "eopp1", "eodds", "eodds_mean", "demographic_parity")


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
    group_metrics, fairness_names = CLASSIFICATION_GROUP_METRICS, CLASSIFICATION_FAIRNESS_METRICS
    if y_score is not None:
        _merge_calibration(res, compute_group_calibration(y_score, y, g, num_groups, **common))
        group_metrics = (*group_metrics, "ece", "brier")
        fairness_names = (*fairness_names, "ece_gap", "brier_gap")
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
    return res, mdg, SEGMENTATION_GROUP_METRICS, SEGMENTATION_FAIRNESS_METRICS


def _pass_on_warnings(caught: list[warnings.WarningMessage], hide: list[int], names: list[str]) -> None:
    """Re-issue the caught warnings, except fairness warnings that name a hidden group."""
    hidden_labels = [group_label(k, names) for k in hide] + [repr(names[k]) for k in hide]
    for w in caught:
        msg = str(w.message)
        if issubclass(w.category, FairnessMetricWarning) and any(h in msg for h in hidden_labels):
            continue  # never name a hidden group
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _group_results(
    task: str,
    y: Any,
    g: torch.Tensor,
    num_groups: int,
    y_score: Any,
    y_pred: Any,
    dice: Any,
    iou: Any,
    threshold: float,
    min_group_size: int,
    alpha: float,
    common: dict[str, Any],
    hide: list[int],
    names: list[str],
) -> tuple[dict[str, Any], dict[str, Any], tuple[str, ...], tuple[str, ...]]:
    """The task's metric results, detectable gaps and metric names; warnings naming a hidden group are dropped."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FairnessMetricWarning)
        if task == "classification":
            out = _classification_results(y, g, num_groups, y_score, y_pred, threshold, min_group_size, alpha, common)
        else:
            out = _segmentation_results(dice, iou, g, num_groups, min_group_size, alpha, common)
    _pass_on_warnings(caught, hide, names)
    return out


def build_fairness_report(
    task: str,
    y: Any,
    group: Any,
    group_names: Sequence[str] | None,
    *,
    y_score: Any = None,
    y_pred: Any = None,
    dice: Any = None,
    iou: Any = None,
    min_group_size: int = 10,
    n_bootstrap: int = 200,
    seed: int = 0,
    ci: float = 0.95,
    threshold: float = 0.5,
    threshold_source: str | None = None,
    stratified_bootstrap: bool = False,
    cluster: Any = None,
    tolerance: float = 0.05,
    alpha: float = 0.05,
    attribute: str | None = None,
    split: str | None = None,
    n_omitted: int = 0,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The report dictionary written by :func:`write_fairness_report` (nothing is written); see the module docstring."""
    if task not in ("classification", "segmentation"):
        raise ValueError(f"task must be 'classification' or 'segmentation', got {task!r}.")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}.")
    g, num_groups, names, n_g, hide = _groups_and_suppression(group, group_names, min_group_size)
    common: dict[str, Any] = dict(
        group_names=names,
        min_group_size=max(int(min_group_size), 1),
        n_bootstrap=n_bootstrap,
        ci=ci,
        seed=seed,
        stratified_bootstrap=stratified_bootstrap,
        cluster=cluster,
    )
    res, mdg, group_metrics, fairness_names = _group_results(
        task, y, g, num_groups, y_score, y_pred, dice, iou, threshold, min_group_size, alpha, common, hide, names
    )
    shown = [k for k in res["groups"] if k not in hide and int(n_g[k]) > 0]
    return _assemble(
        task,
        res,
        mdg,
        names,
        shown,
        hide,
        group_metrics,
        fairness_names,
        min_group_size=min_group_size,
        n_bootstrap=n_bootstrap,
        seed=seed,
        ci=ci,
        alpha=alpha,
        threshold=threshold if task == "classification" else None,
        threshold_source=threshold_source,
        y_pred_given=y_pred is not None,
        binary=task == "classification" and "selection_rate" in res["overall"],
        stratified_bootstrap=stratified_bootstrap,
        cluster=cluster is not None,
        tolerance=tolerance,
        attribute=attribute,
        split=split,
        n_omitted=n_omitted,
        class_names=class_names,
    )


def _detectable(mdg: dict[str, Any], figure: str) -> tuple[float | None, str | None]:
    figs = mdg.get("figures", {})
    if figure == "eodds":
        c = [figs[m] for m in ("tpr", "fpr") if m in figs and _f(figs[m]["detectable_gap"])]
        if not c:
            return None, None
        best = min(c, key=lambda e: e["detectable_gap"])
        return _f(best["detectable_gap"]), f"{best['variance_model']} (the smaller of the TPR and FPR gaps)"
    m = _MDG_METRIC.get(figure, figure[: -len("_gap")] if figure.endswith("_gap") else None)
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
            entry["verdict"] = (
                disparity_verdict(
                    value,
                    [lo, hi],
                    tolerance,
                    None if signed else (math.nan if p is None else p),
                    alpha,
                )
                if value is not None and lo is not None
                else None
            )
            entry["p_value"] = p
            entry["test"] = tests.get(m) if p is not None else None
            d, model = _detectable(mdg, m) if value is not None else (None, None)
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
            if m in _THRESHOLD_FIGURES and e["value"] is not None:
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
        "verdict_rule": _VERDICT_RULE,
        "detectable_gap_rule": (
            f"smallest true difference between the two smallest reported groups detected by a two-sided test at "
            f"alpha = {info['alpha']:g} with power {mdg.get('power', 0.8):g}"
        ),
        "threshold": threshold,
        "class_names": list(info["class_names"]) if info.get("class_names") else None,
        "n_omitted": int(info["n_omitted"]),
        "overall": res["overall"],
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


def write_fairness_report(
    out_dir: str | Path,
    task: str,
    y: Any,
    group: Any,
    group_names: Sequence[str] | None,
    *,
    y_score: Any = None,
    y_pred: Any = None,
    dice: Any = None,
    iou: Any = None,
    min_group_size: int = 10,
    n_bootstrap: int = 200,
    seed: int = 0,
    ci: float = 0.95,
    threshold: float = 0.5,
    threshold_source: str | None = None,
    stratified_bootstrap: bool = False,
    cluster: Any = None,
    tolerance: float = 0.05,
    attribute: str | None = None,
    split: str | None = None,
    n_omitted: int = 0,
    class_names: Sequence[str] | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Compute the group fairness report and write ``report.json``, ``report.md`` and PNG plots to ``out_dir``.

    Args:
        out_dir: output folder (created).
        task: ``"classification"`` or ``"segmentation"``.
        y: ``(N,)`` labels (classification; for segmentation only its length is used and it may be ``None``).
        group: ``(N,)`` integer group ids; ``group_names[k]`` names group ``k``.
        group_names: names of the groups (index = id), used as keys of ``groups`` in the report.
        y_score: ``(N,)`` positive-class or ``(N, C)`` class probabilities (classification; gives AUC and ROC).
        y_pred: ``(N,)`` predicted labels (classification; optional when ``y_score`` is given).
        dice, iou: ``(N,)`` per-image scores (segmentation).
        min_group_size: groups with fewer samples are suppressed everywhere (see the module docstring).
        n_bootstrap, seed, ci: seeded percentile bootstrap CIs of per-group metrics and fairness metrics.
        threshold: binary decision threshold on ``y_score``.
        threshold_source: where the threshold came from, in words ("default 0.5", "user", "fitted on validation").
        stratified_bootstrap: resample within each group (group sizes fixed) instead of over all samples.
        cluster: ``(N,)`` patient (cluster) ids: the bootstrap resamples patients with all their cases.
        tolerance: largest gap that counts as negligible (verdicts), in the figure's units.
        attribute: name of the attribute the groups come from (titles).
        split: name of the evaluated split (titles).
        n_omitted: cases left out before the report (missing values), stated in the report.
        class_names: names of the classes (recorded).
        plots: write the PNGs.

    Returns:
        the report dictionary (as in ``report.json``; ``files`` lists what was written).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if task == "segmentation" and y is None:
        y = torch.zeros(to_flat_tensor(group, "group").numel())
    report = build_fairness_report(
        task,
        y,
        group,
        group_names,
        y_score=y_score,
        y_pred=y_pred,
        dice=dice,
        iou=iou,
        min_group_size=min_group_size,
        n_bootstrap=n_bootstrap,
        seed=seed,
        ci=ci,
        threshold=threshold,
        threshold_source=threshold_source,
        stratified_bootstrap=stratified_bootstrap,
        cluster=cluster,
        tolerance=tolerance,
        attribute=attribute,
        split=split,
        n_omitted=n_omitted,
        class_names=class_names,
    )
    files = ["report.json", "report.md"]
    if plots:
        files += _write_plots(out, report, task, y, group, group_names, y_score)
    report["files"] = files
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(format_report_markdown(report))
    return report


_NO_GROUP = (
    "No group can be shown: every group has fewer cases than min_group_size, or is hidden so that it cannot be "
    "derived from overall minus the reported groups (secondary suppression)."
)


def report_title(report: dict[str, Any], what: str) -> str:
    """Plot title: what, the attribute, the split and the CI level."""
    parts = [what, f"by {report.get('attribute') or 'group'}"]
    if report.get("split"):
        parts.append(f"split: {report['split']}")
    if report.get("ci_method"):
        parts.append(f"{int(round(100 * report['ci_level']))}% CI")
    return " — ".join([parts[0], ", ".join(parts[1:])])


def _write_plots(
    out: Path, report: dict[str, Any], task: str, y: Any, group: Any, group_names: Any, y_score: Any
) -> list[str]:
    files = []
    rows = [("overall", report["overall"])] + list(report["groups"].items())
    if not report["groups"]:
        plot_message(out / "group_metrics.png", report_title(report, "Per-group metrics"), _NO_GROUP)
    else:
        plot_group_bars(rows, report["metrics"], out / "group_metrics.png", report_title(report, "Per-group metrics"))
    files.append("group_metrics.png")
    fr = []
    for m, e in report["figures"].items():
        if "verdict" not in e or e["value"] is None:
            continue
        lo, hi = (e["ci"] or [None, None])[:2]
        note = e["verdict"] or ""
        fr.append((readable_name(m), e["value"], lo, hi, note))
    why = report["notes"][-1] if report["notes"] and len(report["groups"]) < 2 else "no gap figure is defined"
    plot_forest(
        fr,
        out / "gaps_forest.png",
        report_title(report, "Fairness gaps")
        + ("\n" + ", ".join(f"{n} (n={e['n']})" for n, e in report["groups"].items()) if report["groups"] else ""),
        f"gap (max − min over groups); band: ± tolerance {report['tolerance']:g}",
        tolerance=report["tolerance"],
        empty_message=why,
    )
    files.append("gaps_forest.png")
    if task == "classification" and y_score is not None:
        s = to_flat_tensor(y_score, "y_score", torch.float64)
        if (s.ndim == 1 or (s.ndim == 2 and s.shape[1] <= 2)) and not report["groups"]:
            plot_message(out / "roc_curves.png", report_title(report, "ROC per group"), _NO_GROUP)
            files.append("roc_curves.png")
        elif s.ndim == 1 or (s.ndim == 2 and s.shape[1] <= 2):
            s = s.reshape(s.shape[0], -1)[:, -1]
            g = to_flat_tensor(group, "group").reshape(-1).long()
            yy = to_flat_tensor(y, "y")
            yy = (yy.argmax(1) if yy.ndim == 2 and yy.shape[1] > 1 else yy.reshape(-1)).long()
            gnames = list(report["groups"].keys())
            all_names = list(group_names) if group_names is not None else []
            ids = [all_names.index(n) if n in all_names else int(n) for n in gnames]
            keep = ~torch.isnan(s)
            plot_group_roc(
                s[keep],
                yy[keep],
                g[keep],
                ids,
                gnames,
                [report["groups"][n]["auc"] for n in gnames],
                out / "roc_curves.png",
                title=report_title(report, "ROC per group"),
            )
            files.append("roc_curves.png")
    rel = report.get("reliability")
    if rel:
        ov = report["overall"]
        curves = [("overall", {**rel["overall"], "n": ov["n"], "ece": ov.get("ece")})]
        curves += [
            (n, {**rel["groups"][n], "n": e["n"], "ece": e.get("ece")})
            for n, e in report["groups"].items()
            if n in rel["groups"]
        ]
        plot_reliability(curves, out / "reliability.png", report_title(report, "Reliability (calibration)"))
        files.append("reliability.png")
    return files


def _fmt(v: Any) -> str:
    return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _fmt_ci(entry: dict[str, Any], m: str) -> str:
    s = _fmt(entry.get(m))
    ci = (entry.get("ci") or {}).get(m)
    if ci is not None and entry.get(m) is not None and ci[0] is not None:
        s += f" [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    return s


def format_report_markdown(report: dict[str, Any]) -> str:
    """``report.md``: context, flags and notes, per-group table, fairness figures with verdicts, glossary."""
    metrics = report.get("metrics") or [m for m in report["overall"] if m not in ("n", "ci")]
    lines = [f"# Fairness report ({report['task']})", ""]
    lines.append(f"- Groups from: **{report.get('attribute') or 'group'}**; split: **{report.get('split') or 'n/a'}**.")
    th = report.get("threshold")
    if th:
        lines.append(f"- Decision threshold: {_fmt(th.get('value'))} (source: {th['source']}).")
    if report.get("ci_method"):
        lines.append(f"- Intervals: {int(round(100 * report['ci_level']))}% CIs, {report['ci_method']}.")
    else:
        lines.append("- Intervals: none (n_bootstrap = 0); no verdict can be given.")
    lines.append(
        f"- Suppression: groups with fewer than {report['min_group_size']} cases are hidden, with secondary "
        f"suppression; hidden groups: {report['suppressed_groups']}."
    )
    lines.append(f"- Verdict tolerance: ±{report['tolerance']:g} ({report['verdict_rule']}).")
    if report.get("flags") or report.get("notes"):
        lines += ["", "## Flags and notes", ""]
        lines += [f"- **flag**: {f}" for f in report.get("flags", [])]
        lines += [f"- {n}" for n in report.get("notes", [])]
    lines += ["", "## Per-group metrics", ""]
    lines += [
        "| group | n | " + " | ".join(readable_name(m) for m in metrics) + " |",
        "|" + "---|" * (len(metrics) + 2),
    ]
    for name, entry in [("overall", report["overall"]), *report["groups"].items()]:
        lines.append(f"| {name} | {entry['n']} | " + " | ".join(_fmt_ci(entry, m) for m in metrics) + " |")
    methods = report.get("ci_methods") or {}
    if methods:
        by: dict[str, list[str]] = {}
        for m in metrics:
            if methods.get(m):
                by.setdefault(methods[m], []).append(readable_name(m))
        lines += [""] + [f"CI method of {', '.join(ms)}: {meth}." for meth, ms in by.items()]
    lines += ["", "## Fairness figures", ""]
    lines += [
        "| figure | value | CI | CI method | verdict | smallest detectable gap |",
        "|---|---|---|---|---|---|",
    ]
    shown_keys = []
    for m, e in report.get("figures", {}).items():
        if e["value"] is None and m not in _headline(report):
            continue
        shown_keys.append(m)
        c = e.get("ci")
        lines.append(
            f"| {readable_name(m)} (`{m}`) | {_fmt(e['value'])} | "
            + (f"[{_fmt(c[0])}, {_fmt(c[1])}]" if c else "")
            + f" | {e.get('ci_method') or ''} | {(e.get('verdict') or '') + (' (flag!)' if e.get('caveat') else '')} | "
            + (f"{_fmt(e.get('min_detectable_gap'))} |" if "verdict" in e else " |")
        )
    lines += ["", "## Glossary", ""]
    lines += glossary_lines(["n", *metrics, *shown_keys])
    return "\n".join(lines) + "\n"


def _headline(report: dict[str, Any]) -> tuple[str, ...]:
    return CLS_HEADLINE if report["task"] == "classification" else SEG_HEADLINE


def format_report_summary(report: dict[str, Any]) -> str:
    """A few printable lines: overall performance and the headline fairness figures with CIs and verdicts."""
    task = report["task"]
    ov = report["overall"]
    keys = ("accuracy", "auc") if task == "classification" else ("dice", "iou")
    first = f"fairness report ({task}): n={ov['n']}, " + ", ".join(f"{k}={_fmt(ov.get(k))}" for k in keys)
    first += f", {len(report['groups'])} groups reported, {report['suppressed_groups']} suppressed"
    parts = []
    for m in _headline(report):
        e = report.get("figures", {}).get(m)
        if e is None:
            continue
        s = f"{m}={_fmt(e['value'])}"
        if e.get("ci"):
            s += f" [{_fmt(e['ci'][0])}, {_fmt(e['ci'][1])}]"
        if e.get("verdict"):
            s += f" ({e['verdict']}" + (", flag!" if e.get("caveat") else "")
            s += f"; detectable >= {_fmt(e['min_detectable_gap'])})" if e.get("min_detectable_gap") else ")"
        parts.append(s)
    tol = (
        f"; verdicts at tolerance {report['tolerance']:g}"
        if any(e.get("verdict") for e in report["figures"].values())
        else ""
    )
    lines = [first + tol, "  " + ", ".join(parts)]
    if len(report["groups"]) < 2:
        lines.append("  " + report["notes"][-1])
    lines += [f"  flag: {f}" for f in report.get("flags", [])]
    return "\n".join(lines)
