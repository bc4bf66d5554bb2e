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

Builders: :func:`datalist_from_csv` (a CSV table), :func:`datalist_from_json` (a JSON list or a decathlon
file without groups) and :func:`build_fair_datalist` (in-memory records; used by the public-dataset adapters,
the ``python -m monai_fair datalist`` command and MONAI Label). Each refuses to write a datalist whose splits
are empty or lack a group (listing every offender), and never orders text labels alphabetically.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections import Counter
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
    "build_fair_datalist",
    "datalist_from_csv",
    "datalist_from_json",
    "encode_labels",
    "stratified_split",
    "check_split_coverage",
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


def _read_stripped_csv(path: Path, blank_missing: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """Header and rows (dicts) of a CSV file (UTF-8, BOM allowed) with header names and cells stripped.

    Args:
        path: an existing CSV file.
        blank_missing: a cell that is not a string (``None`` on a short row, the list of extra cells on a long
            one) becomes ``""``; False: it is kept as it is.
    """
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
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


def _cover(split: np.ndarray, keys: Sequence[np.ndarray], required: Sequence[int], seed: int) -> np.ndarray:
    """Move whole units between splits so that every value of each key array reaches every required split.

    For each key (in order: group, then label) and each value with at least ``len(required)`` units, a required
    split lacking that value receives one unit with that value from the split holding most of them, chosen at
    random (seeded) among the units whose move leaves every earlier coverage intact. Vectorised per value;
    the loop runs over (key, value, split) triples, of which there are a handful.
    """
    split = split.copy()
    rng = np.random.default_rng(seed + 7919)
    for kk, key in enumerate(keys):
        for value in np.unique(key):
            has = key == value
            if has.sum() < len(required):
                continue
            for s in required:
                if np.any(has & (split == s)):
                    continue
                counts = np.bincount(split[has], minlength=3)
                donor = int(np.argmax(counts))
                cand = np.flatnonzero(has & (split == donor))
                safe = np.ones(cand.size, dtype=bool)
                for other in keys[: kk + 1]:  # the donor keeps at least one unit of each value it covers
                    n_in_donor = Counter(other[split == donor].tolist())
                    safe &= np.asarray([n_in_donor[other[c]] > 1 for c in cand], dtype=bool)
                pool = cand[safe] if safe.any() else cand
                split[rng.choice(pool)] = s
    return split


def check_split_coverage(
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    group_names: Sequence[str],
    required: Sequence[str] = SPLIT_KEYS,
    source: str = "datalist",
    group_key: str = "group",
) -> None:
    """Raise one ``ValueError`` listing every required split that is empty or lacks a group present in the data.

    A group with items in some split but not in a required one cannot be measured (validation/test) or learned
    (training) there: rebuild with more cases, other split fractions, ``--unknown drop``, or merge groups.
    """
    present = sorted({int(it[group_key]) for items in splits.values() for it in items})
    problems = []
    for s in required:
        items = splits.get(s, [])
        if not items:
            problems.append(f"split '{s}' is empty")
            continue
        have = {int(it[group_key]) for it in items}
        lacking = [str(group_names[g]) for g in present if g not in have]
        if lacking:
            problems.append(f"split '{s}' has no case of group(s) {lacking}")
    if problems:
        sizes = {s: len(splits.get(s, [])) for s in SPLIT_KEYS}
        raise ValueError(
            f"{source}: {'; '.join(problems)} (split sizes {sizes}). Each of {list(required)} needs cases of every "
            "group: add cases, change the split fractions or the split column, drop or merge small groups "
            "(e.g. --unknown drop, coarser --age-bins)."
        )


def encode_labels(
    labels: Sequence[Any],
    *,
    positive_label: str | None = None,
    label_order: Sequence[str] | None = None,
    label_map: Mapping[str, int] | None = None,
    source: str = "labels",
    row_offset: int = 0,
) -> tuple[list[Any], list[str] | None]:
    """Turn raw classification labels into class indices, never guessing which text label is positive.

    * ``label_map`` (text -> index) or ``label_order`` (text of class 0, 1, ...): every value must be listed;
    * ``positive_label``: that value -> 1, every other value -> 0 (names ``["not <positive>", positive]``; with
      exactly two values the other one names class 0);
    * otherwise labels must be non-negative integers (``"1"``, ``1.0`` accepted); text labels are an error that
      lists the values found and says to pass ``--positive-label`` or ``--label-order``.
      Lists (multi-label vectors) are kept as they are.

    Returns:
        ``(indices, label_names or None)``.

    Raises:
        ValueError: naming the rows and values at fault.
    """
    texts = [str(v).strip() if v is not None else "" for v in labels]
    if label_map is not None or label_order is not None:
        lm = {str(k).strip(): int(v) for k, v in label_map.items()} if label_map is not None else None
        if lm is None:
            order = [str(x).strip() for x in label_order]  # type: ignore[union-attr]
            if len(set(order)) != len(order):
                raise ValueError(f"{source}: label order {order} lists a value twice.")
            lm = {t: k for k, t in enumerate(order)}
        bad = [(i + row_offset, labels[i]) for i, t in enumerate(texts) if t not in lm]
        if bad:
            raise ValueError(f"{source}: label(s) not in {sorted(lm, key=lm.get)}: {_rows(bad)}.")
        names = [""] * (max(lm.values()) + 1)
        for t, v in lm.items():
            names[v] = names[v] or t
        return [lm[t] for t in texts], names
    if positive_label is not None:
        pos = str(positive_label).strip()
        empty = [(i + row_offset, labels[i]) for i, t in enumerate(texts) if not t]
        if empty:
            raise ValueError(f"{source}: empty label(s): {_rows(empty)}.")
        values = set(texts)
        if pos not in values:
            raise ValueError(f"{source}: positive label {pos!r} is not among the labels {sorted(values)}.")
        others = sorted(values - {pos})
        neg = others[0] if len(others) == 1 else f"not {pos}"
        return [int(t == pos) for t in texts], [neg, pos]
    out: list[Any] = []
    bad = []
    for i, v in enumerate(labels):
        if isinstance(v, (list, tuple)):
            out.append(list(v))
            continue
        if isinstance(v, bool):
            out.append(int(v))
            continue
        try:
            f = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            bad.append((i + row_offset, v))
            continue
        if not f.is_integer() or f < 0:
            bad.append((i + row_offset, v))
            continue
        out.append(int(f))
    if bad:
        values = Counter(texts[r - row_offset] for r, _ in bad)
        hint = ", ".join(f"{t!r} x{n}" for t, n in sorted(values.items()))
        raise ValueError(
            f"{source}: labels must be class indices 0, 1, ... or text with an explicit meaning; found {hint} "
            f"({_rows(bad, 5)}). Say which value is positive (--positive-label / positive_label=) or give the class "
            "order (--label-order a,b / label_order=); text labels are never ordered alphabetically."
        )
    return out, None


def _rows(rows: Sequence[tuple[int, Any]], limit: int = 20) -> str:
    shown = ", ".join(f"row {r}: {v!r}" for r, v in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


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

    Raises:
        ValueError: listing every offending row (missing image/label, unknown attribute or split value) or
            every empty / incomplete split.
    """
    group_spec, ids = _encode_groups(records, group_spec, row_offset)
    _check_records(records, (image_key, label_key), row_offset, source)
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
    n_dropped = int((ids < 0).sum())
    if n_dropped:
        ex["dropped_unknown_attribute"] = n_dropped
    ex.setdefault("task", "segmentation" if mask else "classification")
    kept_ids = {items[i]["case_id"] for i in kept}
    metadata = {k: v for k, v in metadata.items() if k in kept_ids}
    return write_fair_datalist(
        out_path, splits, group_spec.group_names, group_spec, label_names=label_names, extra=ex, metadata=metadata
    )


def _assign_splits(
    gids: np.ndarray,
    labels: Sequence[Any],
    given: Sequence[Any] | None,
    rows: Sequence[int],
    cluster: Sequence[Any] | None,
    kept: np.ndarray,
    n_records: int,
    split_fractions: Sequence[float],
    seed: int,
    stratify_by_label: bool,
    required_splits: Sequence[str] | None,
    source: str,
) -> tuple[np.ndarray, list[str], dict[str, float]]:
    """Split index 0/1/2 of each kept record, the required splits, and what to record about the split.

    ``given`` split values are used as they are (a missing validation split is carved out of training, recorded
    as ``validation_from_training``); otherwise a seeded random split by ``split_fractions`` (see
    :func:`build_fair_datalist`). ``cluster`` covers every one of the ``n_records`` records; ``kept`` indexes
    the kept ones.
    """
    fractions = np.asarray(split_fractions, dtype=float)
    kept_cluster = None if cluster is None else [cluster[i] for i in kept]
    if given is None:
        required = [s for s, f in zip(SPLIT_KEYS, fractions) if f > 0]
        required = list(required_splits) if required_splits is not None else required
        required_idx = [SPLIT_KEYS.index(s) for s in required]
        split_idx = _random_split(
            gids, labels, kept_cluster, fractions, seed, stratify_by_label, required_idx, source, n_records, cluster
        )
        return split_idx, required, {}
    split_idx = _given_split_indices(given, rows, source)
    required = list(required_splits) if required_splits is not None else list(SPLIT_KEYS)
    if not np.any(split_idx == 1) and np.any(split_idx == 0) and "validation" in required:
        # given training/test only (e.g. FairSeg's folders): validation is carved out of training
        f_val = _carve_validation(split_idx, gids, labels, kept_cluster, fractions, seed, stratify_by_label, source)
        return split_idx, required, {"validation_from_training": float(f_val)}
    return split_idx, required, {}


def _encode_groups(
    records: Sequence[Mapping[str, Any]], group_spec: GroupSpec, row_offset: int
) -> tuple[GroupSpec, np.ndarray]:
    """``(spec, group ids)`` of ``records``: undeclared categories fitted; under ``"separate"``, the ``unknown``
    group only when some record lacks an attribute (else the spec is recorded with ``"drop"``); -1 = dropped."""
    if not all(a.is_binned or a.categories is not None for a in group_spec.attributes):
        group_spec = group_spec.fit(records)
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


def _given_split_indices(values: Sequence[Any], rows: Sequence[int], source: str) -> np.ndarray:
    """Split index 0/1/2 of each given split value (aliases such as ``train``/``val``); one ``ValueError`` naming
    every unknown value and its row."""
    sp, bad = [], []
    for value, row in zip(values, rows):
        key = _SPLIT_ALIASES.get(str(value).strip().lower())
        if key is None:
            bad.append(f"row {row}: {value!r}")
        sp.append(SPLIT_KEYS.index(key) if key else 0)
    if bad:
        raise ValueError(f"{source}: unknown split value(s) {'; '.join(bad)}; use train/val/test.")
    return np.asarray(sp, dtype=np.int64)


def _carve_validation(
    split_idx: np.ndarray,
    gids: np.ndarray,
    labels: Sequence[Any],
    cluster: Sequence[Any] | None,
    fractions: np.ndarray,
    seed: int,
    stratify_by_label: bool,
    source: str,
) -> float:
    """Move ``f_val / (f_train + f_val)`` of the training cases (in place, seeded, stratified as a random split) to
    validation when the given splits have none; return that fraction."""
    tr = np.flatnonzero(split_idx == 0)
    f_val = fractions[1] / max(fractions[0] + fractions[1], 1e-12)
    tr_cluster = None if cluster is None else [cluster[j] for j in tr]
    split_idx[tr] = _random_split(
        gids[tr],
        [labels[j] for j in tr],
        tr_cluster,
        (1.0 - f_val, f_val, 0.0),
        seed,
        stratify_by_label,
        [0, 1],
        source,
        len(tr),
        tr_cluster,
    )
    return f_val


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


def _random_split(
    gids: np.ndarray,
    labels: Sequence[Any],
    cluster: Sequence[Any] | None,
    fractions: Sequence[float],
    seed: int,
    stratify_by_label: bool,
    required: Sequence[int],
    source: str,
    n_records: int,
    full_cluster: Sequence[Any] | None,
) -> np.ndarray:
    """Seeded split of the kept records: units (clusters or records) stratified by group (and label), then
    :func:`_cover` so that small pilot sets still reach every required split with every group and label."""
    scalar = all(isinstance(v, (int, np.integer)) for v in labels)
    lab = np.asarray([str(v) for v in labels]) if scalar else np.zeros(len(labels), dtype="<U1")
    strata = gids.astype(str)
    if stratify_by_label and scalar:
        strata = np.char.add(np.char.add(strata, "_"), lab)
    if full_cluster is not None:
        if len(full_cluster) != n_records:
            raise ValueError(f"{source}: cluster has {len(full_cluster)} entries for {n_records} records.")
        cl = np.asarray([str(c) for c in cluster])  # type: ignore[union-attr]
        _, first, inv = np.unique(cl, return_index=True, return_inverse=True)
    else:
        first, inv = np.arange(gids.size), np.arange(gids.size)
    unit = stratified_split(strata[first], fractions, seed)
    unit = _cover(unit, [gids[first], lab[first]] if scalar else [gids[first]], required, seed)
    return unit[inv.reshape(-1)]


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
    positive_label: str | None = None,
    label_order: Sequence[str] | None = None,
    split_col: str | None = None,
    patient_col: str | None = None,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    delimiter: str = ",",
) -> Path:
    """Build a datalist JSON from a CSV table (one row per image).

    Args:
        csv_path: the table; the first line is the header.
        out_path: the datalist JSON to write (paths are stored relative to its folder).
        image_col / label_col: columns of the image path (relative to ``image_dir``, default the CSV's folder)
            and the label (a class; or a mask path when ``label_is_path``).
        group_spec: how groups are built from ``attribute_cols`` (default: the spec's attribute names).
        attribute_cols: raw attribute columns kept in the datalist's metadata.
        image_suffix: appended to the image value (e.g. ``".jpg"`` when the table holds ids).
        label_map / label_order / positive_label: how text labels become classes (see :func:`encode_labels`;
            text labels without one of them are an error, never ordered alphabetically).
        split_col: a column with train/val/test; otherwise a seeded split by ``split_fractions``.
        patient_col: a patient id column: a random split keeps each patient's images in one split; kept in the
            metadata as ``patient_id``.

    Raises:
        KeyError: a named column is missing (the message lists the header).
        ValueError: an unknown group attribute / label / split value (the message names the value and the CSV
            line), missing attributes under the "error" policy, ambiguous text labels, empty or incomplete splits.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"CSV not found: {csv_path}")
    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    attrs = list(attribute_cols) if attribute_cols is not None else group_spec.attribute_names
    needed = [image_col, label_col] + attrs + group_spec.attribute_names
    needed += [c for c in (split_col, patient_col) if c]
    missing = [c for c in dict.fromkeys(needed) if c not in header]
    if missing:
        raise KeyError(f"{csv_path}: column(s) {missing} not in the header {header}.")
    base = Path(image_dir) if image_dir is not None else csv_path.parent
    if label_is_path:
        labels, names = [r[label_col] for r in rows], None
    else:
        labels, names = encode_labels(
            [r[label_col] for r in rows],
            positive_label=positive_label,
            label_order=label_order,
            label_map=label_map,
            source=str(csv_path),
            row_offset=2,
        )
    binned = {a.name for a in group_spec.attributes if a.is_binned}
    records = []
    for r, lab in zip(rows, labels):
        rec: dict[str, Any] = {k: r[k] for k in dict.fromkeys(attrs + group_spec.attribute_names)}
        for k in binned:  # continuous attributes are stored as numbers when they parse
            if isinstance(rec.get(k), str) and _looks_numeric(rec[k]) and rec[k].strip().lower() != "nan":
                rec[k] = float(rec[k])
        rec["image"] = _abs_path(r[image_col], base, image_suffix) if r[image_col].strip() else ""
        rec["label"] = _abs_path(lab, base) if label_is_path and isinstance(lab, str) and lab.strip() else lab
        if patient_col:
            rec["patient_id"] = r[patient_col].strip()
        records.append(rec)
    return build_fair_datalist(
        records,
        out_path,
        group_spec,
        keep_keys=attrs + (["patient_id"] if patient_col else []),
        split=[r[split_col] for r in rows] if split_col else None,
        split_fractions=split_fractions,
        seed=seed,
        label_names=label_names if label_names is not None else names,
        row_offset=2,
        source=str(csv_path),
        cluster=[r["patient_id"] or f"row{i}" for i, r in enumerate(records)] if patient_col else None,
        cluster_key="patient_id",
        mask=label_is_path,
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
