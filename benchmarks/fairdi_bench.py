# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""FairDi vs ERM, and FIS stage 0 alone, through the FairDi bundle itself, on monai-fair's synthetic data.

For each seed, in one process, every arm runs the bundle's own configs with ``python -m monai.bundle run`` (the
same code path as a user's run) on the same data, network, transforms and model selection:

* **ERM**: ``train_baseline.json`` with ``baseline_loss`` = plain cross-entropy (Dice+CE for segmentation);
* **FIS** (stage 0 alone): ``train_baseline.json`` with the FIS loss;
* **FairDi**: ``train_teachers.json`` then ``train_student.json`` on top of the FIS stage 0 (so ``fairdi`` and
  ``fis`` share their stage 0, as in one ``train.json`` run).

Every model is scored on the test split by ``evaluate.json`` (``eval_stage`` baseline / student); the figures are
computed from its ``eval/predictions.csv`` with :func:`monai_fair.metrics.compute_group_classification_metrics`
(segmentation: the per-case Dice of the CSV). Classification adds calibration figures (Brier score, mean predicted
probability minus prevalence, selection rate at 0.5 per group) and the teachers' own-group selection record.
Cost: wall-clock seconds of each stage's ``monai.bundle run`` (interpreter start-up included) and FairDi's whole
pipeline over ERM's.

Run::

    python benchmarks/fairdi_bench.py --seeds 0 1 2 --out docs/benchmarks

or one process per seed (``--threads 1`` each, as on the shared 2-core machine), then merge::

    for s in 0 1 2; do python benchmarks/fairdi_bench.py --seeds $s --threads 1 --out /tmp/fd$s & done; wait
    python benchmarks/fairdi_bench.py --merge /tmp/fd0/fairdi_results.json /tmp/fd1/fairdi_results.json \
        /tmp/fd2/fairdi_results.json --out docs/benchmarks
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from harness import Stopwatch, benchmark_parser, paired_differences, run_benchmark, summarize_seeds, write_results

REPO = Path(__file__).resolve().parents[1]

#: the network of every arm (the bundle's ResNet-10 takes minutes per epoch on the shared 2-core CPU)
SMALL_CLASSIFIER = {
    "_target_": "monai.networks.nets.Classifier",
    "in_shape": [3, 64, 64],
    "classes": 2,
    "channels": [8, 16, 32, 64],
    "strides": [2, 2, 2, 2],
    "num_res_units": 1,
}


#: networks of ``--network`` and their linear heads (``teacher_mode: "heads"`` needs a head that is the last module
#: applied: MONAI's Classifier reshapes its output after its head, so it cannot have head teachers)
NETWORKS = {
    "classifier": (SMALL_CLASSIFIER, "final.1"),
    "vgg": (
        {"_target_": "monai_fair.networks.SmallVGGNet", "spatial_dims": 2, "in_channels": 3, "num_classes": 2,
         "channels": [8, 16, 32, 64]},
        "classifier.2",
    ),
}  # fmt: skip


def _bundle_run(root: Path, configs: list[str], overrides: dict, log: Path) -> None:
    files = [str(root / "configs" / c) for c in configs]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", json.dumps(files), "--bundle_root", str(root)]
    cmd += [
        "--meta_file",
        str(root / "configs" / "metadata.json"),
        "--logging_file",
        str(root / "configs" / "logging.conf"),
    ]
    for k, v in overrides.items():
        cmd += [f"--{k}", v if isinstance(v, str) else json.dumps(v)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "a") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=str(root))
    if proc.returncode != 0:
        raise RuntimeError(f"bundle run failed ({proc.returncode}); see {log}")


