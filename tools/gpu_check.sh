#!/usr/bin/env bash
# The one GPU check (tools/gpu_check.py): CUDA tests, then the benchmark grid, profiles and the token mixer, into
# OUT_DIR (JSON, JSONL, markdown, PNG, profiles, test log). Needs bash and python3 only (no make).
#
#   bash tools/gpu_check.sh [OUT_DIR] [gpu_check.py options, e.g. --limit-s 480]      # = make gpu-check
#
# For a CUDA machine whose python3 already has torch, torchvision, timm, triton, numpy, pyyaml, opencv, pytest and
# matplotlib (a stock PyTorch image), and no network: the pure-Python wheels in $WHEELS (default .whl; `make
# gpu-wheels` downloads them on a machine that reaches PyPI) are installed into a private folder first, without
# touching the image's packages. PYTHON (default python3) names the interpreter.
set -euo pipefail
# The check's time limit (--limit-s) counts from here: the wheels' installation and the interpreter's imports too.
GPU_CHECK_STARTED=$(date +%s.%N)
export GPU_CHECK_STARTED
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
