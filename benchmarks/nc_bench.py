# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Streaming neural-collapse accumulator vs the store-everything reference: time, peak memory and agreement.

Both methods consume the same seeded stream of (features, logits, labels, groups) batches (default 100,000 samples x
512-d features, 2 classes, 2 groups, batches of 1,000; features with a large common offset to stress the raw-moment
cancellation). The streaming method makes the two passes NC4 needs (moments, then nearest-centre agreement), so the
stream is generated twice; the reference stores every batch, then computes the textbook formulas with a D x D pinv.
A third process only generates the stream once, to show the cost of producing it.

Each method runs in its own fresh process; peak memory is the process's resident-set high-water mark (Linux
``VmHWM``, reset through ``/proc/self/clear_refs`` after the imports) minus the resident set at that point, and,
for the Python heap, ``tracemalloc``'s peak.

With ``--part bundle`` it instead trains ``bundles/neural_collapse_classification`` without and with injected
label bias (``--bias``, default 0.5 of the positives of group F flipped to negative) for each seed and reports the
last evaluation's per-group F1 and NC metrics (train and test split) of both runs, and their paired differences
(biased - unbiased, same seed). Both parts use the shared harness (``benchmarks/harness.py``): seeds, mean +- std,
JSON + Markdown under ``--out``.

With ``--part sweep`` it tests the paper's claim (Mouheb et al., MICCAI 2024: under label bias, neural collapse can
lower the F1 of *every* subgroup): the bundle is trained with 0, 0.25, 0.5 and 0.75 (``--fractions``) of group F's
positives flipped to negative, in the terminal-phase preset by default (``--nc-preset terminal_phase``: 150 epochs,
SGD with momentum), and each biased run is paired with the unbiased run of the same seed. The figure that tests the
claim is ``test/M/f1``, the test F1 of the group whose labels were **not** flipped; ``test/F/f1`` (flipped group),
``train/overall/nc1`` and the training-set F1 (how far the terminal phase was reached) are beside it.

Usage::

    python benchmarks/nc_bench.py --seeds 0 1 2 [--n 100000] [--dim 512] [--batch 1000] --out DIR
    python benchmarks/nc_bench.py --part bundle --seeds 0 1 2 [--epochs 30] [--bias 0.5] [--workdir DIR] --out DIR
    python benchmarks/nc_bench.py --part sweep --seeds 0 1 2 3 4 --out docs/benchmarks
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
import tracemalloc

from harness import benchmark_parser, run_benchmark


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return -1


def _stream(n: int, dim: int, batch: int, seed: int = 0, classes: int = 2, groups: int = 2):
    import torch

    gen = torch.Generator().manual_seed(seed)
    means = 4 * torch.randn(classes, dim, generator=gen)
    weight = torch.randn(classes, dim, generator=gen)
    bias = torch.randn(classes, generator=gen)
    for start in range(0, n, batch):
        bgen = torch.Generator().manual_seed(1000 * (seed + 1) + start)
        m = min(batch, n - start)
        y = torch.randint(0, classes, (m,), generator=bgen)
        g = torch.randint(0, groups, (m,), generator=bgen)
        h = means[y] + torch.randn(m, dim, generator=bgen) + 0.3 * g[:, None] + 100.0  # large common offset
        yield h, h @ weight.T + bias, y, g, weight, bias


def _worker(method: str, n: int, dim: int, batch: int, threads: int, seed: int, queue) -> None:
    import torch

    from monai_fair.methods.neural_collapse.accumulator import NeuralCollapseAccumulator
    from tests.methods.neural_collapse.nc_reference import compute_neural_collapse_reference

    torch.set_num_threads(threads)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    base = _rss_kb("VmRSS:")
    tracemalloc.start()
    t0 = time.perf_counter()
    result = None
    if method == "generate":
        for _ in _stream(n, dim, batch, seed):
            pass
    elif method == "streaming":
        acc = NeuralCollapseAccumulator(num_classes=2, num_groups=2)
        for h, _, y, g, _, _ in _stream(n, dim, batch, seed):
            acc.update(h, y, g)
        for h, logits, _, g, w, _ in _stream(n, dim, batch, seed):  # noqa: B007 (w of the last batch is used below)
            acc.update_nc4(h, logits, g)
        result = acc.compute(w)
    else:
        hs, ys, gs = [], [], []
        for h, _, y, g, w, b in _stream(n, dim, batch, seed):  # noqa: B007 (w, b of the last batch are used below)
            hs.append(h), ys.append(y), gs.append(g)
        result = compute_neural_collapse_reference(
            torch.cat(hs), torch.cat(ys), w, b, torch.cat(gs), num_classes=2, num_groups=2
        )
    elapsed = time.perf_counter() - t0
    _, py_peak = tracemalloc.get_traced_memory()
    queue.put(
        {
            "method": method,
            "seconds": elapsed,
            "peak_rss_mb": (_rss_kb("VmHWM:") - base) / 1024,
            "tracemalloc_peak_mb": py_peak / 2**20,
            "result": result,
        }
    )


def _run(method: str, args: argparse.Namespace, seed: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(method, args.n, args.dim, args.batch, args.threads or 1, seed, queue))
    proc.start()
    while True:
        try:
            out = queue.get(timeout=5)
            break
        except Exception:  # queue.Empty: check that the worker is still alive
            if not proc.is_alive():
                raise RuntimeError(f"benchmark worker '{method}' died (exit code {proc.exitcode}).") from None
    proc.join()
    return out


