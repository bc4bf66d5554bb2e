# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The shared core of the group metrics (classification and segmentation): group-id validation, the NaN policy,
suppression, warnings that never name a suppressed group, percentile intervals and the result dictionary.

Every ``compute_group_*`` function runs the same steps: :func:`setup_groups` (validate with
:func:`monai_fair.utils.check_group_ids`, apply ``nan_policy``, count, suppress, warn), task-specific statistics
with leading replicate dimensions, :func:`collect_replicates` + :func:`percentile_intervals` for the bootstrap and
:func:`build_result` / :func:`attach_intervals` for the output.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from monai_fair.metrics.homogeneity import gap_tests
from monai_fair.metrics.suppression import nan_reasons, suppress_groups
from monai_fair.metrics.utils import FairnessMetricWarning, group_label, percentile_ci
from monai_fair.utils.validation import check_group_ids

__all__ = [
    "NAN_POLICIES",
    "option",
    "GroupSetup",
    "setup_groups",
    "collect_replicates",
    "percentile_intervals",
    "build_result",
    "Intervals",
    "bootstrap_intervals",
    "attach_intervals",
    "check_reduction",
    "reduce_result",
]

NAN_POLICIES = ("propagate", "omit")

Stats = dict[str, torch.Tensor]


def option(value: Any, options: Sequence[str], name: str) -> Any:
    """MONAI's ``look_up_option`` for string options (exact match, else a stripped match), with one error that
    names the argument; written here so that the statistics layer does not import MONAI (its package import loads
    every MONAI submodule, ~10 s)."""
    if isinstance(value, str):
        for v in (value, value.strip()):
            if v in options:
                return v
    raise ValueError(f"{name} must be one of {list(options)}, got {value!r}.")


@dataclass
class GroupSetup:
    """Validated groups after the NaN policy and suppression.

    Attributes:
        group: ``(N',)`` long group ids of the kept samples.
        num_groups: ``G``.
        keep: ``(N,)`` bool rows kept (``nan_policy="omit"``), or ``None`` when every row is kept.
        nan_groups: ``(G,)`` bool, groups with NaN inputs under ``nan_policy="propagate"`` (their metrics are NaN).
        counts: ``(G,)`` samples per group.
        reported: ``(G,)`` bool, groups that may be reported (:func:`~monai_fair.metrics.suppress_groups`).
        min_group_size: the suppression threshold.
    """

    group: torch.Tensor
    num_groups: int
    keep: torch.Tensor | None
    nan_groups: torch.Tensor
    counts: torch.Tensor
    reported: torch.Tensor
    min_group_size: int

    @property
    def num_reported(self) -> int:
        """Reported groups with at least one sample."""
        return int((self.reported & (self.counts > 0)).sum())

    @property
    def num_suppressed(self) -> int:
        return int((~self.reported).sum())

    def suppression(self) -> dict[str, int]:
        return {
            "min_group_size": int(self.min_group_size),
            "reported_groups": self.num_reported,
            "suppressed_groups": self.num_suppressed,
        }


def _warn_groups(ids: torch.Tensor, counts: torch.Tensor, text: str, names: Sequence[str] | None, hidden: int) -> None:
    """One warning listing reported groups with a count each (``text`` formats ``{desc}``); suppressed ones only as
    a number of groups."""
    desc = ", ".join(f"{group_label(int(g), names)}: {int(counts[g])}" for g in ids.tolist())
    if hidden:
        desc = f"{desc}, {hidden} suppressed group(s)" if desc else f"{hidden} suppressed group(s)"
    warnings.warn(text.format(desc=desc), FairnessMetricWarning, stacklevel=4)


def setup_groups(
    group: Any,
    num_samples: int,
    num_groups: int | None,
    nan_rows: torch.Tensor,
    nan_policy: str,
    min_group_size: int,
    group_names: Sequence[str] | None,
    what: str,
) -> GroupSetup:
    """Validate the groups, apply ``nan_policy`` to ``nan_rows``, suppress small groups and warn.

    Warnings name only reported groups (a suppressed group is counted, never named). ``what`` names the inputs
    in the NaN warning (e.g. ``"scores/labels"``).
    """
    nan_policy = option(nan_policy, NAN_POLICIES, "nan_policy")
    g = check_group_ids(group, num_groups, num_samples=num_samples)
    num_groups = num_groups if num_groups is not None else max(int(g.max()) + 1 if g.numel() else 1, 1)
    n_bad = torch.bincount(g[nan_rows], minlength=num_groups)
    bad = n_bad > 0
    keep = None
    if nan_policy == "omit" and bool(bad.any()):
        keep = ~nan_rows
        g = g[keep]
    counts = torch.bincount(g, minlength=num_groups)
    reported = suppress_groups(counts, min_group_size)
    setup = GroupSetup(g, num_groups, keep, bad & (nan_policy == "propagate"), counts, reported, int(min_group_size))
    if bool(bad.any()):
        shown, hidden = torch.nonzero(bad & reported).flatten(), int((bad & ~reported).sum())
        if keep is not None:
            _warn_groups(shown, n_bad, f"dropping samples with NaN {what} ({{desc}}).", group_names, hidden)
        else:
            text = f"NaN {what} ({{desc}}): these groups' metrics and the overall metrics are NaN."
            _warn_groups(shown, n_bad, text, group_names, hidden)
    for k in torch.nonzero(counts == 0).flatten().tolist():
        warnings.warn(
            f"{group_label(k, group_names)} is empty: its metrics are NaN.", FairnessMetricWarning, stacklevel=3
        )
    return setup


