# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi handlers: they load, initialise, select and cache the group teachers around the stage trainers.

FairDi (Masroor, Hassan et al., arXiv 2411.11939) has three stages, each one MONAI trainer (see
``bundles/fairdi_classification`` and :mod:`monai_fair.methods.fairdi.stages`). The teachers' stage uses
:class:`TeacherBaselineInit` (start every teacher from stage 0) and :class:`GroupTeacherSelector` (keep each teacher
at its best epoch on its own group's validation data); the student's stage uses :class:`GroupTeachersLoader` (load
the teachers when the student starts and optionally cache their outputs once under deterministic transforms, so a
student epoch costs about a plain epoch). Nothing here runs when a bundle config is *resolved*.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from monai.handlers import from_engine
from monai.utils import CommonKeys as Keys
from monai.utils import IgniteInfo, convert_to_tensor, look_up_option, min_version, optional_import

from monai_fair.engines.utils import get_batch_group
from monai_fair.methods.fairdi.networks import GroupTeachers
from monai_fair.methods.fairdi.trainer import TEACHER_KEY
from monai_fair.metrics import FairnessMetricWarning, GroupClassificationMetric, GroupSegmentationMetric
from monai_fair.networks import freeze_backbone
from monai_fair.utils.io import atomic_path, atomic_write_json

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = [
    "TeacherBaselineInit",
    "StudentBaselineInit",
    "GroupTeacherSelector",
    "GroupTeachersLoader",
    "cache_teacher_outputs",
    "TEACHER_CRITERIA",
    "load_stage_state",
]

logger = logging.getLogger(__name__)
#: teacher selection criteria per task
TEACHER_CRITERIA = {"classification": ("balanced_accuracy", "auc"), "segmentation": ("dice",)}
_TASKS = ("classification", "segmentation")


def load_stage_state(path: str, what: str, stage_file: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} checkpoint '{path}' not found; run the {stage_file} stage first.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or not a state dict
        raise RuntimeError(f"cannot read the {what} checkpoint '{path}': {e}") from e


def _atomic_save(obj: Any, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.endswith(".json"):
        atomic_write_json(path, obj, indent=2)
        return
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def cache_teacher_outputs(
    teachers: GroupTeachers,
    items: Sequence[dict],
    transform: Callable,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    teacher_key: str = TEACHER_KEY,
    group_key: str = "group",
    num_workers: int = 0,
) -> list[dict]:
    """Run the own-group teacher of every item once, under the deterministic ``transform``.

    Returns shallow copies of ``items`` with ``item[teacher_key]`` = the teacher's logits (float32 numpy,
    ``(C,)`` or ``(C, *spatial)``). Random augmentation applied later to ``image`` does not change the cached
    target.
    """
    items = [dict(d) for d in items]
    loader = DataLoader(Dataset(items, transform), batch_size=batch_size, shuffle=False, num_workers=num_workers)
    teachers = teachers.to(device).eval()
    outs: list[np.ndarray] = []
    with torch.no_grad():
        for batch in loader:
            group = get_batch_group(batch, group_key, device)
            image = convert_to_tensor(batch[Keys.IMAGE], track_meta=False).to(device)
            outs.append(teachers(image, group).float().cpu().numpy())
    logits = np.concatenate(outs) if outs else np.zeros((0,))
    for d, z in zip(items, logits):
        d[teacher_key] = z
    return items


class GroupTeachersLoader:
    """Student-stage handler: when the trainer starts, load the stage-1 teachers and optionally cache their outputs.

    Attached to :class:`FairDiStudentTrainer` (its ``train_handlers``). At ``Events.STARTED`` it loads
    ``load_path`` (``weights_only=True``) into ``teachers``; with ``cache=True`` it then runs
    :func:`cache_teacher_outputs` on the trainer's dataset items under ``cache_transform`` and gives the items back
    to the dataset (``set_data``), so every batch carries ``teacher_key``. With ``cache=False`` the teachers run
    online on each (augmented) batch.

    Args:
        teachers: the :class:`GroupTeachers` the student trainer uses (built from the same network definition).
        load_path: the teachers' checkpoint (``teachers.pt`` of the teachers stage).
        cache: cache the outputs once (classification; not for patch-trained segmentation, whose crops the cached
            maps would not follow).
        cache_transform: the deterministic transform of the cache pass (the validation transform).
        batch_size, num_workers: of the cache pass.
        teacher_key, group_key: item keys.
    """

    def __init__(
        self,
        teachers: GroupTeachers,
        load_path: str,
        cache: bool = False,
        cache_transform: Callable | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        teacher_key: str = TEACHER_KEY,
        group_key: str = "group",
    ) -> None:
        if cache and cache_transform is None:
            raise ValueError("GroupTeachersLoader(cache=True) needs the deterministic cache_transform.")
        self.teachers = teachers
        self.load_path = load_path
        self.cache = cache
        self.cache_transform = cache_transform
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.teacher_key = teacher_key
        self.group_key = group_key

    def attach(self, engine: Any) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Any) -> None:
        self.teachers.load_state_dict(load_stage_state(self.load_path, "teachers", "teachers (train_teachers.json)"))
        self.teachers.to(engine.state.device).eval()
        if not self.cache:
            return
        dataset = engine.data_loader.dataset
        if not hasattr(dataset, "set_data"):
            raise TypeError(f"teacher caching needs a MONAI CacheDataset/Dataset with set_data, got {type(dataset)}.")
        items = cache_teacher_outputs(
            self.teachers,
            dataset.data,
            self.cache_transform,  # type: ignore[arg-type]
            engine.state.device,
            self.batch_size,
            self.teacher_key,
            self.group_key,
            self.num_workers,
        )
        dataset.set_data(items)


class StudentBaselineInit:
    """Student-stage handler: at ``Events.STARTED`` give the student the stage-0 backbone and a new head.

    FairDi's public re-implementation trains the student as a new linear head on the frozen stage-0 (FIS) backbone.
    This handler loads every stage-0 entry except the head ``head_name`` (which keeps the student's fresh
    initialisation) and, with ``freeze_backbone``, freezes the rest of the network
    (:func:`monai_fair.networks.freeze_backbone`: no gradients, BatchNorm and dropout kept in eval mode); without it
    the backbone is only warm-started and fine-tuned with the head. List it before the stage's
    :class:`monai_fair.handlers.TrainingResumeHandler`, so that a resumed run continues from its own saved student.
    ``load_path=None`` (the bundle's ``student_init: "scratch"``) keeps the fresh network and trains all of it.
    """

    def __init__(
        self, network: torch.nn.Module, load_path: str | None, head_name: str = "fc", freeze_backbone: bool = False
    ) -> None:
        self.network = network
        self.load_path = load_path
        self.head_name = head_name
        self.freeze_backbone = bool(freeze_backbone)
        if self.freeze_backbone and load_path is None:
            raise ValueError("student_freeze_backbone needs the stage-0 backbone (student_init: 'baseline').")

    def attach(self, engine: Any) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Any) -> None:
        if self.load_path is None:
            return
        state = load_stage_state(self.load_path, "stage-0", "baseline (train_baseline.json)")
        prefix = f"{self.head_name}."
        if not any(k.startswith(prefix) for k in state):
            raise KeyError(f"the stage-0 state dict has no '{self.head_name}' head entries ({prefix}weight).")
        own = self.network.state_dict()
        self.network.load_state_dict({**own, **{k: v for k, v in state.items() if not k.startswith(prefix)}})
        if self.freeze_backbone:
            freeze_backbone(self.network, self.head_name)


