# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi engines: training the group teachers, caching their outputs, and the student trainer.

FairDi (Masroor, Hassan et al., "Fair Distillation: Teaching Fairness from Biased Teachers in Medical Imaging",
arXiv 2411.11939) has three stages:

0. a baseline trained on all data (optionally with the FIS loss), the teachers' starting point;
1. one teacher per group, trained on its own group's data only (:func:`train_group_teachers`), either as full
   networks initialised from the baseline or as linear heads on the baseline's frozen backbone;
2. a student trained on all data with :class:`monai_fair.methods.fairdi.FairDistillationLoss`
   (:class:`FairDiStudentTrainer`): each sample is taught by its own group's teacher.

Teacher outputs are computed once under deterministic transforms and stored in the datalist items
(:func:`cache_teacher_outputs`), so a student epoch costs about a plain epoch; the trainer falls back to running
the teachers online when the batch has no cached outputs (for augmented training). The student never sees the
group at inference.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader, Dataset
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys
from monai.utils import IgniteInfo, convert_to_tensor, min_version, optional_import
from torch import nn

from monai_fair.engines.group_trainer import GroupSupervisedTrainer
from monai_fair.engines.utils import GroupAwareLoss, LossInputBinder, get_batch_group
from monai_fair.methods.fairdi.teachers import GroupTeachers

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = [
    "FairDiStudentTrainer",
    "TeacherOutputWriter",
    "train_group_teachers",
    "load_group_teachers",
    "cache_teacher_outputs",
    "filter_group",
]

logger = logging.getLogger(__name__)
TEACHER_KEY = "teacher_logits"


def filter_group(items: Sequence[dict], group: int, group_key: str = "group") -> list[dict]:
    """The datalist items of one group."""
    return [d for d in items if int(d[group_key]) == group]


class TeacherOutputWriter:
    """Put the own-group teacher logits of the batch in ``engine.state.output[teacher_key]``.

    Cached outputs (``batch[teacher_key]``, see :func:`cache_teacher_outputs`) are used when present; otherwise the
    ``teachers`` run online, in eval mode and without gradient, on the batch's (possibly augmented) images.
    """

    def __init__(self, teachers: GroupTeachers | None, teacher_key: str = TEACHER_KEY, group_key: str = "group"):
        self.teachers = teachers
        self.teacher_key = teacher_key
        self.group_key = group_key

    def __call__(self, engine: Any) -> None:
        batch, out = engine.state.batch, engine.state.output
        if self.teacher_key in batch:
            # a plain tensor: after MONAI's spatial transforms the cached map is a MetaTensor, whose per-op metadata
            # handling would otherwise run through every operation of the distillation loss
            t = convert_to_tensor(batch[self.teacher_key], track_meta=False)
            out[self.teacher_key] = t.to(engine.state.device, non_blocking=True)
            return
        if self.teachers is None:
            raise KeyError(
                f"batch has no cached '{self.teacher_key}' and no online teachers were given; run "
                "monai_fair.methods.fairdi.cache_teacher_outputs on the training items or pass `teachers`."
            )
        group = get_batch_group(batch, self.group_key, engine.state.device)
        self.teachers.eval()
        with torch.no_grad():
            out[self.teacher_key] = self.teachers(out[Keys.IMAGE], group)


class FairDiStudentTrainer(GroupSupervisedTrainer):
    """MONAI trainer for the FairDi student: ``loss_function(pred, label, group, teacher_logits)``.

    Args:
        loss_function: e.g. :class:`monai_fair.methods.fairdi.FairDistillationLoss`.
        teachers: :class:`monai_fair.methods.fairdi.GroupTeachers` for the online mode (batches without cached outputs);
            ``None`` requires cached ``teacher_key`` entries in every batch.
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
    target (for spatial augmentation in segmentation apply the same spatial transform to ``teacher_key``).
    """
    items = [dict(d) for d in items]
    loader = DataLoader(Dataset(items, transform), batch_size=batch_size, shuffle=False, num_workers=num_workers)
    teachers = teachers.to(device).eval()
    outs: list[np.ndarray] = []
    with torch.no_grad():
        for batch in loader:
            group = get_batch_group(batch, group_key, device)
            outs.append(teachers(torch.as_tensor(batch[Keys.IMAGE]).to(device), group).float().cpu().numpy())
    logits = np.concatenate(outs) if outs else np.zeros((0,))
    for d, z in zip(items, logits):
        d[teacher_key] = z
    return items


