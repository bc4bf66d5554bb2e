# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Small functions the ``apple_segmentation`` bundle calls from its configs, so that no ``$`` expression holds logic:
the choice of stages, the perturbers of the latent sites and the model-id check. Data preparation and the check that
a run wrote its model are the shared :func:`monai_fair.data.prepare_datalist` and
:func:`monai_fair.data.require_model`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.utils import look_up_option

from monai_fair.methods.apple.perturber import LatentPerturber

__all__ = ["base_stage_needed", "require_deployed_segmentor", "make_perturbers", "check_variant"]


def base_stage_needed(ckpt_dir: str | os.PathLike, resume: bool = True) -> bool:
    """Whether the base (deployed segmentor) stage must train: there is no ``base_model.pt`` yet, or a killed base
    stage left ``resume_base.pt`` (then ``base_model.pt`` is only its best epoch so far and the stage resumes).

    A ``base_model.pt`` put there by the user (and no resume file) is the deployed segmentor: it is only loaded.
    """
    ckpt = Path(ckpt_dir)
    return not (ckpt / "base_model.pt").is_file() or (bool(resume) and (ckpt / "resume_base.pt").is_file())


def require_deployed_segmentor(ckpt_dir: str | os.PathLike, resume: bool = True) -> str:
    """Path of the finished deployed segmentor ``ckpt_dir/base_model.pt`` for the APPLE stage alone.

    Raises:
        RuntimeError: when the base stage has not finished (no ``base_model.pt``, or a killed base stage's
            ``resume_base.pt``): run ``configs/train_base.json`` (or ``configs/train.json``) first, or put the
            deployed segmentor's state dict there.
    """
    if base_stage_needed(ckpt_dir, resume):
        raise RuntimeError(
            f"APPLE stage: no finished deployed segmentor in {ckpt_dir} (base_model.pt missing or its stage was "
            "interrupted): run configs/train_base.json or configs/train.json first, or put your segmentor's "
            "state dict at base_model.pt."
        )
    return str(Path(ckpt_dir) / "base_model.pt")


def make_perturbers(
    channels: Sequence[int], spatial_dims: int = 2, latent_type: str = "spatial", **kwargs: Any
) -> list[LatentPerturber]:
    """One :class:`~monai_fair.methods.apple.LatentPerturber` per latent site (``kwargs``: its other arguments,
    e.g. ``hidden_channels``, ``num_blocks``)."""
    return [LatentPerturber(int(c), latent_type=latent_type, spatial_dims=spatial_dims, **kwargs) for c in channels]


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
