# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Small functions monai-fair bundles call in ``initialize`` and ``run`` (so that ``$`` expressions stay short).

* :func:`prepare_datalist`: generate the synthetic dataset when the bundle runs on its default datalist, and
  otherwise only check that the user's datalist exists. Called in ``initialize``: resolving a config id never
  generates data.
* :func:`require_model`: the last step of a training ``run``: a run never exits 0 without writing its model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["prepare_datalist", "require_model"]


def prepare_datalist(
    datalist: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    task: str = "classification",
    synthetic: Mapping[str, Any] | None = None,
) -> str:
    """Make sure ``datalist`` exists: generate monai-fair's synthetic data into ``dataset_dir`` when ``datalist``
    is ``dataset_dir/datalist.json`` (the bundle default), otherwise require the user's file.

    Returns:
        The datalist path.

    Raises:
        FileNotFoundError: a user datalist that does not exist (the message says how to make one).
    """
    from monai_fair.data.synthetic import ensure_synthetic_dataset

    path = Path(datalist)
    if path.resolve() == (Path(dataset_dir) / "datalist.json").resolve():
        return ensure_synthetic_dataset(dataset_dir, task=task, **dict(synthetic or {}))
    if not path.is_file():
        raise FileNotFoundError(
            f"datalist not found: {path}. Build one with `python -m monai_fair datalist CASES.csv ... --out {path}`."
        )
    return str(path)


def require_model(path: str | os.PathLike) -> str:
    """Raise when the training run did not write its model ``path`` (e.g. validation never ran)."""
    p = Path(path)
    if not p.is_file():
        raise RuntimeError(
            f"training finished without writing {p}: the model is saved by validation (key metric); check that the "
            "datalist has a non-empty 'validation' split and that val_interval <= the number of epochs."
        )
    return str(p)
