# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Helpers shared by the public-dataset adapters: CSV reading, standard demographic group specs, image lookup."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from monai_fair.data.datalist import _read_stripped_csv
from monai_fair.data.groups import GroupSpec

__all__ = ["read_csv_rows", "demographic_spec", "find_images", "to_float", "SEX_ALIASES", "DEFAULT_AGE_BINS"]

SEX_ALIASES = {"female": "F", "male": "M", "f": "F", "m": "M", "woman": "F", "man": "M"}
DEFAULT_AGE_BINS: tuple[float, ...] = (0.0, 60.0, math.inf)  # the FairSeg/Harvard line's <60 / >=60 split


def read_csv_rows(path: str | os.PathLike, required: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts; a missing required column is a ``KeyError`` listing the header."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metadata file not found: {path}")
    header, rows = _read_stripped_csv(path)
    missing = [c for c in required if c not in header]
    if missing:
        raise KeyError(f"{path}: column(s) {missing} not in the header {header}; is this the right file?")
    return rows


def to_float(value: Any) -> float | None:
    """``float(value)``, or ``None`` for an empty/NaN/non-numeric value."""
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def demographic_spec(
    attribute: str,
    unknown: str = "separate",
    age_bins: Sequence[float] = DEFAULT_AGE_BINS,
    age_labels: Sequence[str] | None = None,
) -> GroupSpec:
    """Group spec over ``sex`` (``F``/``M``), ``age`` (binned) or ``sex_age`` (their intersection)."""
    sex = GroupSpec.categorical("sex", ["F", "M"], aliases=SEX_ALIASES, unknown=unknown)
    age = GroupSpec.binned(
        "age", list(age_bins), labels=None if age_labels is None else list(age_labels), unknown=unknown
    )
    if attribute == "sex":
        return sex
    if attribute == "age":
        return age
    if attribute == "sex_age":
        return GroupSpec.intersection(sex, age, unknown=unknown)
    raise ValueError(f"attribute must be 'sex', 'age' or 'sex_age', got {attribute!r}.")


def find_images(
    names: Iterable[str],
    folders: str | os.PathLike | Sequence[str | os.PathLike],
    suffixes: Sequence[str] = (".jpg", ".jpeg", ".png"),
    check: bool = True,
) -> dict[str, str]:
    """Map each image name (without suffix) to its file in one of ``folders`` (searched in order).

    Raises:
        FileNotFoundError: when ``check`` and an image is in none of the folders (the message names up to 10).
    """
    if isinstance(folders, (str, os.PathLike)):
        folders = [f for f in str(folders).split(",") if f]
    index: dict[str, str] = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder not found: {folder}")
        for entry in os.scandir(folder):
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in suffixes and stem not in index:
                index[stem] = str(Path(entry.path).resolve())
    out, missing = {}, []
    for name in names:
        if name in index:
            out[name] = index[name]
        elif check:
            missing.append(name)
        else:
            out[name] = str((Path(folders[0]) / (name + suffixes[0])).resolve())
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise FileNotFoundError(f"image(s) {missing[:10]}{more} not found in {[str(f) for f in folders]}.")
    return out
