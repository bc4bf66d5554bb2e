# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi's group-specific ("biased") teachers and the routing of each sample to its own group's teacher.

FairDi (Masroor, Hassan et al., arXiv 2411.11939) trains one teacher per demographic group on that group's data
only; the student is then taught, sample by sample, by the teacher of the sample's group:
``z_T(x_i) = f_{a_i}(x_i)``. Two forms are supported:

* **separate networks** (``mode="network"``): K copies of the network, e.g. each initialised from the stage-0
  model and fine-tuned on its group;
* **heads on a shared frozen backbone** (``mode="heads"``): ``f_k(x) = W_k h(x) + b_k`` with one frozen feature
  extractor ``h`` (the network with its linear head replaced by ``nn.Identity``) and K linear heads, evaluated for a
  whole batch in one pass (``z_i = W_{a_i} h(x_i) + b_{a_i}``, a batched gather, no loop over samples).

Because every sample reaches only its own group's teacher, training :class:`GroupTeachers` as one network on all
groups' data (``forward(x, group)``, e.g. through MONAI's ``PrepareBatchExtraInput("group")``) trains each teacher
on its own group's samples only: the gradient of teacher ``k`` comes from group ``k`` alone.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from monai.utils import look_up_option
from torch import nn

from monai_fair.utils.hooks import get_named_module
from monai_fair.utils.validation import check_group_ids

__all__ = ["GroupTeachers", "build_group_teachers", "TEACHER_MODES"]

#: options of the teacher form
TEACHER_MODES = ("network", "heads")


