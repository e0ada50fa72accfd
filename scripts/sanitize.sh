#!/usr/bin/env bash
# Builds the CPU extension with AddressSanitizer + UndefinedBehaviorSanitizer and
# runs the op tests against it. Python itself is not instrumented, so the ASan
# runtime is preloaded; leak checking is off (CPython and torch keep allocations
# alive at exit by design). Any ASan or UBSan report fails the run.
#
# Usage: scripts/sanitize.sh [pytest args...]     (default: tests/ops)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
build="$root/build/sanitize"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSQUEEZEPROMPT_SANITIZE=ON -DSQUEEZEPROMPT_CUDA=OFF -DPython_EXECUTABLE="$py" >/dev/null
cmake --build "$build" --target _C

# A copy of the package whose _C is the sanitized build; the editable install's
# import hook is bypassed with -S (site-packages is added back without its .pth files).
cp -r "$root/python/squeezeprompt" "$stage/"
find "$stage" -name '_C*.so' -delete
cp "$build"/_C*.so "$stage/squeezeprompt/"
site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

cd "$root"
export LD_PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libubsan.so)"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
PYTHONPATH="$stage:$site" "$py" -S -c 'import squeezeprompt, sys; print("sanitized build:", squeezeprompt._C.__file__)'
PYTHONPATH="$stage:$site" "$py" -S -m pytest -q -p no:cacheprovider "${@:-tests/ops}"
