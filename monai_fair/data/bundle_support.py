# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Small functions monai-fair bundles call in ``initialize`` and ``run`` (so that ``$`` expressions stay short).

* :func:`prepare_datalist`: generate the synthetic dataset when the bundle runs on its default datalist, and
  otherwise only check that the user's datalist exists. Called in ``initialize``: resolving a config id never
  generates data.
* :func:`require_model`: the last step of a training ``run``: a run never exits 0 without writing its model.
* :func:`require_spatial_dims`: a method bundle that only works in 2D refuses ``--spatial_dims 3`` in
  ``initialize`` with one clear error, instead of ignoring the option.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["prepare_datalist", "require_model", "require_spatial_dims"]


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


def require_spatial_dims(spatial_dims: int, supported: Sequence[int] = (2,), method: str = "this bundle") -> int:
    """Raise one clear ``ValueError`` when ``spatial_dims`` is not one ``method`` supports; return it otherwise.

    Method bundles whose networks or steps are 2D only call it in ``initialize`` with their ``spatial_dims`` id, so
    that ``--spatial_dims 3`` stops the run before any data is read instead of being silently ignored.
    """
    if int(spatial_dims) not in tuple(int(s) for s in supported):
        raise ValueError(
            f"{method} supports spatial_dims {list(supported)}, got {spatial_dims}: its networks and steps are "
            f"{'/'.join(f'{s}D' for s in supported)} only. For 3D (CT/MR volumes) classification use "
            "bundles/baseline_classification with --spatial_dims 3 and a 3D --spatial_size."
        )
    return int(spatial_dims)
