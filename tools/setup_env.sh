#!/usr/bin/env bash
# Creates .venv with everything mmincnext needs and installs mmincnext into it (editable).
#
#   bash tools/setup_env.sh            # CPU machine: torch 2.14.1 + mmcv 2.1.0 built from source
#   bash tools/setup_env.sh --keep-torch --cuda
#                                      # a venv whose torch you installed yourself (e.g. a CUDA build):
#                                      # keep it, build mmcv's CUDA ops against it
#   bash tools/setup_env.sh --onedl    # the OneDL forks instead (default venv .venv-onedl): onedl-mmcv 2.3.6
#                                      # built from source, onedl-mmengine/-mmsegmentation/-mmdetection/-mmpretrain
#
# A second run with nothing changed returns at once: a stamp in .venv records the hash of this script, the
# requirement files and setup.py. Variables: PYTHON (interpreter for the venv, default python3),
# VENV (default .venv, with --onedl .venv-onedl), MAX_JOBS (parallel compile jobs for mmcv, default: number of cores).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
KEEP_TORCH=0
WITH_CUDA=0
ONEDL=0
for arg in "$@"; do
  case $arg in
    --keep-torch) KEEP_TORCH=1 ;;
    --cuda) WITH_CUDA=1 ;;
    --onedl) ONEDL=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "setup_env.sh: unknown option '$arg' (known: --keep-torch, --cuda, --onedl)" >&2; exit 2 ;;
  esac
done
# The two families install the same import names (mmcv, mmengine, mmseg, mmdet, mmpretrain) from different
# distributions, so each gets a venv, a constraints file and requirement files of its own (README "Installation").
if [[ $ONEDL == 1 ]]; then
  VENV=${VENV:-$ROOT/.venv-onedl}
  CONSTRAINTS=$ROOT/requirements/constraints-onedl.txt
  MMCV_DIST=onedl-mmcv MMCV_VERSION=2.3.6
  FAMILY_REQS=(mminstall-onedl seg-onedl det-onedl cls-onedl)
  OTHER_FAMILY=(mmcv mmengine mmsegmentation mmdet mmpretrain)
else
  VENV=${VENV:-$ROOT/.venv}
  CONSTRAINTS=$ROOT/requirements/constraints.txt
  MMCV_DIST=mmcv MMCV_VERSION=2.1.0
  FAMILY_REQS=(mminstall seg det cls)
  OTHER_FAMILY=(onedl-mmcv onedl-mmengine onedl-mmsegmentation onedl-mmdetection onedl-mmpretrain)
fi

STEP="start"
step() { STEP=$1; echo "==> [setup] $1"; }
trap 'echo "==> [setup] FAILED at step: $STEP (see the output above)" >&2' ERR

