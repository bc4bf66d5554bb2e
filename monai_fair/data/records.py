# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Writing a datalist from in-memory records: groups encoded, splits assigned and checked, raw attributes kept apart.

:func:`build_fair_datalist` is what every builder ends in (the table and DICOM builders of
:mod:`monai_fair.data.builder`, the public-dataset adapters, MONAI Label); :func:`datalist_from_json` reads a JSON
list of records or a decathlon file without groups.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_fair.data.datalist import SPLIT_KEYS, _is_path_like, _stem, write_fair_datalist
from monai_fair.data.groups import GroupSpec
from monai_fair.data.labels import encode_labels
from monai_fair.data.splits import _assign_splits, _check_cluster_overlap, check_split_coverage

__all__ = ["build_fair_datalist", "datalist_from_json"]


def build_fair_datalist(
    records: Sequence[Mapping[str, Any]],
    out_path: str | os.PathLike,
    group_spec: GroupSpec,
    *,
    image_key: str = "image",
    label_key: str = "label",
    keep_keys: Sequence[str] | None = None,
    split: Sequence[str] | None = None,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    stratify_by_label: bool = True,
    seed: int = 0,
    label_names: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    row_offset: int = 0,
    source: str = "records",
    cluster: Sequence[Any] | None = None,
    cluster_key: str = "cluster",
    case_id_key: str | None = None,
    required_splits: Sequence[str] | None = None,
    mask: bool = False,
    allow_cluster_overlap: bool = False,
    max_groups: int | None = None,
) -> Path:
    """Write a datalist from in-memory records (absolute or out-relative image/label paths).

    Args:
        records: one mapping per case with ``image_key``, ``label_key`` and the raw attributes of ``group_spec``.
        out_path: the datalist JSON to write.
        group_spec: how groups are built (undeclared categories are inferred with ``GroupSpec.fit``); its
            unknown policy decides about missing attributes (under ``"separate"``, the ``unknown`` group is only
            added when some case lacks an attribute; the spec is then recorded with ``"drop"``).
        image_key / label_key: record keys, written as ``image`` / ``label``.
        keep_keys: record keys kept in the ``metadata`` block (default: the attributes of the spec); never in
            the items.
        split: per record ``"training"``/``"validation"``/``"test"`` (aliases such as ``train``/``val``), or
            ``None`` for a seeded random split by ``split_fractions`` stratified by group (and label), then
            adjusted so that every group and every label reaches each split when it has enough units. Given splits
            without any validation case get ``f_val / (f_train + f_val)`` of the training cases as validation
            (same stratification; recorded as ``validation_from_training``).
        label_names: written as ``label_names``.
        extra: more top-level keys (e.g. ``source``).
        row_offset, source: for error messages (row numbers and file name).
        cluster: per record a patient/lesion id; a random split then keeps every cluster in one split (no
            leakage between splits), stratified by the group (and label) of the cluster's first record. Stored in
            the metadata under ``cluster_key``.
        case_id_key: record key of the case id (default: ``case_id`` when present, else the image file name,
            made unique).
        required_splits: splits that must be non-empty and hold every group (default: those with a positive
            fraction, or all three with ``split``); see :func:`check_split_coverage`.
        mask: the label is a mask path; it is written under ``label`` (MONAI's convention for segmentation).
        allow_cluster_overlap: with given ``split`` and ``cluster``, accept a cluster (patient) in two splits
            (counted as ``patient_overlap``); default: an error naming them (a patient in training and test
            leaks into the test figures).
        max_groups: refuse more non-empty groups than this (an intersection of many attributes gives groups too
            small to report); the message says how many are non-empty out of how many combinations. Empty
            combinations are never listed by :func:`monai_fair.data.builder.format_split_counts`.

    Raises:
        ValueError: listing every offending row (missing image/label, unknown attribute or split value) or
            every empty / incomplete split.
    """
    group_spec, ids = _encode_groups(records, group_spec, row_offset)
    _check_records(records, (image_key, label_key), row_offset, source)
    _check_cardinality(group_spec, ids, max_groups, source)
    overlap = _check_cluster_overlap(split, cluster, ids, allow_cluster_overlap, cluster_key, source)
    keep = list(keep_keys) if keep_keys is not None else group_spec.attribute_names
    items, metadata = _items_and_metadata(records, ids, image_key, label_key, case_id_key, keep, cluster, cluster_key)
    kept = np.flatnonzero(ids >= 0)
    split_idx, required, split_info = _assign_splits(
        ids[kept],
        [items[i]["label"] for i in kept],
        None if split is None else [split[i] for i in kept],
        kept + row_offset,
        cluster,
        kept,
        len(records),
        split_fractions,
        seed,
        stratify_by_label,
        required_splits,
        source,
    )
    splits: dict[str, list[dict[str, Any]]] = {k: [] for k in SPLIT_KEYS}
    for j, i in enumerate(kept):
        splits[SPLIT_KEYS[int(split_idx[j])]].append(items[i])
    check_split_coverage(splits, group_spec.group_names, required, source=source)
    ex = {**dict(extra or {}), **split_info}
    if overlap:
        ex["patient_overlap"] = overlap
    n_dropped = int((ids < 0).sum())
    if n_dropped:
        ex["dropped_unknown_attribute"] = n_dropped
    ex.setdefault("task", "segmentation" if mask else "classification")
    kept_ids = {items[i]["case_id"] for i in kept}
    metadata = {k: v for k, v in metadata.items() if k in kept_ids}
    return write_fair_datalist(
        out_path, splits, group_spec.group_names, group_spec, label_names=label_names, extra=ex, metadata=metadata
    )


