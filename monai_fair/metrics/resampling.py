# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The one resampling core of the group metrics: seeded iid, stratified and cluster bootstrap replicates.

Two views of the same resampling scheme, both seeded by one ``numpy.random.Generator``:

* :func:`bootstrap_weights` yields per-sample multiplicities ``(b, N)`` (how often each sample is drawn), for
  statistics that need them (per-image means, weighted rank statistics);
* :func:`bootstrap_cell_counts` yields the replicate counts of *cells* (e.g. one cell per
  ``(group, label, prediction)``) without drawing ``N`` indices per replicate: under multinomial resampling of
  ``N`` samples the cell counts are exactly ``Multinomial(N, n_cell / N)`` (stratified: one multinomial per
  stratum), so a replicate costs ``O(#cells)`` instead of ``O(N)``.

Schemes (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 6 and 8; Davison & Hinkley,
*Bootstrap Methods and their Application*, 1997, sec. 3.8 for clustered data):

* ``"iid"``: ``N`` draws with replacement from all samples;
* ``"stratified"``: each stratum (the groups) of size ``n_s`` is resampled ``n_s`` times from its own members,
  so every replicate keeps the observed group sizes;
* ``"cluster"``: the ``U`` clusters (patients) are resampled with replacement and every drawn cluster brings all its
  samples (images); with strata, clusters are resampled within their stratum (each cluster must lie in one stratum).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from monai_fair.utils import check_group_ids

__all__ = [
    "BOOTSTRAP_SCHEMES",
    "bootstrap_scheme",
    "describe_bootstrap",
    "cluster_index",
    "unit_counts",
    "bootstrap_weights",
    "bootstrap_cell_counts",
]

BOOTSTRAP_SCHEMES = ("iid", "stratified", "cluster")


def bootstrap_scheme(stratified: bool, cluster: Any) -> str:
    """The scheme name used in ``ci_method`` strings: ``"cluster"`` when cluster ids are given (stratified by group
    too when ``stratified``), else ``"stratified"`` or ``"iid"``."""
    if cluster is not None:
        return "cluster, stratified" if stratified else "cluster"
    return "stratified" if stratified else "iid"


def describe_bootstrap(scheme: str, n_bootstrap: int) -> str:
    """``"percentile bootstrap, <scheme>, B=<n>"``: the CI method named in every result."""
    return f"percentile bootstrap, {scheme}, B={int(n_bootstrap)}"


def cluster_index(cluster: Any, n: int) -> tuple[np.ndarray, int]:
    """Cluster ids (any hashable numbers or strings, ``(N,)``) as ``0..U-1`` in ``numpy.unique`` order, and ``U``."""
    arr = cluster.detach().cpu().numpy() if isinstance(cluster, torch.Tensor) else np.asarray(cluster)
    arr = arr.reshape(-1)
    if arr.size != n:
        raise ValueError(f"`cluster` has {arr.size} entries, expected one per sample ({n}).")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError("`cluster` contains NaN: every sample needs a cluster (patient) id.")
    uniq, inv = np.unique(arr, return_inverse=True)
    return inv.reshape(-1).astype(np.int64), int(uniq.size)


def _unit_strata(strata: Any, n: int, cl: np.ndarray | None, num_units: int) -> np.ndarray | None:
    """Stratum of every resampling unit (a sample, or a cluster that must lie in one stratum)."""
    if strata is None:
        return None
    size = strata.numel() if isinstance(strata, torch.Tensor) else np.size(strata)
    if size != n:
        raise ValueError(f"strata has {size} entries, expected {n}.")
    s = check_group_ids(strata, name="strata").numpy()
    if cl is None:
        return s
    us = np.full(num_units, -1, dtype=np.int64)
    us[cl] = s
    if not np.array_equal(us[cl], s):
        raise ValueError("stratified cluster bootstrap needs every cluster (patient) to lie in one stratum (group).")
    return us


def unit_counts(
    rng: np.random.Generator,
    unit_strata: np.ndarray | None,
    num_units: int,
    b: int,
    unit_type: np.ndarray | None = None,
    num_types: int = 0,
) -> np.ndarray:
    """``(b, U)`` float64 draw counts of ``U`` units for ``b`` replicates.

    iid: replicate ``r`` draws ``rng.integers(0, U, U)`` (one ``(b, U)`` call per chunk). Stratified: the units are
    ordered by stratum and position ``j`` of stratum ``s`` draws ``start_s + floor(u * n_s)`` with ``u`` uniform.
    With ``unit_type`` (``(U,)`` ids ``0..num_types-1``) the draws are counted per type instead: ``(b, num_types)``,
    the sums of the unit counts over the units of each type (the same draws, summed).
    """
    if num_units == 0:
        return np.zeros((b, num_types if unit_type is not None else 0))
    if unit_strata is None:
        idx = rng.integers(0, num_units, size=(b, num_units))
    else:
        order = np.argsort(unit_strata, kind="stable")
        sizes = np.bincount(unit_strata)
        starts = np.cumsum(sizes) - sizes
        so = unit_strata[order]
        pos = starts[so] + np.minimum(np.floor(rng.random((b, num_units)) * sizes[so]), sizes[so] - 1).astype(np.int64)
        idx = order[pos]
    width = num_units
    if unit_type is not None:
        idx, width = unit_type[idx], num_types
    flat = (idx + (np.arange(b, dtype=np.int64) * width)[:, None]).reshape(-1)
    return np.bincount(flat, minlength=b * width).reshape(b, width).astype(np.float64)


def bootstrap_weights(
    n: int,
    n_bootstrap: int,
    seed: int,
    max_elements: int = 2**24,
    strata: Any = None,
    cluster: Any = None,
) -> Iterator[torch.Tensor]:
    """Yield chunks of per-sample bootstrap multiplicities ``(b, n)`` (float64) for ``n_bootstrap`` replicates.

    Replicates are drawn with ``numpy.random.default_rng(seed)`` (see :func:`unit_counts`). With ``strata``
    (``(n,)`` integer ids, e.g. the groups) the bootstrap is stratified; with ``cluster`` (``(n,)`` patient ids) the
    units are the clusters (numbered in ``numpy.unique`` order) and every sample gets its cluster's count. Chunks
    hold at most ``max_elements`` entries, so memory stays bounded.
    """
    rng = np.random.default_rng(int(seed))
    cl, num_units = cluster_index(cluster, n) if cluster is not None else (None, n)
    us = _unit_strata(strata, n, cl, num_units)
    chunk = max(1, min(int(n_bootstrap), max_elements // max(n, num_units, 1)))
    done = 0
    while done < n_bootstrap:
        b = min(chunk, n_bootstrap - done)
        w = unit_counts(rng, us, num_units, b)
        done += b
        yield torch.from_numpy(w if cl is None else w[:, cl])


def _multinomial_cells(
    rng: np.random.Generator, counts: np.ndarray, cell_stratum: np.ndarray | None, b: int
) -> np.ndarray:
    """``(b, K)`` multinomial replicate counts of ``K`` cells with observed ``counts`` (per stratum if given)."""
    total = counts.sum()
    if total == 0:
        return np.zeros((b, counts.size))
    if cell_stratum is None:
        return rng.multinomial(int(total), counts / total, size=b).astype(np.float64)
    num_s = int(cell_stratum.max()) + 1
    n_s = np.bincount(cell_stratum, weights=counts, minlength=num_s)
    pv = np.zeros((num_s, counts.size))
    pv[cell_stratum, np.arange(counts.size)] = counts / np.maximum(n_s[cell_stratum], 1)
    pv[n_s == 0, 0] = 1.0  # empty strata draw 0 samples; any valid distribution will do
    out = rng.multinomial(n_s.astype(np.int64), pv, size=(b, num_s))
    return out.sum(1).astype(np.float64)


def bootstrap_cell_counts(
    cell: Any,
    num_cells: int,
    n_bootstrap: int,
    seed: int,
    *,
    cell_stratum: Any = None,
    cluster: Any = None,
    max_elements: int = 2**24,
) -> Iterator[torch.Tensor]:
    """Yield chunks ``(b, num_cells)`` (float64) of bootstrap replicate counts of the cells ``cell (N,)``.

    Exactly the counts that resampling the samples would give, without drawing per-sample indices:

    * no cluster, no ``cell_stratum``: ``Multinomial(N, n_c / N)`` per replicate (iid);
    * ``cell_stratum`` (``(num_cells,)`` stratum of each cell; strata = groups, cells nested in them): one
      multinomial per stratum with its own size (stratified);
    * ``cluster``: clusters are drawn as in :func:`bootstrap_weights` (same seed, same draws; stratified by the
      samples' cell strata when ``cell_stratum`` is given) and each drawn cluster adds its cell counts.
    """
    rng = np.random.default_rng(int(seed))
    c = cell.detach().cpu().numpy() if isinstance(cell, torch.Tensor) else np.asarray(cell)
    c = c.reshape(-1).astype(np.int64)
    cs = None
    if cell_stratum is not None:
        cs = np.asarray(cell_stratum, dtype=np.int64).reshape(-1)
    if cluster is None:
        counts = np.bincount(c, minlength=num_cells).astype(np.float64)
        per = max(1, num_cells * (1 if cs is None else int(cs.max()) + 1))
        chunk = max(1, min(int(n_bootstrap), max_elements // per))
        done = 0
        while done < n_bootstrap:
            b = min(chunk, n_bootstrap - done)
            done += b
            yield torch.from_numpy(_multinomial_cells(rng, counts, cs, b))
        return
    cl, num_units = cluster_index(cluster, c.size)
    us = _unit_strata(cs[c], c.size, cl, num_units) if cs is not None else None
    typed = _cluster_types(cl, c, num_units, num_cells)
    if typed is None:  # nearly every cluster its own type: the (cell x cluster) count matrix, sparse
        pair, pair_n = np.unique(cl * num_cells + c, return_counts=True)
        index = torch.from_numpy(np.stack([pair % num_cells, pair // num_cells]))
        values = torch.from_numpy(pair_n.astype(np.float64))
        counts = torch.sparse_coo_tensor(index, values, (num_cells, num_units), check_invariants=True).coalesce()
        with warnings.catch_warnings():  # "sparse CSR support is in beta": CSR @ dense is 2x faster than COO here
            warnings.simplefilter("ignore", UserWarning)
            counts = counts.to_sparse_csr()
        chunk = max(1, min(int(n_bootstrap), max_elements // max(num_units, pair.size, 1)))
        done = 0
        while done < n_bootstrap:
            b = min(chunk, n_bootstrap - done)
            done += b
            w = torch.from_numpy(unit_counts(rng, us, num_units, b))
            yield (counts @ w.t().contiguous()).t()  # integer sums: exact in float64
        return
    unit_type, profiles = typed
    chunk = max(1, min(int(n_bootstrap), max_elements // max(num_units, profiles.numel(), 1)))
    done = 0
    while done < n_bootstrap:
        b = min(chunk, n_bootstrap - done)
        done += b
        yield torch.from_numpy(unit_counts(rng, us, num_units, b, unit_type, profiles.shape[0])) @ profiles


def _cluster_types(
    cl: np.ndarray, c: np.ndarray, num_units: int, num_cells: int
) -> tuple[np.ndarray, torch.Tensor] | None:
    """Clusters with the same cell counts are one *type*: ``(type of every cluster (U,), cell counts of every type
    (T, K))``, or ``None`` when nearly every cluster is its own type (then adding the drawn clusters' pairs is
    cheaper).

    A replicate's cell counts are then ``sum_t (draws of type t) counts_t``: the numbers that adding every drawn
    cluster's counts gives (integer sums, exact in float64), from the same draws, in O(b (U + T K)) instead of
    O(b * (cluster, cell) pairs); a few hundred types usually describe 10^5 patients. A cluster's type is found by a
    random linear hash of its (cell, count) pairs, then checked pair by pair (exact).
    """
    pair, pair_n = np.unique(cl * num_cells + c, return_counts=True)
    unit, cell = pair // num_cells, pair % num_cells
    coef = np.random.default_rng(0).integers(1, 2**63, num_cells, dtype=np.uint64)
    starts = np.flatnonzero(np.r_[True, unit[1:] != unit[:-1]])  # pairs are sorted by cluster; each has one
    key = np.add.reduceat(coef[cell] * pair_n.astype(np.uint64), starts)  # wraps modulo 2^64
    _, first, unit_type = np.unique(key, return_index=True, return_inverse=True)
    unit_type = unit_type.reshape(-1).astype(np.int64)
    n_types = first.size
    if n_types * num_cells > 2 * pair.size:
        return None
    rep = first[unit_type[unit]] == unit  # the pairs of each type's first cluster give the type's counts
    profiles = np.zeros((n_types, num_cells), dtype=np.int64)
    profiles[unit_type[unit[rep]], cell[rep]] = pair_n[rep]
    n_pairs = np.bincount(unit, minlength=num_units)
    same = np.array_equal(n_pairs, n_pairs[first][unit_type]) and np.array_equal(
        profiles[unit_type[unit], cell], pair_n
    )
    if not same:  # a hash collision (probability ~ U^2 / 2^64): no typing
        return None
    return unit_type, torch.from_numpy(profiles.astype(np.float64))
