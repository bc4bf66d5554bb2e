# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Packaging (metadata in setup.cfg). The only code here: ``build_py`` copies the repository's top-level
``bundles/`` (configs, docs, LICENSE; no run outputs) into the built package as ``monai_fair/_bundles``, so a wheel
built by ``pip install .``, ``pip wheel .`` or ``python -m build`` (through the sdist, which carries ``bundles/``
by MANIFEST.in) ships every bundle; ``monai_fair.bundles.bundles_dir`` finds them there, or in the checkout of an
editable install."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
OUTPUTS = ("models", "eval", "data", "runs", "logs", "trial", "__pycache__", "*.pyc")


class BuildPyWithBundles(build_py):
    """``build_py`` that also copies ``bundles/`` into ``<build_lib>/monai_fair/_bundles``."""

    def run(self) -> None:
        super().run()
        src = ROOT / "bundles"
        if not src.is_dir():
            raise FileNotFoundError(f"{src} is missing: build from the repository or from monai-fair's sdist")
        dst = Path(self.build_lib) / "monai_fair" / "_bundles"
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*OUTPUTS))


setup(cmdclass={"build_py": BuildPyWithBundles})
