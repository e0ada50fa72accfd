"""Peak memory of compressing a model stays below a bound computed from its shape.

Each measurement runs ``peak_memory_child.py`` in a fresh process (GPTQ int4 on every
Linear through ``calibrate_layerwise``) and reads the resident set's high-water mark
above the loaded, warmed-up model. The bound (``memory_bound``) is one block's
calibration inputs and outputs for every sample, times an allocator factor, plus one
call's transients, one block's Hessians, the int4 layers and a fixed margin.

It is not trivially met: the naive alternative that keeps every Linear's inputs from
one whole-model pass exceeds it, and four times the samples raise the measured peak by
at least the extra hidden states themselves (the measurement sees activations).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("peak_memory_child.py")
MB = 1 << 20
SEQ_LEN = 128
SAMPLES = 64  # and 4x that; tiny model: hidden 128, 4 blocks (activations dominate)


# glibc raises its mmap threshold to the size of each large block freed, after which
# GPTQ's freed [K, K] buffers return to the heap, long-lived activations land in
# them and the next buffer extends the heap: the resident peak then depends on the
# order of allocations (measured 199 to 268 MB for the same SmolLM2-shaped 4- and
# 8-block runs, 186 MB with the threshold fixed). A fixed 1 MiB threshold measures
# what the code holds, not that policy.
CHILD_ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}


def _start(*args: str) -> subprocess.Popen:
    cmd = [sys.executable, str(CHILD), *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CHILD_ENV
    )


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"peak_memory_child failed:\n{err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


def _describe(r: dict) -> str:
    b = r["bound"]
    return (
        f"{r['model']} {r['mode']} {r['samples']}x{r['seq_len']}: added "
        f"{r['added_bytes'] / MB:.1f} MB, bound {b['total'] / MB:.1f} MB "
        f"(block inputs {b['block_inputs'] / MB:.1f}, transient {b['transient'] / MB:.1f}, "
        f"stats {b['stats'] / MB:.1f}, int4 {b['quantized'] / MB:.1f}, "
        f"margin {b['margin'] / MB:.0f})"
    )


@pytest.fixture(scope="module")
def tiny_runs() -> dict[str, dict]:
    # The three children run side by side: each is one thread, mostly import time.
    procs = {
        "base": _start("--samples", str(SAMPLES), "--seq-len", str(SEQ_LEN)),
        "x4": _start("--samples", str(4 * SAMPLES), "--seq-len", str(SEQ_LEN)),
        "naive": _start(
            "--samples", str(SAMPLES), "--seq-len", str(SEQ_LEN), "--mode", "all_at_once"
        ),
    }
    return {name: _result(p) for name, p in procs.items()}


@pytest.mark.slow(bounded=True)
def test_layerwise_compression_peak_is_within_bound(tiny_runs) -> None:
    for name in ("base", "x4"):
        r = tiny_runs[name]
        print(_describe(r))
        assert r["added_bytes"] <= r["bound"]["total"], _describe(r)


@pytest.mark.slow(bounded=True)
def test_peak_grows_with_calibration_activations(tiny_runs) -> None:
    base, x4 = tiny_runs["base"], tiny_runs["x4"]
    grown = x4["added_bytes"] - base["added_bytes"]
    # Any layer-by-layer scheme holds each sample's hidden states for a whole block.
    must_grow = x4["bound"]["activations"] - base["bound"]["activations"]
    predicted = x4["bound"]["total"] - base["bound"]["total"]
    print(
        f"4x samples: +{grown / MB:.1f} MB (hidden states +{must_grow / MB:.1f} MB, "
        f"bound +{predicted / MB:.1f} MB)"
    )
    assert grown >= must_grow, (
        f"peak grew {grown / MB:.1f} MB < {must_grow / MB:.1f} MB of new hidden states"
    )


@pytest.mark.slow(bounded=True)
def test_keeping_every_layers_inputs_breaks_the_bound(tiny_runs) -> None:
    r = tiny_runs["naive"]
    print(_describe(r))
    assert r["added_bytes"] > r["bound"]["total"], (
        "the bound should separate layer-by-layer calibration from keeping all inputs: "
        + _describe(r)
    )


@pytest.mark.slow
def test_smollm2_layerwise_gptq_peak_is_within_bound() -> None:
    r = _result(_start("--model", "smollm2", "--samples", "32", "--seq-len", "256"))
    print(_describe(r))
    assert r["added_bytes"] <= r["bound"]["total"], _describe(r)
