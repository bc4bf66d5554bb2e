# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The figure registry: one frozen record per figure, read by every part that names, orders or judges a figure.

A :class:`Figure` holds what a figure *is*: its key, task, scope (a per-group metric or a figure over the groups),
readable name, definition, direction (higher / lower is better, or none), whether it is a between-group difference
(it gets a verdict), whether it is computed from thresholded predictions, the per-group rate behind its homogeneity
test and detectable gap, its place among the headline figures, whether the compare report plots it and whether it
needs scores (calibration). The ``compute_*`` functions, the verdicts and homogeneity tests, the paired comparison,
the report, its Markdown, the fairness card, the glossary, the plots and the figure table of ``docs/metrics.md``
(``python -m monai_fair.metrics.figures``, checked by ``tests/metrics/test_figures.py``) all read it.

A new figure is one :func:`register_figure` call with its ``formula``: a function of the per-group values
``{metric: (..., G)}``, the overall values ``{metric: (...)}`` and the mask of reported groups ``(G,)``, returning
``(...)`` (every leading index a bootstrap replicate or a model), e.g. the TPR ratio::

    register_figure(Figure("tpr_ratio", "classification", "fairness", "TPR ratio", "min_g TPR_g / max_g TPR_g",
                           "higher", formula=lambda g, o, m: masked_min(g["tpr"], m) / masked_max(g["tpr"], m)))

It then has a value, an interval and (with ``difference=True`` and a ``rate``) a verdict in every report, card,
glossary and comparison. Imports only the standard library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Figure",
    "FIGURES",
    "DIRECTIONS",
    "register_figure",
    "unregister_figure",
    "get_figure",
    "figure_keys",
    "headline_figures",
    "is_difference",
    "formula_figures",
    "tested_rates",
    "figure_table_markdown",
]

DIRECTIONS = ("higher", "lower", "none")
TASKS = ("classification", "segmentation")
SCOPES = ("group", "fairness")


@dataclass(frozen=True)
class Figure:
    """One figure.

    Attributes:
        key: snake-case key used in every result and output (``"auc_gap"``).
        task: ``"classification"`` or ``"segmentation"``.
        scope: ``"group"`` (a per-group and overall metric) or ``"fairness"`` (one value over the groups).
        name: readable name (plots, Markdown, card).
        definition: one-line definition with its formula (glossary, docs).
        direction: ``"higher"`` or ``"lower"`` is better, or ``"none"`` (comparison verdicts).
        difference: a between-group difference with reference 0: it gets a disparity verdict.
        threshold: computed from the thresholded predictions (degenerate when a group is predicted all one class).
        rate: the per-group metric whose homogeneity test decides the verdict and whose detectable gap bounds it.
        headline: rank among the task's headline figures (Markdown summary, card), ``None``: not a headline.
        plotted: a per-group metric drawn in the compare report's forest plot.
        scores: needs probability scores (calibration figures).
        formula: for a registered figure that no ``compute_*`` function computes itself:
            ``formula(per_group, overall, reported_mask) -> values`` (see the module docstring).
    """

    key: str
    task: str
    scope: str
    name: str
    definition: str
    direction: str
    difference: bool = False
    threshold: bool = False
    rate: str | None = None
    headline: int | None = None
    plotted: bool = False
    scores: bool = False
    formula: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        for value, options, what in ((self.task, TASKS, "task"), (self.scope, SCOPES, "scope")):
            if value not in options:
                raise ValueError(f"Figure {self.key!r}: {what} must be one of {list(options)}, got {value!r}.")
        if self.direction not in DIRECTIONS:
            raise ValueError(
                f"Figure {self.key!r}: direction must be one of {list(DIRECTIONS)}, got {self.direction!r}."
            )


