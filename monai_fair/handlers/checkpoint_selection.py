# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Fairness-aware checkpoint selection on validation (MEDFAIR, Zong et al., ICLR 2023).

MEDFAIR found that no mitigation method beat ERM significantly, while choosing ERM's checkpoint by a fairness-aware
validation criterion improved the worst-group AUC. :class:`FairCheckpointSelector` records, after every validation
run, the overall metric ``o`` and the worst-group metric ``w`` (both "higher is better", e.g. ``val_auc`` and
``val_worst_group_auc``) and keeps the checkpoint chosen by its criterion:

* ``"worst_group"``: the largest ``w`` (ties: the larger ``o``, then the earlier epoch). This is also MEDFAIR's
  *minimax Pareto* selection: the minimax-optimal point, with ties broken by ``o``, is Pareto-optimal.
* ``"dto"``: distance to the optimum (utopia) point: ``argmin sqrt((o* - o)^2 + (w* - w)^2)`` with ``o* = max o`` and
  ``w* = max w`` over all validation runs so far. The utopia point moves during training, so the choice is
  re-made every epoch among the Pareto-optimal checkpoints (a dominated one can never be closest to the utopia);
  their weights are kept on disk until they leave the front.

The chosen checkpoint is always on disk under ``filename`` (written atomically), in the layout of MONAI's
``CheckpointSaver`` (a single entry in ``save_dict`` is stored as its bare ``state_dict``), so ``CheckpointLoader``
reads it. A ``<filename>.json`` history records every validation point and the choice. Validation runs whose
metrics are NaN (e.g. a group without both classes) are recorded and never chosen. Only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import IgniteInfo, look_up_option, min_version, optional_import

from monai_fair.utils.distributed import is_rank_zero
from monai_fair.utils.io import atomic_path, atomic_write_json

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["FairCheckpointSelector", "SELECTION_CRITERIA", "select_checkpoint"]

SELECTION_CRITERIA = ("worst_group", "dto")


def select_checkpoint(history: list[Mapping[str, Any]], criterion: str) -> int | None:
    """Index into ``history`` (items with ``overall``, ``worst``, ``epoch``) chosen by ``criterion`` (None: none valid).

    Args:
        history: validation points in the order they were recorded.
        criterion: ``"worst_group"`` or ``"dto"`` (see the module docstring).
    """
    criterion = look_up_option(criterion, SELECTION_CRITERIA)
    valid = [i for i, h in enumerate(history) if math.isfinite(h["overall"]) and math.isfinite(h["worst"])]
    if not valid:
        return None
    if criterion == "worst_group":
        return max(valid, key=lambda i: (history[i]["worst"], history[i]["overall"], -i))
    o_star = max(history[i]["overall"] for i in valid)
    w_star = max(history[i]["worst"] for i in valid)
    return min(valid, key=lambda i: (math.hypot(o_star - history[i]["overall"], w_star - history[i]["worst"]), i))


def pareto_front(history: list[Mapping[str, Any]]) -> set[int]:
    """Indices of the valid points not dominated by another valid point (ties: the earliest is kept)."""
    pts = [(i, h["overall"], h["worst"]) for i, h in enumerate(history) if math.isfinite(h["overall"] + h["worst"])]
    front = set()
    for i, o, w in pts:
        dominated = any(
            (o2 >= o and w2 >= w and (o2 > o or w2 > w)) or (o2 == o and w2 == w and j < i) for j, o2, w2 in pts
        )
        if not dominated:
            front.add(i)
    return front


class FairCheckpointSelector:
    """Keep the checkpoint chosen by a fairness-aware validation criterion; attach to the validation evaluator.

    Args:
        save_dir: folder of the checkpoint (and of the kept Pareto candidates for ``"dto"``).
        save_dict: objects to save, e.g. ``{"model": network}``.
        criterion: ``"worst_group"`` or ``"dto"``.
        overall_metric: name of the overall metric in ``evaluator.state.metrics`` (higher is better).
        worst_metric: name of the worst-group metric (higher is better).
        filename: checkpoint file name (default ``model_<criterion>.pt``).

    Example (bundle config, appended to the validation handlers)::

        "+validate#handlers": [{"_target_": "monai_fair.handlers.FairCheckpointSelector", "save_dir": "@ckpt_dir",
            "save_dict": {"model": "@network"}, "criterion": "dto", "overall_metric": "val_auc",
            "worst_metric": "val_worst_group_auc"}]
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        save_dict: Mapping[str, Any],
        criterion: str = "worst_group",
        overall_metric: str = "val_auc",
        worst_metric: str = "val_worst_group_auc",
        filename: str | None = None,
    ) -> None:
        self.criterion = look_up_option(criterion, SELECTION_CRITERIA)
        if not save_dict:
            raise ValueError("FairCheckpointSelector needs a non-empty save_dict, e.g. {'model': network}.")
        self.save_dir = Path(save_dir)
        self.save_dict = dict(save_dict)
        self.overall_metric = overall_metric
        self.worst_metric = worst_metric
        self.filename = filename or f"model_{self.criterion}.pt"
        self.history: list[dict[str, Any]] = []
        self.chosen: int | None = None
        hist = self._history_path()
        if hist.is_file():  # a resumed training run continues its selection
            rec = json.loads(hist.read_text())
            self.history, self.chosen = list(rec.get("history", [])), rec.get("chosen_index")

    def _history_path(self) -> Path:
        return self.save_dir / (self.filename + ".json")

    def _candidate(self, index: int) -> Path:
        return self.save_dir / f".{self.filename}.candidate_{index}.pt"

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _state(self) -> Any:
        states = {k: v.state_dict() for k, v in self.save_dict.items()}
        return next(iter(states.values())) if len(states) == 1 else states

    @staticmethod
    def _atomic_save(obj: Any, path: Path) -> None:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)

    def __call__(self, engine: Engine) -> None:
        metrics = engine.state.metrics
        for key in (self.overall_metric, self.worst_metric):
            if key not in metrics:
                raise KeyError(
                    f"FairCheckpointSelector: metric '{key}' not in the evaluator's metrics {sorted(metrics)}; "
                    "set overall_metric / worst_metric to the names of the validation metrics."
                )
        point = {
            "epoch": int(engine.state.epoch),
            "overall": float(metrics[self.overall_metric]),
            "worst": float(metrics[self.worst_metric]),
        }
        self.history.append(point)
        index = len(self.history) - 1
        if not is_rank_zero():
            return
        self.save_dir.mkdir(parents=True, exist_ok=True)
        choice = select_checkpoint(self.history, self.criterion)
        if self.criterion == "dto":
            front = pareto_front(self.history)
            if index in front:
                self._atomic_save(self._state(), self._candidate(index))
            if choice is not None and choice != self.chosen:
                self._atomic_save(torch.load(self._candidate(choice), weights_only=True), self.save_dir / self.filename)
            for i in range(index + 1):
                if i not in front and self._candidate(i).exists():
                    self._candidate(i).unlink()
        elif choice == index:
            self._atomic_save(self._state(), self.save_dir / self.filename)
        self.chosen = choice
        rec = {
            "criterion": self.criterion,
            "overall_metric": self.overall_metric,
            "worst_metric": self.worst_metric,
            "history": self.history,
            "chosen_index": choice,
            "chosen_epoch": None if choice is None else self.history[choice]["epoch"],
        }
        atomic_write_json(self._history_path(), rec, indent=1)
