# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Ignite handler driving SCP's iterative procedure: score, prune n channels, fine-tune, evaluate, repeat.

Kong et al., "Achieving Fairness Through Channel Pruning for Dermatological Disease Diagnosis", MICCAI 2024.
Attached to a (fine-tuning) trainer, the handler

1. on ``STARTED`` evaluates the unpruned network (validation macro-F1 ``F1_b`` and EOdds ``EO_b``), then scores
   every output channel of ``layer_name`` with the SNNL on the sensitive attribute
   (:func:`monai_fair.methods.snnl.scoring.score_channels_snnl`) and masks the ``n_per_round``
   lowest-scoring, not yet pruned channels (:func:`monai_fair.methods.snnl.pruning.mask_channels`);
2. after every ``finetune_epochs`` epochs of fine-tuning evaluates again and computes

   .. math:: FATE = \\frac{F1 - F1_b}{F1_b} - \\lambda \\frac{EO - EO_b}{EO_b}

   (SCP's public code: macro-F1 as accuracy, |EOdd| as fairness, ``lambda = 1``), keeps the state of the best
   round, and either stops (``patience`` rounds without a better FATE, or ``max_rounds`` rounds) or scores and
   prunes the next ``n_per_round`` channels;
3. on ``COMPLETED`` restores the best round (round 0, the unpruned network, included when
   ``keep_unpruned_if_best``), folds the masks into the weights and saves the ``state_dict`` (same architecture,
   pruned channels exactly zero) and a JSON history.

The trainer's ``max_epochs`` is set to ``max_rounds * finetune_epochs``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.utils import IgniteInfo, min_version, optional_import

from monai_fair.methods.snnl.pruning import (
    find_following_modules,
    make_pruning_permanent,
    mask_channels,
    pruned_channels,
)
from monai_fair.methods.snnl.scoring import score_channels_snnl
from monai_fair.metrics import compute_group_classification_metrics

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["SNNLChannelPruningHandler", "macro_f1_eodds"]


def macro_f1_eodds(
    probs: torch.Tensor, label: torch.Tensor, group: torch.Tensor, num_groups: int | None = None
) -> tuple[float, float]:
    """Macro-F1 (mean over classes of one-vs-rest F1) and EOdds (``compute_group_classification_metrics``)."""
    probs = torch.as_tensor(probs).float()
    label = torch.as_tensor(label).long().reshape(-1)
    n_classes = probs.shape[1]
    pred = probs.argmax(1)
    onehot_p = torch.nn.functional.one_hot(pred, n_classes).bool()
    onehot_y = torch.nn.functional.one_hot(label, n_classes).bool()
    tp = (onehot_p & onehot_y).sum(0).double()
    denom = onehot_p.sum(0).double() + onehot_y.sum(0).double()
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
    present = denom > 0
    macro = float(f1[present].mean()) if present.any() else float("nan")
    y_score = probs[:, 1] if n_classes == 2 else probs
    group = torch.as_tensor(group).long().reshape(-1)
    m = compute_group_classification_metrics(y_score, label, group, num_groups=num_groups)
    return macro, float(m["fairness"]["eodds"])


class _OutputCollector:
    """Collects ``pred`` / ``label`` / ``group`` of an evaluator's (decollated) outputs."""

    def __init__(self, group_key: str) -> None:
        self.group_key = group_key
        self.reset()

    def reset(self, *_: Any) -> None:
        self.pred: list[torch.Tensor] = []
        self.label: list[torch.Tensor] = []
        self.group: list[torch.Tensor] = []

    def __call__(self, engine: Engine) -> None:
        out = engine.state.output
        items = out if isinstance(out, list) else [out]
        for item in items:
            p, y, g = item["pred"], item["label"], item[self.group_key]
            p, y = torch.as_tensor(p).detach().float().cpu(), torch.as_tensor(y).detach().cpu()
            if p.ndim == 2:  # batched output (not decollated)
                self.pred.extend(p)
                self.label.extend(y.reshape(p.shape[0], -1))
                self.group.extend(torch.as_tensor(g).reshape(-1).cpu())
            else:
                self.pred.append(p.reshape(-1))
                self.label.append(y.reshape(-1))
                self.group.append(torch.as_tensor(g).reshape(-1).cpu()[0])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pred = torch.stack(self.pred)
        label = torch.stack(self.label)
        label = label.argmax(1) if label.shape[1] > 1 else label[:, 0].long()
        probs = pred if torch.allclose(pred.sum(1), torch.ones(len(pred)), atol=1e-3) else pred.softmax(1)
        return probs, label, torch.stack(self.group).long()


class SNNLChannelPruningHandler:
    """Iterative SNNL channel pruning with FATE stopping, driven by the fine-tuning trainer (see module doc).

    Args:
        network: the network being pruned and fine-tuned (the trainer's network).
        layer_name: conv module to prune (``dict(network.named_modules())`` key).
        score_loader: fixed, group-stratified loader of deterministic-transform batches used for scoring
            (e.g. ``DataLoader(ds, batch_sampler=stratified_batch_indices(groups, 64))``).
        evaluator: validation evaluator (``GroupSupervisedEvaluator``; outputs ``pred`` probabilities,
            ``label`` index or one-hot, ``group``).
        n_per_round: channels pruned per round.
        max_rounds: maximum number of rounds.
        finetune_epochs: fine-tuning epochs after each pruning.
        temperature, distance, legacy_self_term: SNNL settings.
        fate_lambda: ``lambda`` of FATE.
        patience: rounds without a better FATE before stopping.
        keep_unpruned_if_best: let round 0 (the unpruned network, FATE 0) win when no round beats it.
        num_groups: number of groups (default: inferred from the data).
        save_path: where to save the best network's ``state_dict`` (masks folded in); ``None``: don't save.
        history_path: JSON history (per round: pruned channels, macro-F1, EOdds, FATE).
        group_key, image_key: batch keys.
        chunk_size: channels per batched SNNL computation.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        layer_name: str,
        score_loader: Any,
        evaluator: Engine,
        n_per_round: int = 2,
        max_rounds: int = 3,
        finetune_epochs: int = 1,
        temperature: float = 1.0,
        distance: str = "cosine",
        legacy_self_term: bool = False,
        fate_lambda: float = 1.0,
        patience: int = 1,
        keep_unpruned_if_best: bool = True,
        num_groups: int | None = None,
        save_path: str | None = None,
        history_path: str | None = None,
        group_key: str = "group",
        image_key: str = "image",
        chunk_size: int = 128,
    ) -> None:
        if n_per_round < 1 or max_rounds < 1 or finetune_epochs < 1:
            raise ValueError("n_per_round, max_rounds and finetune_epochs must be >= 1.")
        self.network = network
        self.layer_name = layer_name
        self.layer, _, _ = find_following_modules(network, layer_name)
        if n_per_round * max_rounds >= self.layer.out_channels:
            raise ValueError(
                f"n_per_round*max_rounds={n_per_round * max_rounds} would prune all {self.layer.out_channels} "
                f"channels of {layer_name!r}."
            )
        self.score_loader = score_loader
        self.evaluator = evaluator
        self.n_per_round, self.max_rounds, self.finetune_epochs = n_per_round, max_rounds, finetune_epochs
        self.snnl_kwargs = {"temperature": temperature, "distance": distance, "legacy_self_term": legacy_self_term}
        self.fate_lambda, self.patience, self.keep_unpruned_if_best = fate_lambda, patience, keep_unpruned_if_best
        self.num_groups = num_groups
        self.save_path, self.history_path = save_path, history_path
        self.group_key, self.image_key, self.chunk_size = group_key, image_key, chunk_size
        self.collector = _OutputCollector(group_key)
        self.logger = logging.getLogger(__name__)
        self.history: list[dict[str, Any]] = []
        self.round = 0
        self.baseline: tuple[float, float] | None = None
        self.best: dict[str, Any] | None = None
        self._stall = 0

    def attach(self, engine: Engine) -> None:
        self.evaluator.add_event_handler(Events.STARTED, self.collector.reset)
        self.evaluator.add_event_handler(Events.ITERATION_COMPLETED, self.collector)
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.finetune_epochs), self._round_completed)
        engine.add_event_handler(Events.COMPLETED, self._completed)

    def evaluate(self) -> tuple[float, float]:
        """Run the evaluator; return (macro-F1, EOdds) on its data."""
        self.evaluator.run()
        return macro_f1_eodds(*self.collector.tensors(), num_groups=self.num_groups)

    def fate(self, f1: float, eodds: float) -> float:
        f1_b, eo_b = self.baseline  # type: ignore[misc]
        eps = 1e-12
        return (f1 - f1_b) / max(f1_b, eps) - self.fate_lambda * (eodds - eo_b) / max(eo_b, eps)

    def _prune_next(self) -> list[int]:
        scores = score_channels_snnl(
            self.network,
            self.layer_name,
            self.score_loader,
            image_key=self.image_key,
            group_key=self.group_key,
            chunk_size=self.chunk_size,
            **self.snnl_kwargs,
        )
        done = pruned_channels(self.network, self.layer_name)
        scores[done] = float("inf")  # never re-select a pruned channel
        chosen = torch.argsort(scores)[: self.n_per_round].tolist()
        mask_channels(self.network, self.layer_name, chosen)
        self.round += 1
        self.logger.info(f"SNNL pruning round {self.round}: pruned channels {chosen} of {self.layer_name}")
        return chosen

    def _snapshot(self, fate: float) -> dict[str, Any]:
        return {"round": self.round, "fate": fate, "state": copy.deepcopy(self.network.state_dict())}

    def _started(self, engine: Engine) -> None:
        engine.state.max_epochs = self.max_rounds * self.finetune_epochs
        mask_channels(self.network, self.layer_name, [], register=True)  # fixed state_dict keys across rounds
        f1, eo = self.evaluate()
        self.baseline = (f1, eo)
        self.history = [{"round": 0, "pruned": [], "macro_f1": f1, "eodds": eo, "fate": 0.0}]
        self.best = self._snapshot(0.0) if self.keep_unpruned_if_best else None
        self.logger.info(f"SNNL pruning: unpruned macro-F1 {f1:.4f}, EOdds {eo:.4f}")
        self.history.append({"round": 1, "pruned": self._prune_next()})

    def _round_completed(self, engine: Engine) -> None:
        f1, eo = self.evaluate()
        fate = self.fate(f1, eo)
        self.history[-1].update({"macro_f1": f1, "eodds": eo, "fate": fate})
        self.logger.info(f"SNNL pruning round {self.round}: macro-F1 {f1:.4f}, EOdds {eo:.4f}, FATE {fate:.4f}")
        if self.best is None or fate > self.best["fate"]:
            self.best, self._stall = self._snapshot(fate), 0
        else:
            self._stall += 1
        if self._stall >= self.patience or self.round >= self.max_rounds:
            engine.terminate()
            return
        self.history.append({"round": self.round + 1, "pruned": self._prune_next()})

    def _completed(self, engine: Engine) -> None:
        if self.best is not None:
            self.network.load_state_dict(self.best["state"])
        best_round = self.best["round"] if self.best is not None else self.round
        kept = pruned_channels(self.network, self.layer_name)
        make_pruning_permanent(self.network)
        self.logger.info(f"SNNL pruning: kept round {best_round} ({len(kept)} channels of {self.layer_name} pruned)")
        summary = {
            "layer_name": self.layer_name,
            "best_round": best_round,
            "pruned_channels": kept,
            "rounds": [{k: v for k, v in h.items()} for h in self.history],
            "settings": {
                "n_per_round": self.n_per_round,
                "max_rounds": self.max_rounds,
                "finetune_epochs": self.finetune_epochs,
                "fate_lambda": self.fate_lambda,
                **self.snnl_kwargs,
            },
        }
        self.summary = summary
        if self.save_path:
            os.makedirs(os.path.dirname(os.path.abspath(self.save_path)), exist_ok=True)
            torch.save(self.network.state_dict(), self.save_path)
        if self.history_path:
            os.makedirs(os.path.dirname(os.path.abspath(self.history_path)), exist_ok=True)
            with open(self.history_path, "w") as f:
                json.dump(summary, f, indent=2, default=lambda o: float(o) if isinstance(o, np.floating) else str(o))
