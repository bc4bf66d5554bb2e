# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The trial's evaluation step, run *inside* an arm's own ``monai.bundle run`` (``fairness_trial/configs/
trial_evaluate.json``): the bundle's evaluator, with its own checkpoint loader and transforms, predicts the validation
and test cases in one pass, and the per-case predictions of each split are written as ``<tag>_<split>.csv`` in the
``predictions.csv`` convention (:class:`monai_fair.handlers.PredictionsWriter`)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import torch

from monai_fair.utils.io import atomic_path

__all__ = ["evaluation_items", "run_trial_evaluation", "SPLITS"]

SPLITS = ("validation", "test")


def evaluation_items(datalist: str | os.PathLike) -> list[dict[str, Any]]:
    """The validation items followed by the test items of ``datalist`` (one evaluation pass serves both)."""
    from monai_fair.data import load_fair_datalist

    return [it for split in SPLITS for it in load_fair_datalist(datalist, split=split)[0]]


def _split_ids(datalist: str | os.PathLike) -> dict[str, str]:
    from monai_fair.data import load_fair_datalist

    return {str(it["case_id"]): split for split in SPLITS for it in load_fair_datalist(datalist, split=split)[0]}


def _drop_report_handlers(evaluator: Any) -> int:
    """Detach the bundle's own report writers (fairness report, metrics saver) from ``evaluator``.

    The trial's pass mixes the validation and test cases, so a report of that mix would be meaningless (and its
    plots cost more than the inference); the trial writes its own reports from the per-split predictions.
    """
    from monai.handlers import MetricsSaver

    from monai_fair.handlers import FairnessReportHandler

    removed = 0
    for event, handlers in list(evaluator._event_handlers.items()):
        for handler, *_ in list(handlers):
            owner = getattr(handler, "__self__", handler)
            if isinstance(owner, (FairnessReportHandler, MetricsSaver)):
                evaluator.remove_event_handler(handler, event)
                removed += 1
    return removed


def _load_weights(network: torch.nn.Module, path: Path) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    network.load_state_dict(state)


def run_trial_evaluation(
    evaluator: Any,
    network: torch.nn.Module,
    datalist: str | os.PathLike,
    output_dir: str | os.PathLike,
    tag: str,
    task: str = "classification",
    checkpoint: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Run ``evaluator`` over :func:`evaluation_items` and write ``<tag>_validation.csv`` and ``<tag>_test.csv``.

    Args:
        evaluator: the bundle's evaluator (``@validate#evaluator``), its data set overridden with
            :func:`evaluation_items`.
        network: the evaluated network (``@network``).
        datalist: the datalist JSON.
        output_dir: folder of the CSV files.
        tag: file-name prefix (the evaluated checkpoint).
        task: ``"classification"`` or ``"segmentation"``.
        checkpoint: a checkpoint to load after the bundle's own loader (``None``: keep the bundle's).

    Raises:
        FileNotFoundError: ``checkpoint`` does not exist.
        RuntimeError: the evaluation did not produce a prediction for every case.
    """
    from ignite.engine import Events

    from monai_fair.handlers import PredictionsWriter

    out = Path(output_dir)
    if checkpoint is not None:
        ckpt = Path(checkpoint)
        if not ckpt.is_file():
            hist = ckpt.with_name(ckpt.name + ".json")
            why = (
                " (its FairCheckpointSelector never chose one: every validation worst-group metric was NaN, e.g. "
                "groups below min_group_size in the validation split)"
                if hist.is_file()
                else " (did the training stage write it?)"
            )
            raise FileNotFoundError(f"trial checkpoint {ckpt} does not exist{why}.")
        # registered after the bundle's CheckpointLoader (Events.STARTED), so these weights win
        evaluator.add_event_handler(Events.STARTED, lambda _: _load_weights(network, ckpt))
    _drop_report_handlers(evaluator)
    writer = PredictionsWriter(out, filename=f".{tag}_all.csv", task=task, datalist=datalist)
    writer.attach(evaluator)
    evaluator.run()
    split_of = _split_ids(datalist)
    with open(out / f".{tag}_all.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    col = header.index("case_id")
    paths = {}
    for split in SPLITS:
        part = [r for r in body if split_of.get(r[col]) == split]
        want = sum(1 for s in split_of.values() if s == split)
        if len(part) != want:
            raise RuntimeError(f"trial evaluation: {len(part)} {split} predictions for {want} {split} cases.")
        path = out / f"{tag}_{split}.csv"
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f).writerows([header] + part)
        paths[split] = path
    (out / f".{tag}_all.csv").unlink()
    return paths
