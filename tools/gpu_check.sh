#!/usr/bin/env bash
# The one GPU check (tools/gpu_check.py): CUDA tests, then the benchmark grid, into OUT_DIR (JSON, JSONL, PNG, logs).
#
#   bash tools/gpu_check.sh [OUT_DIR] [gpu_check.py options]        # = make gpu-check
#
# For a CUDA machine whose python3 already has torch, torchvision, timm, triton, numpy, pyyaml, matplotlib and
# pytest (a stock PyTorch image), and no network: the pure-Python wheels in $WHEELS (default .whl; `make gpu-wheels`
# downloads them on a machine that reaches PyPI) are installed into a private folder first, without touching the
# image's packages. PYTHON (default python3) names the interpreter.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=${1:-$ROOT/work_dirs/gpu_check}
shift || true
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-$ROOT/.whl}
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  site=$(mktemp -d)
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$WHEELS"/*.whl
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
cd "$ROOT"
exec "$PYTHON" tools/gpu_check.py --out "$OUT_DIR" "$@"
