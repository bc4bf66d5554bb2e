# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The state of SCP's iterative procedure (score -> prune -> fine-tune -> evaluate, repeated) without any engine.

Kong et al., "Achieving Fairness Through Channel Pruning for Dermatological Disease Diagnosis", MICCAI 2024.
:class:`ChannelPruningDriver` holds the network, chooses and masks channels, records every round's validation
figures, keeps the best eligible round and writes the result; :class:`monai_fair.methods.snnl.SNNLPruningHandler`
calls it from a fine-tuning trainer's events. Rounds are selected by FATE (:mod:`.metrics`) under a **performance
floor**: a round whose validation macro-F1 is more than ``max_f1_drop`` below the unpruned model's is never kept
(its selection score is ``-inf``), however much it lowers EOdds, so FATE cannot trade away the accuracy the model
exists for. Round 0 (the unpruned network) always meets the floor; it is kept when no pruned round is eligible, and
also when it has the best FATE (0) if ``keep_unpruned_if_best``.

Every round's figures are recorded, the rejected rounds' included: the validation figures that select, and (when
the handler has a test evaluator) the test figures, which never select and are there so that a reader sees what each
rejected round would have given.

Channel selection (``selection``): ``"snnl"`` (SCP: the ``n_per_round`` not-yet-pruned channels with the lowest
SNNL score on the sensitive attribute), and two controls with the identical schedule: ``"random"`` (seeded uniform
channels: does the SNNL ranking matter?) and ``"none"`` (fine-tuning only: how much of the change is the extra
fine-tuning?).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from monai.utils import look_up_option

from monai_fair.methods.snnl.metrics import FATE_FAIRNESS_KEY
from monai_fair.methods.snnl.pruning import find_following_modules, make_pruning_permanent, mask_channels
from monai_fair.methods.snnl.pruning import pruned_channels as masked_channels
from monai_fair.methods.snnl.scoring import score_channels_snnl
from monai_fair.utils import to_json_safe

__all__ = ["PRUNING_SELECTIONS", "select_channels", "channels_per_round", "ChannelPruningDriver"]

PRUNING_SELECTIONS = ("snnl", "random", "none")


def channels_per_round(num_channels: int, n: int | None = None, fraction: float | None = None) -> int:
    """Channels to prune per round: ``n`` when given, else ``max(1, round(fraction * num_channels))``."""
    if n is not None:
        return int(n)
    if fraction is None:
        raise ValueError("give n_per_round or fraction_per_round (channels pruned per round).")
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"fraction_per_round must be in (0, 1), got {fraction}.")
    return max(1, round(float(fraction) * int(num_channels)))


