# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Check a datalist against what a bundle expects, before any training starts: ALL problems in one message.

:func:`check_datalist` (``python -m monai_fair check DATALIST``; every monai-fair bundle calls it in
``initialize``) reads every image header once (:func:`monai_fair.data.image_info.read_image_info`), then loads
every image whose header passed through the bundle's own loading and adaptation chain in a pool of worker
processes (:mod:`monai_fair.data.load_check`: the same reader and transforms as training), and collects, per file:

* the file is missing, unreadable or truncated (a cut ``.nii.gz`` included);
* its dimensionality differs from ``spatial_dims`` (after dropping singleton trailing dimensions);
* its channel count cannot be converted to ``in_channels`` (1 <-> n and RGBA -> RGB can, see
  :class:`monai_fair.data.transforms.MatchChannelsd`; a volume file's channels are volumes: only 1 -> n);
* the training chain cannot load it (a 16-bit RGB DICOM, an RT Dose grid, a corrupt JPEG 2000 codestream, ...):
  the reason (with what the decoder printed) and the fix;
* classification: a label that is not a class index in ``0..num_classes-1`` (e.g. the text ``"abnormal"``);
  segmentation: a missing/unreadable mask, or a mask whose size differs from its image's;
* images of different sizes when the bundle does not resize (``spatial_size=None``) and batches more than one;

and, per datalist: group ids outside ``0..K-1``, required splits that are empty, groups absent from the training
split. Everything found is raised as one :class:`DatalistCheckError` naming each file, key and value, so a user
fixes the data once instead of once per epoch-0 crash. Groups missing from the validation/test split are
warnings (printed and returned), since they only leave a metric undefined.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.utils import look_up_option

from monai_fair.data.datalist import SPLIT_KEYS, _case_id, _read_json, _resolve
from monai_fair.data.image_info import ImageInfo, read_image_info
from monai_fair.data.load_check import default_loading_chain, find_load_failures

#: :attr:`ImageInfo.kind` values whose extra channels are volumes/modalities, never colour or alpha
VOLUME_KINDS = ("nifti", "itk")

__all__ = ["DatalistCheckError", "check_datalist", "convertible_channels"]

logger = logging.getLogger(__name__)


class DatalistCheckError(ValueError):
    """Every problem :func:`check_datalist` found, one per line (``problems`` holds the list)."""

    def __init__(self, message: str, problems: Sequence[str]) -> None:
        super().__init__(message)
        self.problems = list(problems)


def convertible_channels(have: int, want: int, kind: str = "png") -> bool:
    """Whether :class:`~monai_fair.data.transforms.MatchChannelsd` converts ``have`` channels to ``want``.

    ``kind`` is :attr:`ImageInfo.kind`: the channels of a volume format (``"nifti"``, ``"itk"``) are volumes or
    modalities, so only ``1 -> n`` (repetition) converts; colour conversions apply to 2D raster and DICOM files.
    """
    if have == want:
        return True
    if kind in VOLUME_KINDS:
        return have == 1
    if have == 2:
        have = 1
    if have == 4 and want != 1:
        have = 3
    return have == want or have == 1 or (have == 3 and want == 1)


def _is_class_index(v: Any, num_classes: int | None) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if isinstance(v, float) and (math.isnan(v) or not v.is_integer()):
        return False
    return int(v) >= 0 and (num_classes is None or int(v) < num_classes)


class _ItemChecker:
    """Checks the items of one datalist, collecting problems and the summary counts; each image header read once.

    Args:
        base: the datalist's folder (relative paths resolve against it).
        names: the datalist's ``group_names`` (group ids must be in ``0..len(names)-1``).
        task, spatial_dims, in_channels, num_classes, require_labels, label_key, group_key: as in
            :func:`check_datalist`.
    """

    def __init__(
        self,
        base: Path,
        names: Sequence[str],
        *,
        task: str,
        spatial_dims: int | None,
        in_channels: int | None,
        num_classes: int | None,
        require_labels: bool,
        label_key: str,
        group_key: str,
    ) -> None:
        self.base, self.names, self.task = base, names, task
        self.spatial_dims, self.in_channels, self.num_classes = spatial_dims, in_channels, num_classes
        self.require_labels, self.label_key, self.group_key = require_labels, label_key, group_key
        self.problems: list[str] = []
        self.shapes: Counter = Counter()
        self.channels: Counter = Counter()
        self._infos: dict[str, ImageInfo] = {}
        self.to_load: list[dict[str, Any]] = []

    def info(self, p: str) -> ImageInfo:
        """The header of ``p`` (relative to the datalist's folder), read once; a bad file is recorded as a problem."""
        path = _resolve(p, self.base)
        if path not in self._infos:
            self._infos[path] = read_image_info(path)
        found = self._infos[path]
        if not found.ok:
            self.problems.append(f"{found.path}: {found.error}")
        return found

    def check_splits(self, data: Mapping, splits: Sequence[str]) -> tuple[dict[str, int], dict[str, set[int]]]:
        """Check every item of ``splits`` (absent ones count as empty): ``({split: n items}, {split: group ids})``."""
        sizes: dict[str, int] = {}
        groups_in: dict[str, set[int]] = {}
        for split in splits:
            items = data.get(split)
            items = items if isinstance(items, list) else []
            sizes[split] = len(items)
            groups_in[split] = self.check_split(split, items)
        return sizes, groups_in

    def check_split(self, split: str, items: Sequence[Any]) -> set[int]:
        """Check every item of ``split``; return the group ids it holds."""
        groups: set[int] = set()
        for i, it in enumerate(items):
            if not isinstance(it, Mapping):
                self.problems.append(f"{split}[{i}]: not an object")
                continue
            where = f"{split}[{i}] ({_case_id(it, split, i)})"
            g = self.check_group(it.get(self.group_key), where)
            if g is not None:
                groups.add(g)
            before = len(self.problems)
            img = self.check_image(it.get("image"), where)
            if img is None:
                continue
            lab = it.get(self.label_key)
            if lab is not None or self.require_labels:
                if self.task == "classification":
                    self.check_class_label(lab, where)
                else:
                    self.check_mask(lab, where, img)
            if len(self.problems) == before:  # headers are fine: load it as training would
                self.to_load.append(self._load_item(it))
        return groups

    def _load_item(self, it: Mapping) -> dict[str, Any]:
        """The item as the bundle's chain gets it: resolved paths; the label only when it is a mask file."""
        out: dict[str, Any] = {"image": _resolve(it.get("image"), self.base)}
        if self.task == "segmentation" and isinstance(it.get(self.label_key), str):
            out[self.label_key] = _resolve(it[self.label_key], self.base)
        return out

    def check_group(self, g: Any, where: str) -> int | None:
        """The group id ``g`` if it is an integer in ``0..K-1``, else ``None`` (problem recorded)."""
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not float(g).is_integer():
            self.problems.append(f"{where}: '{self.group_key}' = {g!r} is not an integer group id")
        elif not 0 <= int(g) < len(self.names):
            self.problems.append(f"{where}: '{self.group_key}' = {g!r} is outside 0..{len(self.names) - 1}")
        else:
            return int(g)
        return None

    def check_image(self, image: Any, where: str) -> ImageInfo | None:
        """Check an item's image path(s) (a list: channels/modalities of one case); the first image's header, or
        ``None`` when the item has no usable path. Counts shapes and channels; checks dimensionality and channels."""
        paths = image if isinstance(image, list) else [image]
        if not paths or not all(isinstance(x, str) and x.strip() for x in paths):
            self.problems.append(f"{where}: no 'image' path")
            return None
        for extra in paths[1:]:
            self.info(extra)
        img = self.info(paths[0])
        if not img.ok:
            return img
        self.shapes[img.spatial_shape] += 1
        self.channels[img.channels] += 1
        if self.spatial_dims is not None and img.spatial_dims != self.spatial_dims:
            self.problems.append(
                f"{img.path}: {img.spatial_dims}D image of size {list(img.spatial_shape)}, expected "
                f"{self.spatial_dims}D (spatial_dims={self.spatial_dims})"
            )
        if self.in_channels is not None and not convertible_channels(img.channels, self.in_channels, img.kind):
            hint = (
                f" ({img.channels} volumes in the 4th dimension: give one volume per file, e.g. nibabel's "
                f"four_to_three, or set in_channels={img.channels})"
                if img.kind in VOLUME_KINDS
                else ""
            )
            self.problems.append(
                f"{img.path}: {img.channels} channels cannot become in_channels={self.in_channels}{hint}"
            )
        return img

    def check_class_label(self, lab: Any, where: str) -> None:
        """A classification label must be a class index in ``0..num_classes-1`` (a list: multi-label, accepted)."""
        if lab is None:
            self.problems.append(f"{where}: no '{self.label_key}'")
        elif not isinstance(lab, list) and not _is_class_index(lab, self.num_classes):
            rng = f"0..{self.num_classes - 1}" if self.num_classes else "0, 1, ..."
            self.problems.append(
                f"{where}: '{self.label_key}' = {lab!r} is not a class index in {rng} (text labels: rebuild "
                "with `python -m monai_fair datalist ... --positive-label VALUE`)"
            )

    def check_mask(self, lab: Any, where: str, img: ImageInfo) -> None:
        """A segmentation label must be a readable mask file of its image's size."""
        if not isinstance(lab, str) or not lab.strip():
            self.problems.append(f"{where}: '{self.label_key}' = {lab!r} is not a mask file")
            return
        m = self.info(lab)
        if m.ok and img.ok and m.spatial_shape != img.spatial_shape:
            self.problems.append(
                f"{m.path}: mask size {list(m.spatial_shape)} differs from its image's "
                f"{list(img.spatial_shape)} ({img.path})"
            )


def _load_datalist_json(path: Path) -> Mapping:
    """The datalist's JSON object; a missing file, invalid JSON or a non-object raise :class:`DatalistCheckError`."""
    try:
        return _read_json(path)
    except (FileNotFoundError, ValueError) as e:
        raise DatalistCheckError(str(e), [str(e)]) from e


def _check_split_coverage(
    data: Mapping,
    sizes: Mapping[str, int],
    groups_in: Mapping[str, set[int]],
    names: Sequence[str],
    required_splits: Sequence[str],
) -> tuple[list[str], list[str]]:
    """Empty required splits and groups absent from a split: ``(problems, warnings)``.

    A group absent from ``training`` is a problem; absent from another split, a warning (a metric stays undefined).
    """
    problems: list[str] = []
    warnings: list[str] = []
    for split in required_splits:
        if not sizes.get(split, len(data.get(split) or [])):
            problems.append(
                f"split '{split}' is empty (split sizes {dict(sizes)}); rebuild the datalist with "
                "`python -m monai_fair datalist`, which makes training/validation/test splits"
            )
    all_groups = set().union(*groups_in.values()) if groups_in else set()
    for split, have in groups_in.items():
        lacking = sorted(all_groups - have)
        if not lacking or not sizes.get(split):
            continue
        text = f"split '{split}' has no case of group(s) {[names[g] for g in lacking]}"
        (problems if split == "training" else warnings).append(text)
    return problems, warnings


def check_datalist(
    datalist: str | os.PathLike,
    *,
    task: str = "classification",
    splits: Sequence[str] = SPLIT_KEYS,
    required_splits: Sequence[str] = ("training", "validation"),
    spatial_dims: int | None = 2,
    in_channels: int | None = None,
    num_classes: int | None = None,
    spatial_size: Sequence[int] | None = (0,),
    batch_size: int = 2,
    require_labels: bool = True,
    label_key: str = "label",
    group_key: str = "group",
    verbose: bool = True,
    transform: Callable[[Mapping[str, Any]], Any] | None = None,
    load_images: bool = True,
    num_workers: int | None = None,
) -> dict[str, Any]:
    """Check every item of ``splits`` of a datalist; raise one :class:`DatalistCheckError` listing all problems.

    Args:
        datalist: the datalist JSON.
        task: ``"classification"`` (``label`` is a class index) or ``"segmentation"`` (``label`` is a mask file).
        splits: splits to check (absent ones count as empty).
        required_splits: splits that must be non-empty (a training run needs ``training`` and ``validation``: the
            validation split selects ``model.pt``).
        spatial_dims: expected spatial dimensionality (``None``: any).
        in_channels: the network's input channels (``None``: any convertible count is accepted).
        num_classes: classification labels must be in ``0..num_classes-1`` (``None``: any index >= 0).
        spatial_size: the bundle's resize target; ``None`` means images are used at their own size, so
            classification images of different sizes cannot share a batch of ``batch_size > 1`` (reported).
            The default (any non-``None``) means images are resized.
        batch_size: see ``spatial_size``.
        require_labels: every item needs a label (``False`` for inference: labels are checked when present).
        label_key, group_key: item keys.
        verbose: log the summary (split sizes, shapes, channel counts; no group counts), or the problems.
        transform: the bundle's loading and adaptation chain (its ``validate#preprocessing``); default
            :func:`~monai_fair.data.load_check.default_loading_chain` for ``task``, ``spatial_dims``, ``in_channels``.
        load_images: load every image whose header passed through ``transform`` (see
            :mod:`monai_fair.data.load_check`), so that every file training would fail on fails here, named, with
            the reason and the fix. ``False``: headers only.
        num_workers: worker processes for loading (default ``min(4, CPUs)``; 0 loads in this process).

    Returns:
        A summary ``{"splits": {name: n}, "shapes": {shape: n}, "channels": {c: n}, "warnings": [...]}``.

    Raises:
        DatalistCheckError: naming each file/key/value at fault (the message lists every problem).
    """
    task = look_up_option(task, ("classification", "segmentation"))
    path = Path(datalist)
    data = _load_datalist_json(path)
    names = data.get("group_names")
    names = names if isinstance(names, list) else []
    checker = _ItemChecker(
        path.parent,
        names,
        task=task,
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        num_classes=num_classes,
        require_labels=require_labels,
        label_key=label_key,
        group_key=group_key,
    )
    problems = checker.problems
    if not names:
        problems.append("no non-empty 'group_names' list")
    sizes, groups_in = checker.check_splits(data, splits)
    coverage_problems, warnings = _check_split_coverage(data, sizes, groups_in, names, required_splits)
    problems.extend(coverage_problems)
    if load_images and checker.to_load:
        unique = list({json.dumps(it, sort_keys=True): it for it in checker.to_load}.values())
        chain = transform or default_loading_chain(task, spatial_dims or 2, in_channels)
        headers = {p: i.extra["dicom"] for p, i in checker._infos.items() if "dicom" in i.extra}
        problems.extend(str(f) for f in find_load_failures(unique, chain, num_workers, headers))
    shapes, channels = checker.shapes, checker.channels
    if task == "classification" and spatial_size is None and batch_size > 1 and len(shapes) > 1:
        problems.append(
            f"images of {len(shapes)} different sizes (e.g. {[list(s) for s, _ in shapes.most_common(3)]}) and no "
            "spatial_size: set spatial_size (resize) or batch_size 1"
        )
    summary = {
        "splits": sizes,
        "shapes": {"x".join(map(str, s)): n for s, n in shapes.most_common()},
        "channels": dict(channels),
        "warnings": warnings,
    }
    _raise_or_log(path, problems, summary, verbose)
    return summary


def _raise_or_log(path: Path, problems: Sequence[str], summary: Mapping[str, Any], verbose: bool) -> None:
    """Raise one :class:`DatalistCheckError` listing ``problems``; without problems, log the summary and warnings."""
    if problems:
        head = f"datalist {path}: {len(problems)} problem(s) found before training:"
        message = "\n  ".join([head, *problems])
        if verbose:  # in a bundle run the exception reaches the user wrapped by MONAI's config parser: log it plainly
            logger.error(message)
        raise DatalistCheckError(message, problems)
    if verbose:
        shapes = list(summary["shapes"].items())
        shown = ", ".join(f"{s} x{n}" for s, n in shapes[:5])
        more = f" and {len(shapes) - 5} more" if len(shapes) > 5 else ""
        logger.info(
            f"datalist {path} checked: splits {summary['splits']}; sizes {shown}{more}; channels {summary['channels']}"
        )
        for w in summary["warnings"]:
            logger.warning(f"datalist {path}: {w}")
