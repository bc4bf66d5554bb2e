# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""``check`` loads every image through the training chain: files whose headers look fine but whose pixels the
chain cannot read (16-bit RGB DICOM, single-frame RT Dose, a corrupt JPEG 2000 codestream, a 2-volume NIfTI, a
``.hdr`` without its ``.img``) fail in ``check``, named, with the reason and the fix; what ``check`` accepts loads."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from monai_fair.__main__ import main
from monai_fair.data import DatalistCheckError, check_datalist, classification_transforms, read_image_info
from monai_fair.data.dicom import write_dicom_image


def _dicom(path, arr, *, rgb=False, bits=8, modality="OT", sop="1.2.840.10008.5.1.4.1.1.7", syntax=None):
    """An uncompressed DICOM file with the pixel layout asked for (written the way scanners/TPS export them)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = sop, meta.MediaStorageSOPInstanceUID, modality
    ds.PatientID, ds.PatientSex = "P1", "F"
    ds.Rows, ds.Columns = arr.shape[:2]
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
    if rgb:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    if modality == "RTDOSE":
        ds.DoseGridScaling, ds.DoseUnits, ds.DoseType, ds.DoseSummationType = "1e-5", "GY", "PHYSICAL", "PLAN"
        ds.NumberOfFrames, ds.GridFrameOffsetVector, ds.FrameIncrementPointer = 1, [0.0], 0x3004000C
        ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = [0, 0, 0], [1, 0, 0, 0, 1, 0], [2, 2]
    if pydicom.__version__.startswith("2"):
        ds.is_little_endian, ds.is_implicit_VR = True, syntax == ImplicitVRLittleEndian
        pydicom.dcmwrite(str(path), ds, write_like_original=False)
    else:
        pydicom.dcmwrite(str(path), ds, enforce_file_format=True)
    return path


def _corrupt_j2k(path):
    """pydicom's own JPEG 2000 lossless test file with its codestream garbled after the main header."""
    from pydicom.encaps import encapsulate, generate_frames

    src = os.path.join(os.path.dirname(pydicom.data.__file__), "test_files", "MR_small_jp2klossless.dcm")
    ds = pydicom.dcmread(src)
    frame = next(iter(generate_frames(ds.PixelData, number_of_frames=1)))
    noise = np.random.default_rng(0).integers(0, 256, len(frame) // 3, dtype=np.uint8).tobytes()
    ds.PixelData = encapsulate([frame[: len(frame) // 3] + noise + b"\xff\xd9"])
    ds.save_as(str(path))
    return path


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    import pydicom.data  # noqa: F401  (installed test data: the JPEG 2000 source)

    root = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    files = {
        "rgb16": _dicom(root / "rgb16.dcm", rng.integers(0, 60000, (16, 16, 3)).astype(np.uint16), rgb=True, bits=16),
        "rtdose": _dicom(
            root / "rtdose.dcm",
            rng.integers(0, 2**31, (10, 10)).astype(np.uint32),
            bits=32,
            modality="RTDOSE",
            sop="1.2.840.10008.5.1.4.1.1.481.2",
            syntax=ImplicitVRLittleEndian,
        ),
        "j2k": _corrupt_j2k(root / "j2k_corrupt.dcm"),
        "good": write_dicom_image(root / "good.dcm", rng.integers(0, 4000, (16, 16)).astype(np.uint16)),
    }
    nib.save(nib.Nifti1Image(rng.random((8, 8, 6, 2)).astype(np.float32), np.eye(4)), root / "two_volumes.nii.gz")
    nib.save(nib.Nifti1Pair(rng.random((8, 8, 6)).astype(np.float32), np.eye(4)), root / "pair.hdr")
    os.remove(root / "pair.img")
    files["4d"], files["hdr"] = root / "two_volumes.nii.gz", root / "pair.hdr"
    return root, files


def _datalist(root, names, good="good.dcm"):
    train = [{"case_id": f"c{i}", "image": n, "label": i % 2, "group": i % 2} for i, n in enumerate(names)]
    val = [{"case_id": f"v{g}", "image": good, "label": g, "group": g} for g in (0, 1)]
    p = root / f"dl_{len(names)}_{names[0].split('.')[0]}.json"
    p.write_text(json.dumps({"training": train, "validation": val, "test": [], "group_names": ["F", "M"]}))
    return p


def test_headers_pass_but_check_names_every_file_training_cannot_load(bad_files):
    root, files = bad_files
    for key in ("rgb16", "rtdose", "j2k"):  # the header-only view sees nothing wrong: that was the late failure
        assert read_image_info(files[key]).ok, key
    p = _datalist(root, ["rgb16.dcm", "rtdose.dcm", "j2k_corrupt.dcm", "good.dcm"])
    with pytest.raises(DatalistCheckError) as e:
        check_datalist(p, spatial_dims=2, in_channels=1, num_classes=2, verbose=False)
    problems = e.value.problems
    by_file = {name: [x for x in problems if name in x] for name in ("rgb16", "rtdose", "j2k_corrupt")}
    print("\n".join(problems))
    assert len(problems) == 3, problems
    assert "16-bit colour DICOM" in by_file["rgb16"][0] and "8-bit RGB" in by_file["rgb16"][0]
    assert "RT Dose grid" in by_file["rtdose"][0] and "NIfTI" in by_file["rtdose"][0]
    j2k = by_file["j2k_corrupt"][0]
    assert "JPEG 2000" in j2k and "Re-export" in j2k and "the decoder said" in j2k  # GDCM's words, with the file
    assert not any("good.dcm" in x for x in problems)


def test_multi_volume_nifti_and_header_only_analyze(bad_files):
    root, files = bad_files
    info = read_image_info(files["hdr"])
    assert not info.ok and "pair.img is missing" in info.error
    p = _datalist(root, ["two_volumes.nii.gz"] * 2, good="two_volumes.nii.gz")
    with pytest.raises(DatalistCheckError, match="2 channels cannot become in_channels=1 .2 volumes in the 4th"):
        check_datalist(p, spatial_dims=3, in_channels=1, verbose=False)
    # the chain itself refuses too (a datalist never checked): never "gray + alpha", which dropped volume 2
    chain = classification_transforms("eval", spatial_size=None, in_channels=1, spatial_dims=3)
    with pytest.raises(RuntimeError) as e:
        chain({"image": str(files["4d"])})
    assert "two_volumes.nii.gz: 2 volumes in the 4th dimension" in str(e.value.__cause__)
    summary = check_datalist(p, spatial_dims=3, in_channels=2, verbose=False)  # 2 modalities = 2 channels: fine
    assert summary["channels"] == {2: 4}
    q = _datalist(root, ["pair.hdr", "good.dcm"])
    assert main(["check", str(q), "--in-channels", "1"]) == 1


def test_accepted_datalist_loads_in_the_bundle_chain(bad_files, tmp_path):
    root, files = bad_files
    p = _datalist(root, ["good.dcm", "good.dcm"])
    chain = classification_transforms("eval", spatial_size=(8, 8), in_channels=3)
    summary = check_datalist(p, in_channels=3, transform=chain, num_workers=2, verbose=False)
    assert summary["splits"]["training"] == 2
    assert tuple(chain({"image": str(files["good"])})["image"].shape) == (3, 8, 8)


def test_no_fork_while_other_threads_run(bad_files, monkeypatch):
    """A fork copies other threads' locks in whatever state they are in (a worker could block forever, as seen in a
    trial with its progress bar's monitor thread): with other threads alive the items load in this process."""
    import multiprocessing
    import threading

    from monai_fair.data import load_check

    _, files = bad_files
    chain = classification_transforms("eval", spatial_size=(8, 8), in_channels=3)
    items = [{"image": str(files["good"])}, {"image": str(files["rtdose"])}, {"image": str(files["good"])}]
    contexts = []
    real = multiprocessing.get_context
    monkeypatch.setattr(multiprocessing, "get_context", lambda method=None: contexts.append(method) or real(method))
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    in_process = load_check.find_load_failures(items, chain, num_workers=2)
    assert contexts == [] and [f.path for f in in_process] == [str(files["rtdose"])]
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    pooled = load_check.find_load_failures(items, chain, num_workers=2)
    assert contexts == ["fork"] and pooled == in_process


def test_forked_worker_takes_the_default_sigterm():
    """``Pool.terminate`` must be able to stop a worker even when the parent (the trial) handles SIGTERM."""
    import signal

    from monai_fair.data import load_check

    old = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        load_check._init_worker(len)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and load_check._worker_chain is len
    finally:
        signal.signal(signal.SIGTERM, old)
        load_check._set_worker_chain(None)
