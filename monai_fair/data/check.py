# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Check a datalist against what a bundle expects, before any training starts: ALL problems in one message.

:func:`check_datalist` (``python -m monai_fair check DATALIST``; every monai-fair bundle calls it in
``initialize``) reads every image header once (:func:`monai_fair.data.image_info.read_image_info`, pixels are
never decoded) and collects, per file:

* the file is missing, unreadable or truncated (a cut ``.nii.gz`` included);
* its dimensionality differs from ``spatial_dims`` (after dropping singleton trailing dimensions);
* its channel count cannot be converted to ``in_channels`` (1 <-> n and RGBA -> RGB can, see
  :class:`monai_fair.data.transforms.MatchChannelsd`);
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.utils import look_up_option

from monai_fair.data.datalist import SPLIT_KEYS, _case_id, _resolve
from monai_fair.data.image_info import ImageInfo, read_image_info

__all__ = ["DatalistCheckError", "check_datalist", "convertible_channels"]

logger = logging.getLogger(__name__)


class DatalistCheckError(ValueError):
    """Every problem :func:`check_datalist` found, one per line (``problems`` holds the list)."""

    def __init__(self, message: str, problems: Sequence[str]) -> None:
        super().__init__(message)
        self.problems = list(problems)


def convertible_channels(have: int, want: int) -> bool:
    """Whether :class:`~monai_fair.data.transforms.MatchChannelsd` converts ``have`` channels to ``want``."""
    if have == want:
        return True
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

    Returns:
        A summary ``{"splits": {name: n}, "shapes": {shape: n}, "channels": {c: n}, "warnings": [...]}``.

    Raises:
        DatalistCheckError: naming each file/key/value at fault (the message lists every problem).
    """
    task = look_up_option(task, ("classification", "segmentation"))
    path = Path(datalist)
    problems: list[str] = []
    warnings: list[str] = []
    if not path.is_file():
        raise DatalistCheckError(f"datalist not found: {path}", [f"{path}: not found"])
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise DatalistCheckError(f"datalist {path} is not valid JSON: {e}", [str(e)]) from e
    if not isinstance(data, Mapping):
        raise DatalistCheckError(f"datalist {path} is not a JSON object", ["not a JSON object"])
    names = data.get("group_names")
    if not isinstance(names, list) or not names:
        problems.append("no non-empty 'group_names' list")
        names = []
    base = path.parent
    infos: dict[str, ImageInfo] = {}

    def info(p: str) -> ImageInfo:
        if p not in infos:
            infos[p] = read_image_info(p)
        return infos[p]

    sizes: dict[str, int] = {}
    shapes: Counter = Counter()
    channels: Counter = Counter()
    groups_in: dict[str, set[int]] = {}
    for split in splits:
        items = data.get(split)
        items = items if isinstance(items, list) else []
        sizes[split] = len(items)
        groups_in[split] = set()
        for i, it in enumerate(items):
            where = f"{split}[{i}]"
            if not isinstance(it, Mapping):
                problems.append(f"{where}: not an object")
                continue
            where = f"{split}[{i}] ({_case_id(it, split, i)})"
            g = it.get(group_key)
            if isinstance(g, bool) or not isinstance(g, (int, float)) or not float(g).is_integer():
                problems.append(f"{where}: '{group_key}' = {g!r} is not an integer group id")
            elif not 0 <= int(g) < len(names):
                problems.append(f"{where}: '{group_key}' = {g!r} is outside 0..{len(names) - 1}")
            else:
                groups_in[split].add(int(g))
            image = it.get("image")
            paths = image if isinstance(image, list) else [image]  # a list: channels/modalities of one case
            if not paths or not all(isinstance(x, str) and x.strip() for x in paths):
                problems.append(f"{where}: no 'image' path")
                continue
            for extra in paths[1:]:
                e = info(_resolve(extra, base))
                if not e.ok:
                    problems.append(f"{e.path}: {e.error}")
            img = info(_resolve(paths[0], base))
            if not img.ok:
                problems.append(f"{img.path}: {img.error}")
            else:
                shapes[img.spatial_shape] += 1
                channels[img.channels] += 1
                if spatial_dims is not None and img.spatial_dims != spatial_dims:
                    problems.append(
                        f"{img.path}: {img.spatial_dims}D image of size {list(img.spatial_shape)}, expected "
                        f"{spatial_dims}D (spatial_dims={spatial_dims})"
                    )
                if in_channels is not None and not convertible_channels(img.channels, in_channels):
                    problems.append(f"{img.path}: {img.channels} channels cannot become in_channels={in_channels}")
            lab = it.get(label_key)
            if lab is None and not require_labels:
                continue
            if task == "classification":
                if lab is None:
                    problems.append(f"{where}: no '{label_key}'")
                elif not isinstance(lab, list) and not _is_class_index(lab, num_classes):
                    rng = f"0..{num_classes - 1}" if num_classes else "0, 1, ..."
                    problems.append(
                        f"{where}: '{label_key}' = {lab!r} is not a class index in {rng} (text labels: rebuild "
                        "with `python -m monai_fair datalist ... --positive-label VALUE`)"
                    )
            else:
                if not isinstance(lab, str) or not lab.strip():
                    problems.append(f"{where}: '{label_key}' = {lab!r} is not a mask file")
                    continue
                m = info(_resolve(lab, base))
                if not m.ok:
                    problems.append(f"{m.path}: {m.error}")
                elif img.ok and m.spatial_shape != img.spatial_shape:
                    problems.append(
                        f"{m.path}: mask size {list(m.spatial_shape)} differs from its image's "
                        f"{list(img.spatial_shape)} ({img.path})"
                    )
    for split in required_splits:
        if not sizes.get(split, len(data.get(split) or [])):
            problems.append(
                f"split '{split}' is empty (split sizes {sizes}); rebuild the datalist with "
                "`python -m monai_fair datalist`, which makes training/validation/test splits"
            )
    all_groups = set().union(*groups_in.values()) if groups_in else set()
    for split, have in groups_in.items():
        lacking = sorted(all_groups - have)
        if not lacking or not sizes.get(split):
            continue
        text = f"split '{split}' has no case of group(s) {[names[g] for g in lacking]}"
        (problems if split == "training" else warnings).append(text)
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
    if problems:
        head = f"datalist {path}: {len(problems)} problem(s) found before training:"
        message = "\n  ".join([head, *problems])
        if verbose:  # in a bundle run the exception reaches the user wrapped by MONAI's config parser: log it plainly
            logger.error(message)
        raise DatalistCheckError(message, problems)
    if verbose:
        shown = ", ".join(f"{s} x{n}" for s, n in list(summary["shapes"].items())[:5])
        more = f" and {len(shapes) - 5} more" if len(shapes) > 5 else ""
        logger.info(f"datalist {path} checked: splits {sizes}; sizes {shown}{more}; channels {dict(channels)}")
        for w in warnings:
            logger.warning(f"datalist {path}: {w}")
    return summary
