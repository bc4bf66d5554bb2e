# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The arms of a fairness trial: which bundle configs train and evaluate each method, and what it targets.

An arm is data, not code: the bundle it runs, the config files of each training stage (the bundle's own files plus
the trial's overlay files under ``bundles/fairness_trial/configs/arms/``, applied on top, MONAI's ``+key`` merging
included), the config files of its evaluation, and overrides. Files are named relative to the bundles folder
(``baseline_classification/configs/train.json``). Arms that differ only in how a model is *chosen* or *used*
(checkpoint selection, post-processing) share the training runs of another arm (``recipe``): the comparison with
ERM is then exact (same training, same seed), and their cost is ERM's.

Users add arms with a JSON file (``--arms-file``): a list of objects with the fields of :class:`Arm`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Arm",
    "ARMS",
    "DEFAULT_METHODS",
    "load_arms",
    "resolve_arms",
    "default_bundles_dir",
    "checkpoint_tag",
    "eval_tag",
]

_TASKS = ("classification", "segmentation")
_POST = (None, "group_thresholds")


@dataclass(frozen=True)
class Arm:
    """One arm of the trial.

    Attributes:
        name: arm id (``--methods``).
        task: ``"classification"`` or ``"segmentation"``.
        bundle: folder of the bundle under the bundles folder.
        description: one line: what the arm does.
        mechanism: the bias mechanism (synthetic scenario) the method addresses, or ``"reference"`` / ``"control"``.
        target: the headline figure the method aims to move (e.g. ``worst_group_auc``).
        stages: config files of each training stage (each stage is one ``monai.bundle run``).
        evaluate: config files of the evaluation (the trial's own evaluation overlay is added after them; default:
            the bundle's ``train.json`` and ``evaluate.json``, or the shared recipe's).
        checkpoint: file under the run's ``ckpt_dir`` to evaluate instead of the bundle's default (``None``).
        recipe: name of the arm whose training runs this arm reuses (``None``: its own).
        post: post-processing fitted on the validation predictions: ``None`` or ``"group_thresholds"``.
        overrides: config overrides of this arm (applied after the trial's common overrides).
        reference: the arm this one is paired with in the report instead of the task's reference arm (``None``:
            the task's reference), e.g. APPLE against its own deployed model; it is run with it.
    """

    name: str
    task: str
    bundle: str
    description: str
    mechanism: str
    target: str
    stages: tuple[tuple[str, ...], ...] = ()
    evaluate: tuple[str, ...] = ()
    checkpoint: str | None = None
    recipe: str | None = None
    post: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    reference: str | None = None

    def __post_init__(self) -> None:
        if self.task not in _TASKS:
            raise ValueError(f"arm {self.name!r}: task must be one of {_TASKS}, got {self.task!r}.")
        if self.post not in _POST:
            raise ValueError(f"arm {self.name!r}: post must be one of {_POST}, got {self.post!r}.")
        if self.recipe is None and not self.stages:
            raise ValueError(f"arm {self.name!r} has no training stages and no recipe to share.")
        if not self.evaluate and self.recipe is None:  # the bundle's own evaluation
            evaluate = (f"{self.bundle}/configs/train.json", f"{self.bundle}/configs/evaluate.json")
            object.__setattr__(self, "evaluate", evaluate)
        if self.recipe is not None and (self.stages or self.overrides):
            raise ValueError(
                f"arm {self.name!r} shares the training runs of {self.recipe!r}: it cannot have its own stages or "
                "overrides (they would not be used); give it its own stages instead."
            )
        object.__setattr__(self, "stages", tuple(tuple(s) for s in self.stages))
        object.__setattr__(self, "evaluate", tuple(self.evaluate))

    @property
    def recipe_name(self) -> str:
        """The training recipe this arm's runs belong to (its own name unless it shares one)."""
        return self.recipe or self.name

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["overrides"] = dict(self.overrides)
        return d


def default_bundles_dir() -> Path:
    """The bundles folder: ``$MONAI_FAIR_BUNDLES``, else :func:`monai_fair.bundles.bundles_dir` (installed/checkout)."""
    from monai_fair.bundles import bundles_dir  # the installed package data, else the checkout's bundles/

    env = os.environ.get("MONAI_FAIR_BUNDLES")
    return Path(env) if env else bundles_dir()


_BC = "baseline_classification/configs/"
_BS = "baseline_segmentation/configs/"
_FD = "fairdi_classification/configs/"
_FS = "fairdi_segmentation/configs/"
_SN = "snnl_pruning_classification/configs/"
_AP = "apple_segmentation/configs/"
_ARM = "fairness_trial/configs/arms/"

