#!/usr/bin/env bash
# Creates .venv with everything mmincnext needs and installs mmincnext into it (editable).
#
#   bash tools/setup_env.sh            # CPU machine: torch 2.14.1 + mmcv 2.1.0 built from source
#   bash tools/setup_env.sh --keep-torch --cuda
#                                      # a venv whose torch you installed yourself (e.g. a CUDA build):
#                                      # keep it, build mmcv's CUDA ops against it
#
# A second run with nothing changed returns at once: a stamp in .venv records the hash of this script, the
# requirement files and setup.py. Variables: PYTHON (interpreter for the venv, default python3),
# VENV (default .venv), MAX_JOBS (parallel compile jobs for mmcv, default: number of cores).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
KEEP_TORCH=0
WITH_CUDA=0
for arg in "$@"; do
  case $arg in
    --keep-torch) KEEP_TORCH=1 ;;
    --cuda) WITH_CUDA=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup_env.sh: unknown option '$arg' (known: --keep-torch, --cuda)" >&2; exit 2 ;;
  esac
done

STEP="start"
step() { STEP=$1; echo "==> [setup] $1"; }
trap 'echo "==> [setup] FAILED at step: $STEP (see the output above)" >&2' ERR

cd "$ROOT"
stamp_inputs=(tools/setup_env.sh setup.py requirements/*.txt)
STAMP=$(cat "${stamp_inputs[@]}" | sha256sum | cut -d' ' -f1)-$KEEP_TORCH-$WITH_CUDA
if [[ -f $VENV/.mmincnext-setup && $(cat "$VENV/.mmincnext-setup") == "$STAMP" ]]; then
  echo "==> [setup] $VENV is up to date (delete $VENV/.mmincnext-setup to force a reinstall)"
  exit 0
fi

step "create virtual environment $VENV"
[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
PY=$VENV/bin/python
PIP=("$PY" -m pip install --progress-bar off -c "$ROOT/requirements/constraints.txt")

step "build tools (pip, setuptools<82, wheel, ninja)"
"${PIP[@]}" -q --upgrade pip 'setuptools>=77,<82' wheel ninja

if [[ $KEEP_TORCH == 1 ]]; then
  step "keep the torch already in $VENV"
  "$PY" -c 'import torch, torchvision; print("torch", torch.__version__, "cuda", torch.version.cuda)'
else
  step "torch 2.14.1 and torchvision 0.29.1"
  "${PIP[@]}" -q torch torchvision
fi

step "mmcv 2.1.0 with its C++ ops (a source build takes about 15 minutes on 2 cores; pip caches the wheel)"
if "$PY" -c 'import mmcv, mmcv.ops; assert mmcv.__version__ == "2.1.0"' 2>/dev/null; then
  echo "    mmcv 2.1.0 with ops is already installed"
else
  # torch >= 2.10 headers require C++20, but mmcv 2.1.0's setup.py appends -std=c++14/17 after everything
  # else, so the compiler is wrapped to rewrite those flags.
  wrapdir=$(mktemp -d)
  cat > "$wrapdir/cxx20" <<'EOF'
#!/usr/bin/env bash
args=()
for a in "$@"; do
  case $a in -std=c++14|-std=c++17) args+=(-std=c++20) ;; *) args+=("$a") ;; esac
done
exec "${REAL_CXX:-g++}" "${args[@]}"
EOF
  chmod +x "$wrapdir/cxx20"
  log=$VENV/mmcv-build.log
  echo "    full build log: $log"
  # Without the constraints' torch pin the build could pull another torch; with --keep-torch, drop the pin.
  constraint=(-c "$ROOT/requirements/constraints.txt")
  [[ $KEEP_TORCH == 1 ]] && constraint=()
  MMCV_WITH_OPS=1 FORCE_CUDA=$WITH_CUDA CXX=$wrapdir/cxx20 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    "$PY" -m pip install -v --progress-bar off --no-build-isolation "${constraint[@]}" 'mmcv==2.1.0' 2>&1 \
    | tee "$log" \
    | sed -nuE -e 's#^ *(\[[0-9]+/[0-9]+\]) .* -c [^ ]*/([^/ ]+\.(cpp|cu)) .*#    \1 \2#p' \
               -e 's#^ *(Successfully|Using cached|Created wheel|ERROR)#    \1#p'
  "$PY" -c 'from mmcv.ops import nms, roi_align; print("    mmcv.ops imports")'
fi

step "OpenMMLab, timm and test requirements"
req_constraint=(-c "$ROOT/requirements/constraints.txt")
if [[ $KEEP_TORCH == 1 ]]; then
  # Keep the user's torch: pin it at what is installed instead of 2.14.1.
  grep -vE '^(torch|torchvision)==' requirements/constraints.txt > "$VENV/constraints-kept-torch.txt"
  "$PY" -c 'import torch, torchvision; print(f"torch=={torch.__version__}\ntorchvision=={torchvision.__version__}")' \
    >> "$VENV/constraints-kept-torch.txt"
  req_constraint=(-c "$VENV/constraints-kept-torch.txt")
fi
# Everything: the backbone's requirements, every task's extra, the tools' and the tests' (setup.py's [all,tests]).
requirement_files=()
for name in runtime seg det cls optional tests; do requirement_files+=(-r "requirements/$name.txt"); done
"$PY" -m pip install -q --progress-bar off "${req_constraint[@]}" "${requirement_files[@]}"

step "mmincnext (editable; setup.py links configs/, tools/ and model-index.yml into mmincnext/.mim)"
"$PY" -m pip install -q --progress-bar off --no-build-isolation --no-deps -e .

step "check the installation"
"$PY" -c 'import torch, mmcv, mmcv.ops, mmengine, mmseg, mmdet, mmpretrain, timm, mmincnext
print("    torch", torch.__version__, "| mmcv", mmcv.__version__, "| mmengine", mmengine.__version__,
      "| mmseg", mmseg.__version__, "| mmdet", mmdet.__version__, "| timm", timm.__version__)'
echo "$STAMP" > "$VENV/.mmincnext-setup"
echo "==> [setup] done: activate with 'source $VENV/bin/activate'"
