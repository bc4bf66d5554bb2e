# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Reading and writing monai-fair datalists (decathlon JSON with group ids, see ``docs/design.md``).

A datalist file::

    {"training": [...], "validation": [...], "test": [...],
     "group_names": ["F", "M"], "group_spec": {...}, "label_names": [...], "label_bias": {...}}

Every item has ``image``, ``label`` and the integer ``group`` (0..K-1, K = ``len(group_names)``) and may keep
the raw attributes it was built from. Paths are relative to the datalist's folder. The file is readable by
``monai.data.load_decathlon_datalist`` as well as by :func:`load_fair_datalist`, which also validates groups.

Builders: :func:`datalist_from_csv` (a CSV table), :func:`datalist_from_json` (a JSON list or a decathlon
file without groups) and :func:`build_fair_datalist` (in-memory records; used by the public-dataset adapters).
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

__all__ = [
    "SPLIT_KEYS",
    "load_fair_datalist",
    "write_fair_datalist",
    "build_fair_datalist",
    "datalist_from_csv",
    "datalist_from_json",
    "stratified_split",
]

SPLIT_KEYS = ("training", "validation", "test")
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
_DEFAULT_PATH_KEYS = ("image", "label")


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


def load_fair_datalist(
    path: str | os.PathLike,
    split: str = "training",
    *,
    group_key: str = "group",
    path_keys: Sequence[str] = _DEFAULT_PATH_KEYS,
    base_dir: str | os.PathLike | None = None,
    check_files: bool = False,
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

    Returns:
        ``(items, group_names)``: copies of the split's items with absolute paths, and the group names.

    Raises:
        FileNotFoundError / ValueError / KeyError: naming the file, the split, the item index and the key at fault.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"datalist not found: {path}")
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"datalist {path} is not valid JSON: {e}") from e
    if not isinstance(data, Mapping):
        raise ValueError(f"datalist {path} must be a JSON object with 'training'/'validation'/'test' lists.")
    if split not in data:
        lists = sorted(k for k, v in data.items() if isinstance(v, list))
        raise KeyError(f"datalist {path} has no split {split!r}; it has {lists}.")
    names = data.get("group_names")
    if not isinstance(names, list) or not names:
        raise ValueError(f"datalist {path} has no non-empty 'group_names' list (see monai_fair docs/design.md).")
    k = len(names)
    base = Path(base_dir) if base_dir is not None else path.parent
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
        for key in path_keys:
            if key in d:
                d[key] = _resolve(d[key], base)
                if check_files:
                    for p in d[key] if isinstance(d[key], list) else [d[key]]:
                        if _is_path_like(p) and not os.path.exists(p):
                            raise FileNotFoundError(f"datalist {path}, {split}[{i}]['{key}']: {p} does not exist.")
        items.append(d)
    return items, [str(n) for n in names]


