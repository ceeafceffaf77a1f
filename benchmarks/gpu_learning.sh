#!/usr/bin/env bash
# DreamerV2 learning Atari in minutes of GPU time (issue 15): the real Snakefile on
# config/gpu_boxing.yaml (the paper's protocol, Boxing, 1M frames), random play measured in the
# same run, and one table: frames, updates/s, agent steps/s, greedy return with its 95% interval,
# random play's return, DreamerV2's published curve at equal frames; then the planned wall time
# of a 200M-frame run at the measured rates. Start to table in at most 10 minutes on an H200.
#
#   bash benchmarks/gpu_learning.sh                  # on the GPU machine (carry .whl there)
#   bash benchmarks/gpu_learning.sh --fetch-wheels   # on a machine with the package index: .whl/
#   bash benchmarks/gpu_learning.sh --dry-run        # the same script on the CPU at debug sizes (~1 min)
#
# Options: --out DIR (results folder; default results/gpu_learning, results/gpu_learning_dry for
# a dry run: a dry run writes nothing a real run reads), --time-limit SECONDS (start to table,
# default 560: Snakemake is stopped 30 s before and the table printed from every finished
# evaluation; a rerun with the same --out resumes the run).
#
# What it needs and how it gets it (no network on the GPU machine):
# - torch with CUDA, numpy, h5py, click, pyyaml, matplotlib, tensorboard, opencv: the machine's own.
#   PYTHON picks the interpreter (default python3).
# - every other package (Snakemake and its dependencies, zarr, numcodecs, ale-py, gymnasium, dask,
#   tqdm, ...): the wheels in $WHEELS (default .whl/, ignored by git) that the interpreter lacks are
#   installed into a temporary folder on PYTHONPATH. --fetch-wheels fills .whl/ for Python
#   $PY_VERSION (default 3.12) on manylinux x86-64; dependencies published only as source are built
#   here as pure-Python wheels. imageio-ffmpeg is not carried (its wheel is 68 MB): the
#   configuration records no evaluation video.
# - the project: linked from this checkout into the temporary folder, with a `dreamer-pipeline`
#   command that runs this checkout's CLI (no install step, nothing written outside /tmp and --out).
set -uo pipefail
CALLER=$(pwd)
cd "$(dirname "$0")/.."
REPO=$(pwd)
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
started=$(date +%s)

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
mode=run
out=""
limit=560
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) mode=dry ;;
        --fetch-wheels) mode=fetch ;;
        --out) out=${2:?--out needs a folder}; shift
               case "$out" in /*) ;; *) out="$CALLER/$out" ;; esac ;;  # relative to where it was called
        --time-limit) limit=${2:?--time-limit needs seconds}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_learning: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case "$limit" in ''|*[!0-9]*) echo "gpu_learning: --time-limit must be whole seconds, got '$limit'" >&2; exit 2 ;; esac

if [ "$mode" = fetch ]; then
    exec bash "$REPO/benchmarks/gpu_wheels.sh" "$WHEELS"
fi

# ---- the project and the carried packages, in a temporary site folder ----
PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable)') || { echo "gpu_learning: no Python at PYTHON" >&2; exit 1; }
SITE=$(mktemp -d /tmp/gpu_learning_site.XXXXXX)
trap 'rm -rf "$SITE"' EXIT
mkdir -p "$SITE/dreamer_pipeline" "$SITE/bin" "$SITE/lib"
for package in datasets models pipelines; do
    ln -s "$REPO/$package" "$SITE/dreamer_pipeline/$package"
done
printf '#!/bin/sh\nexec "%s" -m dreamer_pipeline.pipelines.cli "$@"\n' "$PYTHON" > "$SITE/bin/dreamer-pipeline"
chmod +x "$SITE/bin/dreamer-pipeline"
export PYTHONPATH="$SITE:$SITE/lib${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$SITE/bin:$PATH"

if [ -d "$WHEELS" ]; then
    # the carried wheels whose distribution this interpreter lacks (the machine's own stay in use)
    mapfile -t missing < <("$PYTHON" - "$WHEELS" <<'EOF'
import importlib.metadata as metadata, pathlib, re, sys
normal = lambda name: re.sub(r"[-_.]+", "-", name).lower()
have = {normal(d.metadata["Name"]) for d in metadata.distributions() if d.metadata["Name"]}
for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    if normal(wheel.name.split("-")[0]) not in have:
        print(wheel)
EOF
)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "gpu_learning: installing ${#missing[@]} carried wheels into $SITE/lib"
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE/lib" "${missing[@]}" \
            || { echo "gpu_learning: installing the wheels in $WHEELS failed" >&2; exit 1; }
    fi
fi

# ---- the run ----
SETTINGS=()
if [ "$mode" = dry ]; then
    out=${out:-results/gpu_learning_dry}
    export CUDA_VISIBLE_DEVICES=""
    # debug sizes, everything else as config/gpu_boxing.yaml: a prefill, iteration 0 on it, two
    # online iterations (100 and 200 steps, two collectors each), three evaluations
    SETTINGS=(variant=gpu-dry frames_budget=2000 loop.first_iteration_steps=100 prefill.name=random-dry
              prefill.steps=200 prefill.envs=2 collect.envs=2 collect.threads=1 collect.device=cpu
              train.batch_size=4 train.sequence_length=16 train.checkpoint_every=5 train.video_sequences=1
              train.device=cpu train.torch_threads=1 train.loader_workers=0 evaluate.episodes=3 evaluate.envs=3
              evaluate.device=cpu env.max_episode_steps=100 agent.preset=debug)
else
    out=${out:-results/gpu_learning}
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
fi
"$PYTHON" - "$mode" <<'EOF' || exit 1
import os, sys
try:
    import torch, snakemake, zarr, numcodecs, ale_py, gymnasium, tqdm, dreamer_pipeline.pipelines.cli
except ImportError as error:
    sys.exit(f"gpu_learning: {sys.executable} lacks {error.name}; run 'bash benchmarks/gpu_learning.sh --fetch-wheels' "
             "on a machine with the package index and carry .whl/ to this one")
if sys.argv[1] == "run" and not torch.cuda.is_available():
    sys.exit(f"gpu_learning: {sys.executable}'s torch sees no CUDA device (--dry-run rehearses on the CPU)")
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), snakemake {snakemake.__version__}, "
      f"ale-py {ale_py.__version__}, zarr {zarr.__version__}; {os.cpu_count()} cores")
EOF
echo "setup took $(( $(date +%s) - started )) s"

set_args=()
for setting in "${SETTINGS[@]}"; do set_args+=(--set "$setting"); done
deadline=$(( started + limit - 30 ))  # 30 s to stop Snakemake and print the table
PYTHONUNBUFFERED=1 "$PYTHON" "$REPO/benchmarks/gpu_learning.py" --config "$REPO/config/gpu_boxing.yaml" \
    --results "$out" --deadline "$deadline" "${set_args[@]}"
