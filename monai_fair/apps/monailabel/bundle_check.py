# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""What MONAI Label needs from a bundle to train it, checked before the app lists the bundle as a trainer.

MONAI Label's ``BundleTrainTask`` runs ``configs/train.json`` alone, with ``run_id="run"``, overriding the model
zoo's ids: ``bundle_root``, ``device``, ``train#trainer#max_epochs``, ``train#dataset#data``, ``train#handlers``
(a list it inserts a ``CheckpointLoader`` into) and ``validate#dataset#data``; monai-fair's training task also
appends a fairness report handler to ``validate#handlers`` (a list). A bundle without these ids fails only when a
client asks it to train (``KeyError: 'query key: train'``), so the app does not list it and logs why instead.

MONAI Label's datastore labels are label maps (``PUT /datastore/label``), so only segmentation bundles can be trained
from it; a classification bundle (``network_data_format.outputs.pred.format == "classes"`` in its metadata) is served
for inference but not listed as a trainer either.

This module imports MONAI only (not MONAI Label), so ``init-app`` can run the same check.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = [
    "MONAILABEL_TRAIN_IDS",
    "bundle_task",
    "has_trained_model",
    "monailabel_train_problems",
    "train_config_problems",
]

# ids of configs/train.json read or overridden by MONAI Label's bundle training (and monai-fair's training task)
MONAILABEL_TRAIN_IDS = (
    "bundle_root",
    "device",
    "run",
    "train#trainer",
    "train#trainer#max_epochs",
    "train#dataset#data",
    "train#handlers",
    "validate#evaluator",
    "validate#dataset#data",
    "validate#handlers",
)
_LIST_IDS = ("train#handlers", "validate#handlers")


def train_config_problems(bundle_dir: str | os.PathLike) -> list[str]:
    """Why MONAI Label cannot train the bundle in ``bundle_dir``; an empty list when it can.

    Reads ``configs/train.json`` with MONAI's ``ConfigParser`` (nothing is instantiated) and lists a missing file,
    an unreadable config, each missing model-zoo id of :data:`MONAILABEL_TRAIN_IDS`, and ``train#handlers`` /
    ``validate#handlers`` that are not lists in the config (an expression or a reference cannot be appended to).
    """
    from monai.bundle import ConfigParser

    config = Path(bundle_dir) / "configs" / "train.json"
    if not config.is_file():
        return [f"no {config.relative_to(bundle_dir)}"]
    parser = ConfigParser()
    try:
        parser.read_config(str(config))
    except Exception as e:  # a broken file: the message says what is wrong
        return [f"configs/train.json cannot be read: {type(e).__name__}: {e}"]
    problems = []
    missing = [i for i in MONAILABEL_TRAIN_IDS if i not in parser]
    if missing:
        problems.append(f"configs/train.json lacks the model-zoo id(s) {', '.join(missing)}")
    for key in _LIST_IDS:
        if key in parser and not isinstance(parser[key], list):
            problems.append(f"configs/train.json: {key} must be a list of handlers, got {type(parser[key]).__name__}")
    return problems


def has_trained_model(bundle_dir: str | os.PathLike) -> bool:
    """Whether the bundle has the trained weights its inference loads (``models/model.pt``)."""
    return (Path(bundle_dir) / "models" / "model.pt").is_file()


def bundle_task(bundle_dir: str | os.PathLike) -> str:
    """``"classification"`` when the bundle's ``configs/metadata.json`` declares class outputs
    (``network_data_format.outputs.pred.format == "classes"``), else ``"segmentation"``."""
    try:
        meta = json.loads((Path(bundle_dir) / "configs" / "metadata.json").read_text())
        fmt = meta["network_data_format"]["outputs"]["pred"].get("format")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "segmentation"
    return "classification" if fmt == "classes" else "segmentation"


def monailabel_train_problems(bundle_dir: str | os.PathLike) -> list[str]:
    """Why the monai-fair MONAI Label app does not list the bundle as a trainer; empty when it does.

    The model-zoo ids of :func:`train_config_problems`, and the task: MONAI Label's datastore holds label maps, so a
    classification bundle cannot get its class labels from it.
    """
    problems = train_config_problems(bundle_dir)
    if bundle_task(bundle_dir) == "classification":
        problems.append(
            "a classification bundle: MONAI Label's datastore labels are label maps, not classes "
            "(train it with python -m monai.bundle run)"
        )
    return problems
