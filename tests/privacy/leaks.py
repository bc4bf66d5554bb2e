# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Suppression grep helpers: a datalist with one group below ``min_group_size``, and a scan of every file a run
wrote (logs, CSV, TensorBoard events, JSON, Markdown, PNG metadata) for that group's name and its values.

The fixture has **two** groups, one of them small; by the secondary-suppression rule only ``overall`` may then be
shown (``overall`` minus the large group would be the small group). So, besides the small group's name, no file may
hold a finite *group-level* figure (gap, worst group, ES, EOpp/EOdds/DP, SER), a per-group entry of either group, or
the small group's ``n``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

SMALL = "Zyxwq"  # the suppressed group's name (distinctive, so a grep cannot match anything else)
LARGE = "Majority"
#: group-level figure names (as parts of keys/tags such as ``val_worst_group_auc`` or ``test_auc_gap``)
GROUP_LEVEL = re.compile(
    r"(worst_group_[a-z]+|[a-z]+_gap|(?<![a-z])es_[a-z_]+|eodds[a-z_]*|eopp[01]|demographic_parity|(?<![a-z])ser(_iou)?)"
)
_NUM = r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
INPUT_PARTS = ("configs", "docs", "LICENSE")
#: files whose bytes are not text: only the name grep applies (PNG text chunks, names inside pickles)
BINARY_SUFFIXES = (".png", ".pt", ".pth", ".ckpt", ".ts")


def small_group_datalist(root: Path, file_format: str = "dicom", seed: int = 3) -> tuple[Path, dict[str, int]]:
    """Synthetic 32x32 images relabelled into two groups: ``LARGE`` and ``SMALL`` (3-4 cases per split, below the
    default ``min_group_size`` of 10). Returns the datalist path and the small group's count per split."""
    from monai_fair.data import ensure_synthetic_dataset

    src = Path(
        ensure_synthetic_dataset(
            root, task="classification", n_samples=64, image_size=32, seed=seed, file_format=file_format
        )
    )
    d = json.loads(src.read_text())
    items = d["training"] + d["validation"] + d["test"]
    order = np.random.default_rng(seed).permutation(len(items))
    sizes = {"training": (32, 4), "validation": (11, 3), "test": (11, 3)}  # (large, small) per split: 64
    if sum(a + b for a, b in sizes.values()) != len(items):
        raise ValueError(f"the synthetic set has {len(items)} cases, the fixture needs {sizes}.")
    pos = 0
    counts = {}
    for split, (n_large, n_small) in sizes.items():
        chosen = [dict(items[i]) for i in order[pos : pos + n_large + n_small]]
        pos += n_large + n_small
        for k, it in enumerate(chosen):
            it["group"] = int(k < n_small)
            for attr in ("sex", "age"):
                it.pop(attr, None)
        d[split] = chosen
        counts[split] = n_small
    d["group_names"] = [LARGE, SMALL]
    spec = d.get("group_spec") or {}
    for a in spec.get("attributes", []):
        a["categories"] = [LARGE, SMALL]
    out = root / "datalist_small.json"
    out.write_text(json.dumps(d, indent=1))
    return out, counts


def output_files(root: Path) -> list[Path]:
    """Every file under ``root`` except the inputs (bundle configs/docs/LICENSE, the data folder)."""
    files = []
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root).parts
        if f.is_file() and rel[0] not in INPUT_PARTS and rel[0] != "data" and "__pycache__" not in rel:
            files.append(f)
    return files


def _tb_scalars(path: Path) -> list[tuple[str, float]]:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    out = []
    for ev in EventFileLoader(str(path)).Load():
        for v in ev.summary.value:
            if v.HasField("simple_value"):
                out.append((v.tag, float(v.simple_value)))
            elif v.HasField("tensor"):
                arr = np.asarray(tensor_util.make_ndarray(v.tensor), dtype=object).reshape(-1)
                out += [(v.tag, float(x)) for x in arr if isinstance(x, (int, float, np.number))]
    return out


def _finite(x: object) -> bool:
    try:
        return math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _json_leaks(obj: object, path: str, out: list[str]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = str(k)
            if key in (LARGE, SMALL):
                out.append(f"{path}/{key}: a per-group entry")
            if GROUP_LEVEL.search(key) and _finite(v):
                out.append(f"{path}/{key} = {v}: a group-level figure with only one group behind it")
            _json_leaks(v, f"{path}/{key}", out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _json_leaks(v, f"{path}[{i}]", out)


def find_leaks(files: Iterable[Path], n_small: Iterable[int], texts: Iterable[str] = ()) -> list[str]:
    """Every place where the small group, the large group's values or a group-level figure can be read."""
    leaks: list[str] = []
    n_pat = [re.compile(rf"\bn\s*[=:]\s*\"?{n}\b|\|\s*{n}\s*\|") for n in set(n_small)]
    sources = [(str(f), f) for f in files] + [(f"output#{i}", t) for i, t in enumerate(texts)]
    for label, src in sources:
        if isinstance(src, Path):
            raw = src.read_bytes()
            text = raw.decode("latin-1")
        else:
            text = src
        if SMALL.lower() in text.lower():
            leaks.append(f"{label}: names the suppressed group {SMALL!r}")
        if isinstance(src, Path) and src.name.startswith("events.out.tfevents"):
            for tag, v in _tb_scalars(src):
                if GROUP_LEVEL.search(tag) and math.isfinite(v):
                    leaks.append(f"{label}: TensorBoard scalar {tag} = {v}")
            continue
        if isinstance(src, Path) and src.suffix in BINARY_SUFFIXES:
            continue  # PNG text chunks / pickled names were grepped above; the rest is not text
        if isinstance(src, Path) and src.suffix == ".json":
            try:
                _json_leaks(json.loads(text), label, leaks)
            except json.JSONDecodeError:
                pass
        if isinstance(src, Path) and src.suffix == ".csv":
            for row in csv.reader(io.StringIO(text)):
                for j, cell in enumerate(row):
                    if GROUP_LEVEL.search(cell) and any(_finite(c) for c in row[j + 1 : j + 2]):
                        leaks.append(f"{label}: CSV {row[:2]} is a group-level figure")
        for m in re.finditer(rf"({GROUP_LEVEL.pattern})\W{{0,3}}\s*[=:,]\s*\[?{_NUM}", text):
            if _finite(m.group(m.lastindex)) and "n/a" not in m.group(0):
                leaks.append(f"{label}: '{m.group(0)[:60]}' is a group-level figure")
        if re.search(rf"\b{LARGE}\b\W{{0,3}}\s*[(:=|]\s*\d", text):
            leaks.append(f"{label}: the other group's values are shown (derivable: overall minus it)")
        for p in n_pat:
            hit = p.search(text)
            if hit:
                leaks.append(f"{label}: '{hit.group(0)}' may be the suppressed group's n")
    return sorted(set(leaks))
