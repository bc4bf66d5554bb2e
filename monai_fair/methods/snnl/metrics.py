# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FATE, the fairness-accuracy trade-off score SCP uses to judge a pruned model against the unpruned one.

Kong et al., "Achieving Fairness Through Channel Pruning for Dermatological Disease Diagnosis", MICCAI 2024
(public code: ``train_cnn.py``, ``fairness_metric.py``):

.. math::

    FATE = \\frac{ACC - ACC_b}{ACC_b} - \\lambda \\frac{FC - FC_b}{FC_b}

with ``ACC`` the **macro-F1** (mean over classes of the one-vs-rest F1, sklearn's ``average="macro"``), ``FC`` the
**mean-form equalized-odds difference** of the SCP code (per class ``c`` one-vs-rest,
``EOdd = mean_c 1/2 (dTPR_c + dFPR_c)``, absolute, generalised to K groups as the range over groups:
:func:`monai_fair.metrics.compute_group_classification_metrics`'s ``"eodds_mean"``, **not** fairlearn's max form
``"eodds"``), ``_b`` the values of the unpruned model and ``lambda = 1`` in the paper. Higher is better.

Functional :func:`compute_fate` (from the four numbers), :func:`scp_macro_f1` and
:func:`compute_scp_accuracy_fairness` (from predictions), the cumulative :class:`FATEMetric` and its Ignite handler
:class:`FATEMetricHandler`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.handlers import from_engine
from monai.utils import look_up_option

from monai_fair.handlers import GroupClassificationMetricHandler
from monai_fair.metrics import GroupClassificationMetric, compute_group_classification_metrics
from monai_fair.utils import check_group_ids

__all__ = [
    "FATE_FAIRNESS_KEY",
    "FATE_OUTPUT_KEYS",
    "compute_fate",
    "scp_macro_f1",
    "compute_scp_accuracy_fairness",
    "FATEMetric",
    "FATEMetricHandler",
]

#: the fairness term of FATE: the SCP code's mean-form equalized-odds difference
FATE_FAIRNESS_KEY = "eodds_mean"
#: what :class:`FATEMetric` reports
FATE_OUTPUT_KEYS = ("macro_f1", FATE_FAIRNESS_KEY, "fate")


def compute_fate(
    macro_f1: float, eodds: float, baseline_macro_f1: float, baseline_eodds: float, fate_lambda: float = 1.0
) -> float:
    """``(F1 - F1_b) / F1_b - lambda (EO - EO_b) / EO_b`` (see module doc); the F1 denominator is floored at 1e-12.

    When the unpruned model's EOdds ``EO_b`` is 0 (for instance a model that predicts one class for everyone), a
    relative change from 0 has no value: FATE is the F1 term alone if the candidate's EOdds is 0 too (no change),
    else undefined (NaN; a floored denominator used to record values near -1e11). The pruning driver ranks such
    rounds below every round whose EOdds stayed 0, by their EOdds.

    Args:
        macro_f1, eodds: the candidate model's macro-F1 and mean-form EOdds.
        baseline_macro_f1, baseline_eodds: the same for the unpruned (reference) model.
        fate_lambda: weight of the fairness term.
    """
    eps = 1e-12
    f1_term = (macro_f1 - baseline_macro_f1) / max(baseline_macro_f1, eps)
    if not baseline_eodds > eps:  # 0, or NaN
        unchanged = baseline_eodds == baseline_eodds and not eodds > eps  # EO_b = 0 and EO = 0: no fairness change
        return float(f1_term) if unchanged else float("nan")
    return float(f1_term - fate_lambda * (eodds - baseline_eodds) / baseline_eodds)


def scp_macro_f1(
    probs: torch.Tensor, label: torch.Tensor, group: torch.Tensor | None = None, num_groups: int | None = None
) -> torch.Tensor:
    """Macro-F1 (mean over the classes present of the one-vs-rest F1 at argmax), overall or per group.

    Args:
        probs: ``(N, C)`` class scores (argmax is the prediction).
        label: ``(N,)`` class ids.
        group: optional ``(N,)`` group ids: then one macro-F1 per group is returned.
        num_groups: number of groups (default ``max(group) + 1``).

    Returns:
        A scalar tensor, or ``(K,)`` per group (NaN for an empty group). Equals
        ``sklearn.metrics.f1_score(label, argmax, average="macro")`` on each subset.
    """
    probs = torch.as_tensor(probs).float()
    label = torch.as_tensor(label).long().reshape(-1)
    c = probs.shape[1]
    g = torch.zeros_like(label) if group is None else check_group_ids(group, num_groups, num_samples=label.numel())
    k = int(num_groups) if num_groups is not None else int(g.max()) + 1 if g.numel() else 1
    pred = probs.argmax(1)
    # per (group, class) true positives, predicted and true counts in three bincounts
    tp = torch.bincount(g * c + label, weights=(pred == label).double(), minlength=k * c).reshape(k, c)
    n_pred = torch.bincount(g * c + pred, minlength=k * c).reshape(k, c).double()
    n_true = torch.bincount(g * c + label, minlength=k * c).reshape(k, c).double()
    denom = n_pred + n_true
    present = denom > 0  # a class neither predicted nor present in the subset has no F1 (sklearn: ignored)
    f1 = torch.where(present, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
    out = (f1 * present).sum(1) / present.sum(1).clamp_min(1)
    out = torch.where(present.any(1), out, torch.full_like(out, float("nan")))
    return out[0] if group is None else out


def compute_scp_accuracy_fairness(
    probs: torch.Tensor,
    label: torch.Tensor,
    group: torch.Tensor,
    num_groups: int | None = None,
    min_group_size: int = 1,
) -> dict[str, float]:
    """SCP's accuracy and fairness terms of FATE from predictions: ``{"macro_f1", "eodds_mean"}``.

    Args:
        probs: ``(N, C)`` class probabilities (``C = 2``: column 1 is the positive class).
        label: ``(N,)`` class ids.
        group: ``(N,)`` group ids ``0..K-1``.
        num_groups: K (default: inferred).
        min_group_size: groups with fewer samples are left out of the EOdds (as in every monai-fair fairness
            figure); the macro-F1 is over all samples.
    """
    probs = torch.as_tensor(probs).float()
    label = torch.as_tensor(label).long().reshape(-1)
    group = check_group_ids(group, num_groups, num_samples=label.numel())
    y_score = probs[:, 1] if probs.shape[1] == 2 else probs
    m = compute_group_classification_metrics(
        y_score, label, group, num_groups=num_groups, min_group_size=min_group_size
    )
    return {"macro_f1": float(scp_macro_f1(probs, label)), FATE_FAIRNESS_KEY: float(m["fairness"][FATE_FAIRNESS_KEY])}


class FATEMetric(GroupClassificationMetric):
    """Cumulative SCP metric: macro-F1, mean-form EOdds and FATE against a baseline (see module doc).

    Buffers ``(y_pred, y, group)`` like :class:`monai_fair.metrics.GroupClassificationMetric` (so DDP gathering works
    the same); ``y_pred`` must be class probabilities ``(B, C)`` (``Activations(softmax=True)``).

    Args:
        fate_lambda: weight of the fairness term.
        baseline: ``(macro_f1, eodds_mean)`` of the reference model; ``None``: ``fate`` is NaN until
            :meth:`set_baseline` is called.
        num_groups: number of groups (default: inferred).
        min_group_size: groups below it are left out of the EOdds.
        reduction: ``None`` (dict of :data:`FATE_OUTPUT_KEYS`) or one of those keys (a scalar tensor).
    """

    def __init__(
        self,
        fate_lambda: float = 1.0,
        baseline: Sequence[float] | None = None,
        num_groups: int | None = None,
        min_group_size: int = 1,
        reduction: str | None = None,
    ) -> None:
        super().__init__(num_groups=num_groups, reduction=None, min_group_size=min_group_size)
        self.fate_reduction = None if reduction in (None, "none") else look_up_option(reduction, FATE_OUTPUT_KEYS)
        self.fate_lambda = float(fate_lambda)
        self.min_group_size = int(min_group_size)
        self.baseline: tuple[float, float] | None = None
        if baseline is not None:
            self.set_baseline(*baseline)

    def set_baseline(self, macro_f1: float, eodds: float) -> None:
        """Set the reference (unpruned) model's macro-F1 and mean-form EOdds."""
        self.baseline = (float(macro_f1), float(eodds))

    def aggregate(self) -> Any:  # type: ignore[override]
        buf = self.get_buffer()
        if buf is None:
            raise ValueError("FATEMetric has no data: call it on at least one batch first.")
        score, lab, g = buf
        probs = torch.stack([1.0 - score[:, 0], score[:, 0]], 1) if score.shape[1] == 1 else score
        res = compute_scp_accuracy_fairness(probs, lab[:, 0], g[:, 0], self.num_groups, self.min_group_size)
        res["fate"] = (
            float("nan")
            if self.baseline is None
            else compute_fate(res["macro_f1"], res[FATE_FAIRNESS_KEY], *self.baseline, self.fate_lambda)
        )
        if self.fate_reduction is None:
            return res
        return torch.tensor(res[self.fate_reduction])


class FATEMetricHandler(GroupClassificationMetricHandler):
    """Ignite handler of :class:`FATEMetric`: puts ``<prefix>macro_f1``, ``<prefix>eodds_mean`` and ``<prefix>fate``
    into ``engine.state.metrics`` (Ignite flattens the dict result; the dict itself is under the attach name).

    Args:
        fate_lambda, baseline, num_groups, min_group_size: see :class:`FATEMetric`.
        prefix: prefix of the metric names (``"val_"`` on validation, ``"test_"`` on the test split).
        output_transform: returns ``(y_pred, y, group)``.
    """

    def __init__(
        self,
        fate_lambda: float = 1.0,
        baseline: Sequence[float] | None = None,
        num_groups: int | None = None,
        min_group_size: int = 1,
        prefix: str = "val_",
        output_transform: Callable = from_engine(["pred", "label", "group"]),
    ) -> None:
        super().__init__(num_groups=num_groups, reduction=None, output_transform=output_transform)
        self.metric_fn = FATEMetric(fate_lambda, baseline, num_groups, min_group_size)  # same buffering, FATE result
        self.prefix = prefix

    def compute(self) -> Any:
        """``{prefix + key: value}`` for :data:`FATE_OUTPUT_KEYS`."""
        return {self.prefix + k: float(v) for k, v in super().compute().items()}