def _check_cardinality(spec: GroupSpec, ids: np.ndarray, max_groups: int | None, source: str) -> None:
    """Refuse more than ``max_groups`` non-empty groups, saying how many of the combinations hold cases."""
    if max_groups is None:
        return
    used = np.unique(ids[ids >= 0]).size
    combinations = int(np.prod([len(a.names) for a in spec.attributes]))
    if used > max_groups:
        attrs = " x ".join(spec.attribute_names)
        raise ValueError(
            f"{source}: {attrs} gives {used} non-empty groups (of {combinations} combinations), more than "
            f"max_groups={max_groups}: most would be below min_group_size and could be neither reported nor "
            "compared. Use fewer attributes or coarser bins, or raise the cap (--max-groups)."
        )


def _encode_groups(
    records: Sequence[Mapping[str, Any]], group_spec: GroupSpec, row_offset: int
) -> tuple[GroupSpec, np.ndarray]:
    """``(spec, group ids)`` of ``records``: undeclared categories fitted, and then an intersection keeps only the
    combinations that hold cases (``GroupSpec.with_cells``: 42 files over manufacturer x model x institution give a
    few groups, not 641); under ``"separate"``, the ``unknown`` group only when some record lacks an attribute
    (else the spec is recorded with ``"drop"``); -1 = dropped."""
    fitted = not all(a.is_binned or a.categories is not None for a in group_spec.attributes)
    if fitted:
        group_spec = group_spec.fit(records)
    ids = group_spec.encode(records, row_offset=row_offset)
    product = int(np.prod([len(a.names) for a in group_spec.attributes]))
    used = np.unique(ids[(ids >= 0) & (ids < product)])
    # a spec read from the data (ids already data-dependent) keeps its non-empty combinations only; a fully
    # declared spec keeps its stable ids (the table still lists non-empty groups only)
    if fitted and len(group_spec.attributes) > 1 and group_spec.cells is None and used.size < product:
        group_spec = group_spec.with_cells(used.tolist())
        ids = group_spec.encode(records, row_offset=row_offset)
    if group_spec.unknown == "separate" and not np.any(ids == group_spec.num_groups - 1):
        # no case lacks an attribute: no empty "unknown" group (same ids, one name fewer)
        group_spec = GroupSpec.from_dict({**group_spec.to_dict(), "unknown": "drop"})
    return group_spec, ids


def _check_records(records: Sequence[Mapping[str, Any]], keys: Sequence[str], row_offset: int, source: str) -> None:
    """One ``ValueError`` listing every row without a (non-blank) value for one of ``keys``."""
    missing = []
    for i, r in enumerate(records):
        for key in keys:
            if key not in r or r[key] is None or (isinstance(r[key], str) and not r[key].strip()):
                missing.append(f"row {i + row_offset} has no {key!r} value")
    if missing:
        raise ValueError(f"{source}: {'; '.join(missing)}.")