def _replace_module(network: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = get_named_module(network, parent_name) if parent_name else network
    setattr(parent, leaf, new)


class GroupTeachers(nn.Module):
    """K group teachers with own-group routing; ``forward(x, group) -> (B, C, ...)``.

    Args:
        teachers: one network per group (index = group id). Mutually exclusive with ``backbone``/``heads``.
        backbone: shared feature extractor ``(B, ...) -> (B, F)`` (frozen, always in eval mode), used with ``heads``.
        heads: one ``nn.Linear(F, C)`` per group.
        head_name: name of the head in the original network (``heads`` form), used by :meth:`load_baseline`.
    """

    def __init__(
        self,
        teachers: Sequence[nn.Module] | None = None,
        backbone: nn.Module | None = None,
        heads: Sequence[nn.Linear] | None = None,
        head_name: str | None = None,
    ) -> None:
        super().__init__()
        if (teachers is None) == (heads is None):
            raise ValueError("GroupTeachers needs either `teachers` (one network per group) or `backbone` + `heads`.")
        self.teachers = nn.ModuleList(teachers) if teachers is not None else None
        self.backbone = backbone
        self.heads = nn.ModuleList(heads) if heads is not None else None
        self.head_name = head_name
        if self.heads is not None:
            if backbone is None:
                raise ValueError("GroupTeachers with `heads` needs the shared `backbone`.")
            for p in backbone.parameters():
                p.requires_grad_(False)
            backbone.eval()
        if len(self.members) == 0:
            raise ValueError("GroupTeachers needs at least one teacher.")

    @property
    def members(self) -> nn.ModuleList:
        """The K trainable members (networks or heads), index = group id."""
        return self.teachers if self.teachers is not None else self.heads  # type: ignore[return-value]

    @property
    def num_groups(self) -> int:
        return len(self.members)

    @classmethod
    def with_shared_backbone(cls, network: nn.Module, num_groups: int, head_name: str = "fc") -> GroupTeachers:
        """Split ``network`` into a frozen backbone and ``num_groups`` copies of its linear head ``head_name``.

        ``head_name`` is a name of ``network.named_modules()`` (nested heads such as ``"classifier.fc"`` work).
        The network is deep-copied; its head is replaced by ``nn.Identity`` to form the backbone, and each group
        starts from a copy of the head.
        """
        net = copy.deepcopy(network)
        head = get_named_module(net, head_name, nn.Linear)
        _replace_module(net, head_name, nn.Identity())
        return cls(backbone=net, heads=[copy.deepcopy(head) for _ in range(num_groups)], head_name=head_name)

    def train(self, mode: bool = True) -> GroupTeachers:
        """Set the members' training mode; a shared frozen backbone stays in eval mode (its BatchNorm statistics
        are those of the network it came from)."""
        super().train(mode)
        if self.backbone is not None:
            self.backbone.eval()
        return self

    def load_baseline(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Initialise every teacher from the state dict of the (stage-0) network they were built from.

        ``"network"`` form: each member loads it. ``"heads"`` form: the backbone loads all entries but the head's,
        each head loads the head's (``<head_name>.weight``/``.bias``).
        """
        if self.teachers is not None:
            for t in self.teachers:
                t.load_state_dict(state_dict)
            return
        prefix = f"{self.head_name}."
        head = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not head:
            raise KeyError(f"the baseline state dict has no '{self.head_name}' head entries ({prefix}weight).")
        self.backbone.load_state_dict({k: v for k, v in state_dict.items() if not k.startswith(prefix)})
        for h in self.heads:
            h.load_state_dict(head)

    def _check(self, group: torch.Tensor, batch: int) -> torch.Tensor:
        g = check_group_ids(group, self.num_groups, name="group", device=self._device())
        if g.numel() == 1 and batch > 1:  # one id for the whole batch, e.g. the windows of one sliding-window image
            return g.expand(batch)
        return check_group_ids(g, self.num_groups, name="group", num_samples=batch)

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _stacked_heads(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        weight = torch.stack([h.weight for h in self.heads])  # (K, C, F)
        bias = torch.stack([h.bias for h in self.heads]) if self.heads[0].bias is not None else None  # (K, C)
        return weight, bias

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # frozen
            return self.backbone(x).reshape(x.shape[0], -1)

    def forward(self, x: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """Own-group teacher output of every sample (``(B, C, ...)``); ``group`` has one id per sample, or one id
        for the whole batch."""
        group = self._check(group, x.shape[0])
        if self.heads is not None:
            weight, bias = self._stacked_heads()
            out = torch.einsum("bf,bcf->bc", self._features(x), weight[group])
            return out + bias[group] if bias is not None else out
        out: torch.Tensor | None = None
        # one forward pass per teacher present in the batch (each is a different network)
        for k in torch.unique(group).tolist():
            idx = (group == k).nonzero(as_tuple=True)[0]
            y = self.teachers[k](x[idx])
            if out is None:
                out = y.new_zeros((x.shape[0],) + tuple(y.shape[1:]))
            out = out.index_copy(0, idx, y)
        return out  # type: ignore[return-value]

    def all_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs of all K teachers for every sample: ``(K, B, C, ...)``."""
        if self.heads is not None:
            weight, bias = self._stacked_heads()
            out = torch.einsum("bf,kcf->kbc", self._features(x), weight)
            return out + bias[:, None] if bias is not None else out
        return torch.stack([t(x) for t in self.teachers])


def build_group_teachers(network: nn.Module, num_groups: int, mode: str = "network", head_name: str = "fc"):
    """The K teachers of FairDi's stage 1, built from (a fresh instance of) the network every stage uses.

    In a bundle ``network`` is ``"%network_def"`` (a new instance of the same definition), so overriding
    ``network_def`` alone changes every stage consistently.

    Args:
        network: the network definition instance (not modified: it is deep-copied).
        num_groups: K.
        mode: ``"network"`` (K copies of the network) or ``"heads"`` (K linear heads ``head_name`` on the frozen
            backbone of the network; classification networks).
        head_name: the linear head's name in ``network.named_modules()`` (``"heads"`` mode).
    """
    mode = look_up_option(mode, TEACHER_MODES)
    if num_groups < 1:
        raise ValueError(f"num_groups must be >= 1, got {num_groups}.")
    if mode == "heads":
        return GroupTeachers.with_shared_backbone(network, num_groups, head_name)
    return GroupTeachers(teachers=[copy.deepcopy(network) for _ in range(num_groups)])
