# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Shared pytest configuration: small thread pools and the repository paths used by bundle tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLES_DIR = REPO_ROOT / "bundles"

# CI has two cores; tests run in parallel processes, so each keeps to one thread.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


#: the model zoo's ids that every trainable bundle's training config defines (MONAI tooling keys on them)
ZOO_IDS = (
    "train#trainer",
    "train#trainer#max_epochs",
    "train#dataset#data",
    "train#handlers",
    "validate#evaluator",
    "validate#handlers",
    "validate#dataset#data",
    "bundle_root",
    "device",
    "dataset_dir",
)


def config_expressions(cfg) -> list[str]:
    """Every ``$`` expression in a parsed config."""
    if isinstance(cfg, dict):
        return [e for v in cfg.values() for e in config_expressions(v)]
    if isinstance(cfg, list):
        return [e for v in cfg for e in config_expressions(v)]
    return [cfg] if isinstance(cfg, str) and cfg.startswith("$") else []


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def bundles_dir() -> Path:
    return BUNDLES_DIR


def run_bundle_cli(
    bundle_root: Path,
    config_files: list[str],
    overrides: dict | None = None,
    command: str = "run",
    timeout: int = 600,
    extra_args: list[str] | None = None,
) -> str:
    """Run ``python -m monai.bundle <command>`` on a bundle in a subprocess; return its combined output.

    ``config_files`` are relative to ``bundle_root/configs``; ``overrides`` become ``--key value`` pairs
    (values are JSON-encoded so that fire parses them as Python literals). Raises with the output on failure.
    """
    import json
    import subprocess
    import sys

    configs = [str(bundle_root / "configs" / c) for c in config_files]
    config_arg = configs[0] if len(configs) == 1 else json.dumps(configs)
    cmd = [sys.executable, "-m", "monai.bundle", command]
    if command == "run":
        cmd += ["--config_file", config_arg, "--bundle_root", str(bundle_root)]
        cmd += ["--meta_file", str(bundle_root / "configs" / "metadata.json")]
        cmd += ["--logging_file", str(bundle_root / "configs" / "logging.conf")]
    cmd += list(extra_args or [])
    for key, value in (overrides or {}).items():
        cmd += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(bundle_root))
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"bundle command failed ({proc.returncode}): {' '.join(cmd)}\n{out[-6000:]}")
    return out


def kill_overlay(path: Path, trainer: str, epoch: int, bundle_root: Path | None = None) -> str:
    """Write a config overlay that hard-kills a bundle run (``os._exit(9)``: no clean-up, no ``finally``) when epoch
    ``epoch`` of the trainer ``trainer`` (a config id, e.g. ``"train#trainer"``) starts; return its path.

    The kill handler is added in ``initialize``. With ``bundle_root`` it is added instead to that bundle's
    ``train.json`` run list, right before ``@<trainer>.run()``: for trainers that must not be built during
    ``initialize`` (e.g. a stage whose data depends on an earlier stage's output).
    """
    import json

    expr = f"$@{trainer}.add_event_handler(ignite.engine.Events.EPOCH_STARTED(once={epoch}), lambda e: os._exit(9))"
    cfg: dict = {"+imports": ["$import ignite"]}
    if bundle_root is None:
        cfg["+initialize"] = [expr]
    else:
        run = json.loads((bundle_root / "configs" / "train.json").read_text())["run"]
        i = run.index(f"$@{trainer}.run()")
        cfg["run"] = run[:i] + [expr] + run[i:]
    path.write_text(json.dumps(cfg))
    return str(path)


@pytest.fixture
def bundle_copy(tmp_path):
    """Return a function copying ``bundles/<name>`` (configs, docs, LICENSE; no outputs) into ``tmp_path``."""
    import shutil

    def _copy(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(BUNDLES_DIR / name, dst, ignore=shutil.ignore_patterns("models", "eval", "data", "runs"))
        return dst

    return _copy


def verify_net_in_out(
    bundle_root: Path, config_file: str = "inference.json", extra_args: list[str] | None = None
) -> str:
    """Run ``python -m monai.bundle verify_net_in_out`` for ``network_def`` of a bundle's inference config."""
    args = [
        "--net_id",
        "network_def",
        "--meta_file",
        str(bundle_root / "configs" / "metadata.json"),
        "--config_file",
        str(bundle_root / "configs" / config_file),
        "--bundle_root",
        str(bundle_root),
    ]
    return run_bundle_cli(bundle_root, [], command="verify_net_in_out", extra_args=args + list(extra_args or []))
