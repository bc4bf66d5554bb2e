# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""APPLE training engine: alternating discriminator / perturber updates around a frozen deployed segmentor.

Xu et al., APPLE (arXiv 2403.05114). Per iteration (FAAP-style schedule, Wang et al., CVPR 2022):

1. forward ``x`` through :class:`monai_fair.methods.apple.PerturbedSegmentor` (frozen ``phi``, trainable ``G_p``),
   keeping ``f_o`` and ``f_p``;
2. ``n_discriminator_steps`` updates of ``D_p`` on ``CE(D_p(f_p.detach()), a)`` with its own optimiser;
3. one update of ``G_p`` on ``L_G`` (:class:`monai_fair.methods.apple.AdversarialPrivacyLoss`) with ``D_p`` frozen.

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
from monai.utils.enums import CommonKeys as Keys
from torch import nn

from monai_fair.engines.group_trainer import GroupSupervisedTrainer
from monai_fair.engines.utils import get_batch_group
from monai_fair.methods.apple.losses import AdversarialPrivacyLoss, check_groups
from monai_fair.methods.apple.segmentor import PerturbedSegmentor
from monai_fair.utils.distributed import all_reduce_gradients, broadcast_module_states, get_world_size

if TYPE_CHECKING:
    from torch.optim import Optimizer

__all__ = ["AppleTrainer"]


