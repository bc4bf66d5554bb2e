# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The model zoo's checks on every bundle, offline: ``verify_metadata`` against the schema the metadata names (a copy
in ``tests/bundles/schema``, written from MONAI's documented metadata fields), ``ckpt_export`` of every network with
a TorchScript round trip giving the eager network's outputs, one source of versions (constraints.txt -> setup.cfg
ranges, the installed environment, every metadata.json), and multi-GPU configs that keep the single-process steps.
``verify_net_in_out`` runs in each bundle's own test (tests/bundles, tests/methods)."""

from __future__ import annotations

import configparser
import json
import shutil
from importlib import metadata as importlib_metadata
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, ckpt_export, verify_metadata
from monai.data import load_net_with_metadata

from monai_fair.bundles import metadata_version_problems, read_pins

REPO = Path(__file__).resolve().parents[2]
BUNDLES = REPO / "bundles"
SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
ALL = sorted(p.name for p in BUNDLES.iterdir() if (p / "configs" / "metadata.json").is_file())
NETWORKS = [b for b in ALL if (BUNDLES / b / "configs" / "inference.json").is_file()]
#: networks TorchScript cannot compile, exported by tracing (``ckpt_export --use_trace True --input_shape ...``,
#: the model zoo's documented alternative): APPLE's perturbed segmentor runs the deployed network through forward
#: hooks and takes ``*args, **kwargs``
TRACED = {"apple_segmentation"}
#: bundles with a torchrun config (every bundle with a network; fairness_trial runs other bundles)
MULTI_GPU = sorted(b for b in ALL if (BUNDLES / b / "configs" / "multi_gpu_train.json").is_file())


def test_bundle_sets():
    assert len(ALL) == 8 and "fairness_trial" not in NETWORKS and len(NETWORKS) == 7, (ALL, NETWORKS)
    assert MULTI_GPU == NETWORKS, MULTI_GPU


@pytest.mark.parametrize("bundle", ALL)
def test_verify_metadata_against_the_named_schema(bundle, tmp_path):
    meta_file = BUNDLES / bundle / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    name = meta["schema"].rsplit("/", 1)[-1]
    assert (SCHEMA_DIR / name).is_file(), f"{bundle}: no offline copy of the schema {meta['schema']}"
    schema = tmp_path / name
    shutil.copy(SCHEMA_DIR / name, schema)  # present: verify_metadata's download is skipped
    verify_metadata(meta_file=str(meta_file), filepath=str(schema))
    if bundle in NETWORKS:
        fmt = meta.get("network_data_format", {})
        assert fmt.get("inputs", {}).get("image") and fmt.get("outputs"), f"{bundle}: no network_data_format"
        assert meta["supported_apps"].get("monailabel"), f"{bundle}: MONAI Label serves it; supported_apps says not"
    # the schema is not vacuous: a metadata without its version fails
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({k: v for k, v in meta.items() if k != "monai_version"}))
    with pytest.raises(ValueError, match="monai_version"):
        verify_metadata(meta_file=str(broken), filepath=str(schema))


