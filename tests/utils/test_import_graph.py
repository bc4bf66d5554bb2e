# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The package imports cleanly: no import cycle among ``monai_fair`` modules (static graph of every import,
function-level ones included, ``TYPE_CHECKING`` blocks excluded), every module imports in a fresh interpreter in
any order, and the statistics layer does not import MONAI."""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted((ROOT / "monai_fair").rglob("*.py")):
        parts = p.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _typing_only(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(sub) for s in node.body for sub in ast.walk(s)}
    return skip


def import_graph() -> dict[str, set[str]]:
    """``module -> monai_fair modules it imports`` (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        skip = _typing_only(tree)
        pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("monai_fair")}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                if base.startswith("monai_fair"):
                    targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names}
        graph[name] = {t for t in targets if t in mods and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 100 and "monai_fair.metrics.core" in graph["monai_fair.metrics.group_classification"]
    assert cycles(graph) == []


def test_metrics_layers_import_downward_only():
    """The statistics layer never imports the report, handlers or trial, and only ``metrics.cumulative`` (the
    ``*Metric`` classes) imports MONAI."""
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("monai_fair.metrics"):
            assert not {t for t in targets if not t.startswith(("monai_fair.metrics", "monai_fair.utils"))}, name
    for path in (ROOT / "monai_fair" / "metrics").glob("*.py"):
        if path.stem != "cumulative":
            assert "from monai" not in path.read_text().replace("from monai_fair", ""), path.name


#: optional dependencies installed in a separate environment (extra [label]): a module that needs one is skipped
OPTIONAL = ("monailabel",)


def _import_all(order: list[str]) -> subprocess.CompletedProcess:
    code = (
        "import importlib, sys\n"
        f"optional = {OPTIONAL!r}\n"
        "for m in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ModuleNotFoundError as e:\n"
        "        if (e.name or '').split('.')[0] not in optional:\n"
        "            raise\n"
        "        print('skipped', m)\n"
    )
    return subprocess.run([sys.executable, "-c", code, *order], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("order", ["reversed", "shuffled"])
def test_every_module_imports_in_a_fresh_interpreter(order):
    names = sorted(_modules())
    if order == "reversed":
        names = names[::-1]
    elif order == "shuffled":
        random.Random(20).shuffle(names)
    r = _import_all(names)
    assert r.returncode == 0, r.stderr[-2000:]
    assert all(line.startswith("skipped monai_fair.apps.monailabel") for line in r.stdout.splitlines())


def test_report_statistics_do_not_import_monai():
    code = (
        "import sys\nimport monai_fair.report.files, monai_fair.report.card, monai_fair.metrics.comparison\n"
        "from monai_fair.metrics import compute_group_classification_metrics\n"
        "assert 'monai' not in sys.modules, 'MONAI imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
