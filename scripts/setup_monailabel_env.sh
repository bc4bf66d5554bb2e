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
# monai-fair itself (editable) with its own dependencies, pydicom kept in the 2.x series that monailabel uses,
# and what monailabel imports at run time
"${PIP[@]}" -e "${ROOT}" \
    "monai[fire,ignite,itk,nibabel,psutil,skimage,tensorboard,tqdm]>=1.5" \
    "pydicom>=2.4.4,<3" "pynetdicom>=2.0.2,<3" "dicomweb-client>=0.59.1,<0.60" "jsonschema" "SimpleITK" \
    "uvicorn>=0.29" "pydantic>=2.7" "pydantic-settings>=2.2.1" "python-dotenv>=1.0.1" "fastapi>=0.110.2" \
    "python-multipart>=0.0.9" "httpx>=0.27" "schedule>=1.2.1" "timeloop>=1.0.2" "expiringdict>=1.2.2" \
    "expiring_dict>=1.1.0" "cachetools>=5.3.3" "watchdog>=4.0" "pynrrd>=1.0" "einops>=0.7" "pyyaml>=6.0.1" \
    "filelock>=3.11" "passlib>=1.7.4" "pyjwt>=2.8" "bcrypt>=4.1.2" "shapely>=2.0.4" "requests>=2.31" \
    "requests-toolbelt>=1.0" "urllib3>=2.2.1" "google-auth>=2.29" "girder-client>=3.2.3" "pillow" "pytest"

"${VENV}/bin/python" - <<'PY'
import monailabel, monai, pydicom, monai_fair
from monailabel.interfaces.app import MONAILabelApp  # noqa: F401  (imports the server-side stack)
print(f"monailabel {monailabel.__version__}, monai {monai.__version__}, pydicom {pydicom.__version__}")
PY
touch "${STAMP}"
echo "MONAI Label environment built in $(( $(date +%s) - start )) s: ${VENV}"
