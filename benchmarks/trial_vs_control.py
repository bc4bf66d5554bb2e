# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Compare arms of a finished benchmark trial with another reference arm (e.g. a compute-matched ERM control).

The trial report compares every arm with ERM; a method that trains longer than ERM (FairDi: three stages) must also
beat ERM trained as long. This script writes the same paired report with ``--reference`` as the reference, into
``<out>/<task>_vs_<reference>/<scenario>/report/`` (the runs are linked, nothing is trained):

    python benchmarks/trial_vs_control.py --out bench_out/trial --task segmentation --scenarios shortcut underrep \
        --reference erm_seg_matched --arms fairdi_seg --arms-file benchmarks/trial_control_arms.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="the trial_bench --out folder")
    ap.add_argument("--task", choices=["classification", "segmentation"], required=True)
    ap.add_argument("--scenarios", nargs="+", required=True)
    ap.add_argument("--reference", required=True, help="arm used as the reference")
    ap.add_argument("--arms", nargs="+", required=True, help="arms compared with it")
    ap.add_argument("--arms-file", dest="arms_file", help="extra arms (JSON list)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    from monai_fair.trial.arms import ARMS, load_arms
    from monai_fair.trial.report import write_trial_report

    registry = {**ARMS, **(load_arms(args.arms_file) if args.arms_file else {})}
    rows = []
    for sc in args.scenarios:
        src = Path(args.out) / args.task / sc
        dst = Path(args.out) / f"{args.task}_vs_{args.reference}" / sc
        dst.mkdir(parents=True, exist_ok=True)
        for name in ("runs", "data"):
            if not (dst / name).exists():
                os.symlink((src / name).resolve(), dst / name)
        arms = [registry[args.reference]] + [registry[a] for a in args.arms]
        write_trial_report(dst, arms, args.seeds, args.task, src / "data" / "datalist.json")
        rep = json.loads((dst / "report" / "trial_report.json").read_text())
        for h in rep["headline"]:
            mark = {"improves": " ▲", "harms": " ▼"}.get(h["verdict"], "")
            lo, hi = h["ci"]
            rows.append(f"| {sc} | {h['arm']} | {h['figure']} | {h['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]{mark} "
                        f"| {h['p_holm']:.2g} |")  # fmt: skip
        if rep.get("missing_runs"):
            rows.append(f"| {sc} | missing runs: {', '.join(rep['missing_runs'])} | | | |")
    head = [f"| scenario | arm | figure | Δ vs {args.reference} [95 % CI] | Holm p |", "|---|---|---|---|---|"]
    print("\n".join(head + rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
