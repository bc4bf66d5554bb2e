# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Seeded, recorded label-bias injection into the training split of a datalist.

Label bias, as studied by Mouheb et al. (MICCAI 2024, neural collapse under label bias): in one subgroup a
fraction of one class is recorded as another class, e.g. under-diagnosis (positive -> negative) of a minority.
Given the training items, a subgroup ``G`` (one or more group ids), classes ``a -> b`` and a fraction ``f``:

    C = {i : group_i in G and label_i == a},   n_flip = round(f * |C|),
    flipped = the first n_flip of a seeded permutation of C (numpy ``default_rng(seed)``),

and ``label_i := b`` for ``i`` in ``flipped``. The choice is computed once, here, and written into the datalist
(``label_bias`` top-level key; each flipped item keeps ``label_clean`` and gets ``label_flipped: true``), so
every epoch and every rerun train on the same labels. Validation and test splits are never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_fair.utils.io import atomic_write_json

__all__ = ["inject_label_bias", "apply_label_bias_to_datalist"]


def _as_int_label(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: label {value!r} is not a class index (label bias needs scalar class labels).")
    if float(value) != int(value):
        raise ValueError(f"{where}: label {value!r} is not an integer class index.")
    return int(value)


def inject_label_bias(
    items: Sequence[Mapping[str, Any]],
    *,
    fraction: float,
    group: int | Sequence[int],
    from_label: int = 1,
    to_label: int = 0,
    seed: int = 0,
    split: str = "training",
    group_key: str = "group",
    label_key: str = "label",
    id_key: str = "case_id",
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Flip ``fraction`` of class ``from_label`` to ``to_label`` within ``group`` (see the module docstring).

    Args:
        items: the training items (dicts with ``label_key`` and ``group_key``); not modified.
        fraction: in ``[0, 1]``.
        group: the subgroup id(s).
        from_label, to_label: the classes.
        seed: seed of the choice.
        split: the split the items come from; anything but ``"training"`` is refused.
        id_key: item key used to identify flipped items in the record (then ``id``; the item index when absent).

    Returns:
        ``(new_items, record)``: copies of the items with the flips applied, and the record
        ``{"split", "group", "from_label", "to_label", "fraction", "seed", "n_candidates", "n_flipped",
        "flipped_ids"}``.

    Raises:
        ValueError: a non-training split, a bad fraction, equal labels, non-integer labels, items that were
            already flipped, or a subgroup without any ``from_label`` item.
    """
    if split != "training":
        raise ValueError(f"label bias is only injected into the training split, not {split!r}.")
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}.")
    if int(from_label) == int(to_label):
        raise ValueError(f"from_label and to_label are both {from_label}.")
    groups = [int(group)] if isinstance(group, (int, np.integer)) else sorted({int(g) for g in group})
    n = len(items)
    labels = np.empty(n, dtype=np.int64)
    gids = np.empty(n, dtype=np.int64)
    for i, it in enumerate(items):
        where = f"{split}[{i}]"
        if it.get("label_flipped") or "label_clean" in it:
            raise ValueError(f"{where} already carries an injected/noisy label (label_clean); inject bias once.")
        if label_key not in it or group_key not in it:
            raise KeyError(f"{where} has no {label_key!r} or {group_key!r} key (keys: {sorted(it)}).")
        labels[i] = _as_int_label(it[label_key], where)
        gids[i] = int(it[group_key])
    candidates = np.flatnonzero(np.isin(gids, groups) & (labels == int(from_label)))
    if candidates.size == 0:
        raise ValueError(f"no training item of group(s) {groups} has label {from_label}: nothing to flip.")
    n_flip = int(round(float(fraction) * candidates.size))
    rng = np.random.default_rng(int(seed))
    chosen = np.sort(rng.permutation(candidates)[:n_flip])
    out = [dict(it) for it in items]
    for i in chosen.tolist():
        out[i]["label_clean"] = out[i][label_key]
        out[i][label_key] = int(to_label)
        out[i]["label_flipped"] = True
    record = {
        "split": split,
        "group": groups,
        "from_label": int(from_label),
        "to_label": int(to_label),
        "fraction": float(fraction),
        "seed": int(seed),
        "n_candidates": int(candidates.size),
        "n_flipped": int(n_flip),
        "flipped_ids": [out[i].get(id_key, out[i].get("id", i)) for i in chosen.tolist()],
    }
    return out, record


def apply_label_bias_to_datalist(
    datalist: str | os.PathLike,
    out_path: str | os.PathLike | None = None,
    *,
    fraction: float,
    group: int | Sequence[int] | str,
    from_label: int = 1,
    to_label: int = 0,
    seed: int = 0,
) -> str:
    """Inject label bias into a datalist file's training split and write it (with ``label_bias``).

    Args:
        datalist: the input datalist JSON.
        out_path: output file (default: ``<name>_labelbias.json`` next to the input, so that the clean datalist
            stays). Relative paths stay valid only in the same folder, so it must be in the input's folder.
        group: group id(s), or a group name from ``group_names``.
        fraction, from_label, to_label, seed: as :func:`inject_label_bias`.

    Returns:
        The output path as a string (convenient in bundle configs). When ``out_path`` already holds a datalist
        made from the same input file (same SHA-1) with the same parameters, it is reused unchanged.
    """
    src = Path(datalist)
    raw = src.read_bytes()
    data = json.loads(raw)
    if "label_bias" in data:
        raise ValueError(f"{src} already has injected label bias: {data['label_bias']}")
    dst = Path(out_path) if out_path is not None else src.with_name(src.stem + "_labelbias.json")
    if dst.resolve().parent != src.resolve().parent:
        raise ValueError(f"{dst} must be in the folder of {src} (datalist paths are relative to it).")
    if isinstance(group, str):
        names = data.get("group_names", [])
        if group not in names:
            raise ValueError(f"group {group!r} not in group_names {names} of {src}.")
        group = names.index(group)
    new_items, record = inject_label_bias(
        data.get("training", []), fraction=fraction, group=group, from_label=from_label, to_label=to_label, seed=seed
    )
    record["source"] = src.name
    record["source_sha1"] = hashlib.sha1(raw).hexdigest()  # a changed clean datalist invalidates the biased one
    if dst.is_file():
        try:
            old = json.loads(dst.read_text()).get("label_bias")
        except ValueError:
            old = None
        if old == record:
            return str(dst)
    data["training"] = new_items
    data["label_bias"] = record
    atomic_write_json(dst, data, indent=1)
    return str(dst)