def accumulator_seed(seed: int, args: argparse.Namespace) -> dict:
    """Streaming vs store-everything on the same seeded stream, each in a fresh process."""
    runs = {m: _run(m, args, seed) for m in ("generate", "streaming", "reference")}
    s, r = runs["streaming"]["result"], runs["reference"]["result"]
    max_abs, max_rel = 0.0, 0.0
    for key in ["overall"] + list(r["groups"]):
        rs = s["overall"] if key == "overall" else s["groups"][key]
        rr = r["overall"] if key == "overall" else r["groups"][key]
        for name, vr in rr.items():
            if vr == vr:  # not NaN
                max_abs = max(max_abs, abs(rs[name] - vr))
                max_rel = max(max_rel, abs(rs[name] - vr) / max(abs(vr), 1e-12))
    out = {m: {"seconds": o["seconds"], "peak_rss_mb": o["peak_rss_mb"]} for m, o in runs.items()}
    out["agreement"] = {"max_abs_diff": max_abs, "max_rel_diff": max_rel}
    return out


def _bundle_run(root, data_dir, seed: int, fraction: float, args: argparse.Namespace) -> dict:
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from monai_fair.utils import from_json_safe

    src = Path(__file__).resolve().parents[1] / "bundles" / "neural_collapse_classification"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(src, root, ignore=shutil.ignore_patterns("models", "eval", "data", "runs"))
    cfg = root / "configs"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(cfg / "train.json")]
    cmd += ["--bundle_root", str(root), "--meta_file", str(cfg / "metadata.json")]
    cmd += ["--logging_file", str(cfg / "logging.conf"), "--dataset_dir", str(data_dir), "--seed", str(seed)]
    cmd += ["--label_bias_fraction", str(fraction), "--nc_preset", args.nc_preset]
    if args.epochs is not None:
        cmd += ["--epochs", str(args.epochs)]
    if args.synthetic:
        cmd += ["--synthetic", args.synthetic]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads or 1))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
    doc = json.loads((root / "eval" / "neural_collapse" / "nc_trajectory.json").read_text())
    last = from_json_safe(doc["evaluations"])[-1]
    figures = {"seconds": time.perf_counter() - t0}
    for split in ("train", "test"):
        rows = {"overall": last[split]["overall"]} | last[split]["groups"]
        for name, row in rows.items():
            for m in BUNDLE_METRICS:
                figures[f"{split}/{name}/{m}"] = row.get(m, float("nan"))
    return figures


#: binary task: the NC2 *means* metrics depend on the class counts only, so the weights' NC2 is reported
BUNDLE_METRICS = ("f1", "nc1", "nc2_etf_weights", "nc3_self_duality", "nc4_agreement")


def bundle_seed(seed: int, args: argparse.Namespace) -> dict:
    """The NC bundle without and with label bias for one seed (last evaluated epoch)."""
    import tempfile
    from pathlib import Path

    work = Path(args.workdir or tempfile.mkdtemp(prefix="nc_bundle_"))
    return {
        name: _bundle_run(work / f"{name}_seed{seed}", work / "data", seed, fraction, args)
        for name, fraction in (("unbiased", 0.0), ("biased", args.bias))
    }


def sweep_seed(seed: int, args: argparse.Namespace) -> dict:
    """The bias sweep for one seed: one bundle run per flipped fraction, same data and seed."""
    import tempfile
    from pathlib import Path

    work = Path(args.workdir or tempfile.mkdtemp(prefix="nc_sweep_"))
    return {
        f"bias_{fraction:g}": _bundle_run(work / f"bias{fraction:g}_seed{seed}", work / "data", seed, fraction, args)
        for fraction in args.fractions
    }


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    if args.part == "sweep":
        return sweep_seed(seed, args)
    return bundle_seed(seed, args) if args.part == "bundle" else accumulator_seed(seed, args)


if __name__ == "__main__":
    ap = benchmark_parser(__doc__)
    ap.add_argument("--part", choices=("accumulator", "bundle", "sweep"), default="accumulator")
    ap.add_argument("--epochs", type=int, default=None, help="epochs (default: the preset's; 30 for --part bundle)")
    ap.add_argument("--nc-preset", default=None, choices=("default", "terminal_phase"), help="the bundle's nc_preset")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75], help="sweep: flipped")
    ap.add_argument("--synthetic", default=None, help="JSON of the bundle's synthetic-data parameters (sweep/bundle)")
    ap.add_argument("--bias", type=float, default=0.5, help="label_bias_fraction of the biased runs")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args()
    args.nc_preset = args.nc_preset or ("terminal_phase" if args.part == "sweep" else "default")
    if args.part == "bundle" and args.epochs is None:
        args.epochs = 30
    if args.quick:
        args.n, args.dim, args.epochs = min(args.n, 5000), min(args.dim, 64), min(args.epochs or 2, 2)
    if args.part == "sweep":
        if 0.0 not in args.fractions:
            raise SystemExit("--fractions must include 0 (the unbiased run every biased run is paired with).")
        base = "bias_0"
        pairs = [(f"bias_{f:g}", base) for f in args.fractions if f != 0.0]
        notes = (
            f"nc_preset={args.nc_preset}, epochs={args.epochs or 'preset'}, "
            f"synthetic={args.synthetic or 'bundle default'}; the claim's figure is test/M/f1 (the unflipped group). "
            "Indicative unless >= 5 seeds at full size."
        )
        run_benchmark("nc_bias_sweep", run_seed, args, pairs=pairs, notes=notes)
    elif args.part == "bundle":
        run_benchmark("nc_bundle", run_seed, args, pairs=[("biased", "unbiased")])
    else:
        notes = f"N={args.n} D={args.dim} batch={args.batch}; peak RSS above the post-import resident set."
        run_benchmark("nc_accumulator", run_seed, args, pairs=[("streaming", "reference")], notes=notes)
