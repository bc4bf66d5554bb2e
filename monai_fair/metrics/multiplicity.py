# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Multiple-comparison correction: Holm's step-down adjustment (Holm, Scand. J. Statistics 6, 1979).

With ``m`` p-values sorted ascending ``p_(1) <= ... <= p_(m)``, the adjusted values are

.. math:: \\tilde p_{(i)} = \\max_{j \\le i} \\min\\bigl(1, (m - j + 1)\\, p_{(j)}\\bigr)

and rejecting ``\\tilde p < \\alpha`` controls the family-wise error rate at ``alpha`` under any dependence.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["holm_adjust"]


def holm_adjust(p_values: Any) -> np.ndarray:
    """Holm-adjusted p-values (same order as the input); NaN entries stay NaN and do not count in ``m``."""
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out
