#!/usr/bin/env bash
# Everything a GPU machine should check, in one command:
#   1. compile check of csrc/cuda/*.cu (scripts/check_cuda_compile.sh);
#   2. build and install the extension with CUDA kernels
#      (SQUEEZEPROMPT_CUDA=ON pip install --no-build-isolation .);
#   3. the whole test suite with the GPU visible: everything but tests/cuda as in CI
#      (tests/triton in Triton's interpreter), then tests/cuda with TRITON_INTERPRET=0
#      so the Triton kernels are compiled for the GPU;
#   4. bench/bench_gpu.py: our CUDA and Triton kernels vs cuBLAS (JSON, Markdown, PNG).
# Every step runs even if an earlier one failed (except a failed build); the exit
# status is non-zero if any failed, and a summary lists them.
#
# Usage: scripts/gpu_check.sh [OUT_DIR]   (default gpu_check_out/; logs and bench results)
#   CUDA_ARCHS="90"  architectures to build (default: CMakeLists.txt's 80;90)
#   SKIP_BUILD=1     test the squeezeprompt already installed
#   SQUEEZEPROMPT_GPU_BACKEND=triton   route the ops that have Triton kernels to Triton
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(mkdir -p "${1:-$root/gpu_check_out}" && cd "${1:-$root/gpu_check_out}" && pwd)"
cd "$root"
failed=()

step() {  # step NAME COMMAND...: runs COMMAND, logs to $out/NAME.log, records failure
  local name="$1"
  shift
  echo "=== $name: $*"
  local start=$SECONDS
  if "$@" 2>&1 | tee "$out/$name.log"; then
    echo "=== $name: ok ($((SECONDS - start)) s)"
  else
    echo "=== $name: FAILED ($((SECONDS - start)) s), log in $out/$name.log"
    failed+=("$name")
  fi
}

if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: torch sees no CUDA device (torch $(python -c 'import torch; print(torch.__version__)'))" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null | tee "$out/gpu.txt"

step compile_check scripts/check_cuda_compile.sh

if [[ "${SKIP_BUILD:-0}" != "1" ]]; then
  build_args=(--no-build-isolation --no-deps -v .)
  if [[ -n "${CUDA_ARCHS:-}" ]]; then
    build_args+=(-C "cmake.define.CMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS}")
  fi
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
  step build env SQUEEZEPROMPT_CUDA=ON python -m pip install "${build_args[@]}"
  if [[ " ${failed[*]} " == *" build "* ]]; then
    echo "gpu_check: build failed; nothing to test" >&2
    exit 1
  fi
fi

# The installed package, not the source tree, must answer: run from the repo root,
# where python/ is not on sys.path.
step cuda_registered python -c "
import torch, squeezeprompt
x = torch.randn(2, 64, device='cuda', dtype=torch.bfloat16)
from squeezeprompt.quantize import quantize_int4
q = quantize_int4(torch.randn(32, 64, device='cuda'), group_size=32)
y = torch.ops.squeezeprompt.int4_weight_linear(x, q.qweight, q.scales, q.zeros, 32, None)
print('int4_weight_linear on', y.device, 'ok')
"
step tests python -m pytest tests --ignore=tests/cuda -q -p no:cacheprovider
step tests_cuda env TRITON_INTERPRET=0 python -m pytest tests/cuda -q -p no:cacheprovider -rs
step bench env TRITON_INTERPRET=0 python bench/bench_gpu.py --out "$out"

echo
if ((${#failed[@]})); then
  echo "gpu_check: FAILED steps: ${failed[*]} (logs in $out)"
  exit 1
fi
echo "gpu_check: all steps passed; benchmark in $out/gpu.md"