class AppleTrainer(GroupSupervisedTrainer):
    """Ignite trainer for APPLE; a drop-in for ``SupervisedTrainer`` in bundle configs.

    ``engine.state.output`` carries ``image``, ``label``, ``pred`` (perturbed prediction), ``loss`` (``L_G``),
    the group ids under ``group_key`` and the scalars ``d_loss``, ``d_acc`` (discriminator accuracy on the
    batch before its update), ``seg``, ``adv_ce``, ``confusion``, ``penalty``.

    Args:
        network: a :class:`PerturbedSegmentor` (frozen deployed model + perturbers).
        optimizer: optimiser of the perturbers' parameters only (checked: it must not hold frozen weights).
        loss_function: an :class:`AdversarialPrivacyLoss`.
        discriminator: the attribute discriminator ``D_p`` (``monai_fair.methods.apple.AttributeDiscriminator``).
        discriminator_optimizer: its optimiser.
        n_discriminator_steps: ``D_p`` updates per batch (0 trains the perturber against a fixed ``D_p``).
        one_group_batch: ``"warn"``, ``"skip"`` or ``"error"`` (see :func:`monai_fair.methods.apple.check_groups`).
        nan_policy: ``"raise"`` (default: ``FloatingPointError`` naming the non-finite term) or ``"skip"`` (warn
            and skip the update of this batch).
        distributed: data-parallel training over the default ``torch.distributed`` process group (initialised
            by the caller, e.g. under ``torchrun``; each rank reads its own shard through a ``DistributedSampler``):
            gradients of the perturbers and of the discriminator are averaged over the ranks before each step
            (:func:`all_reduce_gradients`), the trainable modules are broadcast from rank 0 at ``STARTED``, and
            with ``one_group_batch="skip"`` the adversarial terms are dropped on every rank when one rank's shard
            has a single group. Requires ``nan_policy="raise"`` (a rank skipping an update alone would leave the
            others waiting in the all-reduce). Pass the *unwrapped* network and discriminator (no DDP).
        args, kwargs: the other arguments of :class:`GroupSupervisedTrainer` (``device``, ``max_epochs``,
            ``train_data_loader``, ``inferer``, ``amp``, ``train_handlers``, ``group_key``, ...).
    """

    def __init__(
        self,
        *args: Any,
        network: PerturbedSegmentor,
        optimizer: Optimizer,
        loss_function: AdversarialPrivacyLoss,
        discriminator: nn.Module,
        discriminator_optimizer: Optimizer,
        n_discriminator_steps: int = 1,
        one_group_batch: str = "warn",
        nan_policy: str = "raise",
        distributed: bool = False,
        **kwargs: Any,
    ) -> None:
        if not isinstance(network, PerturbedSegmentor):
            raise TypeError(
                f"network must be a monai_fair.methods.apple.PerturbedSegmentor, got {type(network).__name__}."
            )
        if not isinstance(loss_function, AdversarialPrivacyLoss):
            raise TypeError("loss_function must be a monai_fair.methods.apple.AdversarialPrivacyLoss.")
        frozen = {id(p) for p in network.network.parameters()}
        if any(id(p) in frozen for g in optimizer.param_groups for p in g["params"]):
            raise ValueError(
                "the perturber optimizer holds parameters of the frozen deployed network; "
                "build it from network.perturbers.parameters()."
            )
        if int(n_discriminator_steps) < 0:
            raise ValueError(f"n_discriminator_steps must be >= 0, got {n_discriminator_steps}.")
        if nan_policy not in ("raise", "skip"):
            raise ValueError(f"nan_policy must be 'raise' or 'skip', got {nan_policy!r}.")
        if distributed and nan_policy != "raise":
            raise ValueError(
                "distributed=True needs nan_policy='raise': a rank skipping an update alone would "
                "leave the other ranks waiting in the gradient all-reduce."
            )
        if distributed and isinstance(discriminator, nn.parallel.DistributedDataParallel):
            raise TypeError(
                "with distributed=True pass the unwrapped discriminator; the trainer averages its gradients itself."
            )
        check_groups(torch.tensor([0, 1]), loss_function.num_groups, one_group_batch)  # validates the option
        kwargs.pop("loss_takes_group", None)
        super().__init__(*args, network=network, optimizer=optimizer, loss_function=loss_function, **kwargs)
        self.discriminator = discriminator
        self.discriminator_optimizer = discriminator_optimizer
        self.n_discriminator_steps = int(n_discriminator_steps)
        self.one_group_batch = one_group_batch
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

    def _iteration(self, engine: AppleTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        inputs, targets = batch[0], batch[1]
        args, kwargs = (batch[2], batch[3]) if len(batch) == 4 else ((), {})
        loss_fn: AdversarialPrivacyLoss = engine.loss_function
        group = get_batch_group(batchdata, engine.group_key, inputs.device)
        adversarial = check_groups(group, loss_fn.num_groups, engine.one_group_batch)
        if engine.distributed and engine.one_group_batch == "skip" and get_world_size() > 1:
            flag = torch.tensor([float(adversarial)], device=inputs.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)  # every rank runs the same number of D/G steps
            adversarial = bool(flag.item())
        device = inputs.device
        net, disc = engine.network, engine.discriminator
        net.train()
        disc.train()
        engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: targets}

        with engine._autocast(device):
            pred = engine.inferer(inputs, net, *args, **kwargs)
        engine.state.output[Keys.PRED] = pred
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        f_p = list(net.latents_out)
        f_o = list(net.latents_in)
        if not all(torch.isfinite(f).all() for f in f_o):
            bad = "input image" if not torch.isfinite(inputs).all() else "deployed model's latent f_o"
            if engine._non_finite(bad, engine):
                return engine._skip_output(engine)

        # 1) discriminator updates on detached perturbed latents
        d_loss = torch.zeros((), device=device)
        d_acc = torch.full((), float("nan"), device=device)
        if adversarial and engine.n_discriminator_steps > 0:
            disc.requires_grad_(True)
            detached = [f.detach() for f in f_p]
            for step in range(engine.n_discriminator_steps):
                engine.discriminator_optimizer.zero_grad(set_to_none=True)
                with engine._autocast(device):
                    logits = disc(detached)
                d_loss = loss_fn.discriminator_loss(logits, group)
                if step == 0:
                    d_acc = (logits.detach().argmax(1) == group).float().mean()
                if not torch.isfinite(d_loss):
                    if engine._non_finite("discriminator loss", engine):
                        return engine._skip_output(engine)
                engine._step(d_loss, engine.discriminator_optimizer, engine.d_scaler)

        # 2) perturber update with the discriminator fixed
        disc.requires_grad_(False)
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        with engine._autocast(device):
            logits = disc(f_p) if adversarial else None
        # losses in float32 (AMP may give half / bfloat16 predictions and latents)
        terms = loss_fn(pred.float(), targets, logits, group, [d.float() for d in net.perturbations()], f_o)
        loss = terms.pop("loss")
        engine.state.output[Keys.LOSS] = loss
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        if not torch.isfinite(loss):
            parts = ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
            if engine._non_finite(f"perturber loss ({parts})", engine):
                disc.requires_grad_(True)
                return engine._skip_output(engine)
        engine._step(loss, engine.optimizer, engine.scaler)
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        disc.requires_grad_(True)
        engine.state.output.update({"d_loss": d_loss.detach(), "d_acc": d_acc, **terms})
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output

    @staticmethod
    def _skip_output(engine: AppleTrainer) -> dict:
        engine.optimizer.zero_grad(set_to_none=True)
        engine.discriminator_optimizer.zero_grad(set_to_none=True)
        out = engine.state.output
        out.setdefault(Keys.PRED, torch.zeros_like(out[Keys.LABEL], dtype=torch.float))
        out[Keys.LOSS] = torch.full((), float("nan"))
        return out
