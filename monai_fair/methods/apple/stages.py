# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The ``apple_segmentation`` bundle's stage functions, called from its configs so that no ``$`` expression holds
logic: the preset, the deployed segmentor (the bundle's own or another bundle's), the latent sites, the perturbers,
the choice of stages and the model-id check. Data preparation and the check that a run wrote its model are the
shared :func:`monai_fair.data.prepare_datalist` and :func:`monai_fair.data.require_model`.

APPLE's premise (Xu et al., arXiv 2403.05114) is a segmentor that is *already deployed*: the bundle's ``deployed``
config id names another bundle (its ``network_def`` and ``models/model.pt``, e.g. ``baseline_segmentation``'s MONAI
``UNet``, or a model-zoo bundle's ``SegResNet`` / ``SwinUNETR``); the bundle then builds that network, loads its
weights, freezes it and trains only the perturbers (:func:`deployed_network`, :func:`deployed_checkpoint`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.utils import look_up_option
from torch import nn

from monai_fair.methods.apple.networks.perturber import EncoderDecoderPerturber, LatentPerturber
from monai_fair.methods.apple.networks.segmentor import default_latent_module, latent_channels, unet_skip_modules

__all__ = [
    "PERTURBER_ARCHS",
    "select_preset",
    "deployed_network",
    "deployed_checkpoint",
    "latent_sites",
    "base_stage_needed",
    "require_deployed_segmentor",
    "make_perturbers",
    "check_variant",
]

#: perturber architectures: the two-block residual conv (``compact``) and the paper's encoder-decoder
PERTURBER_ARCHS = {"compact": LatentPerturber, "encoder_decoder": EncoderDecoderPerturber}

_DEPLOYED_KEYS = ("bundle", "config_file", "net_id", "checkpoint", "overrides")


def select_preset(preset: str, presets: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The settings of the bundle's ``preset`` (one of ``presets``, the bundle's ``presets`` config id).

    Raises:
        ValueError: an unknown preset, naming the valid ones.
    """
    return dict(presets[look_up_option(preset, list(presets))])


def _deployed(deployed: Mapping[str, Any] | None) -> dict[str, Any]:
    d = dict(deployed or {})
    unknown = sorted(set(d) - set(_DEPLOYED_KEYS))
    if unknown:
        raise ValueError(f"config id 'deployed' has unknown keys {unknown}; valid: {list(_DEPLOYED_KEYS)}.")
    return d


def deployed_network(deployed: Mapping[str, Any] | None, default: nn.Module) -> nn.Module:
    """The deployed segmentor's architecture: another bundle's network, or ``default`` (the bundle's own variant).

    Args:
        deployed: the bundle's ``deployed`` config id. ``bundle`` (a bundle folder, absolute or relative to the
            working directory; ``null``: use ``default``),
            ``config_file`` (relative to it, default ``configs/inference.json``), ``net_id`` (default
            ``network_def``), ``overrides`` (config overrides for that bundle, e.g. ``{"spatial_dims": 3}``).
        default: the network to use without ``deployed#bundle``.

    Raises:
        FileNotFoundError: the bundle's config file does not exist.
        ValueError: the config has no ``net_id`` or it does not build an ``nn.Module``.
    """
    d = _deployed(deployed)
    if not d.get("bundle"):
        return default
    from monai.bundle import ConfigParser

    root = Path(d["bundle"])
    cfg = root / d.get("config_file", "configs/inference.json")
    if not cfg.is_file():
        raise FileNotFoundError(f"deployed#bundle: config file {cfg} does not exist (deployed#config_file).")
    parser = ConfigParser()
    parser.read_config(str(cfg))
    parser["bundle_root"] = str(root)
    parser.update(dict(d.get("overrides") or {}))
    net_id = d.get("net_id", "network_def")
    if net_id not in parser:
        raise ValueError(f"{cfg} has no config id '{net_id}' (deployed#net_id).")
    net = parser.get_parsed_content(net_id, instantiate=True)
    if not isinstance(net, nn.Module):
        raise ValueError(f"'{net_id}' of {cfg} builds a {type(net).__name__}, not a network (deployed#net_id).")
    return net


def deployed_checkpoint(deployed: Mapping[str, Any] | None, ckpt_dir: str | os.PathLike) -> str:
    """Path of the deployed segmentor's weights: ``deployed#bundle``/``deployed#checkpoint`` (default
    ``models/model.pt``; an absolute path is used as it is), or ``ckpt_dir/base_model.pt`` (the bundle's own)."""
    d = _deployed(deployed)
    if not d.get("bundle"):
        return str(Path(ckpt_dir) / "base_model.pt")
    return str(Path(d["bundle"]) / d.get("checkpoint", "models/model.pt"))


def latent_sites(
    network: nn.Module,
    latent_module: str | Sequence[str] | None = None,
    perturb_skips: bool = False,
    patch_size: Sequence[int] = (64, 64),
    in_channels: int = 1,
) -> tuple[list[str], list[int]]:
    """Where APPLE perturbs ``network`` and the channels there: the bundle's documented rule.

    Sites: ``latent_module`` (one name or several, from ``network.named_modules()``), or, when ``None``,
    :func:`~monai_fair.methods.apple.default_latent_module` (MONAI ``UNet``/``BasicUNet``/``SegResNet``
    bottleneck, ``UNETR``/``SwinUNETR`` encoder output, SAM-like image encoder); with ``perturb_skips`` also the
    U-Net's skip sources (:func:`~monai_fair.methods.apple.unet_skip_modules`). Channels: read from one forward pass of
    a zero patch ``(1, in_channels, *patch_size)`` (:func:`~monai_fair.methods.apple.latent_channels`).

    Returns:
        ``(module names, channels)``.
    """
    if latent_module is None:
        names = [default_latent_module(network)]
    else:
        names = [latent_module] if isinstance(latent_module, str) else list(latent_module)
    if perturb_skips:
        names += [n for n in unet_skip_modules(network) if n not in names]
    param = next(network.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    example = torch.zeros(1, int(in_channels), *[int(s) for s in patch_size], device=device)
    return names, latent_channels(network, names, example)


def base_stage_needed(
    ckpt_dir: str | os.PathLike, resume: bool = True, deployed: Mapping[str, Any] | None = None
) -> bool:
    """Whether the base (deployed segmentor) stage must train: never for another bundle's model
    (``deployed#bundle``); otherwise when there is no ``base_model.pt`` yet, or a killed base stage left
    ``resume_base.pt`` (then ``base_model.pt`` is only its best epoch so far and the stage resumes).

    A ``base_model.pt`` put there by the user (and no resume file) is the deployed segmentor: it is only loaded.
    """
    if _deployed(deployed).get("bundle"):
        return False
    ckpt = Path(ckpt_dir)
    return not (ckpt / "base_model.pt").is_file() or (bool(resume) and (ckpt / "resume_base.pt").is_file())


def require_deployed_segmentor(
    ckpt_dir: str | os.PathLike, resume: bool = True, deployed: Mapping[str, Any] | None = None
) -> str:
    """Path of the finished deployed segmentor for the APPLE stage alone (:func:`deployed_checkpoint`).

    Raises:
        RuntimeError: another bundle's checkpoint does not exist, or the bundle's own base stage has not finished
            (no ``base_model.pt``, or a killed base stage's ``resume_base.pt``): run ``configs/train_base.json``
            (or ``configs/train.json``) first, or put the deployed segmentor's state dict there.
    """
    path = deployed_checkpoint(deployed, ckpt_dir)
    if _deployed(deployed).get("bundle"):
        if not Path(path).is_file():
            raise RuntimeError(
                f"APPLE stage: the deployed segmentor's weights {path} do not exist (deployed#checkpoint)."
            )
        return path
    if base_stage_needed(ckpt_dir, resume):
        raise RuntimeError(
            f"APPLE stage: no finished deployed segmentor in {ckpt_dir} (base_model.pt missing or its stage was "
            "interrupted): run configs/train_base.json or configs/train.json first, or put your segmentor's "
            "state dict at base_model.pt, or name its bundle in deployed#bundle."
        )
    return path


def make_perturbers(
    channels: Sequence[int],
    spatial_dims: int = 2,
    latent_type: str = "spatial",
    arch: str = "compact",
    **kwargs: Any,
) -> list[nn.Module]:
    """One perturber per latent site: ``arch`` ``"compact"`` (:class:`~monai_fair.methods.apple.LatentPerturber`)
    or ``"encoder_decoder"`` (:class:`~monai_fair.methods.apple.EncoderDecoderPerturber`, the paper's shape);
    ``kwargs``: the class's other arguments (e.g. ``hidden_channels``/``num_blocks``, ``encoder_channels``)."""
    cls = PERTURBER_ARCHS[look_up_option(arch, list(PERTURBER_ARCHS))]
    return [cls(int(c), latent_type=latent_type, spatial_dims=spatial_dims, **kwargs) for c in channels]


def check_variant(model_id: str, spatial_dims: int, supported: Mapping[str, Sequence[int]]) -> str:
    """Validate the bundle's ``model_id`` and ``spatial_dims`` against ``supported`` (``{model_id: [dims]}``).

    Raises:
        ValueError: an unknown ``model_id``, or a variant that does not support ``spatial_dims`` (the SAM-like
            model is 2D only).
    """
    model_id = look_up_option(model_id, list(supported))
    look_up_option(int(spatial_dims), (2, 3))
    dims = supported[model_id]
    if int(spatial_dims) not in dims:
        raise ValueError(f"model_id={model_id!r} supports spatial_dims {list(dims)}, got {spatial_dims}.")
    return model_id
