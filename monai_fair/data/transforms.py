# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Transform chains that take real images as they come: any size, grayscale or colour, 2D files read as 3D.

Real exports differ from the 64x64 synthetic images every way that breaks a first run: 600x450 dermoscopy JPEGs
(non-square), chest X-rays of mixed sizes, grayscale DICOM read by ITK with a trailing depth of 1, RGB(A) PNGs,
3D CT/MR volumes larger than any patch. The factories here build MONAI ``Compose`` chains that normalise all of
that, so that a bundle config names one function instead of twenty transforms:

* :func:`classification_transforms` - load, keep only safe metadata, drop singleton trailing dimensions, match the
  channel count to the network's ``in_channels`` (gray <-> RGB, RGBA -> RGB), scale intensities to [0, 1], bring
  every image to ``spatial_size`` (resize, or pad/crop), and (training) flips plus 90-degree rotations, the
  rotations only when ``spatial_size`` is square (a rotated non-square image no longer stacks into a batch).
* :func:`segmentation_transforms` - the same for an image and its mask (the mask binarised ``> 0`` for two
  classes, so 0/255 PNG masks work), ``spatial_dims`` 2 or 3, patch-based training (pad to the patch, then
  ``RandCropByPosNegLabeld``), full images for evaluation (run them through ``SlidingWindowInferer`` with the patch
  as ``roi_size``; see :func:`sliding_window_inferer`).

The building blocks are dictionary transforms of their own:

* :class:`PruneImageMetad` - a DICOM read by ITK carries every header tag (``0010|0040`` PatientSex,
  ``0010|1010`` PatientAge, ...) in the image's metadata; the metadata would travel with the batch and could
  reach a log. Only geometry and the file name are kept.
* :class:`SqueezeTrailingDimsd` - drops singleton trailing dimensions down to ``spatial_dims`` and raises one
  clear error naming the file when an image has the wrong dimensionality.
* :class:`MatchChannelsd` - gray -> RGB by repetition, RGB(A) -> gray by ITU-R BT.601 luma
  ``Y = 0.299 R + 0.587 G + 0.114 B``, RGBA -> RGB by dropping alpha; other counts are an error naming the file.

Datalist items carry only ``image``, ``label``, ``group`` and ``case_id`` (see :mod:`monai_fair.data.datalist`),
so nothing else can reach a batch.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer
from monai.transforms import (
    AsDiscreted,
    Compose,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandRotate90d,
    Resized,
    ResizeWithPadOrCropd,
    ScaleIntensityd,
    SpatialPadd,
    SqueezeDim,
)
from monai.utils import look_up_option

__all__ = [
    "SAFE_META_KEYS",
    "PruneImageMetad",
    "SqueezeTrailingDimsd",
    "MatchChannelsd",
    "classification_transforms",
    "segmentation_transforms",
    "sliding_window_inferer",
    "default_patch_size",
    "load_chain",
    "VOLUME_SUFFIXES",
]

#: image metadata kept by :class:`PruneImageMetad` (geometry and file name; never header tags).
SAFE_META_KEYS: tuple[str, ...] = (
    "filename_or_obj",
    "affine",
    "original_affine",
    "spatial_shape",
    "original_channel_dim",
    "space",
)
_STAGES = ("train", "eval", "inference")
_RESIZE_MODES = ("resize", "pad")
_LUMA = (0.299, 0.587, 0.114)
#: file types whose extra channels are volumes or modalities (a 4D NIfTI's 4th dimension), never colour or alpha
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img", ".mha", ".mhd", ".nrrd", ".nhdr")


def _is_volume_file(name: str) -> bool:
    return str(name).lower().endswith(VOLUME_SUFFIXES)


def _source(img: Any, key: Hashable) -> str:
    """The file an image came from, for error messages."""
    if isinstance(img, MetaTensor):
        name = img.meta.get("filename_or_obj")
        if name:
            return str(name)
    return f"the '{key}' entry"