def _best_state_keeper(network: nn.Module, evaluator: SupervisedEvaluator, trainer: SupervisedTrainer) -> dict:
    keep: dict[str, Any] = {"state": copy.deepcopy(network.state_dict()), "metric": None}

    def _on_val(_: Any) -> None:
        if evaluator.state.best_metric_epoch == trainer.state.epoch:
            keep["state"] = copy.deepcopy(network.state_dict())
            keep["metric"] = float(evaluator.state.best_metric)

    evaluator.add_event_handler(Events.EPOCH_COMPLETED, _on_val)
    return keep


def _fit(
    network: nn.Module,
    train_items: list[dict],
    val_items: list[dict],
    train_transform: Callable | None,
    val_transform: Callable | None,
    task: str,
    device: torch.device | str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    num_classes: int,
    num_workers: int,
) -> float | None:
    """Train ``network`` with CE (classification) or Dice+CE (segmentation); keep the best validation epoch."""
    from monai.handlers import ROCAUC, MeanDice, ValidationHandler, from_engine
    from monai.losses import DiceCELoss
    from monai.transforms import Activationsd, AsDiscreted, Compose

    train_ds = CacheDataset(train_items, train_transform, progress=False)
    train_loader = DataLoader(
        train_ds, batch_size=batch_size, shuffle=True, num_workers=num_workers, drop_last=len(train_items) > batch_size
    )
    if task == "classification":
        loss = nn.CrossEntropyLoss()
        post = Compose([Activationsd(keys="pred", softmax=True), AsDiscreted(keys="label", to_onehot=num_classes)])
        metric = ROCAUC(output_transform=from_engine(["pred", "label"]))
    else:
        loss = DiceCELoss(to_onehot_y=True, softmax=True)
        post = Compose(
            [
                AsDiscreted(keys="pred", argmax=True, to_onehot=num_classes),
                AsDiscreted(keys="label", to_onehot=num_classes),
            ]
        )
        metric = MeanDice(include_background=False, output_transform=from_engine(["pred", "label"]))
    optimizer = torch.optim.Adam([p for p in network.parameters() if p.requires_grad], lr=learning_rate)
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=epochs,
        train_data_loader=train_loader,
        network=network,
        optimizer=optimizer,
        loss_function=loss,
    )
    keep = None
    if val_items:
        val_ds = CacheDataset(val_items, val_transform, progress=False)
        val_loader = DataLoader(val_ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
        evaluator = SupervisedEvaluator(
            device=device,
            val_data_loader=val_loader,
            network=network,
            postprocessing=post,
            key_val_metric={"val_metric": metric},
        )
        keep = _best_state_keeper(network, evaluator, trainer)
        ValidationHandler(validator=evaluator, interval=1, epoch_level=True).attach(trainer)
    trainer.run()
    if keep is not None and keep["metric"] is not None and np.isfinite(keep["metric"]):
        network.load_state_dict(keep["state"])
        return keep["metric"]
    return None


def _too_small(items: list[dict], min_group_size: int, task: str) -> str | None:
    if len(items) < min_group_size:
        return f"{len(items)} training samples < min_group_size={min_group_size}"
    if task == "classification" and len({int(np.asarray(d["label"]).reshape(-1)[0]) for d in items}) < 2:
        return "a single class"
    return None


def train_group_teachers(
    network_def: Callable[[], nn.Module],
    train_items: Sequence[dict],
    val_items: Sequence[dict],
    num_groups: int,
    *,
    train_transform: Callable | None = None,
    val_transform: Callable | None = None,
    task: str = "classification",
    mode: str = "network",
    head_name: str = "fc",
    init_path: str | None = None,
    epochs: int = 5,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    num_classes: int = 2,
    min_group_size: int = 20,
    device: torch.device | str = "cpu",
    ckpt_dir: str | None = None,
    group_key: str = "group",
    num_workers: int = 0,
) -> GroupTeachers:
    """Train one teacher per group on that group's data only (FairDi stage 1).

    Args:
        network_def: a callable returning a fresh network (in a bundle: ``{"_target_": ..., "_mode_": "callable"}``).
        train_items, val_items: datalist items with ``group_key``; each teacher sees only its group's items and is
            selected on its group's validation AUC (classification) or Dice (segmentation).
        num_groups: K.
        train_transform, val_transform: MONAI transforms (the validation one must be deterministic).
        task: ``"classification"`` or ``"segmentation"``.
        mode: ``"network"`` (a full network per group, default) or ``"heads"`` (linear heads ``head_name`` on the
            frozen backbone of the ``init_path`` network; classification only).
        init_path: baseline checkpoint (state dict) to initialise the teachers from; ``None`` trains from scratch.
        min_group_size: a group with fewer training samples (or one class) gets the baseline network (or head)
            instead of its own teacher, with a warning.
        ckpt_dir: if given, the teachers are saved as ``teacher_<k>.pt`` there (plus ``teachers.json``).

    Returns:
        :class:`monai_fair.methods.fairdi.GroupTeachers` in eval mode.
    """
    if task not in ("classification", "segmentation"):
        raise ValueError(f"task must be 'classification' or 'segmentation', got '{task}'.")
    if mode not in ("network", "heads"):
        raise ValueError(f"teacher mode must be 'network' or 'heads', got '{mode}'.")
    train_items, val_items = list(train_items), list(val_items)
    baseline = network_def().to(device)
    if init_path is not None:
        baseline.load_state_dict(torch.load(init_path, map_location=device, weights_only=True))
    elif mode == "heads":
        raise ValueError("teacher mode 'heads' needs init_path (the baseline whose backbone the heads share).")

    if mode == "heads":
        if task != "classification":
            raise ValueError("teacher mode 'heads' is for classification networks with a linear head.")
        teachers = GroupTeachers.with_shared_backbone(baseline, num_groups, head_name).to(device)
        feats = _features(teachers.backbone, train_items, val_transform, device, batch_size, num_workers, group_key)
        vfeats = _features(teachers.backbone, val_items, val_transform, device, batch_size, num_workers, group_key)
        for k in range(num_groups):
            tr = [f for f in feats if int(f[group_key]) == k]
            why = _too_small(tr, min_group_size, task)
            if why:
                warnings.warn(f"FairDi: group {k} has {why}; its teacher is the baseline head.", stacklevel=2)
                continue
            va = [f for f in vfeats if int(f[group_key]) == k]
            _fit(teachers.heads[k], tr, va, None, None, task, device, epochs, batch_size, learning_rate, num_classes, 0)
    else:
        members: list[nn.Module] = []
        for k in range(num_groups):
            net = copy.deepcopy(baseline)
            tr = filter_group(train_items, k, group_key)
            why = _too_small(tr, min_group_size, task)
            if why:
                warnings.warn(f"FairDi: group {k} has {why}; its teacher is the baseline network.", stacklevel=2)
            else:
                metric = _fit(
                    net,
                    tr,
                    filter_group(val_items, k, group_key),
                    train_transform,
                    val_transform,
                    task,
                    device,
                    epochs,
                    batch_size,
                    learning_rate,
                    num_classes,
                    num_workers,
                )
                logger.info("FairDi teacher %d: %d samples, best group validation metric %s", k, len(tr), metric)
            members.append(net)
        teachers = GroupTeachers(teachers=members).to(device)
    if ckpt_dir is not None:
        os.makedirs(ckpt_dir, exist_ok=True)
        torch.save(teachers.state_dict(), os.path.join(ckpt_dir, "teachers.pt"))
    return teachers.eval()


def load_group_teachers(
    network_def: Callable[[], nn.Module],
    path: str,
    num_groups: int,
    mode: str = "network",
    head_name: str = "fc",
    device: torch.device | str = "cpu",
) -> GroupTeachers:
    """Rebuild :class:`GroupTeachers` from ``teachers.pt`` written by :func:`train_group_teachers`."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"teacher checkpoint '{path}' not found; run the 'teachers' stage first.")
    if mode == "heads":
        teachers = GroupTeachers.with_shared_backbone(network_def(), num_groups, head_name)
    else:
        teachers = GroupTeachers(teachers=[network_def() for _ in range(num_groups)])
    teachers.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    return teachers.to(device).eval()


def _features(
    backbone: nn.Module,
    items: list[dict],
    transform: Callable | None,
    device: Any,
    batch_size: int,
    num_workers: int,
    group_key: str = "group",
) -> list[dict]:
    """Frozen-backbone features of every item, as new items ``{"image": feat, "label", "group"}``."""
    loader = DataLoader(Dataset(items, transform), batch_size=batch_size, shuffle=False, num_workers=num_workers)
    backbone.eval()
    feats = []
    with torch.no_grad():
        for batch in loader:
            feats.append(backbone(torch.as_tensor(batch[Keys.IMAGE]).to(device)).reshape(len(batch[Keys.IMAGE]), -1))
    f = torch.cat(feats).cpu() if feats else torch.zeros(0)
    return [{"image": f[i], "label": torch.as_tensor(d["label"]), group_key: d[group_key]} for i, d in enumerate(items)]
