#!/usr/bin/env bash
# The checks a CUDA GPU machine is for, in one call that fits a 10-minute command
# (the steps' time limits add up to 540 s):
#   1. pytest -m gpu (CPU/GPU agreement, the tensor-core paths of neural materials and
#      NeRF volumes against their fp32 per-lane twins);
#   2. a NeRF dataset of the default scene's objects and the default training preset for
#      60 s on CUDA (the goal: >= 30 dB PSNR on the test views within 60 s);
#   3. `nrender bench` on those objects as a NeRF volume: the frame time with and without
#      it, and a 1920x1080 1-spp frame with the field's networks per lane and on tensor
#      cores.
#
# Such a machine may lack slangpy, pytest and nrender's other dependencies and have no
# network. Build a bundle of them for its Python (3.12) beside the checkout first:
#   ../shared/tools/gpu-bundle.sh slangpy==0.43.1 trimesh openexr flip-evaluator pillow \
#       pytest pluggy iniconfig packaging
# then, on the GPU machine, from the repository root:
#   s=$(mktemp -d) && tar xJf .gpu/site.tar.xz -C $s && export PYTHONPATH=$s:$PWD
#   OUT=/some/folder bash tools/gpu_check.sh
# Results land in $OUT (default: gpu_check/): summary.txt (each step's exit status and
# seconds), each step's log, the training report and the benchmark's JSON.
# DRY_RUN=1 DEVICE=cpu runs the same steps tiny, to check the script on any machine.
set -uo pipefail
out=${OUT:-gpu_check}
device=${DEVICE:-cuda}
if [ "${DRY_RUN:-0}" = 1 ]; then
  dataset_size=(--views 6,1,2 --resolution 24 --spp 4)
  train_size=(--preset quick --steps 10)
  bench_size=(--res 32x18 --spp 1)
else
  dataset_size=()
  train_size=(--preset default --time-limit 60)
  bench_size=(--res 320x180 --spp 16)
fi
mkdir -p "$out"
: > "$out/summary.txt"

step() {
  local name=$1 limit=$2
  shift 2
  local start
  start=$(date +%s)
  timeout -s INT -k 20 "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "$name: rc=$rc, $(($(date +%s) - start)) s" | tee -a "$out/summary.txt"
  return $rc
}

# an array, not a function: `timeout` runs commands, not shell functions
nrender=(python3 -m renderer)

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
step pytest_gpu 200 python3 -m pytest -m gpu -q -p no:cacheprovider tests
step nerf_dataset 60 "${nrender[@]}" nerf dataset scenes/default --objects ring,block,column,ball \
  -o "$out/objects" --device "$device" "${dataset_size[@]}" --quiet || exit 1
step nerf_train 100 "${nrender[@]}" nerf train "$out/objects" -o "$out/objects.nfield" \
  --device "$device" "${train_size[@]}" --quiet || exit 1
# the default scene with those objects replaced by the field (where they stood)
python3 - "$out" <<'EOF'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
scene = json.loads(Path("scenes/default/scene.json").read_text())
scene["instances"] = [i for i in scene["instances"] if i["mesh"] in ("ground", "panel")]
scene["materials"] = {k: scene["materials"][k] for k in ("floor", "lamp")}
scene["meshes"] = {k: scene["meshes"][k] for k in ("ground", "panel")}
scene["volumes"] = [{"nerf": "objects.nfield"}]
(out / "nerf_scene.json").write_text(json.dumps(scene, indent=1))
EOF
step bench 180 "${nrender[@]}" bench "$out/nerf_scene.json" --device "$device" "${bench_size[@]}" \
  --bvh-triangles 0 --material-queries 0 --out "$out/bench.json"