def write_fair_datalist(
    path: str | os.PathLike,
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    group_names: Sequence[str],
    group_spec: GroupSpec | Mapping[str, Any] | None = None,
    *,
    label_names: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    path_keys: Sequence[str] = _DEFAULT_PATH_KEYS,
) -> Path:
    """Write a datalist JSON; absolute paths under ``path_keys`` are made relative to its folder.

    Every split key of :data:`SPLIT_KEYS` is written (empty when absent).
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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(out, indent=1, default=_json_default))
    os.replace(tmp, path)
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot write {type(o).__name__} {o!r} to a datalist.")


def stratified_split(strata: np.ndarray, fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0) -> np.ndarray:
    """Split index 0/1/2 (training/validation/test) per sample, each stratum split by ``fractions``.

    Within a stratum of size ``n`` the first ``round(f_0 n)`` shuffled samples go to training, the next
    ``round((f_0 + f_1) n) - round(f_0 n)`` to validation and the rest to test.
    """
    f = np.asarray(fractions, dtype=float)
    if f.size != 3 or np.any(f < 0) or not np.isclose(f.sum(), 1.0):
        raise ValueError(f"split fractions must be 3 non-negative numbers summing to 1, got {list(fractions)}.")
    strata = np.asarray(strata)
    rng = np.random.default_rng(seed)
    _, inv = np.unique(strata, return_inverse=True)
    order = np.lexsort((rng.random(strata.size), inv))  # shuffled within each stratum
    sorted_inv = inv[order]
    starts = np.searchsorted(sorted_inv, sorted_inv, side="left")
    counts = np.bincount(inv)[sorted_inv]
    rank = np.arange(strata.size) - starts
    c0 = np.round(f[0] * counts)
    c1 = np.round((f[0] + f[1]) * counts)
    split_sorted = np.where(rank < c0, 0, np.where(rank < c1, 1, 2))
    split = np.empty(strata.size, dtype=np.int64)
    split[order] = split_sorted
    return split


def _encode_labels(
    labels: Sequence[Any], label_map: Mapping[str, int] | None, row_offset: int, source: str, infer: bool = True
) -> tuple[list[Any], list[str] | None]:
    """Map raw labels to ints with ``label_map``; numeric labels stay numbers; other strings become class ids
    in sorted order when ``infer`` (else they are kept, e.g. mask paths)."""
    if label_map is not None:
        lm = {str(k): int(v) for k, v in label_map.items()}
        out = []
        for i, v in enumerate(labels):
            key = str(v).strip()
            if key not in lm:
                raise ValueError(f"{source}: row {i + row_offset}: label {v!r} not in label_map {sorted(lm)}.")
            out.append(lm[key])
        names: list[str] = [""] * (max(lm.values()) + 1)
        for k, v in lm.items():
            names[v] = names[v] or k
        return out, names
    out = []
    for v in labels:
        if isinstance(v, str) and _looks_numeric(v):
            fv = float(v)
            out.append(int(fv) if fv.is_integer() else fv)
        else:
            out.append(v)
    texts = sorted({str(v).strip() for v in out if isinstance(v, str)})
    if infer and texts:  # class names: sorted unique values -> 0..C-1
        if len(texts) != len(out) and any(not isinstance(v, str) for v in out):
            bad = next(i for i, v in enumerate(out) if not isinstance(v, str))
            raise ValueError(f"{source}: row {bad + row_offset}: mixed numeric and text labels ({labels[bad]!r}).")
        lm = {t: k for k, t in enumerate(texts)}
        return [lm[str(v).strip()] for v in out], texts
    return out, None


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
) -> Path:
    """Write a datalist from in-memory records (absolute or out-relative image/label paths).

    Args:
        records: one mapping per case with ``image_key``, ``label_key`` and the raw attributes of ``group_spec``.
        out_path: the datalist JSON to write.
        group_spec: how groups are built (undeclared categories are inferred with ``GroupSpec.fit``); its
            unknown policy decides about missing attributes.
        image_key / label_key: record keys, written as ``image`` / ``label``.
        keep_keys: other record keys to keep in the items (default: the attributes of the spec).
        split: per record ``"training"``/``"validation"``/``"test"`` (aliases such as ``train``/``val``), or
            ``None`` for a seeded random split by ``split_fractions`` stratified by group (and label).
        label_names: written as ``label_names``.
        extra: more top-level keys (e.g. ``source``).
        row_offset, source: for error messages (row numbers and file name).
        cluster: per record a patient/lesion id; a random split then keeps every cluster in one split (no
            leakage between splits), stratified by the group (and label) of the cluster's first record.
    """
    if not all(a.is_binned or a.categories is not None for a in group_spec.attributes):
        group_spec = group_spec.fit(records)
    ids = group_spec.encode(records, row_offset=row_offset)
    keep = list(keep_keys) if keep_keys is not None else group_spec.attribute_names
    items = []
    for i, r in enumerate(records):
        for key in (image_key, label_key):
            if key not in r or r[key] is None or (isinstance(r[key], str) and not r[key].strip()):
                raise ValueError(f"{source}: row {i + row_offset} has no {key!r} value.")
        it: dict[str, Any] = {"image": r[image_key], "label": r[label_key], "group": int(ids[i])}
        for k in keep:
            if k in r and k not in it:
                v = r[k]
                it[k] = None if isinstance(v, float) and math.isnan(v) else v
        items.append(it)
    kept = np.flatnonzero(ids >= 0)
    if split is not None:
        sp = []
        for i in kept:
            key = _SPLIT_ALIASES.get(str(split[i]).strip().lower())
            if key is None:
                raise ValueError(f"{source}: row {i + row_offset}: unknown split {split[i]!r}; use train/val/test.")
            sp.append(SPLIT_KEYS.index(key))
        split_idx = np.asarray(sp, dtype=np.int64)
    else:
        strata = ids[kept].astype(str)
        labels = [items[i]["label"] for i in kept]
        if stratify_by_label and all(isinstance(v, (int, np.integer)) for v in labels):
            strata = np.char.add(np.char.add(strata, "_"), np.asarray(labels).astype(str))
        if cluster is not None:
            if len(cluster) != len(records):
                raise ValueError(f"{source}: cluster has {len(cluster)} entries for {len(records)} records.")
            cl = np.asarray([str(cluster[i]) for i in kept])
            _, first, inv = np.unique(cl, return_index=True, return_inverse=True)
            split_idx = stratified_split(strata[first], split_fractions, seed)[inv.reshape(-1)]
        else:
            split_idx = stratified_split(strata, split_fractions, seed)
    splits: dict[str, list[dict[str, Any]]] = {k: [] for k in SPLIT_KEYS}
    for j, i in enumerate(kept):
        splits[SPLIT_KEYS[int(split_idx[j])]].append(items[i])
    ex = dict(extra or {})
    n_dropped = int((ids < 0).sum())
    if n_dropped:
        ex["dropped_unknown_attribute"] = n_dropped
    return write_fair_datalist(out_path, splits, group_spec.group_names, group_spec, label_names=label_names, extra=ex)


def _abs_path(value: str, base: Path, suffix: str = "") -> str:
    value = value.strip() + suffix
    return value if os.path.isabs(value) else str((base / value).resolve())


def datalist_from_csv(
    csv_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    image_col: str,
    label_col: str,
    group_spec: GroupSpec,
    attribute_cols: Sequence[str] | None = None,
    image_dir: str | os.PathLike | None = None,
    image_suffix: str = "",
    label_is_path: bool = False,
    label_map: Mapping[str, int] | None = None,
    label_names: Sequence[str] | None = None,
    split_col: str | None = None,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    delimiter: str = ",",
) -> Path:
    """Build a datalist JSON from a CSV table (one row per image).

    Args:
        csv_path: the table; the first line is the header.
        out_path: the datalist JSON to write (paths are stored relative to its folder).
        image_col / label_col: columns of the image path (relative to ``image_dir``, default the CSV's folder)
            and the label (a class, mapped by ``label_map``; or a mask path when ``label_is_path``).
        group_spec: how groups are built from ``attribute_cols`` (default: the spec's attribute names).
        attribute_cols: raw attribute columns kept in the items.
        image_suffix: appended to the image value (e.g. ``".jpg"`` when the table holds ids).
        split_col: a column with train/val/test; otherwise a seeded split by ``split_fractions``.

    Raises:
        KeyError: a named column is missing (the message lists the header).
        ValueError: an unknown group attribute / label / split value (the message names the value and the CSV
            line), or missing attributes under the "error" policy.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"CSV not found: {csv_path}")
    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    attrs = list(attribute_cols) if attribute_cols is not None else group_spec.attribute_names
    needed = [image_col, label_col] + attrs + group_spec.attribute_names + ([split_col] if split_col else [])
    missing = [c for c in dict.fromkeys(needed) if c not in header]
    if missing:
        raise KeyError(f"{csv_path}: column(s) {missing} not in the header {header}.")
    base = Path(image_dir) if image_dir is not None else csv_path.parent
    labels, names = _encode_labels(
        [r[label_col] for r in rows], None if label_is_path else label_map, 2, str(csv_path), infer=not label_is_path
    )
    binned = {a.name for a in group_spec.attributes if a.is_binned}
    records = []
    for r, lab in zip(rows, labels):
        rec = {k: r[k] for k in dict.fromkeys(attrs + group_spec.attribute_names)}
        for k in binned:  # continuous attributes are stored as numbers when they parse
            if isinstance(rec.get(k), str) and _looks_numeric(rec[k]) and rec[k].strip().lower() != "nan":
                rec[k] = float(rec[k])
        rec["image"] = _abs_path(r[image_col], base, image_suffix) if r[image_col].strip() else ""
        rec["label"] = _abs_path(lab, base) if label_is_path and isinstance(lab, str) and lab.strip() else lab
        records.append(rec)
    return build_fair_datalist(
        records,
        out_path,
        group_spec,
        keep_keys=attrs,
        split=[r[split_col] for r in rows] if split_col else None,
        split_fractions=split_fractions,
        seed=seed,
        label_names=label_names if label_names is not None else names,
        row_offset=2,
        source=str(csv_path),
        extra={"source": {"type": "csv", "file": csv_path.name}},
    )


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
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> Path:
    """Build a datalist JSON from a JSON list of records, or from a decathlon file without group ids.

    A decathlon input keeps its splits (``training``/``validation``/``test``; a file with only ``training``
    is split by ``split_fractions``); a plain list is split by ``split_fractions``. Relative paths are taken
    relative to the input file's folder. Errors name the split and index (``row`` = 0-based index).
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
    labels, names = _encode_labels(
        [r.get(label_key) for r in records],
        None if label_is_path else label_map,
        0,
        str(json_path),
        infer=not label_is_path,
    )
    for r, lab in zip(records, labels):
        r[label_key] = lab
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
        extra={"source": {"type": "json", "file": json_path.name}},
    )
