# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Run a fairness trial: every arm's own bundle configs, over seeds, resumably; then the comparison report.

Every training stage and every evaluation is one ``python -m monai.bundle run`` subprocess with the arm's config
files and a generated override file: the same code path as a user's run of the bundle, isolated from the trial (a
crash or a kill of one run leaves the trial and the other runs intact; no global state such as determinism flags,
threads or CUDA memory leaks from one run into the next), at the price of one interpreter start per step (a few
seconds; it counts as part of the run, not as trial overhead).

Layout of ``--out``::

    trial.json                        the trial's settings (checked on resume)
    runs/<recipe>/seed_<s>/           one run: configs/ (generated overrides), models/, eval/, predictions/, log.txt
    runs/<recipe>/seed_<s>/run.json   written when the training succeeded, then after each evaluation: fingerprints
                                      and wall time per step
    report/                           the comparison report (see :mod:`monai_fair.trial.report`)
    trial_timing.json(l)              wall time, runs' time and the trial's own overhead (last / every invocation)

Resuming: a run whose ``run.json`` records a finished training with the same fingerprint (datalist contents, training
config files' contents, overrides, seed) is not trained again; only its missing evaluations run (each has its own
fingerprint). Any other existing run folder (killed mid-way, failed, or made with other settings) is removed and the
run restarts from scratch. Several trial processes may share one output folder (e.g. one per group of
arms): each run is executed by one process only (a lock file per run); the others skip it. A run's subprocess
inherits that lock and is killed when the trial process dies (Linux parent-death signal): a trial killed even with
SIGKILL leaves no run writing behind, and while an orphaned writer holds the lock a rerun leaves the run alone.
``executor="ray"`` runs every run as a Ray task with the same semantics (:mod:`monai_fair.trial.ray_executor`).

The common overrides reach every arm: ``epochs`` sets each training stage's own epoch id (:func:`epoch_overrides`),
and an override that an arm's configs do not define is reported (:func:`override_notes`, ``trial.json``, report).
A run's cost is recorded as wall time and process CPU time per step (``run.json``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monai_fair.trial.arms import Arm, default_bundles_dir, resolve_arms
from monai_fair.trial.arms import checkpoint_tag as _checkpoint_tag
from monai_fair.trial.progress import progress_bar
from monai_fair.utils.io import atomic_write_json

__all__ = [
    "Step",
    "Run",
    "plan_runs",
    "run_trial",
    "run_trial_bundle",
    "execute_runs",
    "epoch_overrides",
    "override_notes",
    "EXECUTORS",
]

TRIAL_EVALUATE = "fairness_trial/configs/trial_evaluate.json"
#: how the runs are executed (``--executor``)
EXECUTORS = ("subprocess", "inprocess", "ray")


@dataclass
class Step:
    """One ``monai.bundle run`` of a run: a training stage or an evaluation."""

    name: str
    kind: str  # "train" | "eval"
    config_files: list[Path]
    overrides: dict[str, Any]
    tag: str | None = None  # evaluation: prefix of the prediction files
    fingerprint: str = ""  # evaluation: hash of the training fingerprint, its config files and overrides


@dataclass
class Run:
    """The training stages and evaluations of one recipe at one seed."""

    recipe: Arm
    seed: int
    run_dir: Path
    steps: list[Step] = field(default_factory=list)
    fingerprint: str = ""  # of the training: datalist contents, training configs' contents, overrides, seed
    lock_fd: int | None = None  # the run's lock, held by the process executing it (and inherited by its child)

    @property
    def key(self) -> str:
        return f"{self.recipe.name}/seed_{self.seed}"

    @property
    def train_steps(self) -> list[Step]:
        return [s for s in self.steps if s.kind == "train"]

    @property
    def eval_steps(self) -> list[Step]:
        return [s for s in self.steps if s.kind == "eval"]

    @property
    def trained(self) -> bool:
        rec = self.record()
        return rec.get("fingerprint") == self.fingerprint and rec.get("trained") is True

    def pending_evals(self) -> list[Step]:
        """Evaluations not done (or done with other settings) for the current training."""
        evals = self.record().get("evals", {}) if self.trained else {}
        return [s for s in self.eval_steps if evals.get(s.tag, {}).get("fingerprint") != s.fingerprint]

    @property
    def complete(self) -> bool:
        return self.trained and not self.pending_evals()

    def record(self) -> dict[str, Any]:
        path = self.run_dir / "run.json"
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text())
        except ValueError:
            return {}

    def write_record(self, record: Mapping[str, Any]) -> None:
        atomic_write_json(self.run_dir / "run.json", record, indent=1)


