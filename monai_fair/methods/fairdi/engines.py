# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi engines: the student trainer and the handlers that load, cache and train the group teachers.

FairDi (Masroor, Hassan et al., "Fair Distillation: Teaching Fairness from Biased Teachers in Medical Imaging",
arXiv 2411.11939) has three stages, each one MONAI trainer (see ``bundles/fairdi_classification``):

0. a model trained on all data (the FIS loss by default), the teachers' starting point;
1. the K group teachers (:class:`monai_fair.methods.fairdi.GroupTeachers`) trained *together* as one network on
   group-balanced batches (:func:`group_balanced_sampler`): each sample reaches only its own group's teacher, so
   each teacher learns from its own group only, and every teacher gets the same number of optimiser steps and
   samples whatever its group's size. :class:`TeacherBaselineInit` initialises them from stage 0;
   :class:`GroupTeacherSelector` keeps each teacher at its best epoch on its own group's validation data;
2. the student (:class:`FairDiStudentTrainer`), taught sample by sample by its own group's teacher.
   :class:`GroupTeachersLoader` loads the teachers when the student starts and (optionally) caches their outputs
   once under deterministic transforms, so a student epoch costs about a plain epoch.

Nothing here runs when a bundle config is *resolved*: teachers are loaded and outputs cached when the trainer
starts. The student never sees the group at inference.
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
from monai.engines.utils import IterationEvents
from monai.handlers import from_engine
from monai.utils import CommonKeys as Keys
from monai.utils import IgniteInfo, convert_to_tensor, look_up_option, min_version, optional_import

from monai_fair.engines.group_trainer import GroupSupervisedTrainer
from monai_fair.engines.utils import GroupAwareLoss, LossInputBinder, get_batch_group
from monai_fair.methods.fairdi.teachers import GroupTeachers
from monai_fair.metrics import FairnessMetricWarning, GroupClassificationMetric, GroupSegmentationMetric
from monai_fair.utils.io import atomic_path, atomic_write_json
from monai_fair.utils.validation import check_group_ids

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = [
    "FairDiStudentTrainer",
    "TeacherOutputWriter",
    "GroupTeachersLoader",
    "TeacherBaselineInit",
    "GroupTeacherSelector",
    "cache_teacher_outputs",
    "teacher_eligible_groups",
    "group_balanced_sampler",
    "TEACHER_CRITERIA",
    "TEACHER_KEY",
]

logger = logging.getLogger(__name__)
TEACHER_KEY = "teacher_logits"
#: teacher selection criteria per task
TEACHER_CRITERIA = {"classification": ("balanced_accuracy", "auc"), "segmentation": ("dice",)}
_TASKS = ("classification", "segmentation")


def _load_state(path: str, what: str, stage_file: str) -> dict:
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


class TeacherOutputWriter:
    """Put the own-group teacher logits of the batch in ``engine.state.output[teacher_key]``.

    Cached outputs (``batch[teacher_key]``, see :class:`GroupTeachersLoader`) are used when present; otherwise the
    ``teachers`` run online, in eval mode and without gradient, on the batch's (possibly augmented) images.
    """

    def __init__(self, teachers: GroupTeachers | None, teacher_key: str = TEACHER_KEY, group_key: str = "group"):
        self.teachers = teachers
        self.teacher_key = teacher_key
        self.group_key = group_key

    def __call__(self, engine: Any) -> None:
        batch, out = engine.state.batch, engine.state.output
        if self.teacher_key in batch:
            # a plain tensor: a MetaTensor's per-op metadata handling would run through the whole distillation loss
            t = convert_to_tensor(batch[self.teacher_key], track_meta=False)
            out[self.teacher_key] = t.to(engine.state.device, non_blocking=True)
            return
        if self.teachers is None:
            raise KeyError(
                f"batch has no cached '{self.teacher_key}' and no online teachers were given; attach a "
                "monai_fair.methods.fairdi.GroupTeachersLoader(cache=True) or pass `teachers`."
            )
        group = get_batch_group(batch, self.group_key, engine.state.device)
        self.teachers.eval()
        with torch.no_grad():
            out[self.teacher_key] = self.teachers(out[Keys.IMAGE], group)


