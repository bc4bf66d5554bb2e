# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Resume a killed training run from its last completed epoch.

MONAI's ``CheckpointSaver``/``CheckpointLoader`` pair can resume a run, but a bundle then needs the path of the last
interval checkpoint (it changes every epoch) and loses the best-metric bookkeeping: after a restart the evaluator's
``best_metric`` is reset and the key-metric ``CheckpointSaver`` would overwrite ``model.pt`` with the first, possibly
worse, validation. :class:`TrainingResumeHandler` keeps one fixed file, written atomically after every
``save_interval`` epochs, holding

* the ``state_dict()`` of every object in ``save_dict`` (network, optimiser, LR scheduler, ... and the trainer
  itself: epoch and iteration counters),
* the key-metric tracking list of the given ``CheckpointSaver`` handlers (so ``model.pt`` is replaced only by a
  better model, as in an uninterrupted run),
* the evaluator's ``best_metric`` / ``best_metric_epoch``,

and restores all of it when the trainer starts, if the file exists - but only into the run that wrote it: the file also
records a ``fingerprint`` (:func:`resume_fingerprint`: a hash of the datalist file and of the resolved network,
loss, optimiser and chosen config values), and a file written under another fingerprint is a clear error that says
how to start afresh, never a silent resume of another run's counters and best-metric bookkeeping. Everything in
it is tensors and Python primitives, so it loads with ``torch.load(..., weights_only=True)``. A killed run
(process killed, machine rebooted, exception) restarts from the last completed epoch; iterations of the
interrupted epoch are redone. Under ``torch.distributed`` every rank loads the file and only rank 0 writes it
(attach the handler on every rank).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import IgniteInfo, min_version, optional_import

from monai_fair.utils.distributed import is_rank_zero
from monai_fair.utils.io import atomic_path
from monai_fair.utils.serialization import to_builtin

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["TrainingResumeHandler", "resume_fingerprint"]

_TRAINER_KEY = "trainer"
_FINGERPRINT_KEY = "fingerprint"


