# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""monai-fair's bundles for every install: where they are, ``python -m monai_fair bundle list|get|sync-versions``.

The bundles live in the repository's top-level ``bundles/`` folder; a built wheel or sdist carries them as package
data (``monai_fair/_bundles/``, copied there by ``setup.py``'s ``build_py``). :func:`bundles_dir` finds them in this
order: ``$MONAI_FAIR_BUNDLES``, the installed package data, the source checkout next to the package (an editable
install). The trial and the MONAI Label app look bundles up through it, so neither needs a checkout.

``bundle get NAME DIR`` writes a bundle in the model zoo's layout (``DIR/configs``, ``DIR/docs``, ``DIR/LICENSE``)
so that ``python -m monai.bundle run --config_file configs/train.json`` works in ``DIR`` (``bundle_root`` is ``.``);
``--archive`` writes instead the zoo's download format, ``DIR/NAME_v<version>.zip`` holding ``NAME/configs/...``.

The versions in every ``configs/metadata.json`` come from one source, the tested pins of ``constraints.txt`` (and
``monai_fair.__version__``): :func:`metadata_version_problems` lists where a bundle differs, ``sync-versions
--write`` rewrites them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "OVERLAYS",
    "bundles_dir",
    "bundle_path",
    "list_bundles",
    "get_bundle",
    "missing_packages",
    "archive_bundle",
    "split_named",
    "read_pins",
    "metadata_versions",
    "metadata_version_problems",
    "add_bundle_parser",
]

#: the folder of configuration overlays (not a bundle; ``bundle get overlays DIR`` copies its JSON files)
OVERLAYS = "overlays"
#: run outputs never copied out of a bundle folder
_OUTPUTS = ("models", "eval", "data", "runs", "logs", "trial", "__pycache__", "*.pyc")
#: metadata.json fields that name a package's version, and the distribution whose pin gives it
_VERSION_FIELDS = {"monai_version": "monai", "pytorch_version": "torch", "numpy_version": "numpy"}


def bundles_dir() -> Path:
    """The folder holding monai-fair's bundles (one sub-folder per bundle, plus ``overlays``).

    Looked up in this order: ``$MONAI_FAIR_BUNDLES``; the package data of an installed wheel
    (``monai_fair/_bundles``); the ``bundles`` folder of the source checkout this package is imported from.

    Raises:
        FileNotFoundError: ``$MONAI_FAIR_BUNDLES`` names no folder, or neither location exists.
    """
    env = os.environ.get("MONAI_FAIR_BUNDLES")
    if env:
        if not Path(env).is_dir():
            raise FileNotFoundError(f"$MONAI_FAIR_BUNDLES={env} is not a folder.")
        return Path(env).resolve()
    here = Path(__file__).resolve().parent
    for candidate in (here / "_bundles", here.parent / "bundles"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"monai-fair's bundles are neither installed ({here / '_bundles'}) nor in a checkout "
        f"({here.parent / 'bundles'}): reinstall monai-fair from a wheel or sdist built with its setup.py, "
        "or set $MONAI_FAIR_BUNDLES."
    )


def list_bundles() -> dict[str, dict[str, Any]]:
    """Every bundle, by folder name: its ``metadata.json`` (name, version, task, ...), sorted by name."""
    root = bundles_dir()
    return {
        p.name: json.loads((p / "configs" / "metadata.json").read_text())
        for p in sorted(root.iterdir())
        if (p / "configs" / "metadata.json").is_file()
    }


def bundle_path(name: str) -> Path:
    """The folder of bundle ``name`` (or of the overlays, ``name="overlays"``).

    Raises:
        KeyError: no such bundle (the message lists the available ones).
    """
    root = bundles_dir()
    path = root / name
    if name == OVERLAYS and path.is_dir():
        return path
    if not (path / "configs" / "metadata.json").is_file():
        available = ", ".join([*list_bundles(), OVERLAYS])
        raise KeyError(f"no monai-fair bundle named {name!r} in {root}; available: {available}")
    return path