def _hash_file(path: Path, h: Any) -> None:
    h.update(str(path.name).encode())
    h.update(path.read_bytes())


def _hash_step(step: Step, h: Any) -> None:
    """Hash a step by its config files' contents and its overrides; where the bundles folder lies
    (``bundle_root``) is left out: the same configs at another place (e.g. a frozen copy) give the same run."""
    h.update(step.name.encode())
    for f in step.config_files:
        _hash_file(f, h)
    ov = {k: v for k, v in step.overrides.items() if k != "bundle_root"}
    h.update(json.dumps(ov, sort_keys=True, default=str).encode())


_MAX_EPOCHS = re.compile(r'"max_epochs"\s*:\s*"([^"]*)"')


def _config_keys(files: Sequence[Path]) -> set[str]:
    """Top-level config ids defined by ``files`` (MONAI's ``+key`` merge marker stripped)."""
    keys: set[str] = set()
    for f in files:
        try:
            data = json.loads(Path(f).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            keys.update(k.lstrip("+") for k in data)
    return keys


def epoch_overrides(arm: Arm, bundles_dir: Path, overrides: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """What ``epochs`` sets in ``arm``: every training stage's ``max_epochs`` that is a plain ``@<name>epochs``
    reference gets the value (FairDi's ``baseline_epochs``, ``teacher_epochs``, ``student_epochs``; APPLE's
    ``base_epochs`` and ``apple_epochs``; ...), unless that key is overridden itself. Returns the added overrides and
    notes on the stage lengths ``epochs`` does not set (e.g. a pruning stage's rounds).

    Raises:
        ValueError: ``epochs`` is given but reaches none of the arm's training stages.
    """
    if "epochs" not in overrides or not arm.stages:
        return {}, []
    added: dict[str, Any] = {}
    notes = []
    for i, stage in enumerate(arm.stages):
        text = "\n".join((bundles_dir / f).read_text() for f in stage if (bundles_dir / f).is_file())
        refs = _MAX_EPOCHS.findall(text)
        direct = [r[1:] for r in refs if re.fullmatch(r"@\w*epochs", r)]
        for key in direct:
            if key not in overrides and key not in arm.overrides:
                added[key] = overrides["epochs"]
        others = sorted({r for r in refs if not re.fullmatch(r"@\w*epochs", r)})
        if others and not direct:
            notes.append(f"stage {i} length ({', '.join(others)}) is not set by epochs")
    if not added and "epochs" not in _config_keys([bundles_dir / f for st in arm.stages for f in st]):
        raise ValueError(
            f"override epochs={overrides['epochs']!r} reaches no training stage of arm '{arm.name}'; set its "
            "stages' own epoch keys instead."
        )
    return added, notes


def override_notes(arms: Sequence[Arm], bundles_dir: Path, overrides: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per arm: the common overrides it does not use (no config id of that name in its files), and what
    ``epochs`` sets or leaves (:func:`epoch_overrides`)."""
    out: dict[str, list[str]] = {}
    for arm in arms:
        if arm.recipe is not None:
            continue
        files = [bundles_dir / f for st in arm.stages for f in st] + [bundles_dir / f for f in arm.evaluate]
        keys = _config_keys(files) | set(_BASE_KEYS)
        added, epoch_notes = epoch_overrides(arm, bundles_dir, overrides)
        notes = [f"override '{k}' is not used by this arm (no such config id)" for k in overrides
                 if k.split("#")[0] not in keys and not (k == "epochs" and added)]  # fmt: skip
        if added:
            notes.append("epochs sets " + ", ".join(f"{k}={v}" for k, v in added.items()))
        notes += epoch_notes
        if notes:
            out[arm.name] = notes
    return out


#: ids the trial sets in every run (never reported as unused)
_BASE_KEYS = ("bundle_root", "datalist", "seed", "ckpt_dir", "output_dir")


def plan_runs(
    arms: Sequence[Arm],
    seeds: Sequence[int],
    datalist: Path,
    out: Path,
    bundles_dir: Path,
    overrides: Mapping[str, Any] | None = None,
) -> list[Run]:
    """The runs of a trial (one per training recipe and seed), with their steps and fingerprints.

    Raises:
        FileNotFoundError: a config file of an arm does not exist (naming the arm and the file).
    """
    by_name = {a.name: a for a in arms}
    recipes: dict[str, Arm] = {}
    evals: dict[str, dict[tuple, tuple[tuple[str, ...], str | None]]] = {}
    for arm in arms:
        owner = by_name[arm.recipe_name]
        recipes.setdefault(owner.name, owner)
        files = arm.evaluate or owner.evaluate
        ckpt = arm.checkpoint if arm.evaluate or arm.post is None else None
        evals.setdefault(owner.name, {})[(files, ckpt)] = (files, ckpt)
    for arm in arms:
        for f in [f for stage in arm.stages for f in stage] + list(arm.evaluate):
            if not (bundles_dir / f).is_file():
                raise FileNotFoundError(f"arm '{arm.name}': config file {bundles_dir / f} does not exist.")
    if not (bundles_dir / TRIAL_EVALUATE).is_file():
        raise FileNotFoundError(f"the trial's evaluation overlay {bundles_dir / TRIAL_EVALUATE} does not exist.")
    dl_hash = hashlib.sha256(Path(datalist).read_bytes()).hexdigest()
    runs = []
    for name, owner in recipes.items():
        for seed in seeds:
            run_dir = out / "runs" / name / f"seed_{seed}"
            base = {
                "bundle_root": str(bundles_dir / owner.bundle),
                "datalist": str(datalist),
                "seed": int(seed),
                "ckpt_dir": str(run_dir / "models"),
                "output_dir": str(run_dir / "eval"),
                **dict(overrides or {}),
                **epoch_overrides(owner, bundles_dir, dict(overrides or {}))[0],
                **dict(owner.overrides),
            }
            run = Run(owner, int(seed), run_dir)
            for i, stage in enumerate(owner.stages):
                run.steps.append(Step(f"train_{i}", "train", [bundles_dir / f for f in stage], dict(base)))
            tags = [_checkpoint_tag(ckpt) for _, ckpt in evals[name].values()]
            if len(set(tags)) != len(tags):
                raise ValueError(
                    f"arms sharing the runs of '{name}' evaluate the same checkpoint with different config files; "
                    "give them their own recipe."
                )
            for files, ckpt in evals[name].values():
                tag = _checkpoint_tag(ckpt)
                ov = dict(base)
                ov.update(
                    {
                        "trial_task": owner.task,
                        "trial_checkpoint": None if ckpt is None else str(run_dir / "models" / ckpt),
                        "trial_output": str(run_dir / "predictions"),
                        "trial_tag": tag,
                    }
                )
                cfgs = [bundles_dir / f for f in files] + [bundles_dir / TRIAL_EVALUATE]
                run.steps.append(Step(f"eval_{tag}", "eval", cfgs, ov, tag=tag))
            h = hashlib.sha256(dl_hash.encode())
            for step in run.train_steps:
                _hash_step(step, h)
            run.fingerprint = h.hexdigest()
            for step in run.eval_steps:
                he = hashlib.sha256(run.fingerprint.encode())
                _hash_step(step, he)
                step.fingerprint = he.hexdigest()
            runs.append(run)
    return runs


def _command(step: Step, run_dir: Path, python: str) -> list[str]:
    cfg_dir = run_dir / "configs"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    ov_file = cfg_dir / f"{step.name}_overrides.json"
    ov_file.write_text(json.dumps(step.overrides, indent=1))
    files = [str(f) for f in step.config_files] + [str(ov_file)]
    bundle_configs = Path(step.overrides["bundle_root"]) / "configs"
    cmd = [python, "-m", "monai.bundle", "run", "--config_file", json.dumps(files)]
    if (bundle_configs / "metadata.json").is_file():
        cmd += ["--meta_file", str(bundle_configs / "metadata.json")]
    if (bundle_configs / "logging.conf").is_file():
        cmd += ["--logging_file", str(bundle_configs / "logging.conf")]
    return cmd


def _tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _run_inprocess(cmd: list[str], log: Path) -> int:
    """``monai.bundle run`` in this interpreter (same arguments as the subprocess), output appended to ``log``."""
    import contextlib
    import traceback

    from monai.bundle import run as bundle_run

    args = cmd[cmd.index("run") + 1 :]
    kwargs = {args[i].lstrip("-"): args[i + 1] for i in range(0, len(args), 2)}
    kwargs["config_file"] = json.loads(kwargs["config_file"])
    rc = 0
    saved = _logging_state()
    with open(log, "a") as f:
        consoles = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
        for handlers, _, _ in saved.values():  # loggers made before the run (e.g. at import) log to the run's file
            for h, _ in handlers:
                if isinstance(h, logging.StreamHandler) and any(h.stream is c for c in consoles):
                    h.setStream(f)
        with contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            try:
                bundle_run(**kwargs)
            except Exception:  # the run failed: its traceback goes to its log, the trial goes on
                traceback.print_exc(file=f)
                rc = 1
        # the run's logging.conf and its engines' loggers bound stream handlers to the log file, which closes now:
        # restore the logging state of before the run (the console stays quiet; the next run logs to its own file)
        _restore_logging(saved, f)
    return rc


def _logging_state() -> dict[str, tuple[list, bool, int]]:
    """Handlers (with their streams), ``disabled`` flag and level of every logger (the root as ``""``)."""
    loggers = {"": logging.getLogger()}
    loggers.update({k: v for k, v in logging.root.manager.loggerDict.items() if isinstance(v, logging.Logger)})
    return {k: ([(h, getattr(h, "stream", None)) for h in v.handlers], v.disabled, v.level) for k, v in loggers.items()}


def _restore_logging(saved: Mapping[str, tuple[list, bool, int]], stream: Any) -> None:
    """Put back the handlers of :func:`_logging_state`; handlers added since then that write to ``stream`` go."""
    now = {"": logging.getLogger()}
    now.update({k: v for k, v in logging.root.manager.loggerDict.items() if isinstance(v, logging.Logger)})
    for name, lg in now.items():
        if name in saved:
            handlers, disabled, level = saved[name]
            for h, st in handlers:
                if st is not None and isinstance(h, logging.StreamHandler) and h.stream is not st:
                    h.setStream(st)
            lg.handlers[:] = [h for h, _ in handlers]
            lg.disabled, lg.level = disabled, level
        else:
            lg.handlers[:] = [h for h in lg.handlers if getattr(h, "stream", None) is not stream]


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL it when the trial process dies (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1


def _cpu_seconds(executor: str) -> float:
    """CPU time (user + system) of this process (in-process runs) or of its finished children (subprocess runs)."""
    import resource

    who = resource.RUSAGE_SELF if executor == "inprocess" else resource.RUSAGE_CHILDREN
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


def _run_step(
    step: Step, run: Run, python: str, env: Mapping[str, str], timeout: float | None, executor: str
) -> tuple[float, int]:
    log = run.run_dir / "log.txt"
    cmd = _command(step, run.run_dir, python)
    t0, c0 = time.perf_counter(), _cpu_seconds(executor)
    with open(log, "a") as f:
        f.write(f"\n===== {step.name} ({executor}): {' '.join(cmd)}\n")
    if executor == "inprocess":
        rc = _run_inprocess(cmd, log)
    else:
        with open(log, "a") as f:
            # the child holds the run's lock too (a rerun refuses the run while an orphaned writer lives) and dies
            # with the trial (Linux: parent-death signal), so a SIGKILLed trial leaves no run behind
            fds = (run.lock_fd,) if run.lock_fd is not None else ()
            proc = subprocess.Popen(
                cmd, stdout=f, stderr=subprocess.STDOUT, env=dict(env), cwd=str(run.run_dir), pass_fds=fds,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
            try:
                rc = proc.wait(timeout=timeout)
            except BaseException:  # timeout, KeyboardInterrupt, SystemExit (SIGTERM): never leave the child running
                proc.kill()
                proc.wait()
                raise
    _LAST_CPU[:] = [_cpu_seconds(executor) - c0]
    return time.perf_counter() - t0, rc


def execute_runs(
    runs: Sequence[Run],
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    progress: bool = True,
    executor: str = "subprocess",
) -> dict[str, Any]:
    """Execute the runs that are not complete; return ``{"runs_wall_s", "executed", "failed": {key: message},
    "busy"}`` (``busy``: runs another process was executing, left to it).

    ``executor``: ``"subprocess"`` (one ``python -m monai.bundle run`` per step, isolated) or ``"inprocess"``
    (``monai.bundle.run`` in this interpreter: no interpreter start per step, for small trials and tests).

    A run whose training is not complete (no ``run.json`` with its training fingerprint) is restarted from
    scratch: its folder is removed first. A trained run only runs its missing evaluations (e.g. an arm added to the
    trial that evaluates another checkpoint of the same training). Failures are collected, not raised, so the other
    runs still execute.
    """
    python = python or sys.executable
    env = dict(env if env is not None else os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    done = sum(r.complete for r in runs)
    if executor == "inprocess" and done < len(runs):
        _import_run_modules()
    # progress over steps (training stages, evaluations), averaged over the whole trial (no smoothing): runs differ
    # by their number of stages, and a per-run rate from the first, short runs under-estimates the rest
    n_steps = sum(len(r.steps) for r in runs)
    todo = sum(len(_pending_steps(r)) for r in runs)
    bar = progress_bar(n_steps, n_steps - todo) if progress else None
    runs_wall, executed, failed, busy = 0.0, [], {}, []

    def step(run: Run, st: Step) -> tuple[float, int]:
        nonlocal runs_wall
        if bar is not None:
            bar.set_postfix_str(f"{run.key} {st.name}")
        wall, rc = _run_step(st, run, python, env, timeout, executor)
        if bar is not None:
            bar.update(1)
        if _STOP:  # a run may swallow the SystemExit of SIGTERM: stop here in any case
            raise SystemExit(128 + _STOP[0])
        runs_wall += wall
        if rc != 0:
            log = run.run_dir / "log.txt"
            failed[run.key] = f"{run.key} {st.name} failed (exit {rc}); log: {log}\n{_tail(log)}"
            if bar is not None:
                bar.write(f"FAILED {run.key} {st.name}; log: {log}")
        return wall, rc

    try:
        for run in list(runs) + [None] + list(runs):  # a second pass picks up runs another process left unfinished
            if run is None:
                busy = []
                continue
            if run.complete or run.key in failed:
                continue
            # one process per run: a run another trial process is executing (same --out) is left to it
            lock = _try_lock(run.run_dir.parent / f".{run.run_dir.name}.lock")
            if lock is None:
                busy.append(run.key)
                continue
            run.lock_fd = lock.fileno()
            try:
                _execute_locked_run(run, step, executed, bar)
            finally:
                run.lock_fd = None
                lock.close()
    finally:
        if bar is not None:
            bar.close()
    return {"runs_wall_s": runs_wall, "executed": executed, "failed": failed, "busy": busy}


def _import_run_modules() -> None:
    """Import what every run imports once, before any step is timed (the first run must not pay for it)."""
    import monai.bundle  # noqa: F401

    import monai_fair.engines  # noqa: F401
    import monai_fair.handlers  # noqa: F401
    import monai_fair.trial.evaluation  # noqa: F401


def _pending_steps(run: Run) -> list[Step]:
    """The steps a run still has to execute (all of them when its training is not finished)."""
    return run.pending_evals() if run.trained else list(run.steps)


def _execute_locked_run(
    run: Run, step: Callable[[Run, Step], tuple[float, int]], executed: list[str], bar: Any
) -> None:
    """Train ``run`` if needed, then run its pending evaluations; its lock is held by the caller."""
    if run.complete:  # finished by another process meanwhile
        return
    if not run.trained and not _train_run(run, step):  # killed, failed or other settings: train again from scratch
        return
    record = run.record()
    for st in run.pending_evals():  # evaluations are resumable on their own
        wall, rc = step(run, st)
        if rc != 0:
            break
        record["evals"][st.tag] = {"fingerprint": st.fingerprint, "wall_s": wall, "cpu_s": _last_cpu()}
        run.write_record(record)
    if run.complete and run.key not in executed:
        executed.append(run.key)


def _train_run(run: Run, step: Callable[[Run, Step], tuple[float, int]]) -> bool:
    """Train ``run`` from scratch (its folder removed first); True when every training stage succeeded."""
    if run.run_dir.exists():
        shutil.rmtree(run.run_dir)
    run.run_dir.mkdir(parents=True)
    record: dict[str, Any] = {"recipe": run.recipe.name, "seed": run.seed, "device": _device()}
    record.update({"fingerprint": run.fingerprint, "steps": [], "evals": {}})
    for st in run.train_steps:
        wall, rc = step(run, st)
        record["steps"].append({"name": st.name, "kind": st.kind, "wall_s": wall, "cpu_s": _last_cpu()})
        if rc != 0:
            break
    else:
        record["trained"] = True
        run.write_record(record)
    return bool(record.get("trained"))


def _last_cpu() -> float | None:
    return _LAST_CPU[0] if _LAST_CPU else None


def _device() -> str:
    """Where the bundles train on this machine: ``"cuda"`` when a GPU is visible (their default), else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _try_lock(path: Path) -> Any:
    """An exclusive, non-blocking ``flock`` on ``path`` (the open file), or None when another process holds it."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    f.write(str(os.getpid()))
    f.flush()
    return f


_LAST_CPU: list[float] = []  # CPU seconds of the last step (the step tuple keeps its (wall, rc) shape)
_STOP: list[int] = []  # the signal that asked the trial to stop (checked between steps too)


def _terminate_on_sigterm() -> None:
    def handler(signum: int, frame: Any) -> None:
        _STOP.append(signum)
        raise SystemExit(128 + signum)

    if hasattr(signal, "SIGTERM"):
        try:
            signal.signal(signal.SIGTERM, handler)
        except ValueError:  # not the main thread
            pass


def run_trial(
    datalist: str | os.PathLike,
    task: str,
    methods: Sequence[str] | None,
    seeds: Sequence[int],
    out: str | os.PathLike,
    bundles_dir: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
    extra_arms: Mapping[str, Arm] | None = None,
    python: str | None = None,
    timeout: float | None = None,
    progress: bool = True,
    report: bool = True,
    report_options: Mapping[str, Any] | None = None,
    executor: str = "subprocess",
    ray_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run a fairness trial and write its comparison report (see the module docstring).

    Args:
        datalist: the datalist JSON (training / validation / test splits with a group per item).
        task: ``"classification"`` or ``"segmentation"``.
        methods: arm names (default: every arm of the task); the reference arm (ERM) is always added.
        seeds: training seeds; every arm runs every seed on the same data and test cases.
        out: output folder (resumable).
        bundles_dir: the bundles folder (default: :func:`monai_fair.trial.arms.default_bundles_dir`).
        overrides: config overrides applied to every run (e.g. ``{"epochs": 3}``), before each arm's own.
        extra_arms: user arms (see :func:`monai_fair.trial.arms.load_arms`).
        python: interpreter of the runs (default: this one).
        timeout: seconds allowed per step.
        progress: show one progress bar over the runs.
        report: write the comparison report at the end.
        report_options: keyword arguments of :func:`monai_fair.trial.report.write_trial_report`.
        executor: ``"subprocess"`` (default: every step its own ``python -m monai.bundle run``), ``"inprocess"``
            or ``"ray"`` (every run a Ray task: :func:`monai_fair.trial.ray_executor.execute_runs_ray`).
        ray_options: keyword arguments of :func:`~monai_fair.trial.ray_executor.execute_runs_ray` (``ray_address``,
            ``resources`` per run, ``step_executor``, ``max_retries``, ``ray_init``).

    Returns:
        ``{"out", "arms", "runs", "failed", "wall_s", "runs_wall_s", "overhead_s", "overhead_fraction", "report"}``.
    """
    t0 = time.perf_counter()
    _terminate_on_sigterm()
    datalist = Path(datalist).resolve()
    if not datalist.is_file():
        raise FileNotFoundError(f"datalist {datalist} does not exist.")
    out = Path(out).resolve()
    bundles = Path(bundles_dir).resolve() if bundles_dir else default_bundles_dir()
    arms = resolve_arms(methods, task, extra_arms)
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, got {list(seeds)}.")
    out.mkdir(parents=True, exist_ok=True)
    _write_manifest(out, datalist, task, overrides, bundles, arms, seeds)
    runs = plan_runs(arms, seeds, datalist, out, bundles, overrides)
    notes = override_notes(arms, bundles, dict(overrides or {}))
    _record_override_notes(out, notes, progress)
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}.")
    if ray_options and executor != "ray":
        raise ValueError(f"Ray options {sorted(ray_options)} given, but the executor is {executor!r}, not 'ray'.")
    if executor == "ray":
        from monai_fair.trial.ray_executor import execute_runs_ray

        res = execute_runs_ray(
            runs, execute_runs, python=python, timeout=timeout, progress=progress, **dict(ray_options or {})
        )
    else:
        res = execute_runs(runs, python=python, timeout=timeout, progress=progress, executor=executor)
    report_paths = None
    if report:
        from monai_fair.trial.report import write_trial_report

        report_paths = write_trial_report(out, arms, seeds, task, datalist, **dict(report_options or {}))
    wall = time.perf_counter() - t0
    overhead = wall - res["runs_wall_s"]
    summary = {
        "out": str(out),
        "arms": [a.name for a in arms],
        "runs": [r.key for r in runs],
        "executed": res["executed"],
        "failed": res["failed"],
        "busy": res["busy"],
        "wall_s": wall,
        "runs_wall_s": res["runs_wall_s"],
        "overhead_s": overhead,
        "overhead_fraction": overhead / wall if res["executed"] else None,
        "report": report_paths,
    }
    _write_timing(out, summary, report_paths)
    return summary


def _record_override_notes(out: Path, notes: Mapping[str, list[str]], show: bool) -> None:
    """Store what the overrides do per arm in ``trial.json`` (the report lists it) and print it."""
    manifest = out / "trial.json"
    settings = json.loads(manifest.read_text())
    settings["override_notes"] = dict(notes)
    manifest.write_text(json.dumps(settings, indent=1, default=str))
    if show:
        for arm, items in notes.items():
            for n in items:
                print(f"trial: {arm}: {n}", file=sys.stderr)


def _write_manifest(
    out: Path,
    datalist: Path,
    task: str,
    overrides: Mapping[str, Any] | None,
    bundles: Path,
    arms: Sequence[Arm],
    seeds: list[int],
) -> None:
    """Write ``trial.json``; raise when ``out`` already holds a trial of another datalist or task."""
    settings = {"datalist": str(datalist), "task": task, "overrides": dict(overrides or {}), "bundles": str(bundles)}
    manifest = out / "trial.json"
    if manifest.is_file():
        old = json.loads(manifest.read_text())
        for k in ("datalist", "task"):
            if old.get(k) != settings[k]:
                raise ValueError(
                    f"{out} holds a trial with {k}={old.get(k)!r}, not {settings[k]!r}; use another --out folder."
                )
    settings.update({"arms": [a.to_dict() for a in arms], "seeds": seeds})
    manifest.write_text(json.dumps(settings, indent=1, default=str))


def _write_timing(out: Path, summary: Mapping[str, Any], report_paths: Mapping[str, str] | None) -> None:
    """Write ``trial_timing.json(l)`` and append this invocation's timing to the report's Markdown."""
    timing = {k: summary[k] for k in summary if k != "report"}
    (out / "trial_timing.json").write_text(json.dumps(timing, indent=1))
    with open(out / "trial_timing.jsonl", "a") as f:  # one line per invocation (several may share a folder)
        f.write(json.dumps({"time": time.time(), **timing}) + "\n")
    if report_paths:
        wall, runs_wall, overhead = summary["wall_s"], summary["runs_wall_s"], summary["overhead_s"]
        frac, n_executed = summary["overhead_fraction"], len(summary["executed"])
        with open(report_paths["md"], "a") as f:
            f.write(
                f"\n## Trial timing (this invocation)\n\nWall {wall:.1f} s; runs {runs_wall:.1f} s "
                f"({n_executed} executed, the others resumed); the trial's own overhead (planning, report) "
                f"{overhead:.1f} s" + (f" = {100 * frac:.1f} % of the wall time.\n" if frac is not None else ".\n")
            )


def run_trial_bundle(
    datalist: str | os.PathLike,
    task: str,
    methods: Sequence[str] | None,
    seeds: Sequence[int],
    output_dir: str | os.PathLike,
    bundles_dir: str | os.PathLike | None = None,
    overrides_file: str | os.PathLike | None = None,
    executor: str = "subprocess",
    report_options: Mapping[str, Any] | None = None,
    report_only: bool = False,
    ray_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Entry point of ``bundles/fairness_trial`` (``run`` of its ``train.json`` / ``evaluate.json``).

    Same as :func:`run_trial`, except that the overrides come from a JSON file (``overrides_file``), because the
    trial bundle's own config parser would try to resolve the ``@`` references meant for the arms' bundles, and that
    a failed run raises (a bundle run never exits 0 without its outputs). With ``report_only`` nothing is run: the
    report is written from the runs already in ``output_dir``.

    Raises:
        RuntimeError: a run failed, or (``report_only``) no run of the reference arm is complete.
    """
    from monai_fair.trial.report import format_trial_summary, write_trial_report

    overrides = json.loads(Path(overrides_file).read_text()) if overrides_file else None
    if report_only:
        arms = resolve_arms(methods, task)
        paths = write_trial_report(
            output_dir, arms, list(seeds), task, Path(datalist).resolve(), **(report_options or {})
        )
        print(f"fairness trial report: {paths['md']}")
        return {"report": paths}
    res = run_trial(
        datalist, task, methods, seeds, output_dir, bundles_dir=bundles_dir, overrides=overrides,
        executor=executor, report_options=report_options, ray_options=ray_options,
    )  # fmt: skip
    print(format_trial_summary(res))
    if res["failed"]:
        raise RuntimeError(f"{len(res['failed'])} trial run(s) failed: {', '.join(res['failed'])} (see their log.txt).")
    return res