_BUILTIN: list[Arm] = [
    # ------------------------------------------------------------------ classification: ERM and generic baselines
    Arm("erm", "classification", "baseline_classification",
        "ERM: plain training, checkpoint by validation AUC (plus the fairness-aware selectors, recorded on the side)",
        "reference", "auc", stages=((_BC + "train.json", _ARM + "erm_classification.json"),)),
    Arm("erm_select_worst_group", "classification", "baseline_classification",
        "ERM's training run, checkpoint with the best validation worst-group AUC (= MEDFAIR's minimax Pareto)",
        "model selection", "worst_group_auc", recipe="erm", checkpoint="model_worst_group.pt"),
    Arm("erm_select_dto", "classification", "baseline_classification",
        "ERM's training run, checkpoint closest to the (overall AUC, worst-group AUC) utopia point (MEDFAIR's DTO)",
        "model selection", "worst_group_auc", recipe="erm", checkpoint="model_dto.pt"),
    Arm("group_thresholds", "classification", "baseline_classification",
        "ERM's model with one decision threshold per group fitted on validation (equal TPR; Hardt et al. 2016)",
        "post-processing", "eodds", recipe="erm", post="group_thresholds"),
    Arm("resampling", "classification", "baseline_classification",
        "group-balanced resampling: every (group, label) cell drawn equally often",
        "underrep, shortcut", "worst_group_auc", stages=((_BC + "train.json", _ARM + "resampling.json"),)),
    Arm("reweighting", "classification", "baseline_classification",
        "group loss reweighting, w = N / (K n(group, label))",
        "underrep, shortcut", "worst_group_auc", stages=((_BC + "train.json", _ARM + "reweighting.json"),)),
    Arm("groupdro", "classification", "baseline_classification",
        "GroupDRO (Sagawa et al., ICLR 2020) over (group, label) cells, eta = 0.01",
        "underrep, shortcut", "worst_group_auc", stages=((_BC + "train.json", _ARM + "groupdro.json"),)),
    # ------------------------------------------------------------------ classification: published methods
    Arm("fairdi", "classification", "fairdi_classification",
        "FairDi: FIS baseline, one teacher per group, distilled student",
        "underrep, irreducible", "es_auc",
        stages=((_FD + "train.json", _FD + "train_baseline.json"), (_FD + "train.json", _FD + "train_teachers.json"),
                (_FD + "train.json", _FD + "train_student.json"))),
    Arm("fis", "classification", "fairdi_classification",
        "FairDi's stage 0 alone: training with the Fair Identity Scaling loss",
        "underrep", "es_auc", stages=((_FD + "train.json", _FD + "train_baseline.json"),),
        overrides={"eval_stage": "baseline"}),
    Arm("snnl", "classification", "snnl_pruning_classification",
        "SNNL channel pruning of a trained model, FATE stopping",
        "shortcut", "eodds", stages=((_SN + "train.json",), (_SN + "train.json", _SN + "prune.json"))),
    Arm("snnl_finetune_only", "classification", "snnl_pruning_classification",
        "control: the SNNL schedule with no channel pruned (fine-tuning alone)",
        "control", "eodds",
        stages=((_SN + "train.json",), (_SN + "train.json", _SN + "prune.json", _SN + "control_finetune_only.json"))),
    Arm("snnl_random", "classification", "snnl_pruning_classification",
        "control: the SNNL schedule pruning random channels",
        "control", "eodds",
        stages=((_SN + "train.json",), (_SN + "train.json", _SN + "prune.json", _SN + "control_random_pruning.json"))),
    Arm("fairprune", "classification", "snnl_pruning_classification",
        "FairPrune (Wu et al., 2022): saliency-difference pruning",
        "shortcut", "eodds",
        stages=((_SN + "train.json",), (_SN + "train.json", _SN + "prune.json", _SN + "fairprune.json"))),
    # ------------------------------------------------------------------ segmentation
    Arm("erm_seg", "segmentation", "baseline_segmentation",
        "ERM segmentation: plain training, checkpoint by validation Dice (plus the selectors, recorded on the side)",
        "reference", "dice", stages=((_BS + "train.json", _ARM + "erm_segmentation.json"),)),
    Arm("erm_seg_select_worst_group", "segmentation", "baseline_segmentation",
        "ERM segmentation's training run, checkpoint with the best validation worst-group Dice",
        "model selection", "worst_group_dice", recipe="erm_seg", checkpoint="model_worst_group.pt"),
    Arm("erm_seg_select_dto", "segmentation", "baseline_segmentation",
        "ERM segmentation's training run, checkpoint closest to the (Dice, worst-group Dice) utopia point",
        "model selection", "worst_group_dice", recipe="erm_seg", checkpoint="model_dto.pt"),
    Arm("reweighting_seg", "segmentation", "baseline_segmentation",
        "group loss reweighting for segmentation, w = N / (G n(group)) on the per-image Dice + BCE loss",
        "underrep", "worst_group_dice", stages=((_BS + "train.json", _ARM + "reweighting_segmentation.json"),)),
    Arm("fairdi_seg", "segmentation", "fairdi_segmentation",
        "FairDi for segmentation: FIS baseline, group teachers, distilled student",
        "underrep, irreducible", "es_dice",
        stages=((_FS + "train.json", _FS + "train_baseline.json"), (_FS + "train.json", _FS + "train_teachers.json"),
                (_FS + "train.json", _FS + "train_student.json"))),
    Arm("apple", "segmentation", "apple_segmentation",
        "APPLE: adversarial latent perturbation of a frozen segmentor, paired with its own deployed model",
        "label_noise", "worst_group_dice", stages=((_AP + "train.json",),), checkpoint="model.pt",
        reference="apple_deployed"),
    Arm("apple_deployed", "segmentation", "apple_segmentation",
        "APPLE's deployed segmentor alone (its training run, perturbers off): the apple arms' paired reference",
        "reference", "worst_group_dice", recipe="apple", checkpoint="base_model.pt",
        evaluate=(_AP + "train.json", _AP + "evaluate_deployed.json")),
    Arm("apple_beta0", "segmentation", "apple_segmentation",
        "control: APPLE's perturber trained with no adversary (beta = 0), paired with its own deployed model",
        "control", "worst_group_dice", stages=((_AP + "train.json",),), checkpoint="model.pt",
        overrides={"beta": 0.0}, reference="apple_deployed"),
]  # fmt: skip

