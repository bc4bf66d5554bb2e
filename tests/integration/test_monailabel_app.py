# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The MONAI Label app on the REAL server: upload NIfTI images with a sensitive attribute, infer, train, report.

MONAI Label lives in its own virtual environment (``scripts/setup_monailabel_env.sh``, ``.venv-label``), built
here on first use (about 1.5 min from the local wheel index); the server runs in a subprocess on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_fair.data import ensure_synthetic_dataset

pytestmark = [pytest.mark.slow, pytest.mark.monailabel, pytest.mark.xdist_group("monailabel")]

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
LABEL_VENV = Path(os.environ.get("MONAI_FAIR_LABEL_VENV", REPO / ".venv-label"))
# the method bundles served besides the zoo-style fixture, when they are in the tree
FAIR_SEG_BUNDLES = tuple(
    b for b in os.environ.get("MONAI_FAIR_LABEL_BUNDLES", "apple_segmentation,fairdi_segmentation").split(",") if b
)


def _label_python() -> Path:
    script = REPO / "scripts" / "setup_monailabel_env.sh"
    proc = subprocess.run(
        ["bash", str(script), str(LABEL_VENV)],
        capture_output=True,
        text=True,
        timeout=1200,
        env=dict(os.environ, PYTHON=sys.executable),
    )
    if proc.returncode != 0:
        pytest.skip(f"MONAI Label environment could not be built ({script}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return LABEL_VENV / "bin" / "python"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, timeout: float = 300, **kwargs):
    import urllib.request

    req = urllib.request.Request(url, method=method, **kwargs)
    with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 (loopback only)
        return r.status, r.read()


def _multipart(fields: dict[str, str], files: dict[str, Path]) -> tuple[bytes, str]:
    boundary = "monaifairboundary7MA4YWxkTrZu0gW"
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    for k, p in files.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{p.name}"\r\n'
        head += "Content-Type: application/octet-stream\r\n\r\n"
        parts.append(head.encode() + p.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _init_weights(python: Path, bundle: Path) -> None:
    """Write ``models/model.pt`` ({'model': state_dict} of the freshly built inference network) when absent."""
    if (bundle / "models" / "model.pt").is_file():
        return
    code = (
        "import sys, os, torch; from monai.bundle import ConfigParser\n"
        "b = sys.argv[1]; p = ConfigParser(); p.read_config(os.path.join(b, 'configs', 'inference.json'))\n"
        "p['bundle_root'] = b; torch.manual_seed(0); net = p.get_parsed_content('network_def')\n"
        "os.makedirs(os.path.join(b, 'models'), exist_ok=True)\n"
        "torch.save({'model': net.state_dict()}, os.path.join(b, 'models', 'model.pt'))\n"
    )
    proc = subprocess.run([str(python), "-c", code, str(bundle)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"cannot build the inference network of {bundle.name}:\n{proc.stderr[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    python = _label_python()
    tmp = tmp_path_factory.mktemp("monailabel")
    datalist = Path(ensure_synthetic_dataset(tmp / "data", task="segmentation", n_samples=16, image_size=32, seed=3))
    bundles = [tmp / "zoo_segmentation"]
    shutil.copytree(FIXTURES / "zoo_segmentation", bundles[0])
    for name in FAIR_SEG_BUNDLES:
        if (REPO / "bundles" / name / "configs" / "inference.json").is_file():
            shutil.copytree(
                REPO / "bundles" / name,
                tmp / name,
                ignore=shutil.ignore_patterns("models", "eval", "data", "runs", "logs"),
            )
            bundles.append(tmp / name)
    for b in bundles:
        _init_weights(python, b)
    app = tmp / "app"
    subprocess.run(
        [str(python), "-m", "monai_fair.apps.monailabel", "init-app", str(app)]
        + [a for b in bundles for a in ("--bundle", str(b))],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = _free_port()
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(
        [
            str(python),
            "-m",
            "monailabel.main",
            "start_server",
            "--app",
            str(app),
            "--studies",
            str(tmp / "studies"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--conf",
            "fair_attribute",
            "sex",
            "--conf",
            "fair_categories",
            "F,M",
            "--conf",
            "fair_min_group_size",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(tmp),
        env=dict(os.environ, OMP_NUM_THREADS="1", MONAI_LABEL_AUTO_UPDATE_SCORING="false"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                _http("GET", url + "/info/", timeout=5)
                break
            except OSError as e:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(
                        "MONAI Label server did not start:\n" + (tmp / "server.log").read_text()[-4000:]
                    ) from e
                time.sleep(1)
        yield {
            "url": url,
            "datalist": datalist,
            "app": app,
            "bundles": [b.name for b in bundles],
            "log": tmp / "server.log",
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _upload(server) -> list[dict]:
    doc = json.loads(server["datalist"].read_text())
    root = server["datalist"].parent
    items = doc["training"] + doc["validation"]
    for it in items:
        body, ctype = _multipart({"params": json.dumps({"sex": it["sex"]})}, {"file": root / it["image"]})
        _http("PUT", f"{server['url']}/datastore/image?image={it['id']}", data=body, headers={"Content-Type": ctype})
        body, ctype = _multipart({"params": "{}"}, {"label": root / it["label"]})
        _http(
            "PUT",
            f"{server['url']}/datastore/label?image={it['id']}&tag=final",
            data=body,
            headers={"Content-Type": ctype},
        )
    return items


def test_upload_infer_train_report(server, tmp_path):
    items = _upload(server)
    _, raw = _http("GET", server["url"] + "/datastore/?output=stats")
    assert json.loads(raw)["completed"] == len(items)
    _, raw = _http("GET", server["url"] + f"/datastore/image/info?image={items[0]['id']}")
    assert json.loads(raw)["sex"] == items[0]["sex"]

    _, raw = _http("GET", server["url"] + "/info/")
    info = json.loads(raw)
    assert set(server["bundles"]) <= set(info["models"]), info["models"].keys()
    assert set(server["bundles"]) <= set(info["trainers"])

    # inference: every served segmentor returns a label map of the uploaded image's shape
    img = nib.load(str(server["datalist"].parent / items[0]["image"])).get_fdata()
    for model in server["bundles"]:
        body, ctype = _multipart({"params": json.dumps({"device": "cpu"})}, {})
        status, raw = _http(
            "POST",
            f"{server['url']}/infer/{model}?image={items[0]['id']}&output=image",
            data=body,
            headers={"Content-Type": ctype},
        )
        assert status == 200
        out = tmp_path / f"{model}.nii.gz"
        out.write_bytes(raw)
        seg = nib.load(str(out)).get_fdata()
        assert seg.shape == img.shape[: seg.ndim] and seg.size == img.size, (model, seg.shape, img.shape)
        assert set(np.unique(seg)) <= {0.0, 1.0}, (model, np.unique(seg))

    # training on the datastore: the datalist carries each image's group (F=0, M=1) and a report is written
    model = "zoo_segmentation"
    request = {"max_epochs": 1, "device": "cpu", "val_split": 0.5, "multi_gpu": False, "pretrained": False}
    status, _ = _http(
        "POST",
        f"{server['url']}/train/{model}?run_sync=true",
        data=json.dumps(request).encode(),
        headers={"Content-Type": "application/json"},
        timeout=600,
    )
    assert status == 200
    bundle = server["app"] / "model" / model
    dl = json.loads((bundle / "models" / "monailabel_datalist.json").read_text())
    assert dl["group_names"] == ["F", "M"]
    want = {it["id"]: it["group"] for it in items}
    got = {d["image_id"]: d["group"] for d in dl["training"] + dl["validation"]}
    assert got == want
    report = json.loads((bundle / "eval" / "monailabel" / "report.json").read_text())
    assert report["task"] == "segmentation"
    assert report["overall"]["n"] == len(dl["validation"])
    assert sum(g["n"] for g in report["groups"].values()) == len(dl["validation"])
    _, raw = _http("GET", server["url"] + "/info/")
    assert json.loads(raw)["fairness"][model]["overall"]["n"] == len(dl["validation"])
