#!/usr/bin/env bash
# Creates .venv with everything mmincnext needs and installs mmincnext into it (editable).
#
#   bash tools/setup_env.sh            # CPU machine: torch 2.14.1 + mmcv 2.1.0 built from source
#   bash tools/setup_env.sh --keep-torch --cuda
#                                      # a venv whose torch you installed yourself (e.g. a CUDA build):
#                                      # keep it, build mmcv's CUDA ops against it
#   bash tools/setup_env.sh --onedl    # the OneDL forks instead (default venv .venv-onedl, Python 3.12, torch 2.12):
#                                      # onedl-mmcv 2.3.6 built from source, onedl-mmengine/-mmsegmentation/
#                                      # -mmdetection/-mmpretrain
#   bash tools/setup_env.sh --min      # the oldest supported stack (default venv .venv-min, Python 3.9): torch 2.1,
#                                      # numpy 1.26, mmengine, mmcv-lite (no compiled ops), timm; no task library
#
# A second run with nothing changed returns at once: a stamp in the venv records the hash of this script, setup.py
# and the requirement files it reads. Variables: PYTHON (interpreter for the venv; default python3, with --onedl
# python3.12, with --min python3.9), VENV (default .venv, .venv-onedl, .venv-min), MAX_JOBS (parallel compile jobs
# for mmcv, default: number of cores).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KEEP_TORCH=0
WITH_CUDA=0
MODE=upstream
for arg in "$@"; do
  case $arg in
    --keep-torch) KEEP_TORCH=1 ;;
    --cuda) WITH_CUDA=1 ;;
    --onedl) MODE=onedl ;;
    --min) MODE=min ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "setup_env.sh: unknown option '$arg' (known: --keep-torch, --cuda, --onedl, --min)" >&2; exit 2 ;;
  esac
done
# The two families install the same import names (mmcv, mmengine, mmseg, mmdet, mmpretrain) from different
# distributions, so each gets a venv, a constraints file and requirement files of its own (docs/compatibility.md).
# The third venv is the oldest supported stack: one family's foundation without compiled ops and no task library.
case $MODE in
  onedl)
    # Python 3.12 and torch 2.12: what OneDL ships onedl-mmcv wheels for, and the GPU image's Python.
    PYTHON_VERSION=3.12
    VENV=${VENV:-$ROOT/.venv-onedl}
    CONSTRAINTS=$ROOT/requirements/constraints-onedl.txt
    MMCV_DIST=onedl-mmcv MMCV_VERSION=2.3.6 MMCV_OPS=1
    REQUIREMENTS=(runtime mminstall-onedl seg-onedl det-onedl cls-onedl optional tests) MORE_PACKAGES=()
    OTHER_FAMILY=(mmcv mmcv-lite mmengine mmsegmentation mmdet mmpretrain)
    CHECK_IMPORTS=(mmcv.ops mmseg mmdet mmpretrain) ;;
  min)
    PYTHON_VERSION=3.9
    VENV=${VENV:-$ROOT/.venv-min}
    CONSTRAINTS=$ROOT/requirements/constraints-min.txt
    MMCV_DIST=mmcv-lite MMCV_VERSION=2.1.0 MMCV_OPS=0
    # mminstall.txt names the full mmcv: here mmcv-lite stands for it, and mmengine is named on its own.
    REQUIREMENTS=(runtime optional tests) MORE_PACKAGES=(mmengine)
    OTHER_FAMILY=(mmcv onedl-mmcv onedl-mmengine onedl-mmsegmentation onedl-mmdetection onedl-mmpretrain)
    CHECK_IMPORTS=() ;;
  *)
    PYTHON_VERSION=
    VENV=${VENV:-$ROOT/.venv}
    CONSTRAINTS=$ROOT/requirements/constraints.txt
    MMCV_DIST=mmcv MMCV_VERSION=2.1.0 MMCV_OPS=1
    REQUIREMENTS=(runtime mminstall seg det cls optional tests) MORE_PACKAGES=()
    OTHER_FAMILY=(mmcv-lite onedl-mmcv onedl-mmengine onedl-mmsegmentation onedl-mmdetection onedl-mmpretrain)
    CHECK_IMPORTS=(mmcv.ops mmseg mmdet mmpretrain) ;;
esac

STEP="start"
step() { STEP=$1; echo "==> [setup] $1"; }
trap 'echo "==> [setup] FAILED at step: $STEP (see the output above)" >&2' ERR

cd "$ROOT"
stamp_inputs=(tools/setup_env.sh setup.py "$CONSTRAINTS")
for name in "${REQUIREMENTS[@]}"; do stamp_inputs+=("requirements/$name.txt"); done
STAMP=$(cat "${stamp_inputs[@]}" | sha256sum | cut -d' ' -f1)-$KEEP_TORCH-$WITH_CUDA-$MODE
if [[ -f $VENV/.mmincnext-setup && $(cat "$VENV/.mmincnext-setup") == "$STAMP" ]]; then
  echo "==> [setup] $VENV is up to date (delete $VENV/.mmincnext-setup to force a reinstall)"
  exit 0
