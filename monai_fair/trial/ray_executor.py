# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Run a fairness trial's (arm, seed) runs as tasks of a Ray cluster (optional extra: ``pip install monai-fair[ray]``).

Each run that is not complete becomes one Ray task with its own resource request (``num_cpus``, ``num_gpus``); the
task does exactly what the in-machine executors do (:func:`monai_fair.trial.runner.execute_run`): it takes the
run's lock, trains from scratch unless ``run.json`` records a finished training with the same fingerprint, then runs
the missing evaluations, each step as a ``python -m monai.bundle run`` subprocess (``step_executor="subprocess"``,
the default) or in the worker's interpreter (``"inprocess"``). Resume semantics are therefore the same: a run whose
worker was killed has no finished ``run.json`` and is redone by the next invocation; finished runs are not.

Tasks are not retried by Ray (``max_retries=0`` unless asked): a killed worker is reported as that run's failure and
the trial's next invocation redoes it, like any other interrupted run. The output folder and the datalist's files
must be on a file system that every node sees at the same path (one machine, or a shared file system); the run
lock is an ``flock``, which some network file systems do not honour across nodes (Ray already runs each run once).

``ray_address``: ``None`` starts a local Ray instance (``num_cpus`` of this machine unless ``ray_init`` says
otherwise); ``"auto"`` or ``"ray://host:10001"`` / ``"host:6379"`` connects to an existing cluster.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from monai.utils import optional_import

from monai_fair.trial.progress import progress_bar

ray, has_ray = optional_import("ray")

__all__ = ["execute_runs_ray", "has_ray"]


def _ray_run(
    execute: Callable[..., dict],
    run: Any,
    python: str | None,
    env: Mapping[str, str],
    timeout: float | None,
    step_executor: str,
) -> dict:
    """The body of one Ray task: execute one run in the worker (lock, train if needed, pending evaluations)."""
    full_env = {**os.environ, **dict(env)}  # the worker's environment, with the driver's additions
    return execute([run], python=python, env=full_env, timeout=timeout, progress=False, executor=step_executor)


def execute_runs_ray(
    runs: Sequence[Any],
    execute: Callable[..., dict],
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    progress: bool = True,
    ray_address: str | None = None,
    resources: Mapping[str, float] | None = None,
    step_executor: str = "subprocess",
    max_retries: int = 0,
    ray_init: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Execute the runs that are not complete as Ray tasks; same return value as
    :func:`monai_fair.trial.runner.execute_runs`.

    Args:
        runs: the trial's runs (:func:`monai_fair.trial.runner.plan_runs`).
        execute: what a worker runs on its one run (:func:`monai_fair.trial.runner.execute_runs`; passed in, so
            this module stays below the runner).
        python: interpreter of the subprocess steps on the workers (default: the worker's own).
        env: additions to the worker's environment for its steps (default: this process's ``PYTHONPATH``).
        timeout: seconds allowed per step.
        progress: one progress bar over the runs.
        ray_address: ``None`` (start a local instance) or the address of an existing cluster.
        resources: per-run request, e.g. ``{"num_cpus": 4, "num_gpus": 1}`` (default ``{"num_cpus": 1}``).
        step_executor: how a worker runs each step: ``"subprocess"`` or ``"inprocess"``.
        max_retries: Ray's retries of a task whose worker died (default 0: the trial's resume redoes it).
        ray_init: further keyword arguments of ``ray.init`` (e.g. ``num_cpus`` of a local instance).

    Raises:
        ImportError: Ray is not installed (naming the extra that installs it).
    """
    if not has_ray:
        raise ImportError("the Ray executor needs Ray: pip install 'monai-fair[ray]' (or pip install ray).")
    pending = [r for r in runs if not r.complete]
    res: dict[str, Any] = {"runs_wall_s": 0.0, "executed": [], "failed": {}, "busy": []}
    if not pending:
        return res
    if env is None:
        env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    started = not ray.is_initialized()
    if started:
        kw = {"include_dashboard": False, "log_to_driver": False, **dict(ray_init or {})}
        ray.init(address=ray_address, **kw)
    request = {"num_cpus": 1, **dict(resources or {})}
    task = ray.remote(max_retries=max_retries)(_ray_run).options(**request)
    futures = {task.remote(execute, r, python, dict(env), timeout, step_executor): r for r in pending}
    bar = progress_bar(len(runs), len(runs) - len(pending), unit="run") if progress else None
    try:
        waiting = list(futures)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            run = futures[done[0]]
            try:
                out = ray.get(done[0])
            except Exception as e:  # the worker died (killed, out of memory) or the task raised
                res["failed"][run.key] = f"{run.key}: its Ray task failed ({type(e).__name__}); rerun to redo it"
                if bar is not None:
                    bar.write(f"FAILED {run.key} (Ray task: {type(e).__name__})")
                continue
            res["runs_wall_s"] += out["runs_wall_s"]
            res["executed"] += out["executed"]
            res["failed"].update(out["failed"])
            res["busy"] += out["busy"]
            if bar is not None and out["executed"]:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if started:
            ray.shutdown()
    return res
