#!/usr/bin/env bash
# Compiles every csrc/cuda/*.cu for sm_80 and sm_90 with nvcc (-c, no torch, no GPU),
# failing on any error or warning, then syntax-checks csrc/cuda/register.cpp against
# the installed torch's headers (skipped when torch is not importable). CI runs it on
# machines without a GPU; it proves the kernels build, not that they are right
# (tests/cuda does that on a GPU).
#
# Usage: scripts/check_cuda_compile.sh            (NVCC=/path/to/nvcc to pick one)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
nvcc="${NVCC:-nvcc}"
if ! command -v "$nvcc" >/dev/null 2>&1; then
  echo "check_cuda_compile: nvcc not found (set NVCC=/path/to/nvcc)" >&2
  exit 2
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

jobs="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
sources=("$root"/csrc/cuda/*.cu)
echo "check_cuda_compile: $("$nvcc" --version | tail -n 1)"
echo "check_cuda_compile: ${#sources[@]} files x sm_80, sm_90 with $jobs jobs"

start=$SECONDS
# One nvcc per file, both architectures in one call, with the half/bf16 defines that
# torch's CUDA builds add (no implicit conversions); xargs -P runs files in
# parallel, lets every file finish, and exits non-zero if any failed.
printf '%s\n' "${sources[@]}" | xargs -P "$jobs" -I{} sh -c '
  src="$1"; obj="$2/$(basename "$src").o"
  if "$3" -std=c++17 -O3 -c "$src" -o "$obj" -I"$4/csrc" \
      -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
      -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ \
      -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__ \
      -Werror all-warnings 2>"$obj.log"; then
    echo "  ok    $(basename "$src")"
  else
    echo "  FAIL  $(basename "$src")"; cat "$obj.log"; exit 1
  fi' _ {} "$out" "$nvcc" "$root"
echo "check_cuda_compile: all ${#sources[@]} files compiled in $((SECONDS - start)) s"

# register.cpp needs torch's CUDA headers. A CPU-only torch wheel ships them but not
# the generated c10/cuda/impl/cuda_cmake_macros.h, which then gets an empty stand-in.
if torch_includes="$(python -c "import torch.utils.cpp_extension as c; print(' '.join(c.include_paths()))" 2>/dev/null)"; then
  cuda_include="$(dirname "$(command -v "$nvcc")")/../include"
  [[ -f "$cuda_include/cuda_runtime_api.h" ]] || cuda_include="${CUDA_HOME:-/usr/local/cuda}/include"
  mkdir -p "$out/stub/c10/cuda/impl"
  includes=()
  for dir in $torch_includes; do includes+=("-isystem" "$dir"); done
  if [[ ! -f "${torch_includes%% *}/c10/cuda/impl/cuda_cmake_macros.h" ]]; then
    : >"$out/stub/c10/cuda/impl/cuda_cmake_macros.h"
    includes+=("-isystem" "$out/stub")
  fi
  py_include="$(python -c "import sysconfig; print(sysconfig.get_paths()['include'])")"
  "${CXX:-c++}" -std=c++17 -fsyntax-only -Wall -Wextra -Werror "${includes[@]}" \
    -isystem "$cuda_include" -isystem "$py_include" -I"$root/csrc" \
    -DSQUEEZEPROMPT_WITH_CUDA=1 "$root/csrc/cuda/register.cpp"
  echo "  ok    register.cpp (syntax check against torch $(python -c 'import torch; print(torch.__version__)'))"
else
  echo "  skip  register.cpp: torch is not importable"
fi
echo "check_cuda_compile: done in $((SECONDS - start)) s"