_F = Figure
#: every figure, in report order (per task: per-group metrics, calibration metrics, fairness figures)
FIGURES: dict[str, Figure] = {}
_BUILTIN = (
    _F(
        "accuracy",
        "classification",
        "group",
        "accuracy",
        "P(ŷ = y): share of correct predictions",
        "higher",
        plotted=True,
    ),
    _F(
        "balanced_accuracy",
        "classification",
        "group",
        "balanced accuracy",
        "mean over the classes present of the recall TP_c / (TP_c + FN_c)",
        "higher",
    ),
    _F(
        "auc",
        "classification",
        "group",
        "AUC",
        "ROC area: P(score of a random positive > score of a random negative), ties count 1/2",
        "higher",
        plotted=True,
    ),
    _F(
        "f1",
        "classification",
        "group",
        "F1",
        "2 TP / (2 TP + FP + FN) of the positive class (multi-class: macro mean)",
        "higher",
    ),
    _F(
        "tpr",
        "classification",
        "group",
        "TPR",
        "true-positive rate (sensitivity) TP / (TP + FN)",
        "higher",
        plotted=True,
    ),
    _F("fpr", "classification", "group", "FPR", "false-positive rate FP / (FP + TN)", "lower", plotted=True),
    _F("tnr", "classification", "group", "TNR", "true-negative rate (specificity) TN / (TN + FP)", "higher"),
    _F(
        "selection_rate",
        "classification",
        "group",
        "selection rate",
        "P(ŷ = 1): share of cases predicted positive",
        "none",
    ),
    _F(
        "ece",
        "classification",
        "group",
        "ECE",
        "expected calibration error Σ_b (n_b / n) |mean score_b − positive rate_b| over score bins b",
        "lower",
        scores=True,
    ),
    _F(
        "brier",
        "classification",
        "group",
        "Brier score",
        "mean (score − y)² of the positive-class probability",
        "lower",
        scores=True,
    ),
    _F(
        "accuracy_gap",
        "classification",
        "fairness",
        "accuracy gap",
        "max_g accuracy_g − min_g accuracy_g over the reported groups",
        "lower",
        difference=True,
        threshold=True,
        rate="accuracy",
        headline=5,
    ),
    _F(
        "balanced_accuracy_gap",
        "classification",
        "fairness",
        "balanced accuracy gap",
        "max_g balanced_accuracy_g − min_g balanced_accuracy_g over the reported groups",
        "lower",
        difference=True,
        threshold=True,
        rate="balanced_accuracy",
    ),
    _F(
        "auc_gap",
        "classification",
        "fairness",
        "AUC gap",
        "max_g AUC_g − min_g AUC_g over the reported groups",
        "lower",
        difference=True,
        rate="auc",
        headline=0,
    ),
    _F(
        "f1_gap",
        "classification",
        "fairness",
        "F1 gap",
        "max_g F1_g − min_g F1_g over the reported groups",
        "lower",
        difference=True,
        threshold=True,
        rate="f1",
    ),
    _F(
        "tpr_gap",
        "classification",
        "fairness",
        "TPR gap",
        "max_g TPR_g − min_g TPR_g over the reported groups",
        "lower",
        difference=True,
        threshold=True,
        rate="tpr",
    ),
    _F(
        "fpr_gap",
        "classification",
        "fairness",
        "FPR gap",
        "max_g FPR_g − min_g FPR_g over the reported groups",
        "lower",
        difference=True,
        threshold=True,
        rate="fpr",
    ),
    _F(
        "worst_group_accuracy",
        "classification",
        "fairness",
        "worst-group accuracy",
        "min_g accuracy_g over the reported groups",
        "higher",
    ),
    _F(
        "worst_group_auc",
        "classification",
        "fairness",
        "worst-group AUC",
        "min_g AUC_g over the reported groups",
        "higher",
        headline=1,
    ),
    _F(
        "es_accuracy",
        "classification",
        "fairness",
        "ES-accuracy",
        "accuracy_all / (1 + Σ_g |accuracy_all − accuracy_g|) (Harvard-GF / FairSeg equity scaling)",
        "higher",
    ),
    _F(
        "es_auc",
        "classification",
        "fairness",
        "ES-AUC",
        "AUC_all / (1 + Σ_g |AUC_all − AUC_g|) (Harvard-GF / FairSeg equity scaling)",
        "higher",
        headline=2,
    ),
    _F(
        "eopp0",
        "classification",
        "fairness",
        "equal-opportunity difference (negatives)",
        "range_g TNR_g = max_g TNR_g − min_g TNR_g",
        "lower",
        difference=True,
        threshold=True,
        rate="tnr",
    ),
    _F(
        "eopp1",
        "classification",
        "fairness",
        "equal-opportunity difference (positives)",
        "range_g TPR_g = max_g TPR_g − min_g TPR_g",
        "lower",
        difference=True,
        threshold=True,
        rate="tpr",
    ),
    _F(
        "eodds",
        "classification",
        "fairness",
        "equalized-odds difference",
        "max(TPR gap, FPR gap) = max(max_g TPR_g − min_g TPR_g, max_g FPR_g − min_g FPR_g) "
        "(fairlearn's equalized_odds_difference)",
        "lower",
        difference=True,
        threshold=True,
        headline=3,
    ),
    _F(
        "eodds_mean",
        "classification",
        "fairness",
        "equalized-odds mean difference",
        "mean over classes of range_g ½(TPR_g + FPR_g) (SCP code's EOdd; opposite TPR and FPR gaps can cancel)",
        "lower",
        difference=True,
        threshold=True,
        rate="eodds_c",
    ),
    _F(
        "demographic_parity",
        "classification",
        "fairness",
        "demographic-parity difference",
        "range_g selection rate_g (summed over classes when multi-class)",
        "lower",
        difference=True,
        threshold=True,
        rate="selection_rate",
        headline=4,
    ),
    _F(
        "ece_gap",
        "classification",
        "fairness",
        "ECE gap",
        "max_g ECE_g − min_g ECE_g over the reported groups",
        "lower",
        difference=True,
        rate="ece",
        headline=6,
        scores=True,
    ),
    _F(
        "brier_gap",
        "classification",
        "fairness",
        "Brier score gap",
        "max_g Brier_score_g − min_g Brier_score_g over the reported groups",
        "lower",
        difference=True,
        rate="brier",
        scores=True,
    ),
    _F("dice", "segmentation", "group", "Dice", "mean over images of 2 |P ∩ T| / (|P| + |T|)", "higher", plotted=True),
    _F("iou", "segmentation", "group", "IoU", "mean over images of |P ∩ T| / |P ∪ T|", "higher"),
    _F(
        "dice_gap",
        "segmentation",
        "fairness",
        "Dice gap",
        "max_g Dice_g − min_g Dice_g over the reported groups",
        "lower",
        difference=True,
        rate="dice",
        headline=0,
    ),
    _F(
        "iou_gap",
        "segmentation",
        "fairness",
        "IoU gap",
        "max_g IoU_g − min_g IoU_g over the reported groups",
        "lower",
        difference=True,
        rate="iou",
        headline=3,
    ),
    _F(
        "worst_group_dice",
        "segmentation",
        "fairness",
        "worst-group Dice",
        "min_g Dice_g over the reported groups",
        "higher",
        headline=1,
    ),
    _F(
        "worst_group_iou",
        "segmentation",
        "fairness",
        "worst-group IoU",
        "min_g IoU_g over the reported groups",
        "higher",
    ),
    _F(
        "es_dice",
        "segmentation",
        "fairness",
        "ES-Dice",
        "Dice_all / (1 + Σ_g |Dice_all − Dice_g|) (Harvard-GF / FairSeg equity scaling)",
        "higher",
        headline=2,
    ),
    _F(
        "es_iou",
        "segmentation",
        "fairness",
        "ES-IoU",
        "IoU_all / (1 + Σ_g |IoU_all − IoU_g|) (Harvard-GF / FairSeg equity scaling)",
        "higher",
    ),
    _F(
        "ser",
        "segmentation",
        "fairness",
        "skewed error ratio (Dice)",
        "max_g (1 − Dice_g) / min_g (1 − Dice_g)",
        "lower",
        headline=4,
    ),
    _F(
        "ser_iou",
        "segmentation",
        "fairness",
        "skewed error ratio (IoU)",
        "max_g (1 − IoU_g) / min_g (1 − IoU_g)",
        "lower",
    ),
    _F(
        "es_dice_fairseg",
        "segmentation",
        "fairness",
        "ES-Dice",
        "Dice_all / (1 + Σ_g |Dice_all − Dice_g|) (Harvard-GF / FairSeg equity scaling)",
        "higher",
    ),
    _F(
        "es_dice_fairseg_std",
        "segmentation",
        "fairness",
        "ES-Dice (std form)",
        "Dice_all / (1 + sd_g(Dice_g)) (FairSeg equity_scaled_std_perf)",
        "higher",
    ),
    _F(
        "es_dice_fairmedfm",
        "segmentation",
        "fairness",
        "ES-Dice (FairMedFM form)",
        "mean_g(Dice_g) / (1 + sd_g(Dice_g), ddof 0) (FairMedFM)",
        "higher",
    ),
    _F(
        "es_iou_fairseg",
        "segmentation",
        "fairness",
        "ES-IoU",
        "IoU_all / (1 + Σ_g |IoU_all − IoU_g|) (Harvard-GF / FairSeg equity scaling)",
        "higher",
    ),
    _F(
        "es_iou_fairseg_std",
        "segmentation",
        "fairness",
        "ES-IoU (std form)",
        "IoU_all / (1 + sd_g(IoU_g)) (FairSeg equity_scaled_std_perf)",
        "higher",
    ),
    _F(
        "es_iou_fairmedfm",
        "segmentation",
        "fairness",
        "ES-IoU (FairMedFM form)",
        "mean_g(IoU_g) / (1 + sd_g(IoU_g), ddof 0) (FairMedFM)",
        "higher",
    ),
)
for _fig in _BUILTIN:
    FIGURES[_fig.key] = _fig