def select_channels(
    scores: torch.Tensor | None,
    n: int,
    exclude: Iterable[int] = (),
    num_channels: int | None = None,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """The ``n`` channels with the lowest ``scores`` (or, with ``scores=None``, ``n`` uniform ones drawn with ``rng``),
    never one in ``exclude``; sorted."""
    excluded = torch.zeros(num_channels if scores is None else scores.numel(), dtype=torch.bool)
    excluded[list(exclude)] = True
    free = torch.nonzero(~excluded).flatten()
    if n > free.numel():
        raise ValueError(f"cannot select {n} channels: only {free.numel()} are not pruned yet.")
    if scores is None:
        rng = rng if rng is not None else np.random.default_rng(0)
        chosen = free[torch.as_tensor(rng.choice(free.numel(), size=n, replace=False))]
    else:
        chosen = free[torch.argsort(scores[free].cpu(), stable=True)[:n]]
    return sorted(chosen.tolist())


class ChannelPruningDriver:
    """Rounds of SCP channel pruning with FATE selection under a macro-F1 floor (see module doc).

    Args:
        network: the network being pruned and fine-tuned.
        layer_name: conv to prune (a key of ``network.named_modules()``).
        score_loader: fixed, group-stratified batches for SNNL scoring (needed for ``selection="snnl"``), e.g.
            ``DataLoader(ds, batch_sampler=stratified_batch_indices(groups, 64))``.
        selection: ``"snnl"``, ``"random"`` or ``"none"`` (see module doc).
        n_per_round: channels pruned per round; ``None``: from ``fraction_per_round``.
        fraction_per_round: channels pruned per round as a fraction of the layer's output channels,
            ``max(1, round(fraction * C))`` (SCP's example prunes 7 of 512 channels, ~1.4 %); used when
            ``n_per_round`` is ``None``.
        max_rounds: maximum number of rounds.
        max_f1_drop: largest allowed drop of validation macro-F1 below the unpruned model's (absolute, e.g. 0.05 =
            5 points); ``None`` disables the floor (the SCP code has none).
        keep_unpruned_if_best: let round 0 win when no round has a better FATE than 0.
        temperature, distance, legacy_self_term: SNNL settings.
        seed: seed of ``selection="random"``.
        image_key, group_key: batch keys of ``score_loader``.
        chunk_size: channels per batched SNNL computation.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        layer_name: str,
        score_loader: Iterable | None = None,
        selection: str = "snnl",
        n_per_round: int | None = 2,
        max_rounds: int = 3,
        max_f1_drop: float | None = 0.05,
        keep_unpruned_if_best: bool = True,
        temperature: float = 1.0,
        distance: str = "cosine",
        legacy_self_term: bool = False,
        seed: int = 0,
        image_key: str = "image",
        group_key: str = "group",
        chunk_size: int = 128,
        fraction_per_round: float | None = None,
    ) -> None:
        self.network, self.layer_name = network, layer_name
        self.layer, _, _ = find_following_modules(network, layer_name)
        n_per_round = channels_per_round(self.layer.out_channels, n_per_round, fraction_per_round)
        if n_per_round < 1 or max_rounds < 1:
            raise ValueError(f"n_per_round and max_rounds must be >= 1, got {n_per_round} and {max_rounds}.")
        if max_f1_drop is not None and not max_f1_drop >= 0:
            raise ValueError(f"max_f1_drop must be >= 0 (or None for no floor), got {max_f1_drop}.")
        self.selection = look_up_option(selection, PRUNING_SELECTIONS)
        if self.selection == "snnl" and score_loader is None:
            raise ValueError("selection='snnl' needs a score_loader (fixed, group-stratified scoring batches).")
        if self.selection != "none" and n_per_round * max_rounds >= self.layer.out_channels:
            raise ValueError(
                f"n_per_round*max_rounds={n_per_round * max_rounds} would prune all {self.layer.out_channels} "
                f"channels of {layer_name!r}."
            )
        self.score_loader = score_loader
        self.n_per_round, self.max_rounds = int(n_per_round), int(max_rounds)
        self.fraction_per_round = fraction_per_round
        self.max_f1_drop = None if max_f1_drop is None else float(max_f1_drop)
        self.keep_unpruned_if_best = bool(keep_unpruned_if_best)
        self.snnl_kwargs = {"temperature": temperature, "distance": distance, "legacy_self_term": legacy_self_term}
        self.seed = int(seed)
        self.image_key, self.group_key, self.chunk_size = image_key, group_key, chunk_size
        self.logger = logging.getLogger(__name__)
        self.reset()

    def reset(self) -> None:
        """Forget every round (the network's masks are not touched)."""
        self.rng = np.random.default_rng(self.seed)
        self.round = 0
        self.history: list[dict[str, Any]] = []
        self.baseline: dict[str, float] | None = None
        self.best: dict[str, Any] | None = None
        self.summary: dict[str, Any] | None = None

    # ----------------------------------------------------------------- rounds
    def meets_floor(self, macro_f1: float) -> bool:
        """Whether a validation macro-F1 is within ``max_f1_drop`` of the unpruned model's."""
        if self.max_f1_drop is None or self.baseline is None:
            return True
        return bool(macro_f1 >= self.baseline["macro_f1"] - self.max_f1_drop - 1e-12)

    def begin(self, metrics: dict[str, float]) -> float:
        """Record round 0 (the unpruned network's validation ``macro_f1`` / ``eodds_mean``); return its selection
        score (0, or ``-inf`` when the unpruned model may only win by default)."""
        self.reset()
        mask_channels(self.network, self.layer_name, [], register=True)  # fixed state_dict keys across rounds
        self.baseline = {"macro_f1": float(metrics["macro_f1"]), FATE_FAIRNESS_KEY: float(metrics[FATE_FAIRNESS_KEY])}
        self.history = [{"round": 0, "pruned": [], **self.baseline, "fate": 0.0, "meets_floor": True}]
        score = 0.0 if self.keep_unpruned_if_best else -math.inf
        self.best = self._snapshot(score)  # also the fallback when no pruned round is eligible
        self.logger.info(
            f"channel pruning ({self.selection}): unpruned validation macro-F1 {self.baseline['macro_f1']:.4f}, "
            f"EOdds (mean form) {self.baseline[FATE_FAIRNESS_KEY]:.4f}"
        )
        return score

    def prune_next(self) -> list[int]:
        """Choose and mask the next round's channels (none for ``selection="none"``); return them."""
        done = masked_channels(self.network, self.layer_name)
        if self.selection == "none":
            chosen: list[int] = []
        elif self.selection == "random":
            chosen = select_channels(None, self.n_per_round, done, self.layer.out_channels, self.rng)
        else:
            scores = score_channels_snnl(
                self.network,
                self.layer_name,
                self.score_loader,  # type: ignore[arg-type]
                image_key=self.image_key,
                group_key=self.group_key,
                chunk_size=self.chunk_size,
                **self.snnl_kwargs,
            )
            chosen = select_channels(scores, self.n_per_round, done)
        mask_channels(self.network, self.layer_name, chosen)
        self.round += 1
        self.history.append({"round": self.round, "pruned": chosen})
        self.logger.info(f"channel pruning round {self.round}: pruned channels {chosen} of {self.layer_name}")
        return chosen

    def end_round(self, metrics: dict[str, float]) -> float:
        """Record the validation ``macro_f1``, ``eodds_mean`` and ``fate`` of the round just fine-tuned; keep its
        state if it is the best eligible round; return its selection score (FATE, or ``-inf`` below the floor or when
        FATE is undefined, e.g. EOdds NaN because fewer than two groups reach ``min_group_size``)."""
        if self.baseline is None:
            raise RuntimeError("call begin() with the unpruned model's metrics first.")
        f1, eo, fate = (float(metrics[k]) for k in ("macro_f1", FATE_FAIRNESS_KEY, "fate"))
        ok = self.meets_floor(f1)
        self.history[-1].update({"macro_f1": f1, FATE_FAIRNESS_KEY: eo, "fate": fate, "meets_floor": ok})
        score = fate if ok and math.isfinite(fate) else -math.inf  # undefined FATE (EOdds NaN): not eligible
        if ok and not math.isfinite(fate) and self.baseline[FATE_FAIRNESS_KEY] == 0 and math.isfinite(eo):
            # FATE undefined (unpruned EOdds 0, this round's > 0): as EO_b -> 0 such a round ranks below every round
            # whose EOdds stayed 0 (their FATE is the F1 term, >= -1), ordered by its EOdds
            score = -1.0 - eo
        if ok and score > self.best["score"]:  # type: ignore[index]
            self.best = self._snapshot(score)
        self.logger.info(
            f"channel pruning round {self.round}: validation macro-F1 {f1:.4f}, EOdds {eo:.4f}, FATE {fate:.4f}"
            + ("" if ok else f" (below the floor: macro-F1 drop > {self.max_f1_drop})")
        )
        return score

    def record_test(self, metrics: dict[str, float]) -> None:
        """Add the test split's figures (``macro_f1``, ``eodds_mean``, ``fate`` against the unpruned model's test
        figures) to the current round's record, as ``test_<key>``. They are reported, never used for selection."""
        self.history[-1].update({f"test_{k}": float(v) for k, v in metrics.items()})

    @property
    def finished(self) -> bool:
        """Whether ``max_rounds`` rounds were run."""
        return self.round >= self.max_rounds

    def _snapshot(self, score: float) -> dict[str, Any]:
        return {"round": self.round, "score": score, "state": copy.deepcopy(self.network.state_dict())}

    # ----------------------------------------------------------------- result
    def finish(self) -> dict[str, Any]:
        """Restore the kept round, fold the masks into the weights and return the summary (also in ``summary``)."""
        if self.best is not None:
            self.network.load_state_dict(self.best["state"])
        kept_round = self.best["round"] if self.best is not None else self.round
        kept = masked_channels(self.network, self.layer_name)
        make_pruning_permanent(self.network)
        eligible = [h["round"] for h in self.history[1:] if h.get("meets_floor")]
        base_eodds = self.history[0].get(FATE_FAIRNESS_KEY)
        reason = (
            "no pruning round ran"
            if len(self.history) < 2
            else "FATE undefined (the unpruned model's validation EOdds is 0, e.g. one class predicted for everyone): "
            + ("the unpruned model is kept" if kept_round == 0 else "the round with the lowest EOdds above the floor")
            if base_eodds == 0 and not any(math.isfinite(h.get("fate", math.nan)) for h in self.history[1:])
            else "no pruned round met the macro-F1 floor"
            if kept_round == 0 and not eligible
            else "best validation FATE among the rounds that met the floor"
        )
        self.logger.info(f"channel pruning: kept round {kept_round} ({len(kept)} channels of {self.layer_name} pruned)")
        self.summary = {
            "layer_name": self.layer_name,
            "selection": self.selection,
            "best_round": kept_round,
            "kept_because": reason,
            "pruned_channels": kept,
            "rounds": copy.deepcopy(self.history),
            "settings": {
                "n_per_round": self.n_per_round,
                "fraction_per_round": self.fraction_per_round,
                "layer_channels": int(self.layer.out_channels),
                "max_rounds": self.max_rounds,
                "max_f1_drop": self.max_f1_drop,
                "keep_unpruned_if_best": self.keep_unpruned_if_best,
                "accuracy_metric": "macro_f1 (mean over classes of one-vs-rest F1)",
                "fairness_metric": f"{FATE_FAIRNESS_KEY} (SCP code: mean over classes of (dTPR_c + dFPR_c)/2, absolute,"
                " range over groups; not fairlearn's max form)",
                "seed": self.seed,
                **self.snnl_kwargs,
            },
        }
        return self.summary

    def save(self, model_path: str | None = None, history_path: str | None = None) -> None:
        """Write the network's ``state_dict`` and the summary JSON (after :meth:`finish`)."""
        if model_path:
            os.makedirs(os.path.dirname(os.path.abspath(model_path)), exist_ok=True)
            torch.save(self.network.state_dict(), model_path)
        if history_path:
            if self.summary is None:
                raise RuntimeError("call finish() before saving the history.")
            os.makedirs(os.path.dirname(os.path.abspath(history_path)), exist_ok=True)
            with open(history_path, "w") as f:
                json.dump(to_json_safe(self.summary), f, indent=2, allow_nan=False)
