# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Class labels from raw values: text labels only with an explicit meaning, never ordered alphabetically."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["encode_labels"]


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