def _describe(obj: Any) -> Any:
    """A JSON-able description of a resolved config object (architecture, hyper-parameters; never weights)."""
    if isinstance(obj, torch.nn.Module):
        return {"type": type(obj).__qualname__, "repr": repr(obj)}
    if isinstance(obj, torch.optim.Optimizer):
        groups = [{k: v for k, v in g.items() if k != "params"} for g in obj.param_groups]
        return {
            "type": type(obj).__qualname__,
            "groups": to_builtin(groups),
            "n_params": [len(g["params"]) for g in obj.param_groups],
        }
    if isinstance(obj, Mapping):
        return {str(k): _describe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_describe(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return {"type": type(obj).__qualname__, "repr": repr(obj)}


def resume_fingerprint(datalist: str | os.PathLike | None = None, **objects: Any) -> str:
    """SHA-256 fingerprint of a training run: the datalist file's bytes and the resolved objects given.

    Args:
        datalist: the datalist JSON (its content counts, not its name; ``None``: no datalist).
        objects: resolved config objects and values, e.g. ``network=@network, loss=@loss, optimizer=@optimizer,
            config={"spatial_size": @spatial_size}``. Modules count by their ``repr`` (architecture), optimisers
            by type and hyper-parameters, other values by value (or ``repr``). Leave out what may change between a
            run and its resumption, such as ``max_epochs``.

    Returns:
        A 64-character hex digest.
    """
    h = hashlib.sha256()
    if datalist is not None:
        p = Path(datalist)
        h.update(p.read_bytes() if p.is_file() else f"missing:{p}".encode())
    h.update(json.dumps({k: _describe(v) for k, v in sorted(objects.items())}, sort_keys=True, default=repr).encode())
    return h.hexdigest()


class TrainingResumeHandler:
    """Save a fixed resume checkpoint every ``save_interval`` epochs; load it when the trainer starts.

    Args:
        save_dir: folder of the resume file (created).
        save_dict: objects with ``state_dict()``/``load_state_dict()`` to save and restore, e.g.
            ``{"network": net, "optimizer": opt}``. The trainer this handler is attached to is added as
            ``"trainer"`` (its epoch/iteration counters); ``max_epochs`` of the running trainer is kept, so a
            finished short run can be extended by restarting it with a larger ``max_epochs``.
        evaluator: optional validation engine whose ``state.best_metric`` and ``state.best_metric_epoch`` are saved
            and restored.
        checkpoint_savers: optional MONAI ``CheckpointSaver`` handlers with ``save_key_metric=True`` whose
            key-metric tracking lists are saved and restored.
        filename: name of the resume file in ``save_dir``.
        save_interval: save after every ``save_interval`` completed epochs (and always after the last one).
        remove_on_completion: delete the file when the run completes normally, so that running the same command
            again trains from scratch; ``False`` keeps it (e.g. to extend the run later, or, in a multi-stage
            workflow, so that a restart after a kill in a later stage reloads this finished stage at its last epoch
            and trains nothing; call :meth:`remove` at the end of the workflow).
        enabled: ``False`` makes the handler a no-op (a bundle switch).
        fingerprint: identifies the run (:func:`resume_fingerprint`); a resume file with another (or no)
            fingerprint is refused with an error naming the file and how to start afresh. ``None``: not checked.

    Raises:
        RuntimeError: the resume file exists but cannot be read (truncated or not a checkpoint), naming the file;
            it is never overwritten or deleted in that case.
        KeyError: the resume file lacks an entry of ``save_dict`` (it belongs to another configuration).
        ValueError: the resume file was written by a run with another ``fingerprint`` (datalist or configuration).
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        save_dict: Mapping[str, Any],
        evaluator: Engine | None = None,
        checkpoint_savers: Sequence[Any] = (),
        filename: str = "resume_checkpoint.pt",
        save_interval: int = 1,
        remove_on_completion: bool = True,
        enabled: bool = True,
        fingerprint: str | None = None,
    ) -> None:
        if save_interval < 1:
            raise ValueError(f"save_interval must be >= 1, got {save_interval}.")
        if _TRAINER_KEY in save_dict:
            raise ValueError(f"'{_TRAINER_KEY}' is reserved for the trainer the handler is attached to.")
        for k, obj in save_dict.items():
            if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
                raise TypeError(f"save_dict[{k!r}] ({type(obj).__name__}) has no state_dict/load_state_dict.")
        self.path = Path(save_dir) / filename
        self.save_dict = dict(save_dict)
        self.evaluator = evaluator
        self.checkpoint_savers = list(checkpoint_savers)
        self.save_interval = int(save_interval)
        self.remove_on_completion = bool(remove_on_completion)
        self.enabled = bool(enabled)
        self.fingerprint = None if fingerprint is None else str(fingerprint)
        self.resumed_from_epoch: int | None = None
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.COMPLETED, self._completed)

    def _started(self, engine: Engine) -> None:
        self.load(engine)
        # registered now, after every handler attached at construction (e.g. MONAI's ValidationHandler), so the
        # saved best metric and key-metric list include this epoch's validation wherever this handler is listed
        if not engine.has_event_handler(self._epoch_completed, Events.EPOCH_COMPLETED):
            engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)

    # --- saving -------------------------------------------------------------------------------------------------
    def _state(self, engine: Engine) -> dict[str, Any]:
        state: dict[str, Any] = {k: obj.state_dict() for k, obj in self.save_dict.items()}
        state[_TRAINER_KEY] = engine.state_dict()
        if self.fingerprint is not None:
            state[_FINGERPRINT_KEY] = self.fingerprint
        savers = []
        for saver in self.checkpoint_savers:
            tracker = getattr(saver, "_key_metric_checkpoint", None)
            savers.append(to_builtin(tracker.state_dict()) if tracker is not None else {})
        state["checkpoint_savers"] = savers
        if self.evaluator is not None:
            best = getattr(self.evaluator.state, "best_metric", None)
            state["evaluator_best"] = [
                float(best) if best is not None else float("nan"),
                int(getattr(self.evaluator.state, "best_metric_epoch", -1) or -1),
            ]
        return state

    def save(self, engine: Engine) -> None:
        """Write the resume file atomically (a temporary file in the same folder, then ``os.replace``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            torch.save(self._state(engine), tmp)

    def _epoch_completed(self, engine: Engine) -> None:
        epoch = engine.state.epoch
        if (epoch % self.save_interval == 0 or epoch >= (engine.state.max_epochs or 0)) and is_rank_zero():
            self.save(engine)

    def _completed(self, engine: Engine) -> None:
        if self.remove_on_completion:
            self.remove()

    def remove(self) -> None:
        """Delete the resume file (rank 0 only). For multi-stage workflows whose earlier stages keep their file
        (``remove_on_completion=False``) so that a restart skips them: call it when the whole workflow is done."""
        if self.enabled and self.path.exists() and is_rank_zero():
            self.path.unlink()

    # --- loading ------------------------------------------------------------------------------------------------
    def load(self, engine: Engine) -> None:
        """Restore everything from the resume file if it exists (called at ``Events.STARTED``)."""
        self.resumed_from_epoch = None
        if not self.path.exists():
            return
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated file, not a checkpoint, or pickled objects
            raise RuntimeError(
                f"cannot read the resume checkpoint {self.path}: {e}. Delete or move it to train from scratch."
            ) from e
        saved = state.get(_FINGERPRINT_KEY)
        if self.fingerprint is not None and saved != self.fingerprint:
            raise ValueError(
                f"resume checkpoint {self.path} belongs to another run (its datalist or configuration differ: "
                f"fingerprint {str(saved)[:12] if saved else 'none'} vs {self.fingerprint[:12]} now). To start afresh, "
                f"delete {self.path} (or run with --resume false); to resume it, rerun the command that started it."
            )
        missing = [k for k in [*self.save_dict, _TRAINER_KEY] if k not in state]
        if missing:
            raise KeyError(f"resume checkpoint {self.path} has no {missing} (it was written by another configuration).")
        for k, obj in self.save_dict.items():
            obj.load_state_dict(state[k])
        max_epochs = engine.state.max_epochs
        engine.load_state_dict(state[_TRAINER_KEY])
        if max_epochs is not None:
            if engine.state.epoch > max_epochs:
                raise ValueError(
                    f"resume checkpoint {self.path} is at epoch {engine.state.epoch}, beyond max_epochs={max_epochs}."
                )
            engine.state.max_epochs = max_epochs
        for saver, tracked in zip(self.checkpoint_savers, state.get("checkpoint_savers", [])):
            if tracked and getattr(saver, "_key_metric_checkpoint", None) is not None:
                saver.load_state_dict(tracked)
        if self.evaluator is not None and "evaluator_best" in state:
            best, best_epoch = state["evaluator_best"]
            if best == best:  # not NaN
                self.evaluator.state.best_metric = best
                self.evaluator.state.best_metric_epoch = int(best_epoch)
        self.resumed_from_epoch = int(engine.state.epoch)
        self.logger.info(f"resuming training from {self.path} at epoch {self.resumed_from_epoch}")
