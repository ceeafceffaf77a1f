#!/usr/bin/env bash
# Wheels for the offline GPU machine (benchmarks/gpu_learning.sh --fetch-wheels): every package the
# pipeline needs there beyond the machine's own, for Python $PY_VERSION (default 3.12) on manylinux
# x86-64, into WHEELS_DIR (default .whl/, ignored by git). Run it where the package index is
# reachable; carry the folder to the GPU machine.
#
#   bash benchmarks/gpu_wheels.sh [WHEELS_DIR]
#
# - The GPU image's own packages are not fetched: torch, numpy, h5py, click, pyyaml, opencv,
#   matplotlib, tensorboard, and what torch and matplotlib bring (pillow, jinja2, fsspec, ...).
#   imageio-ffmpeg (68 MB) is not fetched either: config/gpu_boxing.yaml records no video.
# - Versions: the resolver's choice for the target Python, held to the versions this interpreter
#   has installed (so the GPU run uses the versions the tests here ran with).
# - Dependencies published only as source (connection_pool) are built here as pure-Python wheels.
# - The folder is replaced whole (one version of each wheel), and the wheels plus the tracked tree
#   must stay under the device tool's 64 MiB: the script checks and says.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${1:-.whl}
PY_VERSION=${PY_VERSION:-3.12}
LIMIT_BYTES=$(( 64 * 1024 * 1024 ))
REQUIREMENTS=("snakemake>=9" "zarr>=3.1,<4" "numcodecs>=0.13" "ale-py>=0.10" "gymnasium>=1.0"
              "dask[array,distributed]>=2024.8" "tqdm>=4.66" "imageio>=2.34")
SOURCE_ONLY=("connection_pool")
IMAGE_HAS=(torch numpy h5py click pyyaml opencv-python opencv-python-headless matplotlib tensorboard imageio-ffmpeg
           pillow jinja2 markupsafe fsspec filelock typing-extensions networkx sympy mpmath setuptools packaging
           contourpy cycler fonttools kiwisolver pyparsing python-dateutil six)
PLATFORMS=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_12 manylinux2010 \
           manylinux_2_5 manylinux1; do
    PLATFORMS+=(--platform "${tag}_x86_64")
done
TARGET=(--only-binary=:all: --python-version "$PY_VERSION" --implementation cp --abi "cp${PY_VERSION/./}" "${PLATFORMS[@]}")

work=$(mktemp -d /tmp/gpu_wheels.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/wheels"
# this interpreter's versions as constraints (not editable or direct-reference installs)
"$PYTHON" -m pip list --format=freeze 2>/dev/null | grep -v -e '@' -e '^-e' -e '^dreamer' > "$work/constraints.txt" || true

for package in "${SOURCE_ONLY[@]}"; do
    version=$(grep -i "^${package}==" "$work/constraints.txt" | head -1 || true)
    "$PYTHON" -m pip wheel -q --no-deps --no-binary :all: -c "$work/constraints.txt" -w "$work/wheels" "${version:-$package}"
done
for wheel in "$work"/wheels/*.whl; do
    case "$wheel" in
        *-none-any.whl) ;;
        *) echo "gpu_wheels: $wheel is not pure Python: it would not run on the GPU machine" >&2; exit 1 ;;
    esac
done

"$PYTHON" -m pip install -q --dry-run --ignore-installed --target "$work/none" --report "$work/report.json" \
    "${TARGET[@]}" --find-links "$work/wheels" -c "$work/constraints.txt" "${REQUIREMENTS[@]}"
"$PYTHON" - "$work/report.json" "${IMAGE_HAS[@]}" > "$work/pins.txt" <<'EOF'
import json, re, sys
normal = lambda name: re.sub(r"[-_.]+", "-", name).lower()
image_has = {normal(name) for name in sys.argv[2:]}
for item in json.load(open(sys.argv[1]))["install"]:
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    if normal(name) not in image_has:
        print(f"{name}=={version}")
EOF
"$PYTHON" -m pip download -q --no-deps "${TARGET[@]}" --find-links "$work/wheels" -d "$work/wheels" -r "$work/pins.txt"

rm -rf "$WHEELS"
mv "$work/wheels" "$WHEELS"
wheels=$(du -cb "$WHEELS"/*.whl | tail -1 | cut -f1)
tree=$("$PYTHON" - <<'EOF'
import os, subprocess
# what the device tool sends: tracked files and the untracked ones git does not ignore
listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                        capture_output=True, text=True, check=True).stdout.split("\0")
print(sum(os.path.getsize(path) for path in set(listed) if path and os.path.isfile(path)))
EOF
)
total=$(( wheels + tree ))
echo "gpu_wheels: $(ls "$WHEELS"/*.whl | wc -l) wheels in $WHEELS, $(( wheels / 1024 )) KiB; tracked tree $(( tree / 1024 )) KiB;" \
     "together $(( total / 1024 )) KiB of the device tool's $(( LIMIT_BYTES / 1024 )) KiB"
if [ "$total" -ge "$LIMIT_BYTES" ]; then
    echo "gpu_wheels: over the 64 MiB that travels to the GPU machine" >&2
    exit 1
fi
