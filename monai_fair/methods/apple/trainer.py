# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE training engine: alternating discriminator / perturber updates around a frozen deployed segmentor.

Xu et al., APPLE (arXiv 2403.05114). Per iteration (FAAP-style schedule, Wang et al., CVPR 2022):

1. forward ``x`` through :class:`monai_fair.methods.apple.PerturbedSegmentor` (frozen ``phi``, trainable ``G_p``),
   keeping ``f_o`` and ``f_p``;
2. ``n_discriminator_steps`` (``k``) updates of ``D_p`` on the group-balanced ``L_D``
   (:class:`monai_fair.methods.apple.DiscriminatorLoss`) of ``D_p(f_p.detach())``, with its own optimiser (and so
   its own learning rate);
3. one update of ``G_p`` on ``L_G`` (:class:`monai_fair.methods.apple.PerturberLoss`) with ``D_p`` frozen.

Output keys and events: :class:`monai_fair.methods.apple.AppleKeys` and
:class:`monai_fair.methods.apple.AppleIterationEvents`, as MONAI's ``AdversarialTrainer`` has ``AdversarialKeys``
and ``AdversarialIterationEvents``. Per epoch the trainer adds ``engine.state.metrics[AppleKeys.DISCRIMINATOR_AUC]``
and ``[AppleKeys.DISCRIMINATOR_BALANCED_ACCURACY]``: how well ``D_p`` recovered the group from ``f_p`` on each batch
before updating on it.

Gradients flow *through* the frozen network (its parameters have ``requires_grad=False``); only the perturbers'
optimiser steps, and the deployed weights stay bit-identical.

Data-parallel training (``distributed=True``, one process per device under ``torchrun``): instead of wrapping the
perturbers and the discriminator in ``DistributedDataParallel`` (which would hide ``latents_in``/``latents_out``,
add ``module.`` to the checkpoint keys, and trip over DDP's one-forward-per-backward rule because ``D_p`` runs
twice per iteration), the trainer averages the gradients of each optimiser over the ranks right before its step
(:func:`all_reduce_gradients`, the same mean DDP computes) and broadcasts the trainable modules from rank 0 when
the run starts. The frozen deployed network gets no gradients and joins no collective.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from ignite.engine import Events
from monai.engines.utils import IterationEvents
from monai.handlers import IgniteMetricHandler, from_engine
from monai.utils import ensure_tuple, look_up_option
from monai.utils.enums import CommonKeys as Keys
from torch import nn

from monai_fair.engines.group_trainer import GroupSupervisedTrainer
from monai_fair.engines.utils import get_batch_group
from monai_fair.methods.apple.keys import AppleIterationEvents, AppleKeys
from monai_fair.methods.apple.losses import DiscriminatorLoss, PerturberLoss
from monai_fair.methods.apple.metrics import AttributeRecoverabilityMetric
from monai_fair.methods.apple.networks.segmentor import PerturbedSegmentor
from monai_fair.utils.distributed import all_reduce_gradients, broadcast_module_states, get_world_size
from monai_fair.utils.validation import check_group_ids

if TYPE_CHECKING:
    from torch.optim import Optimizer

__all__ = ["AppleTrainer", "check_groups", "ONE_GROUP_BATCH_POLICIES", "SEG_TARGETS"]

#: what to do with a batch that holds a single group
ONE_GROUP_BATCH_POLICIES = ("warn", "skip", "error")

#: what the perturber's segmentation term compares the perturbed prediction with
SEG_TARGETS = ("label", "deployed")


def check_groups(group: torch.Tensor, num_groups: int, one_group_batch: str = "warn") -> bool:
    """Validate a batch's group ids; return whether the adversarial terms should be used for this batch.

    Args:
        group: ``(B,)`` integer group ids (checked with :func:`monai_fair.utils.check_group_ids`).
        num_groups: K.
        one_group_batch: what to do when the batch holds a single group (the discriminator then only learns the
            batch's prior and the adversarial gradient carries no between-group signal): ``"warn"`` (use the batch,
            warn), ``"skip"`` (warn and drop the adversarial terms for this batch), ``"error"`` (raise).

    Raises:
        ValueError: on invalid ids, an empty batch, or a one-group batch with ``one_group_batch="error"``.
    """
    one_group_batch = look_up_option(one_group_batch, ONE_GROUP_BATCH_POLICIES)
    group = check_group_ids(group, num_groups, name="batch group ids")
    if group.numel() == 0:
        raise ValueError("empty batch: no group ids.")
    lo, hi = int(group.min()), int(group.max())
    if lo == hi:
        msg = (
            f"APPLE: the batch holds only group {lo}; the discriminator cannot learn between-group differences "
            "from it (shuffle the training data or enlarge the batch)."
        )
        if one_group_batch == "error":
            raise ValueError(msg)
        warnings.warn(
            msg + (" Adversarial terms skipped for this batch." if one_group_batch == "skip" else ""), stacklevel=2
        )
        return one_group_batch == "warn"
    return True