class PruneImageMetad(MapTransform):
    """Keep only ``keep`` keys in the metadata of MetaTensor images (drop DICOM/NIfTI header entries).

    Args:
        keys: image keys.
        keep: metadata keys to keep (default :data:`SAFE_META_KEYS`).
        allow_missing_keys: as MONAI's ``MapTransform``.
    """

    def __init__(
        self, keys: KeysCollection, keep: Sequence[str] = SAFE_META_KEYS, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.keep = tuple(keep)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            if isinstance(img, MetaTensor):
                img.meta = {k: v for k, v in img.meta.items() if k in self.keep}
        return d


class SqueezeTrailingDimsd(MapTransform):
    """Drop singleton trailing dimensions of channel-first images until they have ``spatial_dims`` spatial dims.

    A single-frame DICOM read by ITK is ``(C, W, H, 1)``; a 2D NIfTI may be stored as ``(W, H, 1)``. After the
    squeeze an image must have exactly ``spatial_dims`` spatial dimensions, otherwise a ``ValueError`` names the
    file, its shape and the expected dimensionality (e.g. a 3D volume given to a 2D bundle).

    Args:
        keys: image (and mask) keys.
        spatial_dims: 2 or 3.
        allow_missing_keys: as MONAI's ``MapTransform``.
    """

    def __init__(self, keys: KeysCollection, spatial_dims: int = 2, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        self.spatial_dims = spatial_dims
        self._squeeze = SqueezeDim(dim=-1, update_meta=True)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            while img.ndim > self.spatial_dims + 1 and img.shape[-1] == 1:
                img = self._squeeze(img)
            if img.ndim != self.spatial_dims + 1:
                raise ValueError(
                    f"{_source(d[key], key)}: image of shape {tuple(d[key].shape[1:])} (channel first, "
                    f"{d[key].ndim - 1} spatial dims) but spatial_dims={self.spatial_dims}; "
                    f"use --spatial_dims {d[key].ndim - 1} or give {self.spatial_dims}D images."
                )
            d[key] = img
        return d


class MatchChannelsd(MapTransform):
    """Convert channel-first images to ``channels`` channels.

    ``1 -> C``: repeat; ``3|4 -> 1``: BT.601 luma of the first three channels; ``4 -> 3``: drop alpha;
    ``2 -> 1`` (gray + alpha): drop alpha. Any other pair raises a ``ValueError`` naming the file.

    Volume files (NIfTI, Analyze, MetaImage, NRRD: :data:`VOLUME_SUFFIXES`) are never colour: their channels are the
    volumes of the 4th dimension (time points, modalities), so only ``1 -> C`` converts; a 2-volume NIfTI given
    to a 1-channel network is an error naming the file (it is never read as "gray + alpha", which would drop
    volume 2).

    Args:
        keys: image keys.
        channels: channels wanted (the network's ``in_channels``).
        allow_missing_keys: as MONAI's ``MapTransform``.
    """

    def __init__(self, keys: KeysCollection, channels: int, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if int(channels) < 1:
            raise ValueError(f"channels must be >= 1, got {channels!r}.")
        self.channels = int(channels)

    def _convert(self, img: torch.Tensor, key: Hashable) -> torch.Tensor:
        c, want = img.shape[0], self.channels
        if c == want:
            return img
        if c > 1 and _is_volume_file(_source(img, key)):
            raise ValueError(
                f"{_source(img, key)}: {c} volumes in the 4th dimension, the network takes {want} channel(s); give "
                f"one volume per file (e.g. nibabel's four_to_three) or set in_channels={c}."
            )
        if c == 2:  # gray + alpha
            img, c = img[:1], 1
        if c == 4 and want != 1:  # RGBA: drop alpha
            img, c = img[:3], 3
        if c == want:
            return img
        if c == 1:
            return img.repeat(want, *([1] * (img.ndim - 1)))
        if c in (3, 4) and want == 1:
            w = torch.as_tensor(_LUMA, dtype=img.dtype, device=img.device).reshape(3, *([1] * (img.ndim - 1)))
            return (img[:3] * w).sum(0, keepdim=True)
        raise ValueError(
            f"{_source(img, key)}: {img.shape[0]} channel(s), the network takes {want}; monai-fair converts "
            "1 <-> 3 and RGBA -> RGB only (set in_channels to match the data)."
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self._convert(d[key], key)
        return d


def _size(spatial_size: Sequence[int] | int | None, spatial_dims: int, name: str) -> list[int] | None:
    if spatial_size is None:
        return None
    size = [int(spatial_size)] * spatial_dims if isinstance(spatial_size, int) else [int(s) for s in spatial_size]
    if len(size) != spatial_dims or any(s < 1 for s in size):
        example = ",".join(["96"] * 3 if spatial_dims == 3 else ["128"] * 2)
        raise ValueError(
            f"{name} must be {spatial_dims} positive integers (spatial_dims={spatial_dims}), got {spatial_size!r}; "
            f"e.g. --{name} [{example}]"
        )
    return size


def load_chain(
    keys: Sequence[str], spatial_dims: int, allow_missing: bool = False, keep: Sequence[str] = SAFE_META_KEYS
) -> list:
    """The loading steps every chain starts with: ``LoadImaged`` (channel first), :class:`PruneImageMetad`,
    :class:`SqueezeTrailingDimsd` (and a second :class:`PruneImageMetad` keeping only ``keep``)."""
    keys = list(keys)
    out = [
        LoadImaged(keys, image_only=True, ensure_channel_first=True, allow_missing_keys=allow_missing),
        PruneImageMetad(keys, allow_missing_keys=allow_missing),
        SqueezeTrailingDimsd(keys, spatial_dims, allow_missing_keys=allow_missing),
    ]
    if tuple(keep) != SAFE_META_KEYS:  # e.g. only the file name: JPEG and DICOM geometry differ in shape
        out.append(PruneImageMetad(keys, keep=keep, allow_missing_keys=allow_missing))
    return out


def classification_transforms(
    stage: str = "train",
    spatial_size: Sequence[int] | int | None = (128, 128),
    in_channels: int = 3,
    spatial_dims: int = 2,
    resize_mode: str = "resize",
    augment: bool = True,
    image_key: str = "image",
    tensor_keys: Sequence[str] = ("label", "group"),
) -> Compose:
    """The transform chain of an image classifier on real images.

    Steps: ``LoadImaged`` (channel first) -> :class:`PruneImageMetad` -> :class:`SqueezeTrailingDimsd` ->
    :class:`PruneImageMetad` (only the file name is kept: a batch may mix JPEG and DICOM geometry) ->
    :class:`MatchChannelsd` (``in_channels``) -> ``ScaleIntensityd`` (min-max to [0, 1] per image) -> to
    ``spatial_size`` (``"resize"``: ``Resized`` with area interpolation, the aspect ratio is not kept;
    ``"pad"``: ``ResizeWithPadOrCropd``, centred zero-padding or cropping, no interpolation) -> (``stage="train"``
    and ``augment``) ``RandFlipd`` along each spatial axis (p = 0.5) and ``RandRotate90d`` (p = 0.5) when
    ``spatial_size`` is square -> ``EnsureTyped``.

    Args:
        stage: ``"train"`` (augmentation, no metadata kept), ``"eval"`` or ``"inference"`` (metadata kept so that
            writers know the file; ``label``/``group`` may be absent).
        spatial_size: the network's input size; ``None`` keeps each image's size (then all images of a batch must
            have the same size: use ``batch_size=1`` or give ``spatial_size``).
        in_channels: the network's input channels.
        spatial_dims: 2 or 3.
        resize_mode: ``"resize"`` or ``"pad"``.
        augment: random flips (and square rotations) in training.
        image_key: the image key of the items.
        tensor_keys: other item keys turned into tensors (absent keys are skipped).
    """
    stage = look_up_option(stage, _STAGES)
    resize_mode = look_up_option(resize_mode, _RESIZE_MODES)
    size = _size(spatial_size, spatial_dims, "spatial_size")
    xs: list[Any] = load_chain([image_key], spatial_dims, allow_missing=False, keep=("filename_or_obj",))
    xs += [MatchChannelsd(image_key, in_channels), ScaleIntensityd(image_key)]
    if size is not None:
        if resize_mode == "resize":
            xs.append(Resized(image_key, spatial_size=size, mode="area"))
        else:
            xs.append(ResizeWithPadOrCropd(image_key, spatial_size=size))
    if stage == "train" and augment:
        xs += [RandFlipd(image_key, prob=0.5, spatial_axis=a) for a in range(spatial_dims)]
        if size is not None and len(set(size)) == 1:
            xs.append(RandRotate90d(image_key, prob=0.5, spatial_axes=(0, 1)))
    xs.append(EnsureTyped([image_key, *tensor_keys], track_meta=stage != "train", allow_missing_keys=True))
    return Compose(xs)


def default_patch_size(spatial_dims: int) -> list[int]:
    """Default training patch: 128 x 128 in 2D, 96 x 96 x 96 in 3D (divisible by 16 for 4-level U-Nets)."""
    return [128, 128] if spatial_dims == 2 else [96, 96, 96]


def segmentation_transforms(
    stage: str = "train",
    spatial_dims: int = 2,
    patch_size: Sequence[int] | int | None = None,
    in_channels: int = 1,
    num_classes: int = 2,
    spatial_size: Sequence[int] | int | None = None,
    num_samples: int = 2,
    augment: bool = True,
    image_key: str = "image",
    label_key: str = "label",
    tensor_keys: Sequence[str] = ("group",),
) -> Compose:
    """The transform chain of a segmentation network on real images or volumes (2D or 3D).

    Steps: ``LoadImaged`` of image and mask -> :class:`PruneImageMetad` -> :class:`SqueezeTrailingDimsd`
    (``spatial_dims``) -> :class:`MatchChannelsd` (image to ``in_channels``, mask to 1) -> mask binarised
    ``> 0`` when ``num_classes == 2`` (0/1 and 0/255 masks alike; multi-class masks are kept as they are) ->
    ``ScaleIntensityd`` (image, min-max per image) -> optional ``Resized`` to ``spatial_size`` (image
    area/bilinear, mask nearest) -> ``stage="train"``: ``SpatialPadd`` to ``patch_size`` and
    ``RandCropByPosNegLabeld`` (``num_samples`` patches per image, half centred on foreground), flips along every
    spatial axis -> ``EnsureTyped``.

    Evaluation and inference keep whole images (use ``batch_size=1`` and :func:`sliding_window_inferer`).

    Args:
        stage: ``"train"``, ``"eval"`` or ``"inference"`` (the mask may be absent).
        spatial_dims: 2 or 3; the network must match.
        patch_size: training patch (default :func:`default_patch_size`).
        in_channels: the network's input channels.
        num_classes: output classes of the network (2: background + foreground).
        spatial_size: resize every image (and mask) to this size first (``None``: native size).
        num_samples: patches per image and iteration.
        augment: random flips in training.
        image_key, label_key: keys of the image and the mask.
        tensor_keys: other item keys turned into tensors (absent keys are skipped).
    """
    stage = look_up_option(stage, _STAGES)
    patch = _size(patch_size if patch_size is not None else default_patch_size(spatial_dims), spatial_dims, "patch")
    size = _size(spatial_size, spatial_dims, "spatial_size")
    keys = [image_key, label_key]
    missing_ok = stage != "train"
    xs: list[Any] = load_chain(keys, spatial_dims, allow_missing=missing_ok)
    xs += [MatchChannelsd(image_key, in_channels), MatchChannelsd(label_key, 1, allow_missing_keys=missing_ok)]
    if num_classes == 2:
        xs.append(AsDiscreted(label_key, threshold=1e-6, allow_missing_keys=missing_ok))
    xs.append(ScaleIntensityd(image_key))
    if size is not None:
        interp = "bilinear" if spatial_dims == 2 else "trilinear"
        xs.append(Resized(keys, spatial_size=size, mode=(interp, "nearest"), allow_missing_keys=missing_ok))
    if stage == "train":
        xs += [
            SpatialPadd(keys, spatial_size=patch),
            RandCropByPosNegLabeld(
                keys, label_key=label_key, spatial_size=patch, pos=1.0, neg=1.0, num_samples=num_samples
            ),
        ]
        if augment:
            xs += [RandFlipd(keys, prob=0.5, spatial_axis=a) for a in range(spatial_dims)]
    xs.append(EnsureTyped([*keys, *tensor_keys], track_meta=stage != "train", allow_missing_keys=True))
    return Compose(xs)


def sliding_window_inferer(
    patch_size: Sequence[int] | int | None = None,
    spatial_dims: int = 2,
    sw_batch_size: int = 4,
    overlap: float = 0.25,
    mode: str = "gaussian",
) -> SlidingWindowInferer:
    """MONAI's ``SlidingWindowInferer`` with the training patch as ``roi_size`` (images smaller than the patch are
    padded by the inferer, larger ones are tiled with ``overlap`` and ``mode`` blending)."""
    patch = _size(patch_size if patch_size is not None else default_patch_size(spatial_dims), spatial_dims, "patch")
    return SlidingWindowInferer(roi_size=patch, sw_batch_size=sw_batch_size, overlap=overlap, mode=mode)