class FairDiStudentTrainer(GroupSupervisedTrainer):
    """MONAI trainer for the FairDi student: ``loss_function(pred, label, group, teacher_logits)``.

    Args:
        loss_function: e.g. :class:`monai_fair.methods.fairdi.FairDistillationLoss`.
        teachers: :class:`monai_fair.methods.fairdi.GroupTeachers` for the online mode (batches without cached
            outputs); ``None`` requires cached ``teacher_key`` entries in every batch.
        teacher_key: key of the cached own-group teacher logits in the batch.
        group_key: key of the group id (training only; the student network never receives it).
        args, kwargs: the other arguments of :class:`monai.engines.SupervisedTrainer`.
    """

    def __init__(
        self,
        *args: Any,
        loss_function: Callable,
        teachers: GroupTeachers | None = None,
        teacher_key: str = TEACHER_KEY,
        group_key: str = "group",
        **kwargs: Any,
    ) -> None:
        adapter = GroupAwareLoss(loss_function, keys=(group_key, teacher_key))
        super().__init__(*args, loss_function=adapter, group_key=group_key, loss_takes_group=False, **kwargs)
        self.teachers = teachers
        self.teacher_key = teacher_key
        # registered after GroupOutputWriter, so the group is in the output first; then both are bound to the loss
        self.add_event_handler(IterationEvents.FORWARD_COMPLETED, TeacherOutputWriter(teachers, teacher_key, group_key))
        self.add_event_handler(IterationEvents.FORWARD_COMPLETED, LossInputBinder(adapter))


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
        self.teachers.load_state_dict(_load_state(self.load_path, "teachers", "teachers (train_teachers.json)"))
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
            self.teachers.load_baseline(_load_state(self.load_path, "stage-0", "baseline (train_baseline.json)"))


def _group_counts(data: Sequence[Mapping], num_groups: int, group_key: str) -> np.ndarray:
    g = check_group_ids([d[group_key] for d in data], num_groups, name=f"datalist '{group_key}'")
    return np.bincount(g.numpy(), minlength=num_groups)


def teacher_eligible_groups(
    data: Sequence[Mapping],
    num_groups: int,
    min_group_size: int = 20,
    task: str = "classification",
    group_key: str = "group",
    label_key: str = "label",
) -> list[bool]:
    """Which groups get a teacher of their own: at least ``min_group_size`` training items and, for
    classification, both classes. The others keep the stage-0 model as their teacher (with a warning that gives no
    count, so no small group's size is logged)."""
    task = look_up_option(task, _TASKS)
    counts = _group_counts(data, num_groups, group_key)
    ok = counts >= max(int(min_group_size), 1)
    if task == "classification":
        g = np.array([int(d[group_key]) for d in data], dtype=int)
        y = np.array([int(np.asarray(d[label_key]).reshape(-1)[0]) for d in data], dtype=int)
        classes = np.zeros((num_groups, max(int(y.max(initial=0)) + 1, 2)), dtype=bool)
        classes[g, y] = True
        ok &= classes.sum(1) >= 2
    for k in np.flatnonzero(~ok).tolist():
        warnings.warn(
            f"FairDi: group {k} has too few training samples (teacher_min_group_size={min_group_size}) or a single "
            "class for a teacher of its own; its teacher is the stage-0 model.",
            stacklevel=2,
        )
    return ok.tolist()


