# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Small-group suppression (the privacy rule of monai-fair): primary and secondary suppression of groups.

Statistical disclosure control (Hundepool et al., *Statistical Disclosure Control*, Wiley 2012, ch. 4 and 5):

* **primary suppression**: a non-empty group with ``n < min_group_size`` is not reported;
* **secondary (complementary) suppression**: the overall row is always reported and contains every sample, so
  ``overall - sum(reported groups)`` is the aggregate of the suppressed groups taken together. That union must
  not identify a suppressed group: it must hold at least two groups and at least ``min_group_size`` samples.
  Further groups are suppressed, smallest first (ties: lower id first), until it does, or none is left.

Consequences: with two groups and one primary-suppressed group, only ``overall`` remains; with ``K`` groups and
exactly one primary-suppressed group, the smallest other group is suppressed too. Empty groups (``n = 0``) carry
no one's data; they are neither suppressed nor used to hide others.

Group-level figures (gaps, worst group, ES-*, EOpp/EOdds/DP, SER, calibration gap) need at least two reported
groups; otherwise they are NaN with the reason :data:`REASON_TOO_FEW_GROUPS`. Suppressed groups are never named in a
result, warning or log: only their count is reported.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = [
    "suppress_groups",
    "nan_reasons",
    "REASON_TOO_FEW_GROUPS",
    "REASON_UNDEFINED",
]

#: the figure needs >= 2 reported (non-suppressed, non-empty) groups
REASON_TOO_FEW_GROUPS = "fewer_than_2_reported_groups"
#: >= 2 groups are reported but the figure is undefined (e.g. fewer than two of them have both classes for AUC, the
#: overall value is NaN (NaN inputs), SER with a perfect best group, the signed form without exactly two groups)
REASON_UNDEFINED = "undefined"


def suppress_groups(counts: Any, min_group_size: int) -> torch.Tensor:
    """Which groups may be reported: ``(G,)`` bool, ``True`` = reported, ``False`` = suppressed.

    Args:
        counts: ``(G,)`` number of samples of every group (the same ``n`` that the overall row counts).
        min_group_size: the threshold ``k`` of primary suppression (``k <= 1`` suppresses nothing).

    Example: ``suppress_groups([6, 40, 90], 10)`` -> ``[False, False, True]`` (6 < 10 is primary; 40 is the smallest
    other group and is suppressed so that ``overall - 90`` mixes two groups of together 46 >= 10 samples).
    """
    n = torch.as_tensor(counts).reshape(-1).to(torch.float64)
    k = float(min_group_size)
    supp = (n > 0) & (n < k)
    if not bool(supp.any()):
        return ~supp
    cand = (n > 0) & ~supp
    key = torch.where(cand, n, torch.full_like(n, float("inf")))
    order = torch.argsort(key, stable=True)[: int(cand.sum())]  # candidates, smallest first, ties by id
    extra = torch.arange(order.numel() + 1, dtype=torch.float64)  # number of extra groups j = 0..C
    size = n[supp].sum() + torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(n[order], 0)])
    ok = (supp.sum() + extra >= 2) & (size >= k)
    j = int(torch.nonzero(ok)[0]) if bool(ok.any()) else order.numel()
    supp[order[:j]] = True
    return ~supp


def nan_reasons(values: dict[str, float], num_reported: int) -> dict[str, str]:
    """Machine-readable reason of every NaN group-level figure: :data:`REASON_TOO_FEW_GROUPS` when fewer than two
    non-empty groups are reported, else :data:`REASON_UNDEFINED`."""
    code = REASON_TOO_FEW_GROUPS if num_reported < 2 else REASON_UNDEFINED
    return {k: code for k, v in values.items() if v != v}