def _read_predictions(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _classification_figures(rows: list[dict], group_names: list[str], positive: str) -> dict[str, float]:
    from monai_fair.metrics import compute_group_classification_metrics

    score = np.array([float(r[f"prob_{positive}"]) for r in rows])
    y = np.array([int(r["label"]) for r in rows])
    g = np.array([group_names.index(r["group"]) for r in rows])
    res = compute_group_classification_metrics(score, y, g, num_groups=len(group_names), group_names=group_names)
    out = {m: res["overall"][m] for m in ("accuracy", "balanced_accuracy", "auc", "tpr", "fpr", "selection_rate")}
    for k, name in enumerate(group_names):
        for m in ("auc", "accuracy", "tpr", "fpr", "selection_rate"):
            out[f"{m}_{name}"] = res["groups"][k][m]
    for m in ("worst_group_auc", "auc_gap", "accuracy_gap", "tpr_gap", "fpr_gap", "es_auc", "eodds"):
        out[m] = res["fairness"].get(m, float("nan"))
    out["brier"] = float(np.mean((score - y) ** 2))
    out["mean_prob_minus_prevalence"] = float(score.mean() - y.mean())
    return out


def _segmentation_figures(rows: list[dict], group_names: list[str]) -> dict[str, float]:
    from monai_fair.metrics import compute_group_segmentation_metrics

    dice = np.array([float(r["dice"]) for r in rows])
    iou = np.array([float(r["iou"]) for r in rows])
    g = np.array([group_names.index(r["group"]) for r in rows])
    res = compute_group_segmentation_metrics(dice, iou, g, num_groups=len(group_names), group_names=group_names)
    out = {"dice": res["overall"]["dice"]}
    for k, name in enumerate(group_names):
        out[f"dice_{name}"] = res["groups"][k]["dice"]
    for m in ("worst_group_dice", "dice_gap", "es_dice"):
        out[m] = res["fairness"].get(m, float("nan"))
    return out


def run_task(seed: int, args, task: str) -> dict:
    """All arms of one seed for ``task`` (``"classification"`` or ``"segmentation"``)."""
    from monai_fair.data import ensure_synthetic_dataset

    quick = bool(args.quick)
    if args.threads:  # the bundle runs are subprocesses: give them the same thread count
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    n = (48 if task == "segmentation" else 80) if quick else (300 if task == "segmentation" else 800)
    n = args.n_samples or n
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="fairdi_bench_data_")) / task
    synthetic = {"n_samples": n, "image_size": 64, "seed": 0, "scenario": args.scenario, **_data_params(args)}
    datalist = ensure_synthetic_dataset(data_dir, task=task, **synthetic)
    group_names = json.loads(Path(datalist).read_text())["group_names"]
    work = Path(tempfile.mkdtemp(prefix=f"fairdi_bench_{task}_{seed}_"))
    epochs = 1 if quick else args.epochs
    common: dict = {
        "datalist": datalist,
        "seed": seed,
        "baseline_epochs": epochs,
        "teacher_epochs": 1 if quick else args.teacher_epochs,
        "student_epochs": epochs,
        "num_workers": 0,
        "fairdi_preset": args.preset,
    }
    if task == "classification":
        net, head = NETWORKS[args.network]
        common.update(network_def=net, spatial_size=[64, 64], batch_size=32, teacher_head_name=head)
        erm_loss, positive = "ce", json.loads(Path(datalist).read_text()).get("label_names", ["0", "1"])[1]
    else:
        common.update(patch_size=[64, 64], batch_size=8)
        erm_loss, positive = "dice_ce", None
    # warm-up outside the timings: bytecode compilation of a fresh checkout and the first read of the image files
    # would otherwise all be charged to the arm that runs first (ERM)
    warm = "import monai.bundle, monai_fair.methods.fairdi, monai_fair.handlers, monai_fair.data as d; "
    warm += f"d.check_datalist({str(datalist)!r}, task={task!r}, verbose=False)"
    subprocess.run([sys.executable, "-c", warm])
    sw = Stopwatch()
    figures: dict[str, dict] = {}
    roots = {}
    for arm in ("erm", "fairdi"):
        roots[arm] = work / arm
        shutil.copytree(
            REPO / "bundles" / f"fairdi_{task}", roots[arm], ignore=shutil.ignore_patterns("models", "eval")
        )
    log = work / "runs.log"
    with sw("erm"):
        _bundle_run(roots["erm"], ["train.json", "train_baseline.json"], dict(common, baseline_loss=erm_loss), log)
    with sw("fis_stage0"):
        _bundle_run(roots["fairdi"], ["train.json", "train_baseline.json"], dict(common, baseline_loss="fis"), log)
    with sw("teachers"):
        _bundle_run(roots["fairdi"], ["train.json", "train_teachers.json"], common, log)
    with sw("student"):
        _bundle_run(roots["fairdi"], ["train.json", "train_student.json"], common, log)
    for arm, root, stage in (
        ("erm", roots["erm"], "baseline"),
        ("fis", roots["fairdi"], "baseline"),
        ("fairdi", roots["fairdi"], "student"),
    ):
        out_dir = work / f"eval_{arm}"
        _bundle_run(root, ["train.json", "evaluate.json"], dict(common, eval_stage=stage, output_dir=str(out_dir)), log)
        rows = _read_predictions(out_dir / "predictions.csv")
        figures[arm] = (
            _classification_figures(rows, group_names, positive)
            if task == "classification"
            else _segmentation_figures(rows, group_names)
        )
    teachers = json.loads((roots["fairdi"] / "models" / "teachers.json").read_text())
    premise = teachers.get("premise", {})
    if premise.get("checked"):  # the premise check of the teachers stage: how many teachers beat stage 0
        figures["fairdi"]["premise_teachers_beating_stage0"] = float(len(premise["teachers_beating_stage0"]))
    for k, rec in teachers["groups"].items():
        name = group_names[int(k)]
        figures["fairdi"][f"teacher_selected_epoch_{name}"] = float(rec["selected_epoch"] or 0)
        if "selection_rate" in rec and rec["selection_rate"] is not None:
            figures["fairdi"][f"teacher_val_selection_rate_{name}"] = rec["selection_rate"]
    fairdi_total = sw.seconds["fis_stage0"] + sw.seconds["teachers"] + sw.seconds["student"]
    figures["cost"] = {
        "erm_s": sw.seconds["erm"],
        "fis_stage0_s": sw.seconds["fis_stage0"],
        "teachers_s": sw.seconds["teachers"],
        "student_s": sw.seconds["student"],
        "student_over_erm": sw.seconds["student"] / sw.seconds["erm"],
        "fairdi_pipeline_over_erm": fairdi_total / sw.seconds["erm"],
    }
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return figures