class AppleTrainer(GroupSupervisedTrainer):
    """Ignite trainer for APPLE; a drop-in for ``SupervisedTrainer`` in bundle configs.

    ``engine.state.output`` carries ``image``, ``label``, ``pred`` (perturbed prediction), ``loss`` (``L_G``), the
    group ids under ``group_key`` and, under :class:`~monai_fair.methods.apple.AppleKeys`, the perturber loss and
    its terms, the discriminator loss and the discriminator's logits. Events: MONAI's ``IterationEvents`` and
    :class:`~monai_fair.methods.apple.AppleIterationEvents`.

    Args:
        network: a :class:`PerturbedSegmentor` (frozen deployed model + perturbers).
        optimizer: optimiser of the perturbers' parameters only (checked: it must not hold frozen weights).
        loss_function: the perturber's :class:`~monai_fair.methods.apple.PerturberLoss`.
        discriminator: the attribute discriminator ``D_p`` (``monai_fair.methods.apple.AttributeDiscriminator``).
        discriminator_optimizer: its optimiser (its learning rate is the discriminator's own).
        discriminator_loss_function: ``L_D``; default ``DiscriminatorLoss(num_groups)`` (group-balanced).
        n_discriminator_steps: ``k``, ``D_p`` updates per perturber update (0 trains the perturber against a fixed
            ``D_p``).
        seg_target: the target of the segmentation term: ``"label"`` (the ground truth, APPLE as published) or
            ``"deployed"`` (consistency: the deployed model's own prediction, ``argmax D_s(f_o)``, computed without
            gradients and without the perturbers). With ``"deployed"`` the segmentation term only asks the perturber
            to keep what the deployed model does, so any change in fairness comes from the adversary (with
            ``beta = 0`` the perturber has nothing to learn); labels are still returned under ``label`` for the
            metrics.
        one_group_batch: ``"warn"``, ``"skip"`` or ``"error"`` (see :func:`check_groups`).
        nan_policy: ``"raise"`` (default: ``FloatingPointError`` naming the non-finite term) or ``"skip"`` (warn
            and skip the update of this batch).
        discriminator_metrics: add the epoch metrics ``AppleKeys.DISCRIMINATOR_AUC`` and
            ``AppleKeys.DISCRIMINATOR_BALANCED_ACCURACY`` (``engine.state.metrics``).
        distributed: data-parallel training over the default ``torch.distributed`` process group (initialised
            by the caller, e.g. under ``torchrun``; each rank reads its own shard through a ``DistributedSampler``):
            gradients of the perturbers and of the discriminator are averaged over the ranks before each step
            (:func:`monai_fair.utils.all_reduce_gradients`), the trainable modules are broadcast from rank 0 at
            ``STARTED``, and with ``one_group_batch="skip"`` the adversarial terms are dropped on every rank when
            one rank's shard has a single group. Requires ``nan_policy="raise"`` (a rank skipping an update alone
            would leave the others waiting in the all-reduce). Pass the *unwrapped* network and discriminator.
        args, kwargs: the other arguments of :class:`GroupSupervisedTrainer` (``device``, ``max_epochs``,
            ``train_data_loader``, ``inferer``, ``amp``, ``train_handlers``, ``group_key``, ...).
    """

    def __init__(
        self,
        *args: Any,
        network: PerturbedSegmentor,
        optimizer: Optimizer,
        loss_function: PerturberLoss,
        discriminator: nn.Module,
        discriminator_optimizer: Optimizer,
        discriminator_loss_function: DiscriminatorLoss | None = None,
        n_discriminator_steps: int = 1,
        seg_target: str = "label",
        one_group_batch: str = "warn",
        nan_policy: str = "raise",
        discriminator_metrics: bool = True,
        distributed: bool = False,
        **kwargs: Any,
    ) -> None:
        if not isinstance(network, PerturbedSegmentor):
            raise TypeError(
                f"network must be a monai_fair.methods.apple.PerturbedSegmentor, got {type(network).__name__}."
            )
        if not isinstance(loss_function, PerturberLoss):
            raise TypeError("loss_function must be a monai_fair.methods.apple.PerturberLoss.")
        frozen = {id(p) for p in network.network.parameters()}
        if any(id(p) in frozen for g in optimizer.param_groups for p in g["params"]):
            raise ValueError(
                "the perturber optimizer holds parameters of the frozen deployed network; "
                "build it from network.perturbers.parameters()."
            )
        if int(n_discriminator_steps) < 0:
            raise ValueError(f"n_discriminator_steps must be >= 0, got {n_discriminator_steps}.")
        nan_policy = look_up_option(nan_policy, ("raise", "skip"))
        self.one_group_batch = look_up_option(one_group_batch, ONE_GROUP_BATCH_POLICIES)
        if distributed and nan_policy != "raise":
            raise ValueError(
                "distributed=True needs nan_policy='raise': a rank skipping an update alone would "
                "leave the other ranks waiting in the gradient all-reduce."
            )
        if distributed and isinstance(discriminator, nn.parallel.DistributedDataParallel):
            raise TypeError(
                "with distributed=True pass the unwrapped discriminator; the trainer averages its gradients itself."
            )
        num_groups = loss_function.num_groups
        kwargs.pop("loss_takes_group", None)
        handlers = kwargs.pop("train_handlers", None)
        super().__init__(*args, network=network, optimizer=optimizer, loss_function=loss_function, **kwargs)
        self.register_events(*AppleIterationEvents)
        if discriminator_metrics:  # attached directly: MONAI registers additional metrics only with a key metric
            for key, reduction in (
                (AppleKeys.DISCRIMINATOR_AUC, "auc"),
                (AppleKeys.DISCRIMINATOR_BALANCED_ACCURACY, "balanced_accuracy"),
            ):
                IgniteMetricHandler(
                    metric_fn=AttributeRecoverabilityMetric(num_groups, reduction),
                    output_transform=from_engine([AppleKeys.DISCRIMINATOR_LOGITS, self.group_key]),
                ).attach(self, str(key))
        for handler in ensure_tuple(handlers or ()):  # after the metrics, so epoch handlers (e.g. logs) see them
            handler.attach(self)
        self.discriminator = discriminator
        self.discriminator_optimizer = discriminator_optimizer
        self.discriminator_loss_function = discriminator_loss_function or DiscriminatorLoss(num_groups)
        self.n_discriminator_steps = int(n_discriminator_steps)
        self.seg_target = look_up_option(seg_target, SEG_TARGETS)
        self.nan_policy = nan_policy
        self.d_scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self.distributed = bool(distributed)
        if self.distributed:
            self.add_event_handler(
                Events.STARTED,
                lambda engine: broadcast_module_states([engine.network.perturbers, engine.discriminator]),
            )

    def _autocast(self, device: torch.device):
        if not self.amp:
            return torch.autocast(device_type=device.type, enabled=False)
        return torch.autocast(device_type=device.type, **(self.amp_kwargs or {}))

    def _non_finite(self, what: str, engine: Any) -> bool:
        msg = (
            f"APPLE: non-finite {what} at iteration {engine.state.iteration} (check the inputs for NaN/Inf, "
            "lower the learning rates or disable AMP)."
        )
        if self.nan_policy == "raise":
            raise FloatingPointError(msg)
        warnings.warn(msg + " Update skipped.", stacklevel=2)
        return True

    def _step(self, loss: torch.Tensor, optimizer: Optimizer, scaler: Any) -> None:
        if scaler is not None and loss.is_cuda:
            scaler.scale(loss).backward()
            self._sync_gradients(optimizer)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            self._sync_gradients(optimizer)
            optimizer.step()

    def _sync_gradients(self, optimizer: Optimizer) -> None:
        if self.distributed:
            all_reduce_gradients(p for g in optimizer.param_groups for p in g["params"])

    def _adversarial_batch(self, group: torch.Tensor) -> bool:
        adversarial = check_groups(group, self.loss_function.num_groups, self.one_group_batch)
        if self.distributed and self.one_group_batch == "skip" and get_world_size() > 1:
            flag = torch.tensor([float(adversarial)], device=group.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)  # every rank runs the same number of D/G steps
            adversarial = bool(flag.item())
        return adversarial

    def _discriminator_steps(self, engine: AppleTrainer, f_p: list[torch.Tensor], group: torch.Tensor) -> bool:
        """``k`` updates of ``D_p`` on the detached ``f_p``; False when a non-finite loss skipped the batch."""
        disc, device = engine.discriminator, group.device
        detached = [f.detach() for f in f_p]
        for _ in range(engine.n_discriminator_steps):
            engine.discriminator_optimizer.zero_grad(set_to_none=True)
            with engine._autocast(device):
                logits = disc(detached)
            d_loss = engine.discriminator_loss_function(logits, group)
            engine.state.output[AppleKeys.DISCRIMINATOR_LOSS] = d_loss.detach()
            engine.fire_event(AppleIterationEvents.DISCRIMINATOR_LOSS_COMPLETED)
            if not torch.isfinite(d_loss) and engine._non_finite("discriminator loss", engine):
                return False
            engine._step(d_loss, engine.discriminator_optimizer, engine.d_scaler)
            engine.fire_event(AppleIterationEvents.DISCRIMINATOR_BACKWARD_COMPLETED)
        engine.fire_event(AppleIterationEvents.DISCRIMINATOR_MODEL_COMPLETED)
        return True

    def _iteration(self, engine: AppleTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        inputs, targets = batch[0], batch[1]
        args, kwargs = (batch[2], batch[3]) if len(batch) == 4 else ((), {})
        loss_fn: PerturberLoss = engine.loss_function
        group = get_batch_group(batchdata, engine.group_key, inputs.device)
        adversarial = engine._adversarial_batch(group)
        device = inputs.device
        net, disc = engine.network, engine.discriminator
        net.train()
        disc.train()
        engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: targets}
        seg_targets = targets
        if engine.seg_target == "deployed":  # before the perturbed pass, which keeps its latents for D_p
            seg_targets = engine._deployed_prediction(inputs, *args, **kwargs)

        with engine._autocast(device):
            pred = engine.inferer(inputs, net, *args, **kwargs)
        engine.state.output[Keys.PRED] = pred
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(AppleIterationEvents.PERTURBER_FORWARD_COMPLETED)
        f_p, f_o = list(net.latents_out), list(net.latents_in)
        if not all(torch.isfinite(f).all() for f in f_o):
            bad = "input image" if not torch.isfinite(inputs).all() else "deployed model's latent f_o"
            if engine._non_finite(bad, engine):
                return engine._skip_output(engine)
        with torch.no_grad(), engine._autocast(device):  # monitoring: D_p on this batch before it trains on it
            engine.state.output[AppleKeys.DISCRIMINATOR_LOGITS] = disc([f.detach() for f in f_p]).float()

        # 1) k discriminator updates on detached perturbed latents
        disc.requires_grad_(True)
        if adversarial and engine.n_discriminator_steps > 0 and not engine._discriminator_steps(engine, f_p, group):
            return engine._skip_output(engine)

        # 2) perturber update with the discriminator fixed
        disc.requires_grad_(False)
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        with engine._autocast(device):
            logits = disc(f_p) if adversarial else None
        # losses in float32 (AMP may give half / bfloat16 predictions and latents)
        terms = loss_fn(pred.float(), seg_targets, group, logits, [d.float() for d in net.perturbations()], f_o)
        loss = terms[AppleKeys.PERTURBER_LOSS]
        engine.state.output.update(terms)
        engine.state.output[Keys.LOSS] = loss
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        engine.fire_event(AppleIterationEvents.PERTURBER_LOSS_COMPLETED)
        if not torch.isfinite(loss):
            parts = ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
            if engine._non_finite(f"perturber loss ({parts})", engine):
                disc.requires_grad_(True)
                return engine._skip_output(engine)
        engine._step(loss, engine.optimizer, engine.scaler)
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        engine.fire_event(AppleIterationEvents.PERTURBER_BACKWARD_COMPLETED)
        disc.requires_grad_(True)
        engine.state.output[AppleKeys.PERTURBER_LOSS] = loss.detach()
        engine.state.output[Keys.LOSS] = loss.detach()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        engine.fire_event(AppleIterationEvents.PERTURBER_MODEL_COMPLETED)
        return engine.state.output

    def _deployed_prediction(self, inputs: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """``argmax D_s(f_o)``, the deployed model's own label map ``(B, 1, *spatial)`` (no perturbers, no gradient)."""
        net = self.network
        enabled = net.enabled
        net.set_perturbation_enabled(False)
        try:
            with torch.no_grad(), self._autocast(inputs.device):
                out = self.inferer(inputs, net, *args, **kwargs)
        finally:
            net.set_perturbation_enabled(enabled)
        return out.argmax(1, keepdim=True)

    @staticmethod
    def _skip_output(engine: AppleTrainer) -> dict:
        engine.optimizer.zero_grad(set_to_none=True)
        engine.discriminator_optimizer.zero_grad(set_to_none=True)
        engine.discriminator.requires_grad_(True)
        out = engine.state.output
        out.setdefault(Keys.PRED, torch.zeros_like(out[Keys.LABEL], dtype=torch.float))
        n = out[Keys.LABEL].shape[0]
        out.setdefault(AppleKeys.DISCRIMINATOR_LOGITS, torch.zeros(n, engine.loss_function.num_groups))
        out[Keys.LOSS] = torch.full((), float("nan"))
        return out
