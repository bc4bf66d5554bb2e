# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi's group-specific ("biased") teachers and the routing of each sample to its own group's teacher.

FairDi (Masroor, Hassan et al., arXiv 2411.11939) trains one teacher per demographic group on that group's data
only; the student is then taught, sample by sample, by the teacher of the sample's group:
``z_T(x_i) = f_{a_i}(x_i)``. Two forms are supported:

* **separate networks** (``teachers=[f_0, ..., f_{K-1}]``): any network, e.g. each initialised from a baseline
  trained on all data and fine-tuned on its group;
* **heads on a shared frozen backbone** (:meth:`GroupTeachers.with_shared_backbone`): ``f_k(x) = W_k h(x) + b_k``
  with one frozen feature extractor ``h`` and K linear heads, evaluated for a whole batch in one pass
  (``z_i = W_{a_i} h(x_i) + b_{a_i}``, a batched gather, no loop over samples).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["GroupTeachers"]


class GroupTeachers(nn.Module):
    """K group teachers with own-group routing; ``forward(x, group) -> (B, C, ...)``.

    Args:
        teachers: one network per group (index = group id). Mutually exclusive with ``backbone``/``heads``.
        backbone: shared feature extractor ``(B, ...) -> (B, F)`` (frozen), used with ``heads``.
        heads: one ``nn.Linear(F, C)`` per group.
    """

    def __init__(
        self,
        teachers: Sequence[nn.Module] | None = None,
        backbone: nn.Module | None = None,
        heads: Sequence[nn.Linear] | None = None,
    ) -> None:
        super().__init__()
        if (teachers is None) == (heads is None):
            raise ValueError("GroupTeachers needs either `teachers` (one network per group) or `backbone` + `heads`.")
        self.teachers = nn.ModuleList(teachers) if teachers is not None else None
        self.backbone = backbone
        self.heads = nn.ModuleList(heads) if heads is not None else None
        if self.heads is not None:
            if backbone is None:
                raise ValueError("GroupTeachers with `heads` needs the shared `backbone`.")
            for p in backbone.parameters():
                p.requires_grad_(False)
        if len(self.members) == 0:
            raise ValueError("GroupTeachers needs at least one teacher.")

    @property
    def members(self) -> nn.ModuleList:
        return self.teachers if self.teachers is not None else self.heads  # type: ignore[return-value]

    @property
    def num_groups(self) -> int:
        return len(self.members)

    @classmethod
    def with_shared_backbone(cls, network: nn.Module, num_groups: int, head_name: str = "fc") -> GroupTeachers:
        """Split ``network`` into a frozen backbone and ``num_groups`` copies of its linear head ``head_name``.

        The network is deep-copied; its head is replaced by ``nn.Identity`` to form the backbone, and each group
        starts from a copy of the (e.g. baseline-trained) head.
        """
        net = copy.deepcopy(network)
        head = getattr(net, head_name, None)
        if not isinstance(head, nn.Linear):
            raise ValueError(f"network has no linear head named '{head_name}' (found {type(head).__name__}).")
        setattr(net, head_name, nn.Identity())
        return cls(backbone=net, heads=[copy.deepcopy(head) for _ in range(num_groups)])

    def _check(self, group: torch.Tensor, batch: int) -> torch.Tensor:
        group = torch.as_tensor(group, device=self._device()).reshape(-1).long()
        if group.numel() != batch:
            raise ValueError(f"group has {group.numel()} entries for a batch of {batch}.")
        if group.numel() and (int(group.min()) < 0 or int(group.max()) >= self.num_groups):
            raise ValueError(f"group id out of range 0..{self.num_groups - 1}: {sorted(set(group.tolist()))}.")
        return group

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _stacked_heads(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        weight = torch.stack([h.weight for h in self.heads])  # (K, C, F)
        bias = torch.stack([h.bias for h in self.heads]) if self.heads[0].bias is not None else None  # (K, C)
        return weight, bias

    def forward(self, x: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """Own-group teacher output of every sample (``(B, C, ...)``)."""
        group = self._check(group, x.shape[0])
        if self.heads is not None:
            feats = self.backbone(x).reshape(x.shape[0], -1)
            weight, bias = self._stacked_heads()
            out = torch.einsum("bf,bcf->bc", feats, weight[group])
            return out + bias[group] if bias is not None else out
        out: torch.Tensor | None = None
        # one forward pass per teacher present in the batch (each is a different network)
        for k in torch.unique(group).tolist():
            idx = (group == k).nonzero(as_tuple=True)[0]
            y = self.teachers[k](x[idx])
            if out is None:
                out = y.new_zeros((x.shape[0],) + tuple(y.shape[1:]))
            out[idx] = y
        return out  # type: ignore[return-value]

    def all_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs of all K teachers for every sample: ``(K, B, C, ...)``."""
        if self.heads is not None:
            feats = self.backbone(x).reshape(x.shape[0], -1)
            weight, bias = self._stacked_heads()
            out = torch.einsum("bf,kcf->kbc", feats, weight)
            return out + bias[:, None] if bias is not None else out
        return torch.stack([t(x) for t in self.teachers])
