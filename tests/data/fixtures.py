# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Small datasets in real formats, shaped like the public ones, written by the tests into ``tmp_path``.

* :func:`write_jpeg_cases`: HAM10000-shaped RGB JPEGs, 60 x 45 (non-square, as HAM10000's 600 x 450), two per
  patient, with empty ages, ``unknown``/``Male``/``male`` sex spellings and text labels ``yes``/``no``; with
  ``n >= 96`` every sex x age group (bins 0, 40, 60) has at least 4 patients;
* :func:`write_dicom_cases`: grayscale DICOM files of mixed sizes whose demographics exist only in the header
  (PatientSex, PatientAge or birth + study dates, Manufacturer), and a labels CSV naming them;
* :func:`write_volume_cases`: 3D NIfTI volumes with binary masks (a bright ellipsoid), larger than a test patch.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def _csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_jpeg_cases(root: Path, n: int = 36, seed: int = 0, size: tuple[int, int] = (60, 45)) -> Path:
    """RGB JPEGs ``size`` = (width, height) and ``root/cases.csv`` (file, finding yes/no, sex, age, patient_id)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    sexes = ["female", "Male", "male", "unknown"]
    rows = []
    for i in range(n):
        y = i % 2
        img = rng.integers(60, 120, (size[1], size[0], 3)).astype(np.uint8)
        if y:  # a darker lesion in the centre
            img[size[1] // 3 : 2 * size[1] // 3, size[0] // 3 : 2 * size[0] // 3] //= 3
        name = f"images/ISIC_{i:05d}.jpg"
        Image.fromarray(img).save(root / name, quality=90)
        p = i // 2  # two images per patient, one of each class
        sex = sexes[p % 4]  # female, Male, male, unknown
        age = "" if p % 8 == 7 or p % 12 == 1 else str([30, 50, 70][(p // 4) % 3] + p % 4)
        rows.append([name, "yes" if y else "no", sex, age, f"P{p:03d}"])
    return _csv(root / "cases.csv", ["file", "finding", "sex", "age", "patient_id"], rows)


def write_dicom_cases(root: Path, n: int = 36, seed: int = 0) -> Path:
    """Grayscale DICOM files of three sizes under ``root/dicom`` and ``root/labels.csv`` (file, finding)."""
    from monai_fair.data.dicom import write_dicom_image

    rng = np.random.default_rng(seed)
    sizes = [(48, 40), (40, 40), (56, 44)]
    rows = []
    for i in range(n):
        y = i % 2
        h, w = sizes[i % 3]
        img = rng.integers(500, 1500, (h, w)).astype(np.uint16)
        if y:
            img[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3] += 1500
        demo = {"PatientID": f"PAT{i:03d}", "PatientSex": "FM"[(i // 2) % 2], "Manufacturer": ["ACME", "Globex"][i % 2]}
        if i % 3:
            demo["PatientAge"] = f"{30 + i:03d}Y"
        else:
            demo.update(PatientBirthDate="19600101", StudyDate="20200601")
        name = f"site{i % 2}/img_{i:03d}.dcm"
        write_dicom_image(root / "dicom" / name, img, demo, modality="DX", uid_seed=f"fixture-{i}")
        rows.append([name, "abnormal" if y else "normal"])
    return _csv(root / "labels.csv", ["file", "finding"], rows)


def write_volume_cases(
    root: Path, n: int = 12, shape: tuple[int, int, int] = (24, 20, 16), seed: int = 0, table: str = "cases.csv"
) -> Path:
    """3D NIfTI volumes + masks under ``root`` and ``root/<table>`` (image, mask, sex, age)."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
    rows = []
    for i in range(n):
        centre = np.asarray(shape) / 2 + rng.uniform(-4, 4, 3)
        radii = np.asarray(shape) / 4
        mask = (((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0) <= 1
        img = rng.normal(0.0, 0.3, shape) + 1.0 * mask
        affine = np.diag([1.5, 1.5, 2.0, 1.0])
        nib.save(nib.Nifti1Image(img.astype(np.float32), affine), root / f"images/vol_{i:03d}.nii.gz")
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), root / f"masks/vol_{i:03d}.nii.gz")
        rows.append([f"images/vol_{i:03d}.nii.gz", f"masks/vol_{i:03d}.nii.gz", "FM"[i % 2], 30 + 3 * i])
    return _csv(root / table, ["image", "mask", "sex", "age"], rows)


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to ``keep`` of its bytes (a download or copy that stopped half-way)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_volume_datalist(root: Path, n: int, shape: tuple[int, int, int]) -> str:
    """``n`` small 3D NIfTI volumes with masks (:func:`write_volume_cases`), groups F/M alternating, split
    n/2 training, n/4 validation, the rest test; returns the datalist's path."""
    from monai_fair.data.datalist import write_fair_datalist

    write_volume_cases(root, n=n, shape=shape)
    items = [
        {
            "image": str(root / f"images/vol_{i:03d}.nii.gz"),
            "label": str(root / f"masks/vol_{i:03d}.nii.gz"),
            "group": i % 2,
        }
        for i in range(n)
    ]
    splits = {
        "training": items[: n // 2],
        "validation": items[n // 2 : n // 2 + n // 4],
        "test": items[n // 2 + n // 4 :],
    }
    return str(write_fair_datalist(root / "datalist.json", splits, ["F", "M"]))