def register_figure(figure: Figure, replace: bool = False) -> Figure:
    """Add ``figure`` to the registry (after the built-in figures of its task and scope); returns it.

    Raises:
        ValueError: the key exists (and ``replace`` is false), or a fairness figure has no ``formula`` (nothing
            would compute it).
    """
    if figure.key in FIGURES and not replace:
        raise ValueError(f"figure {figure.key!r} is already registered; pass replace=True to change it.")
    if figure.scope == "fairness" and figure.formula is None and figure.key not in FIGURES:
        raise ValueError(f"figure {figure.key!r}: a new fairness figure needs its formula.")
    FIGURES[figure.key] = figure
    return figure


def unregister_figure(key: str) -> None:
    """Remove a figure added with :func:`register_figure` (built-in figures cannot be removed)."""
    if any(f.key == key for f in _BUILTIN):
        raise ValueError(f"figure {key!r} is built in and cannot be removed.")
    FIGURES.pop(key, None)


def get_figure(key: str) -> Figure | None:
    """The registered figure of ``key``, or ``None``."""
    return FIGURES.get(key)


def figure_keys(task: str, scope: str, scores: bool | None = False, formula: bool | None = None) -> tuple[str, ...]:
    """Keys of the registered figures of ``task`` and ``scope``, in registry order.

    Args:
        task: ``"classification"`` or ``"segmentation"``.
        scope: ``"group"`` or ``"fairness"``.
        scores: ``False``: figures that need no scores; ``True``: only calibration figures; ``None``: both.
        formula: ``True``: only registered figures with a formula; ``False``: only built-in ones; ``None``: both.
    """
    return tuple(
        f.key
        for f in FIGURES.values()
        if f.task == task
        and f.scope == scope
        and (scores is None or f.scores == scores)
        and (formula is None or (f.formula is not None) == formula)
    )