def get_bundle(name: str, dest: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write bundle ``name`` into ``dest`` in the model zoo's layout (``dest/configs``, ``dest/docs``,
    ``dest/LICENSE``; no run outputs) and return ``dest``. ``name="overlays"`` copies the overlay JSON files.

    Raises:
        KeyError: unknown bundle.
        FileExistsError: ``dest`` already holds a bundle's files and ``overwrite`` is false.
    """
    src = bundle_path(name)
    dest = Path(dest)
    clashes = sorted(p.name for p in src.iterdir() if (dest / p.name).exists() and not _is_output(p.name))
    if clashes and not overwrite:
        raise FileExistsError(
            f"{dest} already holds {', '.join(clashes)}: choose an empty folder or pass --overwrite to replace them."
        )
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(*_OUTPUTS), dirs_exist_ok=True)
    return dest


def missing_packages(name: str) -> list[str]:
    """The distributions bundle ``name``'s ``metadata.json`` requires (``required_packages_version``) that are not
    installed, e.g. ``itk`` (reads the classification bundles' RGB DICOMs) or ``nibabel`` (the NIfTI of the
    segmentation bundles): extras of monai-fair (``itk``, ``nifti``, ``all``)."""
    from importlib.metadata import PackageNotFoundError, version

    meta = json.loads((bundle_path(name) / "configs" / "metadata.json").read_text())
    missing = []
    for dist in meta.get("required_packages_version", {}):
        try:
            version(dist)
        except PackageNotFoundError:
            missing.append(dist)
    return missing


def archive_bundle(name: str, out_dir: str | os.PathLike) -> Path:
    """Write bundle ``name`` as a model-zoo download archive ``out_dir/<name>_v<version>.zip`` (members under
    ``<name>/``, as ``python -m monai.bundle download`` unpacks them) and return its path."""
    src = bundle_path(name)
    if name == OVERLAYS:
        raise KeyError("the overlays are not a bundle: use `bundle get overlays DIR`.")
    version = json.loads((src / "configs" / "metadata.json").read_text())["version"]
    out = Path(out_dir) / f"{name}_v{version}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(src.rglob("*")):
            rel = f.relative_to(src)
            if f.is_file() and not any(_is_output(part) for part in rel.parts):
                zf.write(f, Path(name) / rel)
    return out


def _is_output(name: str) -> bool:
    return name in _OUTPUTS or name.endswith(".pyc")


#: split prefixes a metric name may carry already (the zoo's ``val_`` included); :func:`split_named` replaces them
_SPLIT_PREFIXES = ("validation_", "val_", "test_", "training_", "train_")


def split_named(split: str, metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """Metrics named after the split they score: the name's split prefix (``val_``, ``test_``, ...; or none) is
    replaced by ``<split>_``, so ``{"test_auc": m}`` scoring the validation split becomes
    ``{"validation_auc": m}``. Evaluation configs pass their evaluator's metrics through it, so that a logged or
    saved name never misstates the split (``eval_split``) it was computed on.

    Raises:
        ValueError: two names that become the same.
    """
    out: dict[str, Any] = {}
    for name, metric in (metrics or {}).items():
        base = next((name[len(p) :] for p in _SPLIT_PREFIXES if name.startswith(p)), name)
        key = f"{split}_{base}"
        if key in out:
            raise ValueError(f"metrics {sorted(metrics or {})} give {key!r} twice on split {split!r}")
        out[key] = metric
    return out


# ------------------------------------------------------------------------------------------------ versions
_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def read_pins(constraints: str | os.PathLike) -> dict[str, str]:
    """The exact pins (``name==version``) of a constraints file, by lower-case distribution name; a local version
    label (``+cpu``) is dropped."""
    pins = {}
    for line in Path(constraints).read_text().splitlines():
        m = _PIN.match(line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2).split("+")[0]
    return pins


def metadata_versions(meta: Mapping[str, Any], pins: Mapping[str, str]) -> dict[str, Any]:
    """The version fields a bundle's ``metadata.json`` should hold: ``monai_version``, ``pytorch_version``,
    ``numpy_version`` from ``pins`` and each of its ``required_packages_version`` entries from ``pins``
    (``monai-fair`` from ``monai_fair.__version__``).

    Raises:
        KeyError: a required package has no pin (pin it in constraints.txt, or drop it from the metadata).
    """
    from monai_fair import __version__

    pins = {**{k.lower(): v for k, v in pins.items()}, "monai-fair": __version__}
    missing = [p for p in [*_VERSION_FIELDS.values(), *meta.get("required_packages_version", {})] if p not in pins]
    if missing:
        raise KeyError(f"no tested version (a `name==version` line in constraints.txt) for {missing}")
    out: dict[str, Any] = {field: pins[dist] for field, dist in _VERSION_FIELDS.items()}
    out["required_packages_version"] = {p: pins[p] for p in meta.get("required_packages_version", {})}
    return out


def metadata_version_problems(
    constraints: str | os.PathLike, root: str | os.PathLike | None = None, write: bool = False
) -> list[str]:
    """Every bundle whose ``metadata.json`` versions differ from the pins of ``constraints`` (one line each);
    with ``write``, rewrite those fields (other keys and their order are kept)."""
    pins = read_pins(constraints)
    problems = []
    for meta_file in sorted(Path(root or bundles_dir()).glob("*/configs/metadata.json")):
        meta = json.loads(meta_file.read_text())
        want = metadata_versions(meta, pins)
        diff = {k: (meta.get(k), v) for k, v in want.items() if meta.get(k) != v}
        if diff:
            problems.append(f"{meta_file}: {diff}")
            if write:
                meta.update(want)
                meta_file.write_text(json.dumps(meta, indent=4) + "\n")
    return problems


# ------------------------------------------------------------------------------------------------ command line
def _cmd_list(args: argparse.Namespace) -> int:
    root = bundles_dir()
    print(f"monai-fair bundles ({root}):")
    for name, meta in list_bundles().items():
        print(f"  {name:<32} v{meta.get('version', '?'):<7} {meta.get('name', '')}")
    if (root / OVERLAYS).is_dir():
        files = ", ".join(sorted(p.name for p in (root / OVERLAYS).glob("*.json")))
        print(f"  {OVERLAYS:<32} {'':<8} configuration overlays for any bundle: {files}")
    print("Get one with: python -m monai_fair bundle get NAME DIR")
    return 0


def _cmd_get(args: argparse.Namespace) -> int:
    try:
        if args.archive:
            out = archive_bundle(args.name, args.dir)
            print(f"{args.name} written to {out} (model-zoo download format)")
            return 0
        out = get_bundle(args.name, args.dir, overwrite=args.overwrite)
    except (KeyError, FileExistsError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    print(f"{args.name} written to {out}")
    if args.name != OVERLAYS and missing_packages(args.name):
        print(
            f"warning: {args.name} needs {', '.join(missing_packages(args.name))}, not installed here: install "
            "monai-fair with the extra `all` (or `itk` / `nifti`)",
            file=sys.stderr,
        )
    if args.name != OVERLAYS:
        cd = "" if out.resolve() == Path.cwd().resolve() else f"cd {out} && "
        print(f"Train it there with:\n  {cd}python -m monai.bundle run --config_file configs/train.json")
    return 0


def _cmd_sync_versions(args: argparse.Namespace) -> int:
    try:
        problems = metadata_version_problems(args.constraints, args.bundles_dir, write=args.write)
    except (KeyError, FileNotFoundError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    for line in problems:
        print(("rewrote " if args.write else "differs: ") + line)
    if not problems:
        print(f"every bundle's metadata.json matches {args.constraints}")
    return 1 if problems and not args.write else 0


def add_bundle_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bundle``: ``list``, ``get NAME DIR [--archive] [--overwrite]``, ``sync-versions``."""
    p = subparsers.add_parser("bundle", help="list monai-fair's bundles, or write one to a folder")
    sub = p.add_subparsers(dest="bundle_command", required=True)
    lst = sub.add_parser("list", help="the bundles this install carries")
    lst.set_defaults(func=_cmd_list)
    get = sub.add_parser("get", help="write a bundle (model-zoo layout) into DIR")
    get.add_argument("name", help="bundle name (see `bundle list`), or `overlays`")
    get.add_argument("dir", help="folder to write the bundle into (it becomes the bundle root)")
    get.add_argument("--overwrite", action="store_true", help="replace the bundle files already in DIR")
    get.add_argument("--archive", action="store_true", help="write DIR/NAME_vVERSION.zip (zoo download format)")
    get.set_defaults(func=_cmd_get)
    sync = sub.add_parser(
        "sync-versions", help="check (or --write) every metadata.json's versions against constraints.txt"
    )
    sync.add_argument("--constraints", default="constraints.txt", help="constraints file with the tested pins")
    sync.add_argument("--bundles-dir", dest="bundles_dir", default=None, help="default: the bundles found")
    sync.add_argument("--write", action="store_true", help="rewrite the differing fields")
    sync.set_defaults(func=_cmd_sync_versions)
    return p
