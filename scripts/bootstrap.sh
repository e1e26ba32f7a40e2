#!/usr/bin/env bash
# Creates (if missing) a virtual environment and installs this project into it.
#   scripts/bootstrap.sh VENV [editable|wheel]
# Order matters:
#   1. torch==2.13.0 first: the CPU build; a bare `torch` requirement pulls a CUDA build.
#   2. mbrl==0.2.0 with --no-deps: its wheel pins hydra-core==1.0.3 / omegaconf<2.1,
#      which do not import on Python 3.11; it runs on hydra-core 1.3 / omegaconf 2.3.
#   3. this package, with the dependencies it really uses (pyproject.toml).
set -euo pipefail
venv=${1:-.venv}
mode=${2:-editable}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip="$venv/bin/python -m pip"
$pip install -q --disable-pip-version-check torch==2.13.0
$pip install -q --disable-pip-version-check --no-deps mbrl==0.2.0
if [ "$mode" = editable ]; then
  $pip install -q --disable-pip-version-check -e "$here[test]" --config-settings editable_mode=compat
else
  $pip install -q --disable-pip-version-check "$here[test]"
fi
