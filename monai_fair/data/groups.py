# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Encoding sensitive attributes into integer group ids (the monai-fair group convention).

A :class:`GroupSpec` says how the group id of a datalist item is built from its raw attributes:

* one categorical attribute (``sex`` -> ``F``/``M``),
* one continuous attribute cut into bins (``age`` -> ``<40``/``40-60``/``>=60``),
* the intersection of several of them (``sex x age`` -> ``F|<40``, ``F|40-60``, ...).

Group ids are *stable*: they follow the declared order of the categories (row-major over the attributes of an
intersection, the last attribute varying fastest), never the order of the rows. For ``K_1 x ... x K_m``
categories the id of the combination ``(c_1, ..., c_m)`` is ``sum_j c_j * prod_{l>j} K_l``.
An intersection may keep only some combinations (``cells``, e.g. those that hold cases): ids then follow the kept
combinations in the same order, and a record in a combination not kept is an error naming the row.

Missing values (``None``, ``""``, NaN, and the strings of ``unknown_values``, matched case-insensitively) follow
the ``unknown`` policy:

* ``"error"`` (default): raise a ``ValueError`` that lists the offending rows and attribute keys,
* ``"drop"``: leave those rows out,
* ``"separate"``: give them a group of their own, named ``"unknown"``, with the last id ``K``.

A value that is present but is not one of the declared categories (after ``aliases``) is always an error that
names the value and the row, whatever the policy: unknown labels are never merged silently into a group.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["GroupAttribute", "GroupSpec", "UNKNOWN_GROUP_NAME", "DEFAULT_UNKNOWN_VALUES", "is_missing_value"]

UNKNOWN_GROUP_NAME = "unknown"
DEFAULT_UNKNOWN_VALUES: tuple[str, ...] = ("", "unknown", "nan", "na", "n/a", "none", "null", "missing")
UNKNOWN_POLICIES = ("error", "drop", "separate")


def is_missing_value(value: Any, unknown_values: Iterable[str] = DEFAULT_UNKNOWN_VALUES) -> bool:
    """Whether ``value`` is missing: ``None``, a float NaN, or (stripped, lower-case) one of ``unknown_values``."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        return value.strip().lower() in {str(u).strip().lower() for u in unknown_values}
    return False


def _format_rows(rows: Sequence[tuple[int, str, Any]], limit: int = 20) -> str:
    shown = ", ".join(f"row {r} ({k}={v!r})" for r, k, v in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return shown + more


def _bin_label(lo: float, hi: float) -> str:
    def fmt(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"

    if math.isinf(lo) and lo < 0:
        return f"<{fmt(hi)}"
    if math.isinf(hi):
        return f">={fmt(lo)}"
    return f"{fmt(lo)}-{fmt(hi)}"


@dataclass
class GroupAttribute:
    """One attribute of a :class:`GroupSpec`.

    Args:
        name: key of the raw attribute in a datalist item / CSV column (e.g. ``"sex"``).
        categories: for a categorical attribute, the canonical values in id order (e.g. ``["F", "M"]``);
            ``None`` means "infer sorted unique values" with :meth:`GroupSpec.fit`.
        bins: for a continuous attribute, increasing bin edges ``[e_0, ..., e_B]``; a value ``v`` falls in bin
            ``b`` when ``e_b <= v < e_{b+1}``. Use ``float("inf")``/``-inf`` for open ends. Values outside
            ``[e_0, e_B)`` are an error.
        labels: names of the bins (default ``"<40"``, ``"40-60"``, ``">=60"`` style from the edges).
        aliases: raw value -> canonical category (e.g. ``{"male": "M", "female": "F"}``); matched exactly, then
            case-insensitively after ``str().strip()``.
    """

    name: str
    categories: list[str] | None = None
    bins: list[float] | None = None
    labels: list[str] | None = None
    aliases: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.bins is not None:
            if self.categories is not None:
                raise ValueError(f"attribute '{self.name}': give either categories or bins, not both.")
            edges = [float(e) for e in self.bins]
            if len(edges) < 2 or any(b <= a for a, b in zip(edges[:-1], edges[1:])):
                raise ValueError(f"attribute '{self.name}': bins must be >= 2 strictly increasing edges, got {edges}.")
            self.bins = edges
            if self.labels is None:
                self.labels = [_bin_label(a, b) for a, b in zip(edges[:-1], edges[1:])]
            elif len(self.labels) != len(edges) - 1:
                raise ValueError(
                    f"attribute '{self.name}': {len(edges) - 1} bins need {len(edges) - 1} labels, got {self.labels}."
                )
            self.labels = [str(x) for x in self.labels]
        elif self.labels is not None:
            raise ValueError(f"attribute '{self.name}': labels only apply to binned attributes.")
        if self.categories is not None:
            self.categories = [str(c) for c in self.categories]
            if len(set(self.categories)) != len(self.categories):
                raise ValueError(f"attribute '{self.name}': duplicate categories in {self.categories}.")
        self.aliases = {str(k): str(v) for k, v in dict(self.aliases).items()}
        self._lower_aliases = {k.strip().lower(): v for k, v in self.aliases.items()}

    @property
    def is_binned(self) -> bool:
        return self.bins is not None

    @property
    def names(self) -> list[str]:
        """Names of this attribute's categories / bins in id order."""
        out = self.labels if self.is_binned else self.categories
        if out is None:
            raise ValueError(f"attribute '{self.name}' has no categories yet; call GroupSpec.fit(items) first.")
        return list(out)

    def canonical(self, value: Any) -> str:
        """Map a raw categorical value through ``aliases`` to its canonical string."""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value)
        if text in self.aliases:
            return self.aliases[text]
        key = text.strip().lower()
        if key in self._lower_aliases:
            return self._lower_aliases[key]
        if self.categories is not None:
            for c in self.categories:
                if c.strip().lower() == key:
                    return c
        return text.strip()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.is_binned:
            out["bins"] = [e if math.isfinite(e) else ("inf" if e > 0 else "-inf") for e in self.bins]  # type: ignore
            out["labels"] = list(self.labels or [])
        else:
            out["categories"] = None if self.categories is None else list(self.categories)
        if self.aliases:
            out["aliases"] = dict(self.aliases)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GroupAttribute:
        bins = d.get("bins")
        if bins is not None:
            bins = [float(e) for e in bins]
        return cls(
            name=d["name"],
            categories=d.get("categories"),
            bins=bins,
            labels=d.get("labels"),
            aliases=dict(d.get("aliases", {})),
        )


