# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Insert APPLE latent perturbers into a frozen, deployed network at named modules, via forward hooks.

Xu et al., APPLE (arXiv 2403.05114): the deployed segmentor ``phi = D_s o E_s`` keeps its architecture and its
weights; the perturbed prediction is ``D_s(f_o + G_p(f_o))`` with ``f_o = E_s(x)``. Here ``E_s`` ends at a *named
module* of the network (``dict(network.named_modules())[name]``): a forward hook replaces that module's output
``f_o`` by ``f_p = perturber(f_o)`` and every later layer (the "decoder") sees ``f_p``. The network's code is not
edited, so the same wrapper serves MONAI ``UNet`` / ``BasicUNet`` (bottleneck), ``UNETR`` / ``SwinUNETR``
(encoder output) and SAM-like models (image encoder), see :func:`default_latent_module`.

Skip connections: in U-Net-like networks the skips bypass the bottleneck and can carry the attribute to the
decoder. Pass several module names (e.g. the bottleneck and the encoder stages) to perturb those too
(:func:`unet_skip_modules` lists them for MONAI ``UNet``).

The hooks *replace* a module's output, which :class:`monai_fair.utils.LayerCatcher` (it only reads outputs) does
not do; module names are resolved with :func:`monai_fair.utils.get_named_module`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from monai_fair.networks.pretrained import read_state_dict
from monai_fair.utils.hooks import get_named_module

__all__ = ["PerturbedSegmentor", "default_latent_module", "latent_channels", "unet_skip_modules"]


def default_latent_module(network: nn.Module) -> str:
    """Name of the module whose output is the latent APPLE perturbs, for the supported network families.

    * MONAI ``UNet``: the innermost (bottom) block, e.g. ``"model.1.submodule.1.submodule.1.submodule"``;
    * MONAI ``BasicUNet``: ``"down_4"`` (bottleneck);
    * MONAI ``UNETR``: ``"vit"`` (transformer output, a tuple whose element 0 are the final tokens);
    * MONAI ``SwinUNETR``: ``"encoder10"`` (bottleneck on the deepest Swin stage);
    * MONAI ``SegResNet``: the deepest encoder stage ``"down_layers.<n-1>"`` (its output is the decoder's input);
    * SAM-like models (``image_encoder`` / ``prompt_encoder`` / ``mask_decoder``, including
      ``monai_fair.methods.apple.SamLikeSegmentor``): ``"image_encoder"`` (the image embedding fed to the decoder).

    Raises:
        ValueError: for other networks (pass ``latent_module`` explicitly).
    """
    kind = type(network).__name__
    names = dict(network.named_modules())
    if kind == "UNet" and "model" in names:
        name = "model"
        while f"{name}.1.submodule" in names:
            name = f"{name}.1.submodule"
        if name == "model":
            raise ValueError("this UNet has no down-sampling level; pass latent_module explicitly.")
        return name
    if kind == "BasicUNet" and "down_4" in names:
        return "down_4"
    if kind == "UNETR" and "vit" in names:
        return "vit"
    if kind == "SwinUNETR" and "encoder10" in names:
        return "encoder10"
    if kind == "SegResNet" and "down_layers" in names:
        return f"down_layers.{len(network.down_layers) - 1}"
    if all(k in names for k in ("image_encoder", "prompt_encoder", "mask_decoder")):
        return "image_encoder"
    raise ValueError(
        f"no default latent module for {kind}; pass latent_module (one of its named modules, e.g. "
        f"{[n for n in names if n][:8]} ...)."
    )


def latent_channels(
    network: nn.Module,
    latent_module: str | Sequence[str],
    example: torch.Tensor,
    output_index: int | Sequence[int | None] | None = None,
) -> list[int]:
    """Channels of each named module's output, read from one forward pass of ``example`` (the rule the bundle uses
    to size the perturbers of a deployed network it did not build).

    A spatial output ``(B, C, *spatial)`` gives ``C``; a token output ``(B, N, C)`` (UNETR's ``vit``) gives ``C``; a
    tuple/list output is read at ``output_index`` (default 0). The forward pass runs in eval mode without
    gradients, and the network's mode is restored.

    Raises:
        ValueError: a module name is unknown or its output is not a tensor.
    """
    names = [latent_module] if isinstance(latent_module, str) else list(latent_module)
    idx = list(output_index) if isinstance(output_index, Sequence) else [output_index] * len(names)
    seen: dict[str, torch.Tensor] = {}

    def grab(name: str, i: int | None):
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            seen[name] = out[i or 0] if isinstance(out, (tuple, list)) else out

        return hook

    handles = [get_named_module(network, n).register_forward_hook(grab(n, i)) for n, i in zip(names, idx)]
    was_training = network.training
    try:
        network.eval()
        with torch.no_grad():
            network(example)
    finally:
        for h in handles:
            h.remove()
        network.train(was_training)
    out = []
    for n in names:
        f = seen.get(n)
        if not isinstance(f, torch.Tensor):
            raise ValueError(f"latent module '{n}' was not called or did not return a tensor for the example input.")
        out.append(int(f.shape[-1] if f.ndim == 3 and example.ndim != 3 else f.shape[1]))
    return out


