# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The fairness trial's progress bar, shared by the in-process/subprocess executor and the Ray executor."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(total: int, done: int, unit: str = "step") -> Any:
    """The trial's progress bar (on stderr); its rate is the average over the whole trial (``smoothing=0``)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc="fairness trial", unit=unit, file=sys.stderr, dynamic_ncols=True,
                smoothing=0)  # fmt: skip
