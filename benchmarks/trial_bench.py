# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Fairness trial on every synthetic bias scenario: every arm against ERM, >= 3 seeds, tiny CPU-sized data and models.

For each scenario (``irreducible``, ``underrep``, ``shortcut``, ``label_noise``, ``acquisition``) the script generates
one dataset (``python -m monai_fair synth --scenario NAME``; the same data for every seed and arm) and runs
``monai_fair.trial.runner.run_trial`` on it: each arm's own bundle configs with the common overrides below (a small
VGG-style network for every classification arm, 32x32 images), seeds combined in the paired comparison against ERM.
The trial folders are resumable: rerun the same command to finish an interrupted benchmark.

    nice -n 10 python benchmarks/trial_bench.py --seeds 0 1 2 --out bench_out/trial [--task classification]
        [--scenarios shortcut underrep] [--methods erm reweighting] [--phase generic|methods|all] [--quick]

Outputs: ``<out>/<task>/<scenario>/`` (the trial folder with ``report/``) and ``<out>/trial_<task>.md`` (every
scenario's ranked table, to paste into ``docs/benchmarks/trial.md``). The CPU of the project machine is a loaded
2-core CPU: wall-clock figures are ratios measured in one run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from harness import benchmark_parser

SCENARIOS = ("irreducible", "underrep", "shortcut", "label_noise", "acquisition")
GENERIC = {
    "classification": [
        "erm",
        "erm_select_worst_group",
        "erm_select_dto",
        "group_thresholds",
        "resampling",
        "reweighting",
        "groupdro",
    ],
    "segmentation": ["erm_seg", "erm_seg_select_worst_group", "erm_seg_select_dto", "reweighting_seg"],
}
METHODS = {
    "classification": ["fairdi", "fis", "snnl", "snnl_finetune_only", "snnl_random", "fairprune"],
    "segmentation": ["fairdi_seg", "apple"],
}
CHANNELS = [8, 16, 32, 32]


def overrides(task: str, epochs: int) -> dict:
    """The common overrides of every arm (ids a bundle does not have are ignored by it)."""
    if task == "classification":
        net = {"spatial_dims": 2, "in_channels": "@in_channels", "num_classes": "@num_classes", "channels": CHANNELS}
        return {
            "spatial_size": [32, 32],
            "vgg_channels": CHANNELS,
            "network_def": {"_target_": "monai_fair.networks.SmallVGGNet", **net},
            "epochs": epochs,
            "baseline_epochs": epochs,
            "student_epochs": epochs,
            "batch_size": 32,
        }
    return {
        "epochs": epochs,
        "baseline_epochs": epochs,
        "student_epochs": epochs,
        "base_epochs": epochs,
        "patch_size": [32, 32],
        "image_size": 32,
        "batch_size": 8,
    }


def _cell(row: dict) -> str:
    d, c = row.get("difference"), row.get("ci") or [None, None]
    if d is None:
        return "n/a"
    mark = {"improves": " ▲", "harms": " ▼"}.get(row.get("verdict"), "")
    sd = row.get("paired_seed_sd")
    spread = f" (seed SD {sd:.3f})" if sd is not None else ""
    return (f"{d:+.3f} [{c[0]:+.3f}, {c[1]:+.3f}]{mark}" if c[0] is not None else f"{d:+.3f}{mark}") + spread


def collect(root: Path, task: str, scenarios: list[str]) -> str:
    """Markdown of every scenario's trial report: paired differences to ERM with CIs and verdicts, ERM's values,
    costs, and which (scenario, arm, seed) cells are done."""
    from monai_fair.trial.report import HEADLINE

    figs = [f for f, _ in HEADLINE[task]]
    lines = []
    for sc in scenarios:
        path = root / sc / "report" / "trial_report.json"
        if not path.is_file():
            lines += [f"### {sc}", "", "not run yet", ""]
            continue
        rep = json.loads(path.read_text())
        timing = root / sc / "trial_timing.json"
        lines += [f"### {sc}", "", f"Test cases: {rep['n_test_cases']}; seeds {rep['seeds']}; reference "
                  f"**{rep['reference']}**; Holm family: {rep['multiple_testing']['size']} tests.", ""]  # fmt: skip
        lines += ["| arm | " + " | ".join(f"Δ {f}" for f in figs) + " | cost ratio |", "|" + "---|" * (len(figs) + 2)]
        base = {}
        for r in rep["headline"]:
            base.setdefault(r["figure"], r.get("base_per_seed"))
        cells = []
        for f in figs:
            v = [x for x in (base.get(f) or []) if x is not None]
            cells.append(f"{sum(v) / len(v):.3f} ± {_sd(v):.3f}" if v else "n/a")
        lines.append(f"| {rep['reference']} (value, mean ± SD over seeds) | " + " | ".join(cells) + " | 1.00 |")
        by_arm: dict[str, dict] = {}
        for r in rep["headline"]:
            by_arm.setdefault(r["arm"], {})[r["figure"]] = r
        cost = {a["name"]: a.get("cost_ratio_mean") for a in rep["arms"]}
        for arm, rows in by_arm.items():
            c = cost.get(arm)
            lines.append(f"| {arm} | " + " | ".join(_cell(rows.get(f, {})) for f in figs) +
                         f" | {'n/a' if c is None else f'{c:.2f}'} |")  # fmt: skip
        if rep.get("missing_runs"):
            lines += ["", f"Missing runs: {', '.join(rep['missing_runs'])}."]
        if timing.is_file():
            t = json.loads(timing.read_text())
            if t.get("overhead_fraction") is not None:
                lines += ["", f"Trial overhead (last invocation): {t['overhead_s']:.1f} s of {t['wall_s']:.1f} s "
                          f"({100 * t['overhead_fraction']:.2f} %)."]  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def headline_json(root: Path, scenarios: list[str]) -> dict:
    """Every scenario's headline rows (paired difference to the reference, CI, Holm p, verdict, per-seed values),
    flags and per-arm cost, keyed by scenario folder (the machine-readable twin of the Markdown tables)."""
    out = {}
    for sc in scenarios:
        rep = json.loads((root / sc / "report" / "trial_report.json").read_text())
        out[sc] = {
            "n_test_cases": rep["n_test_cases"],
            "seeds": rep["seeds"],
            "reference": rep["reference"],
            "holm_family_size": rep["multiple_testing"]["size"],
            "headline": rep["headline"],
            "flags": rep.get("flags"),
            "missing_runs": rep.get("missing_runs"),
            "cost": {a["name"]: [a.get("cost_ratio_mean"), a.get("cost_ratio_sd")] for a in rep["arms"]},
        }
    return out


def _sd(v: list[float]) -> float:
    if len(v) < 2:
        return float("nan")
    m = sum(v) / len(v)
    return (sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5


def _kv(text: str) -> tuple[str, object]:
    key, value = text.split("=", 1)
    return key, json.loads(value)


def main() -> int:
    ap = benchmark_parser(__doc__)
    ap.add_argument("--task", choices=["classification", "segmentation"], default="classification")
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    ap.add_argument("--methods", nargs="+", help="arms (default: by --phase)")
    ap.add_argument("--phase", choices=["generic", "methods", "all"], default="all")
    ap.add_argument("--n-samples", dest="n_samples", type=int, default=800)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--executor", choices=["inprocess", "subprocess"], default="inprocess")
    ap.add_argument("--no-report", dest="no_report", action="store_true")
    ap.add_argument("--proportions", type=float, nargs=2, help="group proportions (ablation of the scenario's)")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=JSON", help="extra override (ablations)")
    ap.add_argument("--variant", default="", help="suffix of the scenario folder for an ablation (e.g. _rare)")
    ap.add_argument(
        "--data-param", dest="data_param", action="append", default=[], metavar="KEY=JSON",
        help="extra synthetic-data parameter (ablations), e.g. shortcut_splits='\"training\"'",
    )  # fmt: skip
    ap.add_argument(
        "--bundles-dir", dest="bundles_dir", help="bundles folder (e.g. a snapshot; default the checkout's)"
    )
    ap.add_argument("--arms-file", dest="arms_file", help="extra arms (JSON list; e.g. trial_control_arms.json)")
    ap.add_argument("--collect", action="store_true", help="only write <out>/trial_<task>.md from existing reports")
    ap.add_argument("--report-only", dest="report_only", action="store_true", help="(re)write the reports, run nothing")
    args = ap.parse_args()
    if args.out is None:
        ap.error("--out is required (the trial folders live there)")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from monai_fair.data.synthetic import ensure_synthetic_dataset
    from monai_fair.trial.arms import load_arms, resolve_arms
    from monai_fair.trial.report import write_trial_report
    from monai_fair.trial.runner import run_trial

    n, epochs = (200, 1) if args.quick else (args.n_samples, args.epochs)
    methods = args.methods or (
        GENERIC[args.task] if args.phase == "generic" else
        METHODS[args.task] if args.phase == "methods" else GENERIC[args.task] + METHODS[args.task]
    )  # fmt: skip
    root = Path(args.out) / args.task
    if args.collect:  # every scenario folder (ablation variants included) that has a report
        folders = sorted(p.name for p in root.iterdir() if (p / "report" / "trial_report.json").is_file())
        (root.parent / f"trial_{args.task}.md").write_text(collect(root, args.task, folders))
        (root.parent / f"trial_{args.task}.json").write_text(json.dumps(headline_json(root, folders), indent=1))
        return 0
    results = {}
    for scenario in args.scenarios:
        folder = scenario + args.variant
        if args.report_only:
            dl = root / folder / "data" / "datalist.json"
            if dl.is_file():
                extra = load_arms(args.arms_file) if args.arms_file else None
                write_trial_report(root / folder, resolve_arms(methods, args.task, extra), args.seeds, args.task, dl)
            continue
        data = root / folder / "data"
        params = {"n_samples": n, "image_size": 32, "file_format": "nifti", "splits": [0.6, 0.2, 0.2], "seed": 0}
        if args.proportions:
            params["group_proportions"] = list(args.proportions)
        params.update(dict(_kv(o) for o in args.data_param))
        datalist = ensure_synthetic_dataset(data, task=args.task, scenario=scenario, **params)
        t0 = time.perf_counter()
        res = run_trial(
            datalist,
            args.task,
            methods,
            args.seeds,
            root / folder,
            overrides={**overrides(args.task, epochs), **dict(_kv(o) for o in args.override)},
            bundles_dir=args.bundles_dir,
            extra_arms=load_arms(args.arms_file) if args.arms_file else None,
            executor=args.executor,
            report=not args.no_report,
        )
        results[folder] = {k: v for k, v in res.items() if k != "report"}
        results[folder]["bench_wall_s"] = time.perf_counter() - t0
        print(f"{folder}: {len(res['executed'])} runs executed, failed: {list(res['failed'])}", flush=True)
        (root / "bench_summary.json").write_text(json.dumps(results, indent=1, default=str))
    cmd = "nice -n 10 python " + " ".join(sys.argv)
    with open(root / "commands.txt", "a") as f:
        f.write(cmd + "\n")
    (root.parent / f"trial_{args.task}.md").write_text(collect(root, args.task, list(SCENARIOS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
