# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Every subpackage of monai_fair (and every method folder) has an API reference page in mkdocs.yml's navigation."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _nav_files(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [f for entry in nav for f in _nav_files(entry)]
    if isinstance(nav, dict):
        return [f for value in nav.values() for f in _nav_files(value)]
    return []


def test_every_subpackage_has_an_api_page():
    yaml = pytest.importorskip("yaml", reason="the `docs` extra (mkdocs) is not installed")
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    nav = set(_nav_files(config["nav"]))
    package = REPO / "monai_fair"
    wanted = [p for p in package.iterdir() if (p / "__init__.py").is_file() and not p.name.startswith("_")]
    wanted = [p for p in wanted if p.name not in ("methods", "apps")]
    wanted += [p for p in (package / "methods").iterdir() if (p / "__init__.py").is_file()]
    missing = []
    for p in wanted:
        rel = p.relative_to(package).as_posix()
        page = f"api/{rel}.md"
        dotted = "monai_fair." + rel.replace("/", ".")
        text = (REPO / "docs" / page).read_text() if (REPO / "docs" / page).is_file() else ""
        if page not in nav or f"::: {dotted}" not in text:
            missing.append(f"{dotted} -> docs/{page}")
    assert "api/apps.md" in nav and "::: monai_fair.apps.monailabel" in (REPO / "docs/api/apps.md").read_text()
    assert not missing, f"no API page (a `::: module` line in a page listed in mkdocs.yml's nav) for: {missing}"


def test_grouped_arguments_are_split():
    pytest.importorskip("griffe", reason="the `docs` extra (mkdocstrings) is not installed")
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "griffe_grouped_params", REPO / "scripts" / "griffe_grouped_params.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = "\n".join(
        [
            "Summary, a, b: not an argument.",
            "",
            "Args:",
            "    x: one.",
            "    a, b (int): the sizes,",
            "        in pixels.",
            "    c / d: paths.",
            "",
            "Returns:",
            "    a, b: untouched outside argument sections.",
        ]
    )
    want = "\n".join(
        [
            "Summary, a, b: not an argument.",
            "",
            "Args:",
            "    x: one.",
            "    a (int): the sizes,",
            "        in pixels.",
            "    b (int): the sizes,",
            "        in pixels.",
            "    c: paths.",
            "    d: paths.",
            "",
            "Returns:",
            "    a, b: untouched outside argument sections.",
        ]
    )
    assert module.split_grouped_params(doc) == want
