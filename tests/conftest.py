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


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def bundles_dir() -> Path:
    return BUNDLES_DIR
