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

With ``--bundle`` it instead trains ``bundles/neural_collapse_classification`` without and with injected label
bias (``--bias``, default 0.5 of the positives of group F flipped to negative) for each of ``--seeds`` and prints
the per-group F1 and NC trajectories (mean +- std over seeds) as Markdown tables.

Usage::

    python benchmarks/nc_bench.py [--n 100000] [--dim 512] [--batch 1000] [--threads 1] [--json out.json]
    python benchmarks/nc_bench.py --bundle [--seeds 0 1 2] [--epochs 30] [--bias 0.5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
import tracemalloc


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return -1


def _stream(n: int, dim: int, batch: int, classes: int = 2, groups: int = 2):
    import torch

    gen = torch.Generator().manual_seed(0)
    means = 4 * torch.randn(classes, dim, generator=gen)
    weight = torch.randn(classes, dim, generator=gen)
    bias = torch.randn(classes, generator=gen)
    for start in range(0, n, batch):
        bgen = torch.Generator().manual_seed(1000 + start)
        m = min(batch, n - start)
        y = torch.randint(0, classes, (m,), generator=bgen)
        g = torch.randint(0, groups, (m,), generator=bgen)
        h = means[y] + torch.randn(m, dim, generator=bgen) + 0.3 * g[:, None] + 100.0  # large common offset
        yield h, h @ weight.T + bias, y, g, weight, bias


def _worker(method: str, n: int, dim: int, batch: int, threads: int, queue) -> None:
    import torch

    from monai_fair.methods.neural_collapse.accumulator import NeuralCollapseAccumulator
    from monai_fair.methods.neural_collapse.metrics import compute_neural_collapse_reference

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
        for _ in _stream(n, dim, batch):
            pass
    elif method == "streaming":
        acc = NeuralCollapseAccumulator(num_classes=2, num_groups=2)
        for h, _, y, g, _, _ in _stream(n, dim, batch):
            acc.update(h, y, g)
        for h, logits, _, g, w, _ in _stream(n, dim, batch):  # noqa: B007 (w of the last batch is used below)
            acc.update_nc4(h, logits, g)
        result = acc.compute(w)
    else:
        hs, ys, gs = [], [], []
        for h, _, y, g, w, b in _stream(n, dim, batch):  # noqa: B007 (w, b of the last batch are used below)
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


def _run(method: str, args: argparse.Namespace) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(method, args.n, args.dim, args.batch, args.threads, queue))
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


def _bundle_runs(args: argparse.Namespace) -> None:
    """Train the bundle with and without label bias over several seeds; summarise per-group F1 and NC."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from monai_fair.utils import from_json_safe

    src = Path(__file__).resolve().parents[1] / "bundles" / "neural_collapse_classification"
    work = Path(args.workdir or tempfile.mkdtemp(prefix="nc_bundle_"))
    data_dir = work / "data"  # shared: generated once
    rows = []
    for fraction in (0.0, args.bias):
        for seed in args.seeds:
            root = work / f"bias{fraction}_seed{seed}"
            shutil.rmtree(root, ignore_errors=True)
            shutil.copytree(src, root, ignore=shutil.ignore_patterns("models", "eval", "data", "runs"))
            cmd = [
                sys.executable,
                "-m",
                "monai.bundle",
                "run",
                "--config_file",
                str(root / "configs" / "train.json"),
                "--bundle_root",
                str(root),
                "--meta_file",
                str(root / "configs" / "metadata.json"),
                "--logging_file",
                str(root / "configs" / "logging.conf"),
                "--dataset_dir",
                str(data_dir),
                "--seed",
                str(seed),
                "--epochs",
                str(args.epochs),
                "--label_bias_fraction",
                str(fraction),
            ]
            t0 = time.perf_counter()
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode:
                raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
            doc = json.loads((root / "eval" / "neural_collapse" / "nc_trajectory.json").read_text())
            rows.append(
                {
                    "fraction": fraction,
                    "seed": seed,
                    "seconds": time.perf_counter() - t0,
                    "trajectory": from_json_safe(doc["evaluations"]),
                }
            )
            print(f"bias={fraction} seed={seed}: {rows[-1]['seconds']:.0f} s", flush=True)
    with open(work / "bundle_runs.json", "w") as f:
        json.dump(rows, f)
    _summarise(rows)


def _summarise(rows: list[dict]) -> None:
    import numpy as np

    metrics = ("f1", "nc1", "nc2_etf_weights", "nc3_self_duality", "nc4_agreement")  # binary: NC2 means uninformative
    for split in ("train", "test"):
        print(f"\n### {split} split: mean +- std over seeds (per group F / M, overall)\n")
        print("| label bias | epoch | " + " | ".join(metrics) + " |")
        print("|---|---|" + "---|" * len(metrics))
        for fraction in sorted({r["fraction"] for r in rows}):
            runs = [r for r in rows if r["fraction"] == fraction]
            for i, epoch in enumerate(e["epoch"] for e in runs[0]["trajectory"]):
                cells = []
                for m in metrics:
                    parts = []
                    for key in ("F", "M", "overall"):
                        vals = np.array(
                            [
                                (
                                    r["trajectory"][i][split]["overall"]
                                    if key == "overall"
                                    else r["trajectory"][i][split]["groups"][key]
                                ).get(m, np.nan)
                                for r in runs
                            ],
                            dtype=float,
                        )
                        parts.append(f"{np.nanmean(vals):.3g}+-{np.nanstd(vals):.2g}")
                    cells.append(" / ".join(parts))
                print(f"| {fraction} | {epoch} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", action="store_true", help="run the bundle biased/unbiased over --seeds instead")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--bias", type=float, default=0.5, help="label_bias_fraction of the biased runs")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--summarise", default=None, help="only summarise an existing bundle_runs.json")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.summarise:
        with open(args.summarise) as f:
            _summarise(json.load(f))
        return
    if args.bundle:
        _bundle_runs(args)
        return
    runs = {m: _run(m, args) for m in ("generate", "streaming", "reference")}
    s, r = runs["streaming"]["result"], runs["reference"]["result"]
    max_abs, max_rel = 0.0, 0.0
    for key in ["overall"] + list(r["groups"]):
        rs = s["overall"] if key == "overall" else s["groups"][key]
        rr = r["overall"] if key == "overall" else r["groups"][key]
        for name, vr in rr.items():
            if vr == vr:  # not NaN
                max_abs = max(max_abs, abs(rs[name] - vr))
                max_rel = max(max_rel, abs(rs[name] - vr) / max(abs(vr), 1e-12))
    print(f"N={args.n} D={args.dim} batch={args.batch} threads={args.threads}")
    print(f"{'method':<10} {'time_s':>8} {'peak_rss_MB':>12} {'tracemalloc_MB':>15}")
    for m, o in runs.items():
        print(f"{m:<10} {o['seconds']:8.2f} {o['peak_rss_mb']:12.1f} {o['tracemalloc_peak_mb']:15.2f}")
    print(f"max |streaming - reference| over all NC metrics/groups: abs {max_abs:.3e}, rel {max_rel:.3e}")
    print(f"overall nc1 streaming {s['overall']['nc1']:.6e} reference {r['overall']['nc1']:.6e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "args": vars(args),
                    "runs": {m: {k: v for k, v in o.items() if k != "result"} for m, o in runs.items()},
                    "max_abs_diff": max_abs,
                    "max_rel_diff": max_rel,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
