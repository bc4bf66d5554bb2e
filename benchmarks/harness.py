# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The one small harness every monai-fair benchmark uses: seeds loop, spread per figure, JSON + Markdown output.

A benchmark script defines one function ``run_seed(seed, args) -> figures`` that runs everything of one seed *in one
process* (the method and its plain-MONAI reference side by side, so that wall-clock ratios compare like with like)
and returns its figures: a flat ``{"name": number}`` mapping, or one level of arms ``{"erm": {...}, "fairdi": {...}}``
(flattened to ``"erm/accuracy"``). The harness seeds Python, NumPy and torch before each call, times it, and
summarises each figure over the seeds as mean +- sample standard deviation (ddof=1), min and max. Paired
differences between arms (the same seed is the pairing unit) are summarised the same way; "A better than B" is read
from those, never from two unpaired means.

One flag style for all benchmarks::

    python benchmarks/<topic>_bench.py --seeds 0 1 2 --out DIR [--quick] [--threads N]

``--out DIR`` writes ``DIR/<name>.json`` (every per-seed figure, the summary, the exact command, the machine) and
``DIR/<name>.md`` (a table to paste into ``docs/benchmarks/<topic>.md``); ``--quick`` asks the script for a
seconds-long smoke run (the script decides what it shrinks). Example (a complete benchmark script)::

    from __future__ import annotations

    from harness import Stopwatch, benchmark_parser, run_benchmark


    def run_seed(seed, args):
        epochs = 1 if args.quick else 20
        sw = Stopwatch()
        with sw("erm"):
            erm = train_and_evaluate(method="erm", epochs=epochs)  # -> {"accuracy": ..., "eodds": ...}
        with sw("fairdi"):
            fairdi = train_and_evaluate(method="fairdi", epochs=epochs)
        return {"erm": erm, "fairdi": {**fairdi, "time_ratio": sw.ratio("fairdi", "erm")}}


    if __name__ == "__main__":
        args = benchmark_parser(__doc__).parse_args()
        run_benchmark("fairdi", run_seed, args, pairs=[("fairdi", "erm")])

Scripts are run as files (``python benchmarks/x.py``), so ``benchmarks/`` is on ``sys.path`` and ``import harness``
works; the harness itself needs only the standard library and NumPy (torch is seeded when it is installed).
Every report states the machine (CPU count, load average, threads); on this project's CI-sized machine that is a
loaded 2-core CPU, and timings are to be read as ratios measured in one run, not as absolute speeds.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import math
import os
import platform
import random
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Stopwatch",
    "benchmark_parser",
    "flatten_figures",
    "format_summary",
    "interleaved_timing",
    "machine_info",
    "paired_differences",
    "run_benchmark",
    "seed_everything",
    "summarize",
    "summarize_seeds",
    "to_markdown",
    "write_results",
]


def benchmark_parser(
    description: str | None = None, default_seeds: Sequence[int] = (0, 1, 2)
) -> argparse.ArgumentParser:
    """The common command line: ``--seeds``, ``--out``, ``--quick``, ``--threads``.

    Scripts add their own options to the returned parser (``parser.add_argument(...)``) before ``parse_args()``.

    Args:
        description: the help text (usually the script's ``__doc__``).
        default_seeds: seeds used when ``--seeds`` is not given (>= 3 by the project's rule for reported figures).
    """
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(default_seeds), help="seeds, one run each")
    ap.add_argument("--out", default=None, help="folder for <name>.json and <name>.md (default: print only)")
    ap.add_argument("--quick", action="store_true", help="a seconds-long smoke run (smaller data, fewer epochs)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave as is)")
    return ap


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and (when installed) torch, as
    ``monai.utils.set_determinism`` does for these three, without importing MONAI."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules or importlib.util.find_spec("torch") is not None:
        import torch

        torch.manual_seed(seed)


