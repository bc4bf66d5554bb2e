# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""MONAI Label inference task serving a monai-fair bundle (e.g. APPLE's perturbed segmentor, a FairDi student).

MONAI Label's ``BundleInferTask`` imports ``monailabel.transform.post``, which imports torchvision at module level;
this task reads the same bundle keys (``network_def``, ``preprocessing``, ``inferer``, ``postprocessing`` of
``configs/inference.json``, ``network_data_format`` of ``configs/metadata.json``, weights ``models/model.pt``) with
MONAI transforms only, so it runs where torchvision does not.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.inferers import Inferer, SimpleInferer
from monai.transforms import Compose, MapTransform, Resize, SaveImaged, ToNumpyd
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask
from monailabel.utils.others.generic import name_to_device

__all__ = ["FairBundleInferTask", "LabelMapToInputd"]

logger = logging.getLogger(__name__)


class LabelMapToInputd(MapTransform):
    """Turn the prediction into a label map of the input image's original spatial shape.

    ``(C, *spatial)`` with ``C > 1`` (probabilities or one-hot) is arg-maxed over channels, ``(1, *spatial)``
    squeezed; when the network worked at another size than the input (e.g. a ``Resized`` in preprocessing), the map
    is resized back (nearest neighbour) to ``ref_key``'s ``spatial_shape`` meta entry.
    """

    def __init__(self, keys: str | Sequence[str] = "pred", ref_key: str = "image") -> None:
        super().__init__(keys)
        self.ref_key = ref_key

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        d = dict(data)
        ref = d.get(self.ref_key)
        shape = None
        if isinstance(ref, MetaTensor) and "spatial_shape" in ref.meta:
            shape = [int(s) for s in torch.as_tensor(ref.meta["spatial_shape"]).reshape(-1).tolist()]
        for key in self.key_iterator(d):
            pred = torch.as_tensor(d[key])
            label = pred.argmax(0, keepdim=True) if pred.shape[0] > 1 else pred.round()
            if shape is not None and list(label.shape[1:]) != shape:
                label = Resize(spatial_size=shape, mode="nearest")(label.float())
            d[key] = torch.as_tensor(label)[0].to(torch.uint8)
        return d


class FairBundleInferTask(BasicInferTask):
    """Inference task for a monai-fair bundle folder.

    Args:
        path: the bundle folder (``configs/inference.json``, ``configs/metadata.json``, ``models/model.pt``).
        conf: the app configuration (``--conf`` of ``monailabel start_server``).
        type: ``"segmentation"`` (default from the bundle's output format) or ``"classification"``.
        network_id: config id of the network to load the weights into.
        kwargs: further arguments of ``BasicInferTask``.

    The weights are loaded with ``torch.load(..., weights_only=True)`` from the ``model`` entry of the checkpoint,
    as ``CheckpointSaver(save_dict={"model": ...})`` writes it; the task is listed by ``/info`` once they exist.
    """

    def __init__(
        self,
        path: str,
        conf: dict[str, str] | None = None,
        type: str | InferType | None = None,
        network_id: str = "network_def",
        **kwargs: Any,
    ) -> None:
        self.bundle_path = os.path.realpath(path)
        self.conf = conf or {}
        config_path = os.path.join(self.bundle_path, "configs", "inference.json")
        meta_path = os.path.join(self.bundle_path, "configs", "metadata.json")
        for p in (config_path, meta_path):
            if not os.path.isfile(p):
                raise FileNotFoundError(f"bundle {self.bundle_path} has no {os.path.relpath(p, self.bundle_path)}")
        self.bundle_config = ConfigParser()
        self.bundle_config.read_config(config_path)
        self.bundle_config["bundle_root"] = self.bundle_path
        self.bundle_config["device"] = "$torch.device('cpu')"
        with open(meta_path) as f:
            self.metadata = json.load(f)
        fmt = self.metadata.get("network_data_format", {})
        try:
            image = fmt["inputs"]["image"]
            pred = fmt["outputs"]["pred"]
        except KeyError as e:
            raise KeyError(f"{meta_path}: network_data_format needs inputs.image and outputs.pred ({e})") from e
        if type is None:
            type = InferType.CLASSIFICATION if pred.get("format") == "classes" else InferType.SEGMENTATION
        labels = {str(v).lower(): int(k) for k, v in pred.get("channel_def", {}).items()}
        if type == InferType.SEGMENTATION:
            labels = {k: v for k, v in labels.items() if k != "background"}
        model_path = os.path.join(self.bundle_path, "models", "model.pt")
        self.network_id = network_id
        super().__init__(
            path=model_path,
            network=None,
            type=type,
            labels=labels,
            dimension=len(image.get("spatial_shape", [0, 0, 0])),
            description=self.metadata.get("description", self.metadata.get("name", "")),
            load_strict=True,
            **kwargs,
        )
        self.version = self.metadata.get("version")

    def is_valid(self) -> bool:
        return os.path.isfile(self.path[0])

    def _get_network(self, device: str, data: Any) -> torch.nn.Module:
        """A fresh network from the bundle config with ``models/model.pt`` loaded (cached per device and file time).

        The network is built from the bundle config (``network=None`` is given to the base task, so there is no
        template network to copy) and loaded strictly with ``weights_only=True``.
        """
        path = self.path[0]
        if not os.path.isfile(path):
            raise FileNotFoundError(f"bundle {self.bundle_path} has no trained weights models/model.pt yet")
        mtime = os.stat(path).st_mtime
        cached = self._networks.get(device)
        if cached is not None and cached[1] == mtime:
            return cached[0]
        network = self.bundle_config.get_parsed_content(self.network_id, instantiate=True, lazy=False)
        ckpt = torch.load(path, map_location=torch.device(device), weights_only=True)
        state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else ckpt
        network.load_state_dict(state, strict=True)
        network.to(torch.device(device)).eval()
        self._networks[device] = (network, mtime)
        return network

    def info(self) -> dict[str, Any]:
        i = super().info()
        i["version"] = self.version
        i["bundle"] = os.path.basename(self.bundle_path)
        return i

    def _parsed(self, key: str, data: dict[str, Any] | None) -> Any:
        device = name_to_device((data or {}).get("device") or None)
        self.bundle_config["device"] = f"$torch.device('{device}')"
        self.bundle_config.parse()
        return self.bundle_config.get_parsed_content(key, instantiate=True) if key in self.bundle_config else None

    def pre_transforms(self, data: dict[str, Any] | None = None) -> Sequence[Callable]:
        pre = self._parsed("preprocessing", data)
        if pre is None:
            raise KeyError(f"{self.bundle_path}/configs/inference.json has no 'preprocessing'")
        return list(pre.transforms) if isinstance(pre, Compose) else list(pre)

    def inferer(self, data: dict[str, Any] | None = None) -> Inferer:
        inferer = self._parsed("inferer", data)
        return inferer if inferer is not None else SimpleInferer()

    def post_transforms(self, data: dict[str, Any] | None = None) -> Sequence[Callable]:
        post = self._parsed("postprocessing", data)
        post = list(post.transforms) if isinstance(post, Compose) else list(post or [])
        post = [t for t in post if not isinstance(t, SaveImaged)]
        if self.type == InferType.SEGMENTATION:
            post += [
                LabelMapToInputd(keys=self.output_label_key, ref_key=self.input_key),
                ToNumpyd(keys=self.output_label_key),
            ]
        return post
