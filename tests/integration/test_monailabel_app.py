# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The MONAI Label app on the REAL server: upload NIfTI images with a sensitive attribute, infer, train, report.

Every trainer the app lists trains; a bundle MONAI Label cannot train is not listed (with its reason), and errors
reach the client with their message and a 4xx status. MONAI Label lives in its own virtual environment
(``scripts/setup_monailabel_env.sh``, ``.venv-label``), built here on first use (minutes: it downloads torch and the
server's dependencies: 968 s measured once on a 2-core machine); the server runs in a subprocess on 127.0.0.1.
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

from monai_fair.apps.monailabel.bundle_check import monailabel_train_problems
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


def _http_error(method: str, url: str, **kwargs) -> tuple[int, str]:
    """Status and ``detail`` of a request that must fail."""
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as info:
        _http(method, url, **kwargs)
    body = info.value.read().decode()
    try:
        return info.value.code, json.loads(body)["detail"]
    except (ValueError, KeyError):
        return info.value.code, body


def _tiny_config(bundle: Path) -> None:
    """Every top-level ``*_epochs`` of the copy's train.json set to 1 (the stages MONAI Label's max_epochs misses) and
    every ``*min_group_size`` to 1 (e.g. FairDi's teachers; the test's datastore has 8 training images)."""
    f = bundle / "configs" / "train.json"
    config = json.loads(f.read_text())
    for key, value in config.items():
        if key.endswith(("_epochs", "min_group_size")) and isinstance(value, int):
            config[key] = 1
    f.write_text(json.dumps(config, indent=1))


def _legacy_bundle(dst: Path) -> Path:
    """The zoo fixture with its ``train`` section renamed: a bundle MONAI Label cannot train (no train#trainer)."""
    shutil.copytree(FIXTURES / "zoo_segmentation", dst)
    f = dst / "configs" / "train.json"
    config = json.loads(f.read_text().replace("@train#", "@training#"))
    config["training"] = config.pop("train")
    f.write_text(json.dumps(config, indent=1))
    return dst


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
        _tiny_config(b)
        _init_weights(python, b)
    legacy = _legacy_bundle(tmp / "legacy_segmentation")  # no trained model either
    classifier = tmp / "zoo_classification"  # served, never listed as a trainer (datastore labels are label maps)
    shutil.copytree(FIXTURES / "zoo_classification", classifier)
    app = tmp / "app"
    init = subprocess.run(
        [str(python), "-m", "monai_fair.apps.monailabel", "init-app", str(app)]
        + [a for b in [*bundles, legacy, classifier] for a in ("--bundle", str(b))],
        check=True,
        capture_output=True,
        text=True,
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
            "trainable": [b.name for b in bundles if not monailabel_train_problems(b)],
            "init_out": init.stdout,
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
    items = [{**it, **doc["metadata"][it["case_id"]]} for it in doc["training"] + doc["validation"]]
    for it in items:
        body, ctype = _multipart({"params": json.dumps({"sex": it["sex"]})}, {"file": root / it["image"]})
        _http(
            "PUT", f"{server['url']}/datastore/image?image={it['case_id']}", data=body, headers={"Content-Type": ctype}
        )
        body, ctype = _multipart({"params": "{}"}, {"label": root / it["label"]})
        _http(
            "PUT",
            f"{server['url']}/datastore/label?image={it['case_id']}&tag=final",
            data=body,
            headers={"Content-Type": ctype},
        )
    return items


def _train(server, model: str) -> None:
    import urllib.error

    request = {"max_epochs": 1, "device": "cpu", "val_split": 0.5, "multi_gpu": False, "pretrained": False}
    try:
        status, _ = _http(
            "POST",
            f"{server['url']}/train/{model}?run_sync=true",
            data=json.dumps(request).encode(),
            headers={"Content-Type": "application/json"},
            timeout=600,
        )
    except urllib.error.HTTPError as e:
        pytest.fail(f"MONAI Label could not train {model} ({e.code}): {e.read().decode()[-3000:]}")
    assert status == 200, model


def test_upload_infer_train_report(server, tmp_path):
    items = _upload(server)
    _, raw = _http("GET", server["url"] + "/datastore/?output=stats")
    assert json.loads(raw)["completed"] == len(items)
    _, raw = _http("GET", server["url"] + f"/datastore/image/info?image={items[0]['case_id']}")
    assert json.loads(raw)["sex"] == items[0]["sex"]

    _, raw = _http("GET", server["url"] + "/info/")
    info = json.loads(raw)
    assert set(server["bundles"]) <= set(info["models"]), info["models"].keys()
    # exactly the bundles with the zoo ids are trainers; the others are named with their reason
    assert set(info["trainers"]) == set(server["trainable"]), info["trainers"].keys()
    assert "zoo_segmentation" in info["trainers"]
    not_listed = info["trainers_not_listed"]
    extra = {"legacy_segmentation", "zoo_classification"}
    assert set(not_listed) == {*(set(server["bundles"]) - set(server["trainable"])), *extra}
    assert "lacks the model-zoo id(s) train#trainer" in not_listed["legacy_segmentation"]
    assert "a classification bundle" in not_listed["zoo_classification"]
    # init-app said which bundle has no trained model and which cannot be trained
    out = server["init_out"]
    assert "legacy_segmentation: NO trained model" in out and "not trainable from MONAI Label" in out, out
    assert "zoo_segmentation: trained model: served for inference; trainable from MONAI Label" in out, out

    # inference: every served segmentor returns a label map of the uploaded image's shape
    img = nib.load(str(server["datalist"].parent / items[0]["image"])).get_fdata()
    for model in server["bundles"]:
        body, ctype = _multipart({"params": json.dumps({"device": "cpu"})}, {})
        status, raw = _http(
            "POST",
            f"{server['url']}/infer/{model}?image={items[0]['case_id']}&output=image",
            data=body,
            headers={"Content-Type": ctype},
        )
        assert status == 200
        out = tmp_path / f"{model}.nii.gz"
        out.write_bytes(raw)
        seg = nib.load(str(out)).get_fdata()
        assert seg.shape == img.shape[: seg.ndim] and seg.size == img.size, (model, seg.shape, img.shape)
        assert set(np.unique(seg)) <= {0.0, 1.0}, (model, np.unique(seg))

    # training on the datastore: every listed trainer trains and writes its model; the datalist carries each
    # image's group (F=0, M=1) and a fairness report is written
    for model in server["trainable"]:
        bundle = server["app"] / "model" / model
        before = (bundle / "models" / "model.pt").stat().st_mtime_ns
        _train(server, model)
        assert (bundle / "models" / "model.pt").stat().st_mtime_ns > before, model
    model = "zoo_segmentation"
    bundle = server["app"] / "model" / model
    dl = json.loads((bundle / "models" / "monailabel_datalist.json").read_text())
    assert dl["group_names"] == ["F", "M"]
    want = {it["case_id"]: it["group"] for it in items}
    got = {d["image_id"]: d["group"] for d in dl["training"] + dl["validation"]}
    assert got == want
    report = json.loads((bundle / "eval" / "monailabel" / "report.json").read_text())
    assert report["task"] == "segmentation"
    assert report["overall"]["n"] == len(dl["validation"])
    assert sum(g["n"] for g in report["groups"].values()) == len(dl["validation"])
    _, raw = _http("GET", server["url"] + "/info/")
    assert json.loads(raw)["fairness"][model]["overall"]["n"] == len(dl["validation"])


def test_errors_reach_the_client(server):
    url = server["url"]
    body, ctype = _multipart({"params": json.dumps({"device": "cpu"})}, {})
    first = json.loads(server["datalist"].read_text())["training"][0]["case_id"]
    # a bundle without a trained model: 409 saying so (not listed under models either)
    status, detail = _http_error(
        "POST", f"{url}/infer/legacy_segmentation?image={first}", data=body, headers={"Content-Type": ctype}
    )
    assert status == 409 and "no trained weights" in detail, (status, detail)
    # a bundle MONAI Label cannot train: 409 with the reason
    request = json.dumps({"max_epochs": 1, "device": "cpu"}).encode()
    headers = {"Content-Type": "application/json"}
    status, detail = _http_error(
        "POST", f"{url}/train/legacy_segmentation?run_sync=true", data=request, headers=headers
    )
    assert status == 409 and "cannot be trained from MONAI Label" in detail and "train#trainer" in detail, detail
    # an image the datastore does not hold: 404 naming it (MONAI Label itself would try to read "")
    status, detail = _http_error(
        "POST", f"{url}/infer/zoo_segmentation?image=no_such_image", data=body, headers={"Content-Type": ctype}
    )
    assert status == 404 and "no_such_image" in detail and "not found" in detail, (status, detail)
    # an unknown model: 404
    status, detail = _http_error("POST", f"{url}/train/no_such_model?run_sync=true", data=request, headers=headers)
    assert status == 404 and "no_such_model" in detail, (status, detail)
    # bad data: an image uploaded without its sensitive attribute fails training with a message naming it
    root = server["datalist"].parent
    item = json.loads(server["datalist"].read_text())["test"][0]
    body, ctype = _multipart({"params": "{}"}, {"file": root / item["image"]})
    _http("PUT", f"{url}/datastore/image?image=no_attribute_case", data=body, headers={"Content-Type": ctype})
    body, ctype = _multipart({"params": "{}"}, {"label": root / item["label"]})
    _http("PUT", f"{url}/datastore/label?image=no_attribute_case&tag=final", data=body, headers={"Content-Type": ctype})
    status, detail = _http_error("POST", f"{url}/train/zoo_segmentation?run_sync=true", data=request, headers=headers)
    assert status == 422 and "no_attribute_case" in detail and "training of 'zoo_segmentation' failed" in detail, detail
