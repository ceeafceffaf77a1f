#!/usr/bin/env bash
# Issue 8's GPU numbers in one run of at most about 5 minutes, from a fresh checkout on a bare GPU
# machine: update speed eager / graphed / compiled, bf16 on and off, kernels per update, graphed
# losses against eager, acting alone and beside training, a 2-worker loader feeding graphed updates,
# peak memory. Prints a table and the JSON report (also written to $GPU_CHECK_OUT).
#
#   bash benchmarks/gpu_check.sh                   # on the GPU machine
#   bash benchmarks/gpu_check.sh --sections eager graph --budget 120     # extra arguments go to gpu_check.py
#   bash benchmarks/gpu_check.sh --fetch-wheels    # on a machine with PyPI: wheels for an offline GPU box
#   bash benchmarks/gpu_check.sh --dry-run         # no GPU: the same setup, every section on the CPU (slow, tiny)
#
# What it needs and how it gets it:
# - torch with CUDA and numpy: the GPU machine's own (never pip-installed here: a bare `pip install
#   torch` may pull a CUDA build that does not match the driver). PYTHON picks the interpreter.
# - the project's packages: linked from this checkout into a temporary folder (no install step,
#   no network, nothing written outside /tmp);
# - zarr and numcodecs (the loader section only) when the interpreter lacks them: from the wheels
#   in $WHEELS (default .whl/, ignored by git; carry that folder to an offline machine), else from
#   the package index; if neither works the loader section reports the error and the rest still runs.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
OUT_FILE=${GPU_CHECK_OUT:-benchmarks/gpu_check.json}
LOADER_PACKAGES=("zarr==3.1.6" "numcodecs==0.16.6" "donfig==0.8.1.post1" "google-crc32c==1.9.0")

if [ "${1:-}" = "--fetch-wheels" ]; then
    # Python 3.12 x86-64 wheels (the GPU image's interpreter); set PY_VERSION for another.
    "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version "${PY_VERSION:-3.12}" \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$WHEELS" "${LOADER_PACKAGES[@]}"
    exit $?
fi

started=$(date +%s)
DEVICE_ARGS=()
if [ "${1:-}" = "--dry-run" ]; then
    shift
    DEVICE_ARGS=(--device cpu --preset debug --batch 4 --length 10 --num-actions 6 --scale 0.1
                 --loader-seconds 3 --compile-backend eager)
elif ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: $PYTHON has no torch that sees a CUDA device (set PYTHON, or run gpu_check.py --device cpu for a dry run)" >&2
    exit 1
fi
SITE=$(mktemp -d /tmp/gpu_check_site.XXXXXX)
trap 'rm -rf "$SITE"' EXIT
mkdir -p "$SITE/dreamer_pipeline"
for package in datasets models pipelines; do
    ln -s "$REPO/$package" "$SITE/dreamer_pipeline/$package"
done
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PYTHON" -c "import zarr, numcodecs" 2>/dev/null; then
    if compgen -G "$WHEELS/*.whl" >/dev/null; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl
    else
        timeout 60 "$PYTHON" -m pip install -q --no-compile --target "$SITE" "${LOADER_PACKAGES[@]}"
    fi || echo "gpu_check: zarr/numcodecs could not be installed; the loader section will fail" >&2
fi
"$PYTHON" -c "import torch, dreamer_pipeline.models.agent; print('torch', torch.__version__, 'CUDA', torch.version.cuda)" || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null || true

setup=$(( $(date +%s) - started ))
budget=$(( ${GPU_CHECK_SECONDS:-290} - setup ))  # the whole run stays within about 5 minutes
PYTHONUNBUFFERED=1 "$PYTHON" "$REPO/benchmarks/gpu_check.py" --budget "$budget" --out "$OUT_FILE" \
    "${DEVICE_ARGS[@]}" "$@"