def parser(doc: str):
    ap = benchmark_parser(doc)
    ap.add_argument("--epochs", type=int, default=8, help="epochs of stage 0, ERM and the student")
    ap.add_argument("--teacher-epochs", type=int, default=4, help="teacher epochs (of teacher_samples_per_epoch)")
    ap.add_argument("--scenario", default="irreducible", help="synthetic bias scenario (monai_fair.data.synthetic)")
    ap.add_argument("--data-dir", default=None, help="where the synthetic data are generated (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the bundles' outputs (models, logs)")
    ap.add_argument("--merge", nargs="+", default=None, help="merge single-seed result JSONs (no run)")
    ap.add_argument("--n-samples", type=int, default=None, help="synthetic cases (default 800; 300 segmentation)")
    ap.add_argument(
        "--data-param",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="extra synthetic-data parameter, e.g. group_proportions=[0.07,0.93] (the harder underrep)",
    )
    ap.add_argument("--network", default="classifier", choices=tuple(NETWORKS), help="every arm's network")
    ap.add_argument(
        "--preset", default="default", choices=["default", "reimplementation"], help="fairdi_preset of the bundle"
    )
    return ap


def _data_params(args) -> dict:
    out = {}
    for item in args.data_param:
        key, _, value = item.partition("=")
        out[key] = json.loads(value)
    return out


PAIRS = [("fairdi", "erm"), ("fis", "erm"), ("fairdi", "fis")]


def merge(paths: list[str], out: str | None, name: str) -> dict:
    """Combine result JSONs of one-seed runs (same command otherwise) into one result, as ``run_benchmark`` would."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    per_seed = sorted((s for p in parts for s in p["per_seed"]), key=lambda s: s["seed"])
    flat = [{k: (np.nan if v is None else v) for k, v in s["figures"].items()} for s in per_seed]
    result = dict(parts[0])
    result.update(
        seeds=[s["seed"] for s in per_seed],
        per_seed=per_seed,
        summary=summarize_seeds(flat),
        paired=paired_differences(flat, PAIRS),
        command=" ; ".join(p["command"] for p in parts),
        machines=[p["machine"] for p in parts],
        wall_s=max(p["wall_s"] for p in parts),
    )
    if out:
        write_results(out, name, result)
    return result


NOTES = (
    "Arms share data, network, transforms and selection (worst-group validation metric). `fis` is FairDi's stage 0, "
    "`fairdi` its student. Costs are wall-clock seconds of whole `monai.bundle run` processes on a loaded 2-core CPU "
    "(interpreter start-up, data caching and validation included); read them as ratios measured in one run."
)

if __name__ == "__main__":
    cli = parser(__doc__).parse_args()
    bench_name = f"fairdi_{cli.scenario}" if cli.scenario != "irreducible" else "fairdi_results"
    bench_name += "" if cli.preset == "default" else f"_{cli.preset}"
    bench_name += "" if cli.network == "classifier" else f"_{cli.network}"
    bench_name += "_" + "_".join(p.split("=")[0] for p in cli.data_param) if cli.data_param else ""
    if cli.merge:
        merge(cli.merge, cli.out, bench_name)
    else:
        run_benchmark(bench_name, lambda seed, a: run_task(seed, a, "classification"), cli, pairs=PAIRS, notes=NOTES)
