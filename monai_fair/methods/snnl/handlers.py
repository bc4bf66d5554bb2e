# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Thin Ignite handler that runs SCP's prune / fine-tune rounds from a fine-tuning trainer's events.

Kong et al., "Achieving Fairness Through Channel Pruning for Dermatological Disease Diagnosis", MICCAI 2024.
The logic lives elsewhere: channel choice, round records, the floor and the kept state in
:class:`monai_fair.methods.snnl.ChannelPruningDriver`; the validation figures (macro-F1, mean-form EOdds, FATE) in
:class:`monai_fair.methods.snnl.FATEMetricHandler` attached to the evaluator; patience in Ignite's
:class:`~ignite.handlers.EarlyStopping`. The handler only wires them:

* trainer ``STARTED``: run the evaluator on the unpruned network, set FATE's baseline, prune the first round;
* trainer ``EPOCH_COMPLETED(every=finetune_epochs)``: run the evaluator, record the round, let ``EarlyStopping``
  count it (``patience`` rounds without a better eligible FATE terminate the trainer), else prune the next round;
* trainer ``COMPLETED`` (also after a termination): restore the kept round, fold the masks, save the model and the
  JSON history.

With a ``test_evaluator``, the test split is evaluated at round 0 and after every round as well, and its figures
(``test_macro_f1``, ``test_eodds_mean``, ``test_fate`` against the unpruned model's test figures) go into each
round's record, rejected rounds included; they never take part in the selection.

The trainer must run ``max_rounds * finetune_epochs`` epochs (checked at ``STARTED``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from monai.utils import IgniteInfo, min_version, optional_import

from monai_fair.methods.snnl.driver import ChannelPruningDriver
from monai_fair.methods.snnl.metrics import FATE_OUTPUT_KEYS, FATEMetricHandler

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
EarlyStopping, _ = optional_import("ignite.handlers", IgniteInfo.OPT_IMPORT_VERSION, min_version, "EarlyStopping")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["SNNLPruningHandler"]


class SNNLPruningHandler:
    """Wire a :class:`ChannelPruningDriver`, a validation evaluator and ``EarlyStopping`` to a fine-tuning trainer.

    Args:
        driver: the pruning state (network, layer, selection, floor, ...).
        evaluator: validation evaluator whose outputs hold ``pred`` (class probabilities), ``label`` and ``group``
            (e.g. ``monai_fair.engines.GroupSupervisedEvaluator``); a :class:`FATEMetricHandler` is attached to it.
        finetune_epochs: fine-tuning epochs per round.
        patience: rounds without a better eligible FATE before stopping (Ignite ``EarlyStopping``).
        fate_lambda: weight of the fairness term of FATE.
        num_groups: number of groups (default: inferred).
        min_group_size: groups below it are left out of the EOdds.
        metric_prefix: prefix of the evaluator's metric names (``<prefix>macro_f1``, ``<prefix>eodds_mean``,
            ``<prefix>fate``).
        save_path: where the kept network's ``state_dict`` goes (masks folded in); ``None``: not saved.
        history_path: where the JSON summary goes (every round's channels and validation figures, the floor, the
            kept round and why); ``None``: not saved.
        test_evaluator: optional evaluator of the test split (same outputs as ``evaluator``); its figures are recorded
            for every round and never select.
    """

    def __init__(
        self,
        driver: ChannelPruningDriver,
        evaluator: Engine,
        finetune_epochs: int = 1,
        patience: int = 1,
        fate_lambda: float = 1.0,
        num_groups: int | None = None,
        min_group_size: int = 1,
        metric_prefix: str = "val_",
        save_path: str | None = None,
        history_path: str | None = None,
        test_evaluator: Engine | None = None,
    ) -> None:
        if finetune_epochs < 1:
            raise ValueError(f"finetune_epochs must be >= 1, got {finetune_epochs}.")
        self.driver, self.evaluator = driver, evaluator
        self.finetune_epochs = int(finetune_epochs)
        self.patience = int(patience)
        self.prefix = metric_prefix
        self.metric = FATEMetricHandler(fate_lambda, None, num_groups, min_group_size, prefix=metric_prefix)
        self.save_path, self.history_path = save_path, history_path
        self.test_evaluator = test_evaluator
        self.test_metric = FATEMetricHandler(fate_lambda, None, num_groups, min_group_size, prefix="test_")
        self.early_stopping: Any = None
        self._score = 0.0

    def attach(self, trainer: Engine) -> None:
        """Attach the FATE metric to the evaluator and the round logic to ``trainer``."""
        self.metric.attach(self.evaluator, self.prefix + "scp")
        if self.test_evaluator is not None:
            self.test_metric.attach(self.test_evaluator, "test_scp")
        self.early_stopping = EarlyStopping(self.patience, lambda _: self._score, trainer)
        trainer.add_event_handler(Events.STARTED, self.started)
        trainer.add_event_handler(Events.EPOCH_COMPLETED(every=self.finetune_epochs), self.round_completed)
        trainer.add_event_handler(Events.COMPLETED, self.completed)

    def evaluate(self) -> dict[str, float]:
        """Run the evaluator; return ``{"macro_f1", "eodds_mean", "fate"}`` of its data."""
        self.evaluator.run()
        metrics = self.evaluator.state.metrics
        return {k: float(metrics[self.prefix + k]) for k in FATE_OUTPUT_KEYS}

    def record_test(self, first: bool = False) -> None:
        """Run the test evaluator (if any) and record its figures in the current round (``first``: round 0, which
        also sets the test FATE's reference)."""
        if self.test_evaluator is None:
            return
        self.test_evaluator.run()
        metrics = {k: float(self.test_evaluator.state.metrics["test_" + k]) for k in FATE_OUTPUT_KEYS}
        if first:
            self.test_metric.metric_fn.set_baseline(metrics["macro_f1"], metrics["eodds_mean"])
            metrics["fate"] = 0.0
        self.driver.record_test(metrics)

    def started(self, trainer: Engine) -> None:
        expected = self.driver.max_rounds * self.finetune_epochs
        if trainer.state.max_epochs != expected:
            raise ValueError(
                f"the fine-tuning trainer runs {trainer.state.max_epochs} epochs but max_rounds * finetune_epochs = "
                f"{self.driver.max_rounds} * {self.finetune_epochs} = {expected}; set its max_epochs to {expected}."
            )
        metrics = self.evaluate()
        self.metric.metric_fn.set_baseline(metrics["macro_f1"], metrics["eodds_mean"])
        self.early_stopping.reset()
        self._score = self.driver.begin(metrics)
        self.record_test(first=True)
        self.early_stopping(self.evaluator)  # round 0 sets the score to beat
        self.driver.prune_next()

    def round_completed(self, trainer: Engine) -> None:
        self._score = self.driver.end_round(self.evaluate())
        self.record_test()
        self.early_stopping(self.evaluator)  # may terminate the trainer
        if not (trainer.should_terminate or self.driver.finished):
            self.driver.prune_next()

    def completed(self, trainer: Engine) -> None:
        self.driver.finish()
        self.driver.save(self.save_path, self.history_path)

    @property
    def summary(self) -> dict[str, Any] | None:
        """The driver's summary after the trainer completed."""
        return self.driver.summary