def collect_replicates(chunks: Iterable[tuple[Stats, Stats, Stats]]) -> tuple[Stats, Stats, Stats]:
    """Concatenate ``(per_group, overall, fairness)`` replicate chunks along the first (replicate) dimension."""
    parts: list[tuple[Stats, Stats, Stats]] = list(chunks)
    return tuple({k: torch.cat([p[i][k] for p in parts]) for k in parts[0][i]} for i in range(3))  # type: ignore


def percentile_intervals(reps: Stats, ci: float) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Percentile interval of every replicate tensor ``(B, ...)`` -> ``(lo, hi)`` of shape ``(...)``."""
    return {k: percentile_ci(v, ci) for k, v in reps.items()}


def _floats(t: torch.Tensor) -> list[float]:
    return [float(v) for v in t.reshape(-1).tolist()]


def build_result(
    setup: GroupSetup,
    n_total: int,
    point: tuple[Stats, Stats, Stats],
    fairness_names: Sequence[str],
    index: tuple[int, ...] = (0, 0),
) -> dict[str, Any]:
    """The result dictionary from point statistics ``(per_group, overall, fairness)`` (leading dims indexed by
    ``index``, e.g. replicate 0 and model 0): ``overall``, reported ``groups`` (id -> metrics), ``fairness``,
    ``fairness_nan_reason`` (NaN figures only) and ``suppression`` (counts only)."""
    pg, ov, fair = point
    fairness = {m: float(fair[m][index]) for m in fairness_names}
    groups: dict[int, dict[str, Any]] = {}
    for k in torch.nonzero(setup.reported).flatten().tolist():
        groups[k] = {"n": int(setup.counts[k]), **{m: float(v[index][k]) for m, v in pg.items()}}
    return {
        "overall": {"n": int(n_total), **{m: float(v[index]) for m, v in ov.items()}},
        "groups": groups,
        "fairness": fairness,
        "fairness_nan_reason": nan_reasons(fairness, setup.num_reported),
        "suppression": setup.suppression(),
    }


@dataclass
class Intervals:
    """Intervals ``(lo, hi)`` per figure (``groups``: ``(G,)`` tensors), the method of each figure and the
    homogeneity tests of the range-type fairness figures (:func:`~monai_fair.metrics.homogeneity.gap_tests`)."""

    groups: dict[str, tuple[torch.Tensor, torch.Tensor]]
    overall: dict[str, tuple[torch.Tensor, torch.Tensor]]
    fairness: dict[str, tuple[torch.Tensor, torch.Tensor]]
    method: dict[str, str]
    p_value: dict[str, float]
    test: dict[str, str]


def bootstrap_intervals(
    reps: tuple[Stats, Stats, Stats], point_groups: Stats, setup: GroupSetup, ci: float, method: str, binary: bool
) -> Intervals:
    """Percentile intervals of replicates ``(per_group (B, G), overall (B,), fairness (B,))``, all named ``method``,
    and the homogeneity tests of the gaps from the point values ``(G,)`` and the replicate covariance."""
    rg, ro, rf = reps
    ci_g, ci_o, ci_f = (percentile_intervals(r, ci) for r in reps)
    reasons: dict[str, str] = {}
    tests = gap_tests(point_groups, rg, setup.reported & (setup.counts > 0), binary, reasons)
    wald = "Wald chi-square test of equal group values, bootstrap covariance"
    test = {f: f"{wald}; no p-value: {reasons[f]}" if f in reasons else wald for f in tests}
    return Intervals(ci_g, ci_o, ci_f, {m: method for m in (*ci_o, *ci_f)}, tests, test)


def attach_intervals(result: dict[str, Any], iv: Intervals, ci: float) -> dict[str, Any]:
    """Add ``ci`` entries (``[lo, hi]``) to ``overall`` and every reported group, ``fairness_ci``, ``ci_method``
    (figure -> method), ``ci_level`` and, for the figures of ``result["fairness"]``, ``fairness_p_value`` and
    ``fairness_test`` (the homogeneity tests behind the verdicts)."""
    result["overall"]["ci"] = {m: _floats(torch.stack([lo, hi])) for m, (lo, hi) in iv.overall.items()}
    for k, entry in result["groups"].items():
        entry["ci"] = {m: [float(lo[k]), float(hi[k])] for m, (lo, hi) in iv.groups.items()}
    result["fairness_ci"] = {m: _floats(torch.stack([lo, hi])) for m, (lo, hi) in iv.fairness.items()}
    result["ci_method"] = dict(iv.method)
    result["ci_level"] = float(ci)
    result["fairness_p_value"] = {f: float(iv.p_value[f]) for f in result["fairness"] if f in iv.p_value}
    result["fairness_test"] = {f: iv.test[f] for f in result["fairness_p_value"]}
    return result


def check_reduction(reduction: str | None, group_metrics: Sequence[str], fairness: Sequence[str]) -> str | None:
    """``None`` for ``None``/``"none"``; else a fairness key or ``"overall_<metric>"`` (``look_up_option``)."""
    if reduction in (None, "none"):
        return None
    return option(reduction, [*fairness, *(f"overall_{m}" for m in group_metrics)], "reduction")


def reduce_result(res: dict[str, Any], reduction: str | None) -> Any:
    """The result dict, or the scalar tensor named by ``reduction`` (NaN when suppressed or undefined)."""
    if reduction is None:
        return res
    if reduction.startswith("overall_"):
        return torch.tensor(res["overall"][reduction[len("overall_") :]])
    return torch.tensor(res["fairness"][reduction])