def summarize(values: Iterable[float]) -> dict[str, float | int]:
    """Mean, sample standard deviation (ddof=1), min and max of the finite values, and their count ``n``.

    NaN values (an undefined figure in one seed) are left out and counted in ``n_nan``; ``std`` is NaN when fewer than
    two finite values remain (a single seed has no spread), and every statistic is NaN when none remains.
    """
    arr = np.asarray([float(v) for v in values], dtype=float)
    finite = arr[np.isfinite(arr)]
    n = int(finite.size)
    out: dict[str, float | int] = {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n": n}
    if n:
        out.update(mean=float(finite.mean()), min=float(finite.min()), max=float(finite.max()))
    if n >= 2:
        out["std"] = float(finite.std(ddof=1))
    out["n_nan"] = int(arr.size - n)
    return out


def flatten_figures(figures: Mapping[str, Any], sep: str = "/") -> dict[str, float]:
    """``{"erm": {"acc": 0.9}, "t": 1.0}`` -> ``{"erm/acc": 0.9, "t": 1.0}``; numbers only (bools count as numbers).

    Raises:
        TypeError: a value is neither a number nor a mapping of numbers (the message names the key).
    """
    flat: dict[str, float] = {}
    for key, value in figures.items():
        if isinstance(value, Mapping):
            for sub, v in flatten_figures(value, sep).items():
                flat[f"{key}{sep}{sub}"] = v
            continue
        try:
            flat[str(key)] = float(value)
        except (TypeError, ValueError) as e:
            raise TypeError(f"benchmark figure {key!r} must be a number or a mapping of numbers, got {value!r}") from e
    return flat


def summarize_seeds(per_seed: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float | int]]:
    """Summarise each figure over the seeds (see :func:`summarize`); figures missing in a seed count as NaN."""
    names: list[str] = []
    for figures in per_seed:
        names += [k for k in figures if k not in names]
    return {name: summarize(f.get(name, math.nan) for f in per_seed) for name in names}


def paired_differences(
    per_seed: Sequence[Mapping[str, float]], pairs: Sequence[tuple[str, str]], sep: str = "/"
) -> dict[str, dict[str, float | int]]:
    """Per-seed differences ``a - b`` of every figure that arms ``a`` and ``b`` share, summarised over the seeds.

    ``pairs=[("fairdi", "erm")]`` gives ``"fairdi-erm/accuracy"`` = summary of ``fairdi/accuracy - erm/accuracy``
    taken seed by seed (the seed is the pairing unit: same data split and initialisation in both arms).
    """
    out: dict[str, dict[str, float | int]] = {}
    for a, b in pairs:
        names: list[str] = []
        for figures in per_seed:
            for key in figures:
                if key.startswith(a + sep):
                    name = key[len(a) + len(sep) :]
                    if any(b + sep + name in f for f in per_seed) and name not in names:
                        names.append(name)
        if not names:
            raise KeyError(f"arms {a!r} and {b!r} share no figure (figures are named '<arm>{sep}<name>')")
        for name in names:
            diffs = [f.get(a + sep + name, math.nan) - f.get(b + sep + name, math.nan) for f in per_seed]
            out[f"{a}-{b}{sep}{name}"] = summarize(diffs)
    return out


class Stopwatch:
    """Accumulated wall-clock time per named phase, and ratios between phases.

    Example::

        sw = Stopwatch()
        with sw("monai"):
            plain_training()
        with sw("method"):
            method_training()
        sw.ratio("method", "monai")  # wall-clock ratio to the plain-MONAI reference
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield self
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def ratio(self, name: str, reference: str) -> float:
        """``seconds[name] / seconds[reference]``; KeyError naming the phase when one was never timed."""
        for key in (name, reference):
            if key not in self.seconds:
                raise KeyError(f"phase {key!r} was not timed; timed phases: {sorted(self.seconds)}")
        return self.seconds[name] / self.seconds[reference]


def interleaved_timing(
    candidates: Mapping[str, Callable[[], Any]], reference: str, repeats: int = 5, warmup: int = 1
) -> dict[str, dict[str, float | int]]:
    """Time each callable ``repeats`` times, interleaved (A B C A B C ...); wall-clock ratios to ``reference``.

    Interleaving spreads a loaded machine's slow phases over all candidates. For each candidate: the median seconds
    and the summary (:func:`summarize`) of its per-round ratios ``t_candidate / t_reference`` plus their median.

    Raises:
        KeyError: ``reference`` is not one of ``candidates``.
        ValueError: ``repeats < 1``.
    """
    if reference not in candidates:
        raise KeyError(f"reference {reference!r} is not one of the candidates {sorted(candidates)}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    ref = np.asarray(times[reference])
    out: dict[str, dict[str, float | int]] = {}
    for name, ts in times.items():
        ratios = np.asarray(ts) / ref
        out[name] = {"median_s": float(np.median(ts)), "median_ratio": float(np.median(ratios))}
        out[name].update({f"ratio_{k}": v for k, v in summarize(ratios).items()})
    return out


def machine_info() -> dict[str, Any]:
    """The machine a benchmark ran on: OS, Python, CPU count, 1-minute load average, torch version and threads."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    return info


def _fmt(x: float | int | None, digits: int) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def format_summary(summary: Mapping[str, Mapping[str, float | int]], digits: int = 4) -> str:
    """A Markdown table: figure | mean +- std | min | max | n (seeds with a finite value)."""
    lines = ["| figure | mean ± std | min | max | n |", "| --- | --- | --- | --- | --- |"]
    for name, s in summary.items():
        mean_std = f"{_fmt(s['mean'], digits)} ± {_fmt(s['std'], digits)}"
        lines.append(f"| {name} | {mean_std} | {_fmt(s['min'], digits)} | {_fmt(s['max'], digits)} | {s['n']} |")
    return "\n".join(lines)