def headline_figures(task: str) -> tuple[str, ...]:
    """The headline figures of ``task`` in rank order (Markdown summary, card)."""
    ranked = [f for f in FIGURES.values() if f.task == task and f.headline is not None]
    return tuple(f.key for f in sorted(ranked, key=lambda f: f.headline))  # type: ignore[arg-type, return-value]


def is_difference(key: str) -> bool:
    """Whether a fairness figure is a between-group difference (reference 0) that gets a verdict; an unregistered
    key counts when it is named ``<metric>_gap``."""
    f = FIGURES.get(key)
    return f.difference if f is not None else key.endswith("_gap")


def formula_figures(task: str, per_group: Any, overall: Any, mask: Any) -> dict[str, Any]:
    """Values of the registered figures of ``task`` that carry a ``formula`` (see the module docstring)."""
    return {
        f.key: f.formula(per_group, overall, mask)
        for f in FIGURES.values()
        if f.task == task and f.scope == "fairness" and f.formula is not None
    }


def tested_rates() -> dict[str, str]:
    """``{figure: per-group metric}`` of the difference figures whose test is not that of ``<metric>_gap``
    (e.g. ``eopp1`` -> ``tpr``, ``demographic_parity`` -> ``selection_rate``)."""
    return {f.key: f.rate for f in FIGURES.values() if f.difference and f.rate is not None and f.key != f"{f.rate}_gap"}


def figure_table_markdown() -> str:
    """The figure table of ``docs/metrics.md`` (generated from the registry)."""
    lines = [
        "| key | task | scope | name | definition | better | verdict | at threshold | test / detectable gap of |"
        " headline |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in FIGURES.values():
        cells = [
            f"`{f.key}`",
            f.task + (" (scores)" if f.scores else ""),
            f.scope,
            f.name,
            f.definition.replace("|", "\\|"),
            f.direction,
            "yes" if f.difference else "",
            "yes" if f.threshold else "",
            f"`{f.rate}`" if f.rate else "",
            str(f.headline + 1) if f.headline is not None else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(figure_table_markdown(), end="")
