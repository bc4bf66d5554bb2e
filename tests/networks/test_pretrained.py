# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.networks.nets import resnet10

from monai_fair.networks import SmallVGGNet, load_pretrained_weights, read_state_dict


def _net(num_classes: int = 2, seed: int = 0) -> SmallVGGNet:
    torch.manual_seed(seed)
    return SmallVGGNet(in_channels=1, num_classes=num_classes, channels=(4, 8))


def _same(a: torch.nn.Module, b: torch.nn.Module, skip: str = "\0") -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if not k.startswith(skip))


def test_none_path_keeps_initialisation():
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert load_pretrained_weights(net, None) is net
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("layout", ["plain", "checkpoint_saver", "resume", "ddp"])
def test_strict_load_of_every_layout(tmp_path, layout):
    src = _net(seed=1)
    state = src.state_dict()
    obj = {
        "plain": state,
        "checkpoint_saver": {"model": state},
        "resume": {"network": state, "optimizer": torch.optim.SGD(src.parameters(), lr=0.1).state_dict()},
        "ddp": {f"module.{k}": v for k, v in state.items()},
    }[layout]
    path = tmp_path / "w.pt"
    torch.save(obj, path)
    dst = _net(seed=2)
    assert not _same(src, dst)
    load_pretrained_weights(dst, str(path))
    assert _same(src, dst)


def test_strict_mismatch_names_file_and_keys(tmp_path):
    path = tmp_path / "head3.pt"
    torch.save(_net(num_classes=3).state_dict(), path)
    with pytest.raises(ValueError, match=r"head3\.pt.*shape mismatch 2 .*classifier\.2\.weight"):
        load_pretrained_weights(_net(num_classes=2), str(path))


def test_non_strict_and_exclude_keep_the_new_head(tmp_path):
    src = _net(num_classes=3, seed=1)
    path = tmp_path / "w.pt"
    torch.save(src.state_dict(), path)
    for kwargs in ({"strict": False}, {"strict": True, "exclude": r"^classifier\."}):
        dst = _net(num_classes=2, seed=2)
        head = dst.classifier[2].weight.detach().clone()
        load_pretrained_weights(dst, str(path), **kwargs)
        assert _same(src, dst, skip="classifier.")  # backbone loaded
        assert torch.equal(dst.classifier[2].weight, head)  # head kept its initialisation


def test_nothing_matching_is_an_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(resnet10(spatial_dims=2, n_input_channels=1, num_classes=2).state_dict(), path)
    with pytest.raises(ValueError, match="no entry .*other.pt"):
        load_pretrained_weights(_net(), str(path), strict=False)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained#path"):
        load_pretrained_weights(_net(), str(tmp_path / "missing.pt"))
    path = tmp_path / "w.pt"
    torch.save({"weights": _net().state_dict()}, path)
    with pytest.raises(ValueError, match="not a state dict"):
        read_state_dict(str(path))
    assert set(read_state_dict(str(path), key="weights")) == set(_net().state_dict())
    with pytest.raises(ValueError, match="no entry 'nope'"):
        read_state_dict(str(path), key="nope")
    assert all(k.startswith("features") or k.startswith("classifier") for k in read_state_dict(str(path), "weights"))


def test_prefix_is_removed(tmp_path):
    src = _net(seed=1)
    path = tmp_path / "w.pt"
    torch.save({f"backbone.{k}": v for k, v in src.state_dict().items()}, path)
    dst = _net(seed=2)
    load_pretrained_weights(dst, str(path), prefix="backbone.")
    assert _same(src, dst)


CLASSIFICATION_BUNDLES = {
    "baseline_classification": ("network",),
    "fairdi_classification": ("network", "baseline#network"),
    "snnl_pruning_classification": ("network",),
    "neural_collapse_classification": ("network",),
    "fairdi_segmentation": ("network", "baseline#network"),
}


def _bundle_parser(configs: Path, files: tuple[str, ...], path: str | None):
    """The bundle's configs ``files`` on CPU, with ``pretrained#path`` set to ``path``."""
    from monai.bundle import ConfigParser

    p = ConfigParser()
    p.read_config([str(configs / f) for f in files])
    p["device"] = "$torch.device('cpu')"
    p["pretrained#path"] = path
    return p


@pytest.mark.parametrize("bundle", sorted(CLASSIFICATION_BUNDLES))
def test_every_method_bundle_loads_pretrained_weights(bundles_dir, tmp_path, bundle):
    def parser(path: str | None = None):
        return _bundle_parser(bundles_dir / bundle / "configs", ("train.json",), path)

    torch.manual_seed(123)
    src = parser().get_parsed_content("network_def")
    path = tmp_path / "pretrained.pt"
    torch.save({"model": src.state_dict()}, path)  # a MONAI CheckpointSaver file
    for net_id in CLASSIFICATION_BUNDLES[bundle]:
        torch.manual_seed(7)
        assert not _same(src, parser().get_parsed_content(net_id))  # default: fresh initialisation
        assert _same(src, parser(str(path)).get_parsed_content(net_id))


MULTI_GPU_BUNDLES = sorted({*CLASSIFICATION_BUNDLES, "baseline_segmentation"})


@pytest.mark.parametrize("bundle", MULTI_GPU_BUNDLES)
def test_multi_gpu_config_loads_pretrained_weights(bundles_dir, tmp_path, bundle):
    """``multi_gpu_train.json`` wraps the network in DDP: the wrapped module must carry the pretrained weights too
    (resolved without a process group: only the module the DDP wrapper receives)."""

    def module(path: str | None):
        parser = _bundle_parser(bundles_dir / bundle / "configs", ("train.json", "multi_gpu_train.json"), path)
        return parser.get_parsed_content("network#module")

    torch.manual_seed(123)
    src = module(None)
    path = tmp_path / "pretrained.pt"
    torch.save({"model": src.state_dict()}, path)
    torch.manual_seed(7)
    assert not _same(src, module(None))
    assert _same(src, module(str(path)))


def test_freeze_backbone_keeps_frozen_batchnorm_in_eval_and_trains_the_head():
    from monai_fair.networks import freeze_backbone

    net = freeze_backbone(_net(), "classifier.2")
    bn = net.features[1]
    stats = bn.running_mean.clone()
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    net.train()  # what MONAI's trainer does before every iteration
    loss = net(torch.randn(4, 1, 8, 8) * 3 + 1).sum()
    loss.backward()
    opt.step()
    assert torch.equal(bn.running_mean, stats) and not bn.training  # BatchNorm statistics untouched
    assert all(p.grad is None for n, p in net.named_parameters() if not n.startswith("classifier.2."))
    assert net.classifier[2].weight.grad is not None and net.classifier[2].training
    assert set(net.state_dict()) == set(_net().state_dict())  # names unchanged
    with pytest.raises(ValueError, match="'head' is not a module"):
        freeze_backbone(_net(), "head")