cd "$ROOT"
stamp_inputs=(tools/setup_env.sh setup.py requirements/*.txt)
STAMP=$(cat "${stamp_inputs[@]}" | sha256sum | cut -d' ' -f1)-$KEEP_TORCH-$WITH_CUDA-$ONEDL
if [[ -f $VENV/.mmincnext-setup && $(cat "$VENV/.mmincnext-setup") == "$STAMP" ]]; then
  echo "==> [setup] $VENV is up to date (delete $VENV/.mmincnext-setup to force a reinstall)"
  exit 0
fi

step "create virtual environment $VENV"
[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
PY=$VENV/bin/python
PIP=("$PY" -m pip install --progress-bar off -c "$CONSTRAINTS")

step "build tools (pip, setuptools<82, wheel, packaging, ninja)"
"${PIP[@]}" -q --upgrade pip 'setuptools>=77,<82' wheel 'packaging>=24.2' ninja

if [[ $KEEP_TORCH == 1 ]]; then
  step "keep the torch already in $VENV"
  "$PY" -c 'import torch, torchvision; print("torch", torch.__version__, "cuda", torch.version.cuda)'
else
  step "torch 2.14.1 and torchvision 0.29.1"
  "${PIP[@]}" -q torch torchvision
fi

step "$MMCV_DIST $MMCV_VERSION with its C++ ops (a source build takes 15-25 minutes on 2 cores; pip caches the wheel)"
if "$PY" -c "import importlib.metadata as m, mmcv.ops; assert m.version('$MMCV_DIST') == '$MMCV_VERSION'" 2>/dev/null; then
  echo "    $MMCV_DIST $MMCV_VERSION with ops is already installed"
else
  # torch >= 2.10 headers require C++20, but mmcv 2.1.0's and onedl-mmcv 2.3.6's setup.py append -std=c++14/17
  # after everything else, so the compiler is wrapped to rewrite those flags.
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
  constraint=(-c "$CONSTRAINTS")
  [[ $KEEP_TORCH == 1 ]] && constraint=()
  MMCV_WITH_OPS=1 FORCE_CUDA=$WITH_CUDA CXX=$wrapdir/cxx20 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    "$PY" -m pip install -v --progress-bar off --no-build-isolation "${constraint[@]}" "$MMCV_DIST==$MMCV_VERSION" 2>&1 \
    | tee "$log" \
    | sed -nuE -e 's#^ *(\[[0-9]+/[0-9]+\]) .* -c [^ ]*/([^/ ]+\.(cpp|cu)) .*#    \1 \2#p' \
               -e 's#^ *(Successfully|Using cached|Created wheel|ERROR)#    \1#p'
  "$PY" -c 'from mmcv.ops import nms, roi_align; print("    mmcv.ops imports")'
fi

step "OpenMMLab, timm and test requirements"
req_constraint=(-c "$CONSTRAINTS")
if [[ $KEEP_TORCH == 1 ]]; then
  # Keep the user's torch: pin it at what is installed instead of 2.14.1.
  grep -vE '^(torch|torchvision)==' "$CONSTRAINTS" > "$VENV/constraints-kept-torch.txt"
  "$PY" -c 'import torch, torchvision; print(f"torch=={torch.__version__}\ntorchvision=={torchvision.__version__}")' \
    >> "$VENV/constraints-kept-torch.txt"
  req_constraint=(-c "$VENV/constraints-kept-torch.txt")
fi
# Everything: the backbone's requirements, the family's foundation and task libraries, the tools' and the tests'
# (setup.py's [all,tests], or [onedl-all,tests]).
requirement_files=()
for name in runtime "${FAMILY_REQS[@]}" optional tests; do requirement_files+=(-r "requirements/$name.txt"); done
"$PY" -m pip install -q --progress-bar off "${req_constraint[@]}" "${requirement_files[@]}"

step "mmincnext (editable; setup.py links configs/, tools/ and model-index.yml into mmincnext/.mim)"
"$PY" -m pip install -q --progress-bar off --no-build-isolation --no-deps -e .

step "check the installation"
"$PY" -c 'import torch, mmcv, mmcv.ops, mmengine, mmseg, mmdet, mmpretrain, timm, mmincnext
print("    torch", torch.__version__, "| mmcv", mmcv.__version__, "| mmengine", mmengine.__version__,
      "| mmseg", mmseg.__version__, "| mmdet", mmdet.__version__, "| timm", timm.__version__)'
# Two owners of one import name (e.g. mmcv and onedl-mmcv) overwrite each other's files: refuse such a venv.
"$PY" - "${OTHER_FAMILY[@]}" <<'EOF'
import importlib.metadata as m, sys
mixed = [name for name in sys.argv[1:] if any(True for _ in m.distributions(name=name))]
if mixed:
    sys.exit(f"    the other OpenMMLab family is installed here too: {', '.join(mixed)}; "
             "remove it (pip uninstall) or use a fresh venv")
print("    no distribution of the other family is installed")
EOF
echo "$STAMP" > "$VENV/.mmincnext-setup"
echo "==> [setup] done: activate with 'source $VENV/bin/activate'"
