# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Readable names, one-line definitions and formulas of every figure a report shows.

One table serves the plots (axis and panel names), the glossary section of ``report.md``, the fairness card and the
compare report, so a figure is named and defined the same way everywhere. Keys are the snake-case names of
:mod:`monai_fair.metrics`; :func:`describe` also resolves the families ``<m>_gap``, ``worst_group_<m>``, ``es_<m>``
and ``es_<m>_<variant>`` for any per-group metric ``m``.
"""

from __future__ import annotations

import re

__all__ = ["GLOSSARY", "describe", "readable_name", "glossary_lines"]

#: per-group (and overall) metrics: key -> (readable name, one-line definition with formula)
_GROUP: dict[str, tuple[str, str]] = {
    "n": ("n", "number of cases"),
    "accuracy": ("accuracy", "P(ŷ = y): share of correct predictions"),
    "balanced_accuracy": ("balanced accuracy", "mean over the classes present of the recall TP_c / (TP_c + FN_c)"),
    "auc": ("AUC", "ROC area: P(score of a random positive > score of a random negative), ties count 1/2"),
    "f1": ("F1", "2 TP / (2 TP + FP + FN) of the positive class (multi-class: macro mean)"),
    "tpr": ("TPR", "true-positive rate (sensitivity) TP / (TP + FN)"),
    "fpr": ("FPR", "false-positive rate FP / (FP + TN)"),
    "tnr": ("TNR", "true-negative rate (specificity) TN / (TN + FP)"),
    "selection_rate": ("selection rate", "P(ŷ = 1): share of cases predicted positive"),
    "ece": ("ECE", "expected calibration error Σ_b (n_b / n) |mean score_b − positive rate_b| over score bins b"),
    "brier": ("Brier score", "mean (score − y)² of the positive-class probability"),
    "dice": ("Dice", "mean over images of 2 |P ∩ T| / (|P| + |T|)"),
    "iou": ("IoU", "mean over images of |P ∩ T| / |P ∪ T|"),
}

#: fairness figures that are not in a family: key -> (readable name, one-line definition with formula)
_FAIRNESS: dict[str, tuple[str, str]] = {
    "eodds": (
        "equalized-odds difference",
        "max(TPR gap, FPR gap) = max(max_g TPR_g − min_g TPR_g, max_g FPR_g − min_g FPR_g) "
        "(fairlearn's equalized_odds_difference)",
    ),
    "eodds_max": (
        "equalized-odds difference",
        "max(TPR gap, FPR gap) (fairlearn's equalized_odds_difference)",
    ),
    "eodds_mean": (
        "equalized-odds mean difference",
        "mean over classes of range_g ½(TPR_g + FPR_g) (SCP code's EOdd; opposite TPR and FPR gaps can cancel)",
    ),
    "eopp0": ("equal-opportunity difference (negatives)", "range_g TNR_g = max_g TNR_g − min_g TNR_g"),
    "eopp1": ("equal-opportunity difference (positives)", "range_g TPR_g = max_g TPR_g − min_g TPR_g"),
    "demographic_parity": (
        "demographic-parity difference",
        "range_g selection rate_g (summed over classes when multi-class)",
    ),
    "ser": ("skewed error ratio (Dice)", "max_g (1 − Dice_g) / min_g (1 − Dice_g)"),
    "ser_iou": ("skewed error ratio (IoU)", "max_g (1 − IoU_g) / min_g (1 − IoU_g)"),
    "suppressed_groups": ("suppressed groups", "number of groups not shown (n < min_group_size, or secondary)"),
}

_ES_VARIANT = {
    "fairseg": ("ES-{M}", "M_all / (1 + Σ_g |M_all − M_g|) (Harvard-GF / FairSeg equity scaling)"),
    "fairseg_std": ("ES-{M} (std form)", "M_all / (1 + sd_g(M_g)) (FairSeg equity_scaled_std_perf)"),
    "fairmedfm": ("ES-{M} (FairMedFM form)", "mean_g(M_g) / (1 + sd_g(M_g), ddof 0) (FairMedFM)"),
}


def _group_name(m: str) -> str:
    return _GROUP[m][0] if m in _GROUP else m.replace("_", " ")


def describe(key: str) -> tuple[str, str]:
    """``(readable name, one-line definition with its formula)`` of a metric key.

    Families are resolved for any per-group metric ``M``: ``M_gap`` (range over groups), ``worst_group_M``
    (minimum, or maximum for error-type metrics ECE/Brier/FPR), ``es_M`` and ``es_M_<variant>`` (equity scaling).
    Unknown keys get their words and an empty definition.
    """
    if key in _GROUP:
        return _GROUP[key]
    if key in _FAIRNESS:
        return _FAIRNESS[key]
    m = re.fullmatch(r"(.+)_gap", key)
    if m:
        name = _group_name(m.group(1))
        sym = _group_name(m.group(1)).replace(" ", "_")
        return f"{name} gap", f"max_g {sym}_g − min_g {sym}_g over the reported groups"
    m = re.fullmatch(r"worst_group_(.+)", key)
    if m:
        base = m.group(1)
        name = _group_name(base)
        if base in ("ece", "brier", "fpr"):
            return f"worst-group {name}", f"max_g {name}_g (lower is better)"
        return f"worst-group {name}", f"min_g {name}_g over the reported groups"
    m = re.fullmatch(r"es_(.+?)(?:_(fairseg_std|fairseg|fairmedfm))?", key)
    if m:
        base, variant = m.group(1), m.group(2) or "fairseg"
        name = _group_name(base)
        title, formula = _ES_VARIANT[variant]
        return title.format(M=name), formula.replace("M_", f"{name}_").replace("(M_g)", f"({name}_g)")
    return key.replace("_", " "), ""


def readable_name(key: str) -> str:
    """The readable name of a metric key (``"tpr"`` -> ``"TPR"``, ``"auc_gap"`` -> ``"AUC gap"``)."""
    return describe(key)[0]


#: the fixed entries (families are generated by :func:`describe`)
GLOSSARY: dict[str, tuple[str, str]] = {**_GROUP, **_FAIRNESS}


def glossary_lines(keys: list[str] | tuple[str, ...]) -> list[str]:
    """Markdown list items ``- **name** (`key`): definition`` for ``keys`` (each once, in order)."""
    out, seen = [], set()
    for k in keys:
        if k in seen:
            continue
        seen.add(k)
        name, definition = describe(k)
        out.append(f"- **{name}** (`{k}`): {definition}" if definition else f"- **{name}** (`{k}`)")
    return out
