# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The atomic writer (unique temporary names, nothing left behind, the destination intact on error) and the
declared CLI option groups shared by report/compare/trial."""

from __future__ import annotations

import argparse
import json
import threading

import pytest

from monai_fair.utils.cli import CliOption, add_argument_group, option_values
from monai_fair.utils.io import atomic_path, atomic_write_json, atomic_write_text


def test_atomic_write_replaces_and_leaves_nothing(tmp_path):
    dest = tmp_path / "run.json"
    atomic_write_json(dest, {"a": 1}, indent=1)
    assert json.loads(dest.read_text()) == {"a": 1}
    atomic_write_text(dest, "new")
    assert dest.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_atomic_write_error_keeps_destination(tmp_path):
    dest = tmp_path / "model.pt"
    dest.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert dest.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_atomic_temp_names_are_unique_for_concurrent_writers(tmp_path):
    dest = tmp_path / "report.json"
    seen, barrier = [], threading.Barrier(8)

    def write(k):
        with atomic_path(dest) as tmp:
            seen.append(tmp.name)
            barrier.wait()  # every writer holds its temporary file at the same time
            tmp.write_text(str(k))

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 8 and all(n.startswith(".report.json.") for n in seen)
    assert dest.read_text() in {str(k) for k in range(8)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


_OPTS = (
    CliOption(("--n-bootstrap",), {"type": int, "default": 1000}),
    CliOption(("--score-col",), {"nargs": "+", "default": None}, kwarg="score_cols"),
    CliOption(("--alpha",), {"type": float, "default": 0.05, "help": "level"}),
)


def test_option_group_round_trip_skip_and_overrides():
    p = argparse.ArgumentParser()
    add_argument_group(p, "stats", _OPTS, skip=("n_bootstrap",), overrides={"alpha": {"default": 0.1}})
    args = p.parse_args(["--score-col", "a", "b"])
    assert option_values(args, _OPTS, skip=("n_bootstrap",)) == {"score_cols": ["a", "b"], "alpha": 0.1}
    with pytest.raises(SystemExit):
        p.parse_args(["--n-bootstrap", "3"])  # skipped: not an option of this command
    assert [o.dest for o in _OPTS] == ["n_bootstrap", "score_col", "alpha"]