class GroupSpec:
    """How datalist items are mapped to integer group ids ``0..K-1`` (see the module docstring).

    Args:
        attributes: one or more :class:`GroupAttribute` (or their dicts); several make an intersection.
        unknown: missing-value policy, ``"error"`` (default), ``"drop"`` or ``"separate"``.
        unknown_values: strings treated as missing (case-insensitive), besides ``None`` and NaN.
        separator: joins the category names of an intersection into a group name (``"F|<40"``).
        cells: for an intersection, the combinations kept as groups (their names, e.g. ``["F|ACME", "M|Globex"]``),
            in the declared order; ``None`` keeps every combination. The datalist builders keep only combinations
            that hold cases (:meth:`with_cells`), so 42 files over manufacturer x model x institution give a few
            groups, not 641; a record in a combination that is not kept is an error naming the row.

    Example::

        spec = GroupSpec.intersection(
            GroupSpec.categorical("sex", ["F", "M"], aliases={"female": "F", "male": "M"}),
            GroupSpec.binned("age", [0, 40, 60, float("inf")]),
        )
        items, names = spec.assign(items)      # items get "group"; names == ["F|<40", ..., "M|>=60"]
    """

    def __init__(
        self,
        attributes: Sequence[GroupAttribute | Mapping[str, Any]],
        unknown: str = "error",
        unknown_values: Sequence[str] = DEFAULT_UNKNOWN_VALUES,
        separator: str = "|",
        cells: Sequence[str] | None = None,
    ) -> None:
        if isinstance(attributes, (GroupAttribute, Mapping)):
            attributes = [attributes]  # type: ignore[list-item]
        self.attributes: list[GroupAttribute] = [
            a if isinstance(a, GroupAttribute) else GroupAttribute.from_dict(a) for a in attributes
        ]
        if not self.attributes:
            raise ValueError("GroupSpec needs at least one attribute.")
        names = [a.name for a in self.attributes]
        if len(set(names)) != len(names):
            raise ValueError(f"GroupSpec: duplicate attribute names {names}.")
        if unknown not in UNKNOWN_POLICIES:
            raise ValueError(f"GroupSpec: unknown policy must be one of {UNKNOWN_POLICIES}, got {unknown!r}.")
        self.unknown = unknown
        self.unknown_values = tuple(str(u) for u in unknown_values)
        self.separator = separator
        self.cells = None if cells is None else [str(c) for c in cells]
        if self.cells is not None:
            known = set(self._product_names()) if all(a.is_binned or a.categories for a in self.attributes) else None
            unknown_cells = [c for c in self.cells if known is not None and c not in known]
            if unknown_cells or len(set(self.cells)) != len(self.cells):
                raise ValueError(f"GroupSpec: cells {unknown_cells or self.cells} are not distinct combinations.")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def categorical(
        cls,
        name: str,
        categories: Sequence[str] | None = None,
        aliases: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> GroupSpec:
        """Groups from one categorical attribute (``categories=None``: infer them with :meth:`fit`)."""
        cat = None if categories is None else list(categories)
        return cls([GroupAttribute(name, categories=cat, aliases=dict(aliases or {}))], **kwargs)

    @classmethod
    def binned(cls, name: str, bins: Sequence[float], labels: Sequence[str] | None = None, **kwargs: Any) -> GroupSpec:
        """Groups from one continuous attribute cut at ``bins`` (``e_b <= v < e_{b+1}``)."""
        lab = None if labels is None else list(labels)
        return cls([GroupAttribute(name, bins=list(bins), labels=lab)], **kwargs)

    @classmethod
    def intersection(cls, *specs: GroupSpec, **kwargs: Any) -> GroupSpec:
        """The intersection (cartesian product) of the attributes of ``specs``; ``kwargs`` set policy etc."""
        attrs = [a for s in specs for a in s.attributes]
        if "unknown" not in kwargs and specs:
            kwargs["unknown"] = specs[0].unknown
        return cls(attrs, **kwargs)

    # ------------------------------------------------------------------ names
    @property
    def attribute_names(self) -> list[str]:
        return [a.name for a in self.attributes]

    @property
    def _sizes(self) -> list[int]:
        return [len(a.names) for a in self.attributes]

    def _product_names(self) -> list[str]:
        """Names of every combination of the attributes' categories, in product (row-major) order."""
        per_attr = [a.names for a in self.attributes]
        grids = np.meshgrid(*[np.arange(len(n)) for n in per_attr], indexing="ij")
        flat = [g.reshape(-1) for g in grids]
        return [
            self.separator.join(per_attr[j][int(flat[j][i])] for j in range(len(per_attr))) for i in range(flat[0].size)
        ]

    @property
    def group_names(self) -> list[str]:
        """Group names in id order (with ``"unknown"`` last under the ``"separate"`` policy)."""
        names = self._product_names() if self.cells is None else list(self.cells)
        if self.unknown == "separate":
            names.append(UNKNOWN_GROUP_NAME)
        return names

    @property
    def num_groups(self) -> int:
        n = int(np.prod(self._sizes)) if self.cells is None else len(self.cells)
        return n + (1 if self.unknown == "separate" else 0)

    def with_cells(self, product_ids: Sequence[int]) -> GroupSpec:
        """A copy keeping only the combinations whose product ids (ids of this spec without ``cells``) are given."""
        if self.cells is not None:
            raise ValueError("GroupSpec.with_cells: the spec already keeps a subset of its combinations.")
        names = self._product_names()
        keep = sorted({int(i) for i in product_ids if 0 <= int(i) < len(names)})
        return GroupSpec.from_dict({**self.to_dict(), "cells": [names[i] for i in keep]})

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (stored under ``group_spec`` in the datalist)."""
        return {
            "attributes": [a.to_dict() for a in self.attributes],
            "unknown": self.unknown,
            "unknown_values": list(self.unknown_values),
            "separator": self.separator,
            **({"cells": list(self.cells)} if self.cells is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GroupSpec:
        if "attributes" not in d:
            raise ValueError(f"group_spec dict has no 'attributes' key: {dict(d)}")
        return cls(
            d["attributes"],
            unknown=d.get("unknown", "error"),
            unknown_values=d.get("unknown_values", DEFAULT_UNKNOWN_VALUES),
            separator=d.get("separator", "|"),
            cells=d.get("cells"),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GroupSpec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"GroupSpec({self.to_dict()})"

    # ------------------------------------------------------------------ fitting and encoding
    def fit(self, items: Sequence[Mapping[str, Any]]) -> GroupSpec:
        """Return a copy whose undeclared categorical attributes get the sorted unique non-missing values.

        Values differing only in case or surrounding spaces (``"Male"``, ``"male "``) are one category, spelled
        as most items spell it; encoding matches categories case-insensitively.
        """
        attrs = []
        for a in self.attributes:
            if a.is_binned or a.categories is not None:
                attrs.append(GroupAttribute.from_dict(a.to_dict()))
                continue
            spellings: dict[str, Counter] = {}
            for it in items:
                v = it.get(a.name)
                if not is_missing_value(v, self.unknown_values):
                    c = a.canonical(v)
                    spellings.setdefault(c.lower(), Counter())[c] += 1
            # one category per case-insensitive value ("Male"/"male"), spelled as most rows spell it
            values = [min(cnt, key=lambda t: (-cnt[t], t)) for cnt in spellings.values()]
            attrs.append(GroupAttribute(a.name, categories=sorted(values), aliases=dict(a.aliases)))
        return GroupSpec(
            attrs, unknown=self.unknown, unknown_values=self.unknown_values, separator=self.separator, cells=self.cells
        )

    def encode(self, records: Sequence[Mapping[str, Any]], row_offset: int = 0) -> np.ndarray:
        """Group id of each record (``-1`` for a missing value under the ``"drop"`` policy).

        Args:
            records: mappings holding the raw attributes.
            row_offset: added to the 0-based record index in error messages (e.g. 2 for CSV line numbers).

        Raises:
            KeyError / ValueError: naming the rows, keys and values at fault (see the module docstring).
        """
        n = len(records)
        codes = np.zeros((len(self.attributes), n), dtype=np.int64)
        missing = np.zeros(n, dtype=bool)
        missing_rows: list[tuple[int, str, Any]] = []
        bad_rows: list[tuple[int, str, Any]] = []
        for j, a in enumerate(self.attributes):
            raw = [r.get(a.name) if isinstance(r, Mapping) else None for r in records]
            miss = np.array([is_missing_value(v, self.unknown_values) for v in raw], dtype=bool)
            if a.is_binned:
                vals = np.full(n, np.nan)
                for i in np.flatnonzero(~miss):
                    try:
                        vals[i] = float(raw[i])
                    except (TypeError, ValueError):
                        bad_rows.append((i + row_offset, a.name, raw[i]))
                edges = np.asarray(a.bins, dtype=float)
                idx = np.searchsorted(edges, vals, side="right") - 1
                out = ~miss & np.isfinite(vals) & ((idx < 0) | (idx >= len(edges) - 1))
                for i in np.flatnonzero(out):
                    bad_rows.append((i + row_offset, a.name, raw[i]))
                codes[j] = np.clip(idx, 0, len(edges) - 2)
            else:
                lookup = {c: k for k, c in enumerate(a.names)}
                for i in np.flatnonzero(~miss):
                    c = lookup.get(a.canonical(raw[i]))
                    if c is None:
                        bad_rows.append((i + row_offset, a.name, raw[i]))
                    else:
                        codes[j, i] = c
            for i in np.flatnonzero(miss):
                key_present = isinstance(records[i], Mapping) and a.name in records[i]
                missing_rows.append((i + row_offset, a.name, raw[i] if key_present else "<no key>"))
            missing |= miss
        if bad_rows:
            expected = {
                a.name: (a.names if not a.is_binned else f"in [{a.bins[0]}, {a.bins[-1]})")  # type: ignore[index]
                for a in self.attributes
            }
            raise ValueError(
                f"unknown group attribute value(s): {_format_rows(sorted(bad_rows))}; expected {expected} "
                f"(missing values are {list(self.unknown_values)}, None or NaN)."
            )
        if missing_rows and self.unknown == "error":
            raise ValueError(
                f"missing/unknown sensitive attribute in {len(set(r for r, _, _ in missing_rows))} row(s): "
                f"{_format_rows(sorted(missing_rows))}. Set the unknown policy to 'drop' or 'separate' to keep going."
            )
        sizes = self._sizes
        ids = np.ravel_multi_index(tuple(codes), tuple(sizes)) if n else np.zeros(0, dtype=np.int64)
        ids = np.asarray(ids, dtype=np.int64)
        if self.cells is not None:  # product id -> kept cell id (-1: a combination this spec does not keep)
            names = self._product_names()
            lookup = np.full(len(names), -1, dtype=np.int64)
            lookup[[names.index(c) for c in self.cells]] = np.arange(len(self.cells))
            product, ids = ids, lookup[ids]
            outside = np.flatnonzero((ids < 0) & ~missing)[:20].tolist()
            if outside:
                shown = ", ".join(f"row {i + row_offset} ({names[product[i]]})" for i in outside)
                raise ValueError(f"group combination(s) not among the spec's cells {self.cells}: {shown}.")
        if self.unknown == "separate":
            ids[missing] = self.num_groups - 1
        else:
            ids[missing] = -1
        return ids

    def assign(
        self, items: Sequence[Mapping[str, Any]], group_key: str = "group", row_offset: int = 0
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Copies of ``items`` with ``group_key`` set (dropped rows left out) and the group names."""
        spec = self if all(a.is_binned or a.categories is not None for a in self.attributes) else self.fit(items)
        ids = spec.encode(items, row_offset=row_offset)
        out = []
        for it, g in zip(items, ids.tolist()):
            if g < 0:
                continue
            d = dict(it)
            d[group_key] = int(g)
            out.append(d)
        return out, spec.group_names