def unet_skip_modules(network: nn.Module) -> list[str]:
    """Names of the encoder stages of a MONAI ``UNet`` whose outputs feed the skip connections, outermost first.

    MONAI's ``UNet`` nests ``SkipConnection(Sequential(down, SkipConnection(...), up))``: the output of each
    ``down`` block (``model.0``, ``model.1.submodule.0``, ...) goes both to the deeper levels and, unchanged, to
    the decoder through the skip. Perturbing these (with the bottleneck) leaves the decoder no unperturbed path.

    Raises:
        ValueError: when ``network`` is not a MONAI ``UNet`` with at least one down-sampling level.
    """
    names = dict(network.named_modules())
    if type(network).__name__ != "UNet" or "model.1.submodule" not in names:
        kind = type(network).__name__
        raise ValueError(f"unet_skip_modules needs a MONAI UNet with a down-sampling level, got {kind}.")
    out, prefix = [], "model"
    while f"{prefix}.1.submodule" in names:
        out.append(f"{prefix}.0")
        prefix = f"{prefix}.1.submodule"
    return out


class PerturbedSegmentor(nn.Module):
    """A frozen network whose named module(s) output(s) are perturbed by trainable :class:`LatentPerturber`s.

    The wrapped ``network`` is frozen (``requires_grad_(False)``) and kept in eval mode whatever the wrapper's
    mode (``train()`` only reaches the perturbers), so batch-norm statistics and dropout of the deployed model
    never change; gradients still flow *through* it to the perturbers (never use ``torch.no_grad`` for this).

    After each forward pass ``self.latents_in`` / ``self.latents_out`` hold ``f_o`` / ``f_p`` of every perturbed
    site (in ``latent_module`` order), which the APPLE trainer gives to the discriminator. With
    ``enabled=False`` (or :meth:`disabled`) the hooks pass ``f_o`` through unchanged: the deployed model alone.

    Args:
        network: the deployed segmentor.
        perturber: one perturber, or one per module name.
        latent_module: name (``network.named_modules()``) of the module whose output is perturbed, or several
            names; ``None`` picks :func:`default_latent_module`.
        output_index: when the module returns a tuple/list (e.g. UNETR's ``vit`` returns ``(tokens, hidden)``),
            the index of the element to perturb; one value for all modules or one per module.
        base_weights: optional checkpoint of the deployed network loaded into ``network`` (a state dict, or a dict
            holding one under ``"model"``/``"state_dict"``), loaded with ``weights_only=True``.
        perturber_weights: optional checkpoint of the perturbers (``self.perturbers.state_dict()``).
        freeze: freeze ``network`` (True for APPLE; False only to reuse the hook machinery elsewhere).

    Example::

        net = monai.networks.nets.BasicUNet(spatial_dims=2, in_channels=1, out_channels=2)
        wrapped = PerturbedSegmentor(net, LatentPerturber(256), latent_module="down_4")
        logits = wrapped(x)                     # D_s(f_o + G_p(f_o))
        f_p = wrapped.latents_out[0]
    """

    def __init__(
        self,
        network: nn.Module,
        perturber: nn.Module | Sequence[nn.Module],
        latent_module: str | Sequence[str] | None = None,
        output_index: int | Sequence[int | None] | None = None,
        base_weights: str | os.PathLike | None = None,
        perturber_weights: str | os.PathLike | None = None,
        freeze: bool = True,
    ) -> None:
        super().__init__()
        self.network = network
        if latent_module is None:
            latent_module = default_latent_module(network)
        names = [latent_module] if isinstance(latent_module, str) else list(latent_module)
        perturbers = [perturber] if isinstance(perturber, nn.Module) else list(perturber)
        if len(perturbers) != len(names):
            raise ValueError(f"{len(perturbers)} perturber(s) for {len(names)} latent module(s) {names}.")
        idx = list(output_index) if isinstance(output_index, Sequence) else [output_index] * len(names)
        if len(idx) != len(names):
            raise ValueError(f"output_index has {len(idx)} entries for {len(names)} latent modules.")
        modules = {n: get_named_module(network, n) for n in names}  # one clear error for an unknown name
        self.latent_modules = names
        self.output_index = idx
        self.perturbers = nn.ModuleList(perturbers)
        self.enabled = True
        self.latents_in: list[torch.Tensor | None] = [None] * len(names)
        self.latents_out: list[torch.Tensor | None] = [None] * len(names)
        self._hooks = [modules[n].register_forward_hook(self._make_hook(i)) for i, n in enumerate(names)]
        if base_weights is not None:
            _load_into(self.network, base_weights, "deployed network")
        if perturber_weights is not None:
            _load_into(self.perturbers, perturber_weights, "perturbers")
        self.frozen = bool(freeze)
        if freeze:
            self.network.requires_grad_(False)
            self.network.eval()

    def _make_hook(self, i: int) -> _LatentHook:
        return _LatentHook(self, i)

    def _perturb_output(self, i: int, output: Any) -> Any:
        """Replace ``f_o`` (the output, or its ``output_index`` element) of latent site ``i`` by ``f_p``."""
        index = self.output_index[i]
        is_seq = isinstance(output, (tuple, list))
        if is_seq:
            if index is None:
                index = 0
            f_o = output[index]
        else:
            if index is not None:
                raise ValueError(
                    f"output_index={index} given for '{self.latent_modules[i]}', whose output is a tensor."
                )
            f_o = output
        if not isinstance(f_o, torch.Tensor):
            raise TypeError(f"output of '{self.latent_modules[i]}' (element {index}) is not a tensor.")
        f_p = self.perturbers[i](f_o) if self.enabled else f_o
        self.latents_in[i], self.latents_out[i] = f_o, f_p
        if not is_seq:
            return f_p
        new = list(output)
        new[index] = f_p
        return tuple(new) if isinstance(output, tuple) else new

    def train(self, mode: bool = True) -> PerturbedSegmentor:
        """Set the perturbers' mode; a frozen deployed network always stays in eval mode."""
        super().train(mode)
        if self.frozen:
            self.network.eval()
        return self

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        """Run the deployed network with the perturbed latent(s)."""
        self.latents_in = [None] * len(self.latent_modules)
        self.latents_out = [None] * len(self.latent_modules)
        out = self.network(x, *args, **kwargs)
        if any(f is None for f in self.latents_out):
            unused = [n for n, f in zip(self.latent_modules, self.latents_out) if f is None]
            raise RuntimeError(f"latent module(s) {unused} were not called during the forward pass.")
        return out

    def perturbations(self) -> list[torch.Tensor]:
        """``G_p(f_o) = f_p - f_o`` of the last forward pass, per perturbed site."""
        return [fp - fo for fo, fp in zip(self.latents_in, self.latents_out)]  # type: ignore[operator]

    def set_perturbation_enabled(self, enabled: bool) -> None:
        """Switch the perturbers on (APPLE) or off (deployed model alone)."""
        self.enabled = bool(enabled)

    def remove_hooks(self) -> None:
        """Remove the forward hooks (the network then runs unperturbed)."""
        for h in self._hooks:
            h.remove()
        self._hooks = []


class _LatentHook:
    """Forward hook of one latent site; calls :meth:`PerturbedSegmentor._perturb_output` of its owner.

    A plain object (not a closure) holding its owner as an attribute, so that ``copy.deepcopy`` of the wrapper
    re-binds the copied network's hooks to the *copied* wrapper and perturbers (the memo maps the owner to its
    copy), and the wrapper stays picklable.
    """

    def __init__(self, owner: PerturbedSegmentor, index: int) -> None:
        self.owner = owner
        self.index = index

    def __call__(self, module: nn.Module, args: Any, output: Any) -> Any:
        return self.owner._perturb_output(self.index, output)


def _load_into(module: nn.Module, path: str | os.PathLike, what: str) -> None:
    try:
        module.load_state_dict(read_state_dict(path))
    except RuntimeError as e:
        raise ValueError(
            f"checkpoint {path} does not fit the {what} ({type(module).__name__}); was it saved for another "
            f"model_id / latent_module / perturber size? {str(e).splitlines()[0]}"
        ) from e