def _network(bundle: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    cfg = BUNDLES / bundle / "configs"
    parser = ConfigParser()
    parser.read_config(str(cfg / "inference.json"))
    parser["bundle_root"] = str(BUNDLES / bundle)
    inp = json.loads((cfg / "metadata.json").read_text())["network_data_format"]["inputs"]["image"]
    return parser.get_parsed_content("network_def", instantiate=True), (inp["num_channels"], *inp["spatial_shape"])


@pytest.mark.parametrize("bundle", NETWORKS)
def test_ckpt_export_torchscript_round_trip(bundle, tmp_path):
    torch.manual_seed(0)
    net, shape = _network(bundle)
    ckpt = tmp_path / "model.pt"
    torch.save(net.state_dict(), ckpt)  # what the bundles' CheckpointSaver writes (one object: its state dict)
    cfg = BUNDLES / bundle / "configs"
    kwargs = {"use_trace": True, "input_shape": [1, *shape]} if bundle in TRACED else {}
    ckpt_export(
        net_id="network_def",
        filepath=str(tmp_path / "model.ts"),
        ckpt_file=str(ckpt),
        meta_file=str(cfg / "metadata.json"),
        config_file=str(cfg / "inference.json"),
        bundle_root=str(BUNDLES / bundle),
        key_in_ckpt="",
        **kwargs,
    )
    exported, meta, extra = load_net_with_metadata(str(tmp_path / "model.ts"), more_extra_files=("inference.json",))
    assert meta["version"] == json.loads((cfg / "metadata.json").read_text())["version"]
    assert json.loads(extra["inference.json"])["network_def"], extra
    net.load_state_dict(torch.load(ckpt, weights_only=True))
    net.eval()
    x = torch.rand(2, *shape)
    with torch.no_grad():
        want, got = net(x), exported(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def _requirements() -> dict[str, list]:
    from packaging.requirements import Requirement

    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines()
    lines += [ln for extra in cfg["options.extras_require"].values() for ln in extra.splitlines()]
    reqs: dict[str, list] = {}
    for ln in lines:
        if ln.strip() and not ln.strip().startswith("#"):
            r = Requirement(ln.strip())
            reqs.setdefault(r.name.lower(), []).append(r)
    return reqs


def test_one_source_of_versions():
    """constraints.txt holds the tested pins: this environment has them, every setup.cfg range (core and extras)
    admits them and has an upper bound, and every bundle's metadata.json names them."""
    pins = read_pins(REPO / "constraints.txt")
    assert {"torch", "monai", "numpy", "pytorch-ignite"} <= set(pins), pins
    reqs = _requirements()
    for dist, version in pins.items():
        installed = importlib_metadata.version(dist).split("+")[0]
        assert installed == version, f"{dist}: constraints.txt pins {version}, the test environment has {installed}"
        assert dist in reqs, f"{dist} is pinned in constraints.txt but not declared in setup.cfg"
        for r in reqs[dist]:
            assert r.specifier.contains(version), f"setup.cfg's {r} excludes the tested {dist}=={version}"
            assert any(s.operator in ("<", "<=", "==", "~=") for s in r.specifier), f"{r}: no upper bound"
    assert metadata_version_problems(REPO / "constraints.txt", BUNDLES) == []


def test_metadata_version_problems_are_found(tmp_path):
    src = BUNDLES / "baseline_classification" / "configs" / "metadata.json"
    (tmp_path / "b" / "configs").mkdir(parents=True)
    meta = json.loads(src.read_text())
    meta["numpy_version"] = "0.0.1"
    (tmp_path / "b" / "configs" / "metadata.json").write_text(json.dumps(meta))
    problems = metadata_version_problems(REPO / "constraints.txt", tmp_path)
    assert len(problems) == 1 and "numpy_version" in problems[0]
    assert metadata_version_problems(REPO / "constraints.txt", tmp_path, write=True)
    assert metadata_version_problems(REPO / "constraints.txt", tmp_path) == []


@pytest.mark.parametrize("bundle", MULTI_GPU)
def test_multi_gpu_keeps_the_single_process_steps(bundle):
    """``multi_gpu_train.json`` replaces ``initialize``/``run``: it must still prepare the datalist (rank 0, then a
    barrier), check it, and end with the model-written check after a barrier."""
    cfg = BUNDLES / bundle / "configs"
    single = json.loads((cfg / "train.json").read_text())
    multi = json.loads((cfg / "multi_gpu_train.json").read_text())
    init, run = multi["initialize"], multi["run"]
    prep = [i for i, e in enumerate(init) if "prepare_datalist(" in e]
    assert prep and all(("dist.get_rank() or" in init[i] or "@rank0" in init[i]) for i in prep), init
    barrier = next(i for i, e in enumerate(init) if e == "$dist.barrier()")
    assert barrier > max(prep), f"{bundle}: the barrier must follow the datalist preparation"
    checks = [i for i, e in enumerate(init) if "check_datalist(" in e or e == "@check_data"]
    assert checks and min(checks) > barrier, f"{bundle}: the datalist check must follow the barrier: {init}"
    single_checks = [e for e in single["initialize"] if "check_datalist(" in e or e == "@check_data"]
    assert single_checks, f"{bundle}: train.json has no datalist check"
    requires = [i for i, e in enumerate(run) if "require_model(" in e]
    assert requires and run[requires[-1] - 1] == "$dist.barrier()", f"{bundle}: {run}"
    assert any("require_model(" in e for e in single["run"])


@pytest.mark.parametrize("bundle", NETWORKS)
def test_eval_metrics_are_measured_figures(bundle):
    """``eval_metrics`` holds numbers, each traceable to the benchmark that ``eval_metrics_source`` names."""
    meta = json.loads((BUNDLES / bundle / "configs" / "metadata.json").read_text())
    metrics, source = meta["eval_metrics"], meta["eval_metrics_source"]
    assert metrics and all(isinstance(v, (int, float)) for v in metrics.values()), metrics
    assert (REPO / source["benchmark"].split(",")[0]).is_file(), source
    if "figures" not in source:  # figures quoted from the benchmark's text
        text = (REPO / source["benchmark"].split(",")[0]).read_text()
        assert all(f"{v:.3f}" in text for v in metrics.values()), metrics
        return
    trial = json.loads((REPO / source["figures"]).read_text())[source["scenario"]]
    assert source["cases"] == trial["n_test_cases"]
    for name, value in metrics.items():
        figure, threshold = name[len("test_") :], None
        if figure.endswith("_at_validation_threshold"):
            figure, threshold = figure[: -len("_at_validation_threshold")], "validation"
        rows = [h for h in trial["headline"] if h["figure"] == figure and h["threshold"] == threshold]
        if source["arm"] == trial["reference"]:
            measured = rows[0]["base"]
        else:
            measured = next(h["other"] for h in rows if h["arm"] == source["arm"])
        assert value == pytest.approx(measured, abs=5e-5), (name, value, measured)