ARMS: dict[str, Arm] = {a.name: a for a in _BUILTIN}

#: the default ``--methods`` per task (every built-in arm of the task)
DEFAULT_METHODS: dict[str, tuple[str, ...]] = {t: tuple(a.name for a in _BUILTIN if a.task == t) for t in _TASKS}

#: the reference arm of each task
REFERENCE = {"classification": "erm", "segmentation": "erm_seg"}


def load_arms(path: str | os.PathLike) -> dict[str, Arm]:
    """Read user arms from a JSON file (a list of :class:`Arm` fields); they may replace built-in ones by name."""
    path = Path(path)
    try:
        items = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read arms file {path}: {e}") from e
    if not isinstance(items, list):
        raise ValueError(f"arms file {path} must hold a JSON list of arm objects.")
    out = {}
    for i, it in enumerate(items):
        try:
            arm = Arm(**it)
        except TypeError as e:
            raise ValueError(f"arms file {path}, item {i}: {e}") from e
        out[arm.name] = arm
    return out


def resolve_arms(methods: Sequence[str] | None, task: str, extra: Mapping[str, Arm] | None = None) -> list[Arm]:
    """The arms to run: the task's reference arm first, then ``methods`` (default: every arm of the task), with the
    arms whose training they share.

    Raises:
        ValueError: an unknown method name or one of another task, naming it and the valid ones.
    """
    registry = {**ARMS, **(extra or {})}
    names = list(methods) if methods else list(DEFAULT_METHODS[task])
    valid = sorted(n for n, a in registry.items() if a.task == task)
    bad = [n for n in names if n not in registry or registry[n].task != task]
    if bad:
        raise ValueError(f"unknown {task} method(s) {bad}; choose from {valid}.")
    ref = REFERENCE[task] if REFERENCE[task] in registry else names[0]
    order = [ref] + [n for n in names if n != ref]
    for n in list(order):
        for r in (registry[n].recipe, registry[n].reference):
            if r is not None and r not in order:
                order.append(r)
    return [registry[n] for n in order]


def checkpoint_tag(checkpoint: str | None) -> str:
    """Prefix of the prediction files of a checkpoint (``model`` for the bundle's default one)."""
    return "model" if checkpoint is None else Path(checkpoint).stem


def eval_tag(arm: Arm, registry: Mapping[str, Arm]) -> str:
    """Prefix of the prediction files an arm is scored on (post-processing arms use their recipe's default)."""
    if arm.post is not None and not arm.evaluate:
        return checkpoint_tag(None)
    return checkpoint_tag(arm.checkpoint)
