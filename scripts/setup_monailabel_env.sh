#!/usr/bin/env bash
# Copyright (c) monai-fair contributors. Licensed under the Apache License, Version 2.0.
#
# Build the separate MONAI Label environment used by monai_fair.apps.monailabel and its integration test.
#
# monailabel 0.8.5 (the newest release) pins through its dependencies an environment that the core
# package does not want (pydicom < 3 via pydicom-seg, numpy < 2, an sdist-only sam2, torchvision), so it
# lives in its own virtual environment: monailabel itself is installed with --no-deps, plus only the
# dependencies its server, datastore and tasks import at run time.
#
# Usage: scripts/setup_monailabel_env.sh [VENV_DIR]   (default: .venv-label; env PYTHON selects the interpreter)
# Idempotent: a finished environment (stamp file newer than this script, setup.cfg and constraints.txt) is
# reused as it is.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-${ROOT}/.venv-label}"
PYTHON="${PYTHON:-python3}"
STAMP="${VENV}/.monai-fair-label-installed"

if [[ -f "${STAMP}" && "${STAMP}" -nt "${BASH_SOURCE[0]}" && "${STAMP}" -nt "${ROOT}/setup.cfg" \
      && "${STAMP}" -nt "${ROOT}/constraints.txt" ]]; then
    echo "MONAI Label environment ready: ${VENV}"
    exit 0
fi

start=$(date +%s)
"${PYTHON}" -m venv "${VENV}"
PIP=("${VENV}/bin/python" -m pip install --disable-pip-version-check -q --no-cache-dir -c "${ROOT}/constraints.txt")

"${PIP[@]}" --upgrade pip setuptools wheel
"${PIP[@]}" torch==2.13.0
# the MONAI Label server (no deps: its metadata pulls sam2, torchvision, numpy<2 and the GCP stack)
"${PIP[@]}" --no-deps "monailabel==0.8.5"
# pydicom-seg 0.4.1 declares numpy<2 / jsonschema<4 although its code runs with numpy 2; no deps for it either
"${PIP[@]}" --no-deps "pydicom-seg==0.4.1"
# monai-fair itself (editable) with its own dependencies and its [label] extra: what monailabel imports at run
# time, with pydicom kept in the 2.x series that monailabel uses
"${PIP[@]}" -e "${ROOT}[label]" "monai[fire,ignite,itk,nibabel,psutil,skimage,tensorboard,tqdm]>=1.5" \
    "urllib3>=2.2.1" "pytest"

"${VENV}/bin/python" - <<'PY'
import monailabel, monai, pydicom, monai_fair
from monailabel.interfaces.app import MONAILabelApp  # noqa: F401  (imports the server-side stack)
print(f"monailabel {monailabel.__version__}, monai {monai.__version__}, pydicom {pydicom.__version__}")
PY
touch "${STAMP}"
echo "MONAI Label environment built in $(( $(date +%s) - start )) s: ${VENV}"
