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

Usage::

    python benchmarks/nc_bench.py [--n 100000] [--dim 512] [--batch 1000] [--threads 1] [--json out.json]
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

    from monai_fair.metrics.nc_accumulator import NeuralCollapseAccumulator
    from monai_fair.metrics.neural_collapse import compute_neural_collapse_reference

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
        for h, _, y, g, w, _ in _stream(n, dim, batch):
            acc.update(h, y, g)
        for h, logits, _, g, _, _ in _stream(n, dim, batch):
            acc.update_nc4(h, logits, g)
        result = acc.compute(w)
    else:
        hs, ys, gs = [], [], []
        for h, _, y, g, w, b in _stream(n, dim, batch):
            hs.append(h), ys.append(y), gs.append(g)
        result = compute_neural_collapse_reference(torch.cat(hs), torch.cat(ys), w, b, torch.cat(gs), num_classes=2,
                                                   num_groups=2)
    elapsed = time.perf_counter() - t0
    _, py_peak = tracemalloc.get_traced_memory()
    queue.put({
        "method": method, "seconds": elapsed, "peak_rss_mb": (_rss_kb("VmHWM:") - base) / 1024,
        "tracemalloc_peak_mb": py_peak / 2**20, "result": result,
    })


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
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
            json.dump({"args": vars(args), "runs": {m: {k: v for k, v in o.items() if k != "result"}
                                                    for m, o in runs.items()},
                       "max_abs_diff": max_abs, "max_rel_diff": max_rel}, f, indent=1)


if __name__ == "__main__":
    main()