def _items_and_metadata(
    records: Sequence[Mapping[str, Any]],
    ids: np.ndarray,
    image_key: str,
    label_key: str,
    case_id_key: str | None,
    keep: Sequence[str],
    cluster: Sequence[Any] | None,
    cluster_key: str,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The datalist items (:data:`ITEM_KEYS` only) and the ``metadata`` block (case id -> kept raw attributes and
    the cluster id) of every record."""
    case_ids = _unique_case_ids(records, image_key, case_id_key)
    items, metadata = [], {}
    for i, r in enumerate(records):
        items.append({"case_id": case_ids[i], "image": r[image_key], "label": r[label_key], "group": int(ids[i])})
        meta = {k: _plain(r[k]) for k in keep if k in r}
        if cluster is not None:
            meta[cluster_key] = str(cluster[i])
        if meta:
            metadata[case_ids[i]] = meta
    return items, metadata


def _plain(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, str) and not v.strip():  # an empty CSV cell is a missing value
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def _unique_case_ids(records: Sequence[Mapping[str, Any]], image_key: str, case_id_key: str | None) -> list[str]:
    key = case_id_key or "case_id"
    raw = [
        str(r[key]) if r.get(key) not in (None, "") else _stem(r[image_key] if r.get(image_key) else f"case{i}")
        for i, r in enumerate(records)
    ]
    counts = Counter(raw)
    seen: Counter = Counter()
    out = []
    for c in raw:
        if counts[c] > 1:
            seen[c] += 1
            out.append(f"{c}_{seen[c]}")
        else:
            out.append(c)
    return out


def datalist_from_json(
    json_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    group_spec: GroupSpec,
    image_key: str = "image",
    label_key: str = "label",
    attribute_keys: Sequence[str] | None = None,
    label_is_path: bool = False,
    label_map: Mapping[str, int] | None = None,
    label_names: Sequence[str] | None = None,
    positive_label: str | None = None,
    label_order: Sequence[str] | None = None,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> Path:
    """Build a datalist JSON from a JSON list of records, or from a decathlon file without group ids.

    A decathlon input keeps its splits (``training``/``validation``/``test``; a file with only ``training``
    is split by ``split_fractions``); a plain list is split by ``split_fractions``. Relative paths are taken
    relative to the input file's folder. Errors name the split and index (``row`` = 0-based index). Text labels
    need ``label_map``, ``label_order`` or ``positive_label`` (see :func:`encode_labels`).
    """
    json_path = Path(json_path)
    if not json_path.is_file():
        raise FileNotFoundError(f"JSON datalist not found: {json_path}")
    data = json.loads(json_path.read_text())
    base = json_path.parent
    if isinstance(data, list):
        parts = {"": data}
    elif isinstance(data, Mapping):
        parts = {k: data[k] for k in SPLIT_KEYS if isinstance(data.get(k), list)}
        if not parts:
            raise ValueError(f"{json_path}: no 'training'/'validation'/'test' lists and not a JSON list.")
    else:
        raise ValueError(f"{json_path}: expected a JSON list or object, got {type(data).__name__}.")
    records, split = [], []
    for part, items in parts.items():
        for it in items:
            if not isinstance(it, Mapping):
                raise ValueError(f"{json_path}: item {it!r} in {part or 'the list'} is not an object.")
            rec = dict(it)
            for key in (image_key,) + ((label_key,) if label_is_path else ()):
                if key in rec:
                    v = rec[key]
                    if isinstance(v, str) and _is_path_like(v) and not os.path.isabs(v):
                        rec[key] = str((base / v).resolve())
            records.append(rec)
            split.append(part)
    if not label_is_path:
        labels, names = encode_labels(
            [r.get(label_key) for r in records],
            positive_label=positive_label,
            label_order=label_order,
            label_map=label_map,
            source=str(json_path),
        )
        for r, lab in zip(records, labels):
            r[label_key] = lab
    else:
        names = None
    use_given = set(split) != {""} and set(split) != {"training"}
    return build_fair_datalist(
        records,
        out_path,
        group_spec,
        image_key=image_key,
        label_key=label_key,
        keep_keys=list(attribute_keys) if attribute_keys is not None else None,
        split=split if use_given else None,
        split_fractions=split_fractions,
        seed=seed,
        label_names=label_names if label_names is not None else names,
        source=str(json_path),
        mask=label_is_path,
        extra={"source": {"type": "json", "file": json_path.name}},
    )
