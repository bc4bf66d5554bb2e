# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""How well a group can be recovered from scores (discriminator or probe outputs): ROC AUC and balanced accuracy.

For scores ``s`` (``(N, K)`` logits or probabilities) of the group ``a`` (``(N,)``, K groups):

* ``auc``: ROC AUC of ``P(a = 1)`` for two groups; one-vs-rest AUC macro-averaged over the groups for K > 2
  (``sklearn.metrics.roc_auc_score(multi_class="ovr")``). 0.5 is chance; 0 is a perfect *reversed* ranking, which
  carries as much information as 1;
* ``balanced_accuracy``: mean over the groups of the recall of ``argmax_k s_k`` (chance ``1/K``).

Raw accuracy is deliberately absent: with an 80/20 split, always predicting the majority scores 0.8.
Both are computed by :func:`monai_fair.metrics.compute_group_classification_metrics` (the group taking the place
of the label, all samples in one stratum), with percentile bootstrap intervals for both (named under ``ci_method``).

Functional :func:`compute_attribute_recoverability` and the cumulative :class:`AttributeRecoverabilityMetric`
(used by :class:`~monai_fair.methods.apple.AppleTrainer` for the discriminator's epoch metrics).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from monai.metrics import CumulativeIterationMetric
from monai.utils import look_up_option

from monai_fair.metrics import compute_group_classification_metrics
from monai_fair.utils.validation import check_group_ids

__all__ = ["compute_attribute_recoverability", "AttributeRecoverabilityMetric", "RECOVERABILITY_METRICS"]

#: the recoverability figures
RECOVERABILITY_METRICS = ("auc", "balanced_accuracy")


def compute_attribute_recoverability(
    scores: torch.Tensor,
    group: Any,
    num_groups: int,
    n_bootstrap: int = 0,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """AUC and balanced accuracy of recovering ``group`` from ``scores`` (module docstring).

    Args:
        scores: ``(N, K)`` logits or probabilities (softmax is applied when rows do not sum to 1).
        group: ``(N,)`` integer group ids in ``0..K-1``.
        num_groups: K.
        n_bootstrap: bootstrap replicates for percentile intervals (0: none).
        ci: confidence level.
        seed: bootstrap seed.

    Returns:
        ``{"auc", "balanced_accuracy", "n"}`` and, with ``n_bootstrap > 0``, ``"ci": {"auc": [lo, hi],
        "balanced_accuracy": [lo, hi]}`` and ``"ci_method"`` (per figure). NaN where undefined (a group absent).
    """
    s = torch.as_tensor(scores).detach().cpu().to(torch.float64)
    if s.ndim != 2 or s.shape[1] != num_groups:
        raise ValueError(f"scores must be (N, {num_groups}), got {tuple(s.shape)}.")
    g = check_group_ids(group, num_groups, name="group", num_samples=s.shape[0], device="cpu")
    if not torch.allclose(s.sum(1), torch.ones(s.shape[0], dtype=s.dtype), atol=1e-6) or (s < 0).any():
        s = torch.softmax(s, dim=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined values are NaN in the result
        res = compute_group_classification_metrics(
            s,
            g,
            torch.zeros_like(g),
            num_groups=1,
            num_classes=num_groups,
            n_bootstrap=n_bootstrap,
            ci=ci,
            seed=seed,
            auc_ci="bootstrap",  # one method (percentile bootstrap) for both figures; defined at any sample size
        )
    overall = res["overall"]
    out: dict[str, Any] = {k: float(overall[k]) for k in RECOVERABILITY_METRICS}
    out["n"] = int(s.shape[0])
    if n_bootstrap > 0:
        out["ci"] = {k: [float(v) for v in overall["ci"][k]] for k in RECOVERABILITY_METRICS}
        methods = res.get("ci_method", {})
        out["ci_method"] = {k: methods.get(k, f"percentile bootstrap, B={n_bootstrap}") for k in RECOVERABILITY_METRICS}
    return out


class AttributeRecoverabilityMetric(CumulativeIterationMetric):
    """Cumulative :func:`compute_attribute_recoverability`: call ``metric(scores, group)`` per iteration,
    ``aggregate()`` once per epoch. Batch tensors and MONAI decollated lists are accepted; the buffers are gathered
    across DDP ranks.

    Args:
        num_groups: K.
        reduction: ``"auc"`` or ``"balanced_accuracy"`` (the value ``aggregate`` returns, for Ignite).
    """

    def __init__(self, num_groups: int, reduction: str = "auc") -> None:
        super().__init__()
        self.num_groups = int(num_groups)
        self.reduction = look_up_option(reduction, RECOVERABILITY_METRICS)

    def __call__(self, y_pred: Any, y: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        if y is None:
            raise ValueError("AttributeRecoverabilityMetric needs the scores and the group ids.")
        scores = torch.stack(list(y_pred)) if isinstance(y_pred, (list, tuple)) else y_pred
        group = torch.stack([torch.as_tensor(v).reshape(()) for v in y]) if isinstance(y, (list, tuple)) else y
        ret = self._compute_tensor(torch.as_tensor(scores).detach(), torch.as_tensor(group).detach())
        self.extend(*ret)
        return ret

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> Any:
        scores = y_pred.float().reshape(y_pred.shape[0], -1)
        return scores, torch.as_tensor(y).reshape(-1, 1).to(scores.device, torch.float32)

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        buf = self.get_buffer()
        if buf is None:
            raise ValueError("AttributeRecoverabilityMetric has no data: call it on at least one batch first.")
        scores, group = buf
        res = compute_attribute_recoverability(scores, group[:, 0], self.num_groups)
        return torch.tensor(res[self.reduction])