def group_balanced_sampler(
    data: Sequence[Mapping],
    eligible: Sequence[bool],
    num_samples: int | None = None,
    group_key: str = "group",
    seed: int | None = None,
) -> torch.utils.data.WeightedRandomSampler:
    """Sampler drawing every eligible group equally often (with replacement) and never an ineligible group.

    Sample ``i`` of group ``g`` has weight ``1 / n_g`` if ``eligible[g]`` else 0, so each of the ``K'`` eligible
    groups makes ``1/K'`` of every batch in expectation. Teacher training is therefore sized in samples
    (``num_samples`` per epoch, default one pass's worth of the whole training set), not in epochs of a group:
    each teacher sees about ``num_samples / K'`` samples of its group per epoch, however small the group.
    """
    num_groups = len(eligible)
    counts = _group_counts(data, num_groups, group_key)
    ok = torch.as_tensor(list(eligible), dtype=torch.bool) & (torch.as_tensor(counts) > 0)
    if not bool(ok.any()):
        raise ValueError(
            "no group has enough training samples (and both classes) for a teacher of its own; lower "
            "teacher_min_group_size or run the baseline stage alone."
        )
    per_group = torch.where(ok, 1.0 / torch.as_tensor(counts, dtype=torch.float64).clamp_min(1), 0.0)
    g = torch.as_tensor([int(d[group_key]) for d in data])
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    n = int(num_samples) if num_samples is not None else len(data)
    return torch.utils.data.WeightedRandomSampler(per_group[g], num_samples=n, replacement=True, generator=gen)


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
    ) -> None:
        self.task = look_up_option(task, _TASKS)
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
        self._metric: Any = None
        self._trainer: Any = None

    # --- state for the resume file ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "best_value": self.best_value.clone(),
            "best_epoch": self.best_epoch.clone(),
            "best_rate": self.best_rate.clone(),
            "val_size": self.val_size.clone(),
            "best_state": dict(self.best_state or {}),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best_value = state["best_value"].clone().to(torch.float64)
        self.best_epoch = state["best_epoch"].clone().long()
        self.best_rate = state["best_rate"].clone().to(torch.float64)
        self.val_size = state["val_size"].clone().long()
        self.best_state = dict(state["best_state"]) or None

    # --- events -------------------------------------------------------------------------------------------------
    def attach(self, engine: Any) -> None:
        self._trainer = engine
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.COMPLETED, self._completed)
        self.evaluator.add_event_handler(Events.EPOCH_STARTED, self._reset)
        self.evaluator.add_event_handler(Events.ITERATION_COMPLETED, self._update)
        self.evaluator.add_event_handler(Events.EPOCH_COMPLETED, self._select)

    def _started(self, _: Any) -> None:
        if self.best_state is None:  # starting point: the stage-0 initialisation (a resumed run restores its own)
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.teachers.state_dict().items()}

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
        never = [k for k in range(self.teachers.num_groups) if int(self.best_epoch[k]) == 0]
        if never:
            warnings.warn(
                f"FairDi: the teachers of groups {never} were never selected (criterion '{self.criterion}'"
                + (", selection rate in (0, 1)" if self.require_usable_threshold else "")
                + "); they stay the stage-0 model.",
                stacklevel=2,
            )

    def _write(self) -> None:
        _atomic_save(self.best_state, self.save_path)
        groups: dict[str, dict[str, Any]] = {}
        for k in range(self.teachers.num_groups):
            groups[str(k)] = {"selected_epoch": int(self.best_epoch[k]) or None}
            if int(self.val_size[k]) >= self.min_group_size:
                groups[str(k)][self.criterion] = _finite_or_none(self.best_value[k])
                if self.task == "classification":
                    groups[str(k)]["selection_rate"] = _finite_or_none(self.best_rate[k])
            else:  # privacy: no figure of a group below min_group_size
                groups[str(k)]["suppressed"] = f"fewer than min_group_size={self.min_group_size} validation samples"
        record = {
            "criterion": self.criterion,
            "require_usable_threshold": self.require_usable_threshold,
            "groups": groups,
        }
        if self.task == "classification":
            record["threshold"] = self.threshold
            record["threshold_origin"] = "fixed default (argmax of the softmax = 0.5 for two classes), not fitted"
        _atomic_save(record, os.path.splitext(self.save_path)[0] + ".json")
        logger.info("FairDi teachers: %s", record["groups"])


def _finite_or_none(x: torch.Tensor) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None