def _json_safe(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_results(
    out_dir: str | os.PathLike, name: str, result: Mapping[str, Any], digits: int = 4
) -> tuple[Path, Path]:
    """Write ``out_dir/<name>.json`` (strict JSON: NaN -> null) and ``out_dir/<name>.md``; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(_json_safe(result), indent=1, allow_nan=False) + "\n")
    md_path.write_text(to_markdown(result, digits) + "\n")
    return json_path, md_path


def to_markdown(result: Mapping[str, Any], digits: int = 4) -> str:
    """The Markdown page of one :func:`run_benchmark` result: command, machine, seeds, summary and paired tables."""
    m = result["machine"]
    lines = [
        f"## {result['name']}",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Seeds: {', '.join(str(s) for s in result['seeds'])} ({len(result['seeds'])} runs; mean ± sample std, ddof=1)"
        + ("; QUICK smoke run, not a result" if result.get("quick") else "")
        + f". Total wall time {result['wall_s']:.1f} s.",
        "",
        f"Machine: {m.get('platform')}, Python {m.get('python')}, {m.get('cpu_count')} CPU cores, "
        f"1-min load average {_fmt(m.get('load_avg_1min'), 2)} at start"
        + (f", torch {m['torch']} with {m['torch_threads']} thread(s)" if "torch" in m else "")
        + ".",
        "",
        format_summary(result["summary"], digits),
    ]
    if result.get("paired"):
        lines += ["", "Paired differences (per seed, a - b):", "", format_summary(result["paired"], digits)]
    if result.get("notes"):
        lines += ["", str(result["notes"])]
    return "\n".join(lines)


def run_benchmark(
    name: str,
    run_seed: Callable[[int, argparse.Namespace], Mapping[str, Any]],
    args: argparse.Namespace,
    pairs: Sequence[tuple[str, str]] = (),
    notes: str = "",
    digits: int = 4,
) -> dict[str, Any]:
    """Run ``run_seed(seed, args)`` for every seed of ``args.seeds``, summarise, print and (with ``--out``) write.

    Before each seed the harness calls :func:`seed_everything`; each seed's wall time is added to its figures as
    ``wall_s``. The returned dict (also the JSON file) holds ``name``, ``command`` (the exact command line),
    ``machine``, ``seeds``, ``quick``, ``per_seed`` (``[{"seed": s, "figures": {...}}, ...]``), ``summary``,
    ``paired`` (see :func:`paired_differences`), ``notes``, ``started_at`` (UTC) and ``wall_s``.

    Args:
        name: benchmark name; output files are ``<out>/<name>.json`` and ``<out>/<name>.md``.
        run_seed: runs one seed, returns its figures (see :func:`flatten_figures`).
        args: parsed :func:`benchmark_parser` arguments (``seeds``, ``out``, ``quick``, ``threads``).
        pairs: ``(a, b)`` arm pairs whose per-seed differences ``a - b`` are summarised.
        notes: free text appended to the Markdown page (what was measured, caveats).
        digits: decimals in the Markdown tables.
    """
    if not args.seeds:
        raise ValueError("--seeds needs at least one seed")
    if len(set(args.seeds)) != len(args.seeds):
        raise ValueError(f"--seeds has repeated values: {args.seeds}")
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    machine = machine_info()
    t_all = time.perf_counter()
    per_seed = []
    for seed in args.seeds:
        seed_everything(seed)
        start = time.perf_counter()
        figures = flatten_figures(run_seed(seed, args))
        figures["wall_s"] = time.perf_counter() - start
        per_seed.append({"seed": seed, "figures": figures})
        print(f"[{name}] seed {seed}: " + ", ".join(f"{k}={v:.4g}" for k, v in figures.items()), flush=True)
    flat = [p["figures"] for p in per_seed]
    result: dict[str, Any] = {
        "name": name,
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "machine": machine,
        "seeds": list(args.seeds),
        "quick": bool(getattr(args, "quick", False)),
        "per_seed": per_seed,
        "summary": summarize_seeds(flat),
        "paired": paired_differences(flat, pairs) if pairs else {},
        "notes": notes,
        "started_at": started,
        "wall_s": time.perf_counter() - t_all,
    }
    print(to_markdown(result, digits), flush=True)
    if getattr(args, "out", None):
        paths = write_results(args.out, name, result, digits)
        print(f"[{name}] wrote {paths[0]} and {paths[1]}", flush=True)
    return result
