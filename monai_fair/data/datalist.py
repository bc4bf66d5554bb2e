# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Reading and writing monai-fair datalists (decathlon JSON with group ids, see ``docs/data.md``).

A datalist file::

    {"training": [{"case_id": "c001", "image": "images/c001.dcm", "label": 1, "group": 0}, ...],
     "validation": [...], "test": [...],
     "group_names": ["F", "M"], "group_spec": {...}, "label_names": ["normal", "abnormal"],
     "metadata": {"c001": {"sex": "F", "age": null, "patient_id": "p17"}, ...}}

Items carry only what training needs (:data:`ITEM_KEYS`: ``case_id``, ``image``, ``label`` or ``mask``, the
integer ``group`` in 0..K-1 with K = ``len(group_names)``). The raw attributes (sex, age, patient id, scanner,
...) stay in the top-level ``metadata`` block keyed by case id: they never enter a batch, so a ``null`` age
can neither break collation nor reach a log. Paths are relative to the datalist's folder. The file is readable
by ``monai.data.load_decathlon_datalist`` as well as by :func:`load_fair_datalist`, which validates groups and
returns only :data:`ITEM_KEYS` (older files with attributes inside the items load the same way).

This module is the format (reading, writing, path resolution). The rest of the data layer, by concern:

* :mod:`monai_fair.data.records` - :func:`~monai_fair.data.records.build_fair_datalist` (in-memory records; what
  every builder ends in) and :func:`~monai_fair.data.records.datalist_from_json`;
* :mod:`monai_fair.data.builder` - :func:`~monai_fair.data.builder.datalist_from_table` (the one table builder)
  and :func:`~monai_fair.data.builder.datalist_from_dicom_headers`;
* :mod:`monai_fair.data.splits` - stratified, patient-grouped splits and their coverage check;
* :mod:`monai_fair.data.labels` - :func:`~monai_fair.data.labels.encode_labels`.

Each builder refuses to write a datalist whose splits are empty or lack a group (listing every offender), and never
orders text labels alphabetically.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_fair.data.groups import GroupSpec
from monai_fair.utils.io import atomic_write_json

__all__ = [
    "SPLIT_KEYS",
    "ITEM_KEYS",
    "load_fair_datalist",
    "load_case_metadata",
    "write_fair_datalist",
]

SPLIT_KEYS = ("training", "validation", "test")
#: the keys an item keeps when loaded (everything else is metadata)
ITEM_KEYS = ("case_id", "image", "label", "mask", "group")
_SPLIT_ALIASES = {
    "train": "training",
    "training": "training",
    "tr": "training",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "va": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
    "te": "test",
}
_DEFAULT_PATH_KEYS = ("image", "label", "mask")


def _is_path_like(value: Any) -> bool:
    return isinstance(value, str) and not _looks_numeric(value)


def _looks_numeric(value: str) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return False


def _resolve(value: Any, base: Path) -> Any:
    if isinstance(value, (list, tuple)):
        return [_resolve(v, base) for v in value]
    if _is_path_like(value) and not os.path.isabs(value) and "://" not in value:
        return str(os.path.normpath(base / value))
    return value


def _stem(path: Any) -> str:
    name = os.path.basename(str(path).rstrip("/\\"))
    for ext in (".nii.gz", ".nii", ".dcm", ".png", ".jpg", ".jpeg", ".mha", ".nrrd", ".tif", ".tiff"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _read_stripped_csv(
    path: Path, blank_missing: bool = False, delimiter: str = ","
) -> tuple[list[str], list[dict[str, Any]]]:
    """Header and rows (dicts) of a CSV file (UTF-8, BOM allowed) with header names and cells stripped.

    Args:
        path: an existing CSV file.
        blank_missing: a cell that is not a string (``None`` on a short row, the list of extra cells on a long
            one) becomes ``""``; False: it is kept as it is.
    """
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        rows = [
            {k: (v.strip() if isinstance(v, str) else ("" if blank_missing else v)) for k, v in r.items()}
            for r in reader
        ]
    return header, rows


def _case_id(item: Mapping[str, Any], split: str, index: int) -> str:
    for key in ("case_id", "id"):
        if item.get(key) not in (None, ""):
            return str(item[key])
    if item.get("image") not in (None, ""):
        return _stem(item["image"] if not isinstance(item["image"], list) else item["image"][0])
    return f"{split}_{index}"


def _read_json(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"datalist not found: {path}")
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"datalist {path} is not valid JSON: {e}") from e
    if not isinstance(data, Mapping):
        raise ValueError(f"datalist {path} must be a JSON object with 'training'/'validation'/'test' lists.")
    return data


