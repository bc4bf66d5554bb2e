# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Splitting a datalist's cases into training/validation/test: seeded, stratified by group (and label), by patient.

* :func:`stratified_split` - split index per sample, each stratum split by the fractions;
* :func:`check_split_coverage` - every required split non-empty and holding every group (one error lists all);
* the split policy of :func:`monai_fair.data.build_fair_datalist`: given splits (aliases such as ``train``/``val``,
  validation carved out of training when absent, a patient in two given splits refused unless allowed) or a seeded
  split of units (patients/lesions), adjusted so that small pilot sets still reach every split with every group.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from monai_fair.data.datalist import _SPLIT_ALIASES, SPLIT_KEYS

__all__ = ["stratified_split", "check_split_coverage"]


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


def _check_cluster_overlap(
    split: Sequence[Any] | None,
    cluster: Sequence[Any] | None,
    ids: np.ndarray,
    allow: bool,
    cluster_key: str,
    source: str,
) -> int:
    """With given splits and clusters: the number of clusters in several splits; an error unless ``allow``."""
    if split is None or cluster is None:
        return 0
    seen: dict[str, set[str]] = {}
    for s, c, g in zip(split, cluster, ids):
        if g >= 0:
            seen.setdefault(str(c), set()).add(_SPLIT_ALIASES.get(str(s).strip().lower(), str(s)))
    multi = sorted(c for c, ss in seen.items() if len(ss) > 1)
    if multi and not allow:
        shown = ", ".join(f"{c} ({'/'.join(sorted(seen[c]))})" for c in multi[:10])
        more = f" and {len(multi) - 10} more" if len(multi) > 10 else ""
        raise ValueError(
            f"{source}: {len(multi)} {cluster_key}(s) in more than one of the given splits: {shown}{more}. A "
            "patient's images in training and test leak into the test figures: fix the split column, or accept it "
            "explicitly (--allow-patient-overlap / allow_patient_overlap=True)."
        )
    return len(multi)


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