fi

python_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
# The interpreter: $PYTHON if set, else python3 (upstream) or python3.X for the venvs that need that version, found
# on PATH or among pyenv's installed versions (whose shims answer only for the versions pyenv has selected).
if [[ -z ${PYTHON:-} ]]; then
  PYTHON=python3${PYTHON_VERSION:+.${PYTHON_VERSION#3.}}
  if [[ -n $PYTHON_VERSION && $(python_version "$PYTHON") != "$PYTHON_VERSION" ]] && command -v pyenv >/dev/null; then
    found=$(pyenv versions --bare | grep -E "^${PYTHON_VERSION//./\\.}(\\.[0-9]+)?$" | sort -V | tail -n 1 || true)
    [[ -n $found ]] && PYTHON=$(pyenv root)/versions/$found/bin/python$PYTHON_VERSION
  fi
  if [[ -n $PYTHON_VERSION && $(python_version "$PYTHON") != "$PYTHON_VERSION" ]]; then
    echo "==> [setup] this venv needs Python $PYTHON_VERSION: install it (e.g. 'pyenv install $PYTHON_VERSION') or set" \
         "PYTHON=/path/to/python$PYTHON_VERSION" >&2
    exit 1
  fi
fi

step "create virtual environment $VENV ($PYTHON)"
wanted=$(python_version "$PYTHON")
if [[ -x $VENV/bin/python && $(python_version "$VENV/bin/python") != "$wanted" ]]; then
  echo "    $VENV has Python $(python_version "$VENV/bin/python"), this set-up wants $wanted: recreating it"
  rm -rf "$VENV"
fi
[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
PY=$VENV/bin/python
PIP=("$PY" -m pip install --progress-bar off -c "$CONSTRAINTS")

step "build tools (pip, setuptools<82, wheel, packaging, ninja)"
"${PIP[@]}" -q --upgrade pip 'setuptools>=77,<82' wheel 'packaging>=24.2' ninja

if [[ $KEEP_TORCH == 1 ]]; then
  step "keep the torch already in $VENV"
  "$PY" -c 'import torch, torchvision; print("torch", torch.__version__, "cuda", torch.version.cuda)'
else
  step "torch and torchvision: $(grep -E '^torch(vision)?==' "$CONSTRAINTS" | tr '\n' ' ')"
  "${PIP[@]}" -q torch torchvision
fi

if [[ $MMCV_OPS == 0 ]]; then
  step "$MMCV_DIST $MMCV_VERSION (mmcv's Python modules without the compiled ops)"
  # Its setup.py imports pkg_resources: build it against the venv's setuptools < 82, not an isolated newest one.
  "${PIP[@]}" -q --no-build-isolation "$MMCV_DIST==$MMCV_VERSION"
else
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
fi

step "OpenMMLab, timm and test requirements"
req_constraint=(-c "$CONSTRAINTS")
if [[ $KEEP_TORCH == 1 ]]; then
  # Keep the user's torch: pin it at what is installed instead of the constraints' version.
  grep -vE '^(torch|torchvision)==' "$CONSTRAINTS" > "$VENV/constraints-kept-torch.txt"
  "$PY" -c 'import torch, torchvision; print(f"torch=={torch.__version__}\ntorchvision=={torchvision.__version__}")' \
    >> "$VENV/constraints-kept-torch.txt"
  req_constraint=(-c "$VENV/constraints-kept-torch.txt")
fi
# Everything: the backbone's requirements, the family's foundation and task libraries, the tools' and the tests'
# (setup.py's [all,tests], or [onedl-all,tests]; with --min, mmengine without task libraries).
requirement_files=()
for name in "${REQUIREMENTS[@]}"; do requirement_files+=(-r "requirements/$name.txt"); done
"$PY" -m pip install -q --progress-bar off "${req_constraint[@]}" "${requirement_files[@]}" "${MORE_PACKAGES[@]}"

step "mmincnext (editable; setup.py links configs/, tools/ and model-index.yml into mmincnext/.mim)"
"$PY" -m pip install -q --progress-bar off --no-build-isolation --no-deps -e .

step "check the installation"
"$PY" - "${CHECK_IMPORTS[@]}" <<'EOF'
import importlib, platform, sys
import mmcv, mmengine, numpy, timm, torch
import mmincnext
for name in sys.argv[1:]:
    importlib.import_module(name)
versions = dict(python=platform.python_version(), torch=torch.__version__, numpy=numpy.__version__,
                mmcv=mmcv.__version__, mmengine=mmengine.__version__, timm=timm.__version__)
versions.update({name: importlib.import_module(name).__version__ for name in ('mmseg', 'mmdet', 'mmpretrain')
                 if name in sys.argv[1:]})
print('    ' + ' | '.join(f'{k} {v}' for k, v in versions.items()))
EOF
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