def load_fair_datalist(
    path: str | os.PathLike,
    split: str = "training",
    *,
    group_key: str = "group",
    path_keys: Sequence[str] = _DEFAULT_PATH_KEYS,
    base_dir: str | os.PathLike | None = None,
    check_files: bool = False,
    keys: Sequence[str] | None = ITEM_KEYS,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Read one split of a monai-fair datalist, resolving paths and validating the group ids.

    Args:
        path: the datalist JSON file.
        split: ``"training"``, ``"validation"`` or ``"test"`` (or any top-level list key of the file).
        group_key: key of the group id in each item.
        path_keys: item keys whose string values are paths to resolve (numeric strings are left alone, so a
            classification ``label`` of ``1`` stays a label).
        base_dir: folder the relative paths are relative to (default: the datalist's folder).
        check_files: also check that every resolved path exists.
        keys: item keys to keep (default :data:`ITEM_KEYS` plus ``group_key``): raw attributes never reach a
            batch. ``None`` keeps every key. Every returned item has a ``case_id`` (from ``case_id``, ``id``, or
            the image file name).

    Returns:
        ``(items, group_names)``: copies of the split's items with absolute paths, and the group names.

    Raises:
        FileNotFoundError / ValueError / KeyError: naming the file, the split, the item index and the key at fault.
    """
    path = Path(path)
    data = _read_json(path)
    if split not in data:
        lists = sorted(k for k, v in data.items() if isinstance(v, list))
        raise KeyError(f"datalist {path} has no split {split!r}; it has {lists}.")
    names = data.get("group_names")
    if not isinstance(names, list) or not names:
        raise ValueError(f"datalist {path} has no non-empty 'group_names' list (see monai_fair docs/data.md).")
    k = len(names)
    base = Path(base_dir) if base_dir is not None else path.parent
    keep = None if keys is None else set(keys) | {group_key}
    items = []
    for i, it in enumerate(data[split]):
        if not isinstance(it, Mapping):
            raise ValueError(f"datalist {path}, {split}[{i}] is not an object: {it!r}")
        d = dict(it)
        if group_key not in d:
            raise KeyError(f"datalist {path}, {split}[{i}] has no '{group_key}' key (keys: {sorted(d)}).")
        g = d[group_key]
        not_int = isinstance(g, float) and (math.isnan(g) or not g.is_integer())
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not_int:
            raise ValueError(f"datalist {path}, {split}[{i}]['{group_key}'] = {g!r} is not an integer group id.")
        if not 0 <= int(g) < k:
            raise ValueError(
                f"datalist {path}, {split}[{i}]['{group_key}'] = {g!r} is outside 0..{k - 1} (group_names {names})."
            )
        d[group_key] = int(g)
        d["case_id"] = _case_id(d, split, i)
        if keep is not None:
            d = {key: v for key, v in d.items() if key in keep}
        for key in path_keys:
            if key in d:
                d[key] = _resolve(d[key], base)
                if check_files:
                    for p in d[key] if isinstance(d[key], list) else [d[key]]:
                        if _is_path_like(p) and not os.path.exists(p):
                            raise FileNotFoundError(f"datalist {path}, {split}[{i}]['{key}']: {p} does not exist.")
        items.append(d)
    return items, [str(n) for n in names]


def load_case_metadata(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The raw attributes of every case, keyed by case id (the ``metadata`` block; for older datalists, the
    non-:data:`ITEM_KEYS` entries of each item). For reporting and auditing code, never for a batch."""
    path = Path(path)
    data = _read_json(path)
    meta = data.get("metadata")
    out: dict[str, dict[str, Any]] = {}
    if isinstance(meta, Mapping):
        out = {str(k): dict(v) for k, v in meta.items() if isinstance(v, Mapping)}
    for split in SPLIT_KEYS:
        for i, it in enumerate(data.get(split) or []):
            if isinstance(it, Mapping):
                extra = {k: v for k, v in it.items() if k not in ITEM_KEYS and k != "id"}
                if extra:
                    out.setdefault(_case_id(it, split, i), {}).update(extra)
    return out


def write_fair_datalist(
    path: str | os.PathLike,
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    group_names: Sequence[str],
    group_spec: GroupSpec | Mapping[str, Any] | None = None,
    *,
    label_names: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    path_keys: Sequence[str] = _DEFAULT_PATH_KEYS,
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write a datalist JSON atomically; absolute paths under ``path_keys`` are made relative to its folder.

    Every split key of :data:`SPLIT_KEYS` is written (empty when absent); ``metadata`` (case id -> raw
    attributes) is written as the top-level ``metadata`` block.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = path.parent.resolve()

    def rel(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [rel(x) for x in v]
        if _is_path_like(v) and os.path.isabs(v):
            return os.path.relpath(v, root)
        return v

    out: dict[str, Any] = {}
    for key in list(SPLIT_KEYS) + [k for k in splits if k not in SPLIT_KEYS]:
        out[key] = [{k: (rel(v) if k in path_keys else v) for k, v in it.items()} for it in splits.get(key, [])]
    out["group_names"] = [str(n) for n in group_names]
    if group_spec is not None:
        out["group_spec"] = group_spec.to_dict() if isinstance(group_spec, GroupSpec) else dict(group_spec)
    if label_names is not None:
        out["label_names"] = [str(n) for n in label_names]
    if extra:
        out.update(extra)
    if metadata:
        out["metadata"] = {str(k): dict(v) for k, v in metadata.items()}
    atomic_write_json(path, out, indent=1, default=_json_default)
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot write {type(o).__name__} {o!r} to a datalist.")