class TeacherBaselineInit:
    """Teachers-stage handler: at ``Events.STARTED`` initialise every teacher from the stage-0 checkpoint.

    List it before the stage's :class:`monai_fair.handlers.TrainingResumeHandler`, so that a resumed run continues
    from its own saved teachers. ``load_path=None`` (a bundle's ``teacher_init_from_baseline: false``) keeps the
    fresh initialisation.
    """

    def __init__(self, teachers: GroupTeachers, load_path: str | None) -> None:
        self.teachers = teachers
        self.load_path = load_path

    def attach(self, engine: Any) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Any) -> None:
        if self.load_path is not None:
            self.teachers.load_baseline(load_stage_state(self.load_path, "stage-0", "baseline (train_baseline.json)"))


def _member_prefix(teachers: GroupTeachers, k: int) -> str:
    return f"teachers.{k}." if teachers.teachers is not None else f"heads.{k}."


class GroupTeacherSelector:
    """Keep each group's teacher at its best validation epoch *on its own group*, and write ``teachers.pt``.

    Attach to the teachers' trainer (``train_handlers``); it listens to the ``evaluator`` that validates the
    :class:`GroupTeachers` (whose outputs are own-group outputs, so group ``k``'s metrics are teacher ``k``'s). After
    each validation, teacher ``k`` is kept if its ``criterion`` on group ``k`` improved and, for classification with
    ``require_usable_threshold``, its selection rate at the decision threshold on group ``k`` is strictly between
    0 and 1 (a teacher that calls every case of its group positive, or none, is never selected, whatever its AUC).
    A group never selected keeps its starting point (the stage-0 model), with a warning.

    ``save_path`` (the best teachers so far, atomically, after every improvement and at the end if absent) and
    ``save_path`` with ``.json`` (per group: selected epoch, criterion value, selection rate, and the decision
    threshold with its origin) are written. Its :meth:`state_dict` goes into the stage's resume file.

    Args:
        teachers: the teachers being trained.
        evaluator: the validation engine running ``teachers`` (outputs ``pred``, ``label``, ``group``).
        save_path: the teachers checkpoint to write.
        task: ``"classification"`` or ``"segmentation"``.
        criterion: ``"balanced_accuracy"`` (default) or ``"auc"`` (classification), ``"dice"`` (segmentation).
        require_usable_threshold: binary classification: also require a selection rate in (0, 1) on the group.
        threshold: the binary decision threshold on the positive-class probability (0.5: the argmax of two
            softmax outputs; fixed, not fitted), recorded in the JSON.
        min_group_size: privacy: a group with fewer validation samples gets no figures in the JSON or the log
            (only its selected epoch).
        output_transform: gives ``(pred, label, group)`` from the evaluator's state.
        premise_check: before the first epoch, evaluate the teachers as they start, i.e. the stage-0 model when
            they are initialised from it (the bundle passes ``teacher_init_from_baseline``), and write FairDi's
            **premise check** into the JSON: each teacher's own-group validation ``premise_metric`` (AUC, or Dice)
            at its selected epoch against stage 0's on the same group. If no teacher beats stage 0 on its group,
            the JSON's verdict (and a warning) says that FairDi has nothing to distil.

    Premise: FairDi's group teachers are meant to be better on their own group than the model trained on everyone;
    when none is, the student is taught stage 0 again and the method cannot help on that data.
    """

    def __init__(
        self,
        teachers: GroupTeachers,
        evaluator: Any,
        save_path: str,
        task: str = "classification",
        criterion: str = "balanced_accuracy",
        require_usable_threshold: bool = True,
        threshold: float = 0.5,
        min_group_size: int = 1,
        output_transform: Callable = from_engine(["pred", "label", "group"]),
        premise_check: bool = True,
    ) -> None:
        self.task = look_up_option(task, _TASKS)
        self.premise_check = bool(premise_check)
        self.premise_metric = "auc" if self.task == "classification" else "dice"
        self._stage0_pass = False
        self.min_group_size = int(min_group_size)
        self.criterion = look_up_option(criterion, TEACHER_CRITERIA[self.task])
        self.teachers = teachers
        self.evaluator = evaluator
        self.save_path = str(save_path)
        self.require_usable_threshold = bool(require_usable_threshold) and self.task == "classification"
        self.threshold = float(threshold)
        self.output_transform = output_transform
        k = teachers.num_groups
        self.best_value = torch.full((k,), float("nan"), dtype=torch.float64)
        self.best_epoch = torch.zeros(k, dtype=torch.long)
        self.best_rate = torch.full((k,), float("nan"), dtype=torch.float64)
        self.best_state: dict[str, torch.Tensor] | None = None
        self.val_size = torch.zeros(k, dtype=torch.long)
        self.best_premise = torch.full((k,), float("nan"), dtype=torch.float64)
        self.stage0_premise = torch.full((k,), float("nan"), dtype=torch.float64)
        self._metric: Any = None
        self._trainer: Any = None

    # --- state for the resume file ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "best_value": self.best_value.clone(),
            "best_epoch": self.best_epoch.clone(),
            "best_rate": self.best_rate.clone(),
            "val_size": self.val_size.clone(),
            "best_premise": self.best_premise.clone(),
            "stage0_premise": self.stage0_premise.clone(),
            "best_state": dict(self.best_state or {}),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best_value = state["best_value"].clone().to(torch.float64)
        self.best_epoch = state["best_epoch"].clone().long()
        self.best_rate = state["best_rate"].clone().to(torch.float64)
        self.val_size = state["val_size"].clone().long()
        k = self.teachers.num_groups
        nan = torch.full((k,), float("nan"), dtype=torch.float64)
        self.best_premise = state.get("best_premise", nan).clone().to(torch.float64)
        self.stage0_premise = state.get("stage0_premise", nan).clone().to(torch.float64)
        self.best_state = dict(state["best_state"]) or None

    # --- events -------------------------------------------------------------------------------------------------
    def attach(self, engine: Any) -> None:
        self._trainer = engine
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.COMPLETED, self._completed)
        self.evaluator.add_event_handler(Events.EPOCH_STARTED, self._reset)
        self.evaluator.add_event_handler(Events.ITERATION_COMPLETED, self._update)
        self.evaluator.add_event_handler(Events.EPOCH_COMPLETED, self._select)

    def _started(self, engine: Any) -> None:
        if self.best_state is None:  # starting point: the stage-0 initialisation (a resumed run restores its own)
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.teachers.state_dict().items()}
        fresh = int(getattr(engine.state, "epoch", 0) or 0) == 0
        if self.premise_check and fresh and bool(torch.isnan(self.stage0_premise).all()):
            self._stage0_pass = True  # the evaluator's next epoch measures the teachers as they start (stage 0)
            try:
                self.evaluator.run()
            finally:
                self._stage0_pass = False

    def _reset(self, _: Any) -> None:
        k = self.teachers.num_groups
        self._metric = (
            GroupClassificationMetric(num_groups=k, threshold=self.threshold)
            if self.task == "classification"
            else GroupSegmentationMetric(num_groups=k)
        )

    def _update(self, engine: Any) -> None:
        pred, label, group = self.output_transform(engine.state.output)
        self._metric(pred, label, group=group)

    def _select(self, _: Any) -> None:
        if self._metric is None or self._metric.get_buffer() is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FairnessMetricWarning)
            groups = self._metric.aggregate()["groups"]
        if self._stage0_pass:
            for k in range(self.teachers.num_groups):
                self.stage0_premise[k] = float(groups[k].get(self.premise_metric, float("nan")))
            return
        epoch = int(self._trainer.state.epoch) if self._trainer is not None else 0
        improved = []
        for k in range(self.teachers.num_groups):
            self.val_size[k] = int(groups[k].get("n", 0))
            value = float(groups[k].get(self.criterion, float("nan")))
            rate = float(groups[k].get("selection_rate", float("nan")))
            # multi-class tasks have no selection rate (NaN): the check is for binary decision thresholds
            usable = not self.require_usable_threshold or math.isnan(rate) or 0.0 < rate < 1.0
            best = float(self.best_value[k])
            if math.isfinite(value) and usable and (math.isnan(best) or value > best):
                self.best_value[k], self.best_epoch[k], self.best_rate[k] = value, epoch, rate
                self.best_premise[k] = float(groups[k].get(self.premise_metric, float("nan")))
                improved.append(k)
        if not improved:
            return
        state = self.teachers.state_dict()
        for k in improved:
            prefix = _member_prefix(self.teachers, k)
            self.best_state.update({n: v.detach().cpu().clone() for n, v in state.items() if n.startswith(prefix)})
        self._write()

    def _completed(self, _: Any) -> None:
        if not os.path.isfile(self.save_path):
            self._write()
        premise = self.premise()
        if premise["checked"] and not premise["teachers_beating_stage0"]:
            warnings.warn(f"FairDi premise check: {premise['verdict']}", stacklevel=2)
        never = [k for k in range(self.teachers.num_groups) if int(self.best_epoch[k]) == 0]
        if never:
            warnings.warn(
                f"FairDi: the teachers of groups {never} were never selected (criterion '{self.criterion}'"
                + (", selection rate in (0, 1)" if self.require_usable_threshold else "")
                + "); they stay the stage-0 model.",
                stacklevel=2,
            )

    def premise(self) -> dict[str, Any]:
        """FairDi's premise check (see the class docstring): which assessed groups' teachers beat stage 0 on their
        own group's validation data, and the verdict. Groups below ``min_group_size`` are not assessed."""
        metric = self.premise_metric
        if not self.premise_check:
            return {"checked": False, "verdict": "premise check disabled"}
        assessed = [k for k in range(self.teachers.num_groups) if int(self.val_size[k]) >= self.min_group_size]
        # a teacher never selected stays the stage-0 model: its figure is stage 0's
        teacher = torch.where(self.best_epoch > 0, self.best_premise, self.stage0_premise)
        pairs = [(k, float(teacher[k]), float(self.stage0_premise[k])) for k in assessed]
        pairs = [(k, t, s) for k, t, s in pairs if math.isfinite(t) and math.isfinite(s)]
        if not pairs:
            why = (f"no group has a finite own-group {metric} for both a selected teacher and stage 0 with >= "
                   f"min_group_size={self.min_group_size} validation samples")  # fmt: skip
            return {"checked": False, "metric": metric, "verdict": why}
        beating = [k for k, t, s in pairs if t > s]
        if beating:
            verdict = (f"the teachers of groups {beating} beat the stage-0 model on their own group's validation "
                       f"{metric}: there is something to distil")  # fmt: skip
        else:
            verdict = (f"FairDi has nothing to distil: no group's teacher beats the stage-0 model on its own group's "
                       f"validation {metric}, so the student can only be taught stage 0 again")  # fmt: skip
        return {
            "checked": True,
            "metric": metric,
            "assessed_groups": [k for k, _, _ in pairs],
            "teachers_beating_stage0": beating,
            "verdict": verdict,
        }

    def _write(self) -> None:
        _atomic_save(self.best_state, self.save_path)
        groups: dict[str, dict[str, Any]] = {}
        for k in range(self.teachers.num_groups):
            groups[str(k)] = {"selected_epoch": int(self.best_epoch[k]) or None}
            if int(self.val_size[k]) >= self.min_group_size:
                groups[str(k)][self.criterion] = _finite_or_none(self.best_value[k])
                if self.task == "classification":
                    groups[str(k)]["selection_rate"] = _finite_or_none(self.best_rate[k])
                if self.premise_check:
                    teacher = self.best_premise[k] if int(self.best_epoch[k]) > 0 else self.stage0_premise[k]
                    groups[str(k)][f"{self.premise_metric}_teacher"] = _finite_or_none(teacher)
                    groups[str(k)][f"{self.premise_metric}_stage0"] = _finite_or_none(self.stage0_premise[k])
            else:  # privacy: no figure of a group below min_group_size
                groups[str(k)]["suppressed"] = f"fewer than min_group_size={self.min_group_size} validation samples"
        record = {
            "criterion": self.criterion,
            "require_usable_threshold": self.require_usable_threshold,
            "groups": groups,
            "premise": self.premise(),
        }
        if self.task == "classification":
            record["threshold"] = self.threshold
            record["threshold_origin"] = "fixed default (argmax of the softmax = 0.5 for two classes), not fitted"
        _atomic_save(record, os.path.splitext(self.save_path)[0] + ".json")
        logger.info("FairDi teachers: %s", record["groups"])


def _finite_or_none(x: torch.Tensor) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None
