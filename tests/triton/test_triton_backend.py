"""Choosing the GPU backend, and importing squeezeprompt without triton."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("triton")

from squeezeprompt.ops.triton.backend import (  # noqa: E402
    ENV_VAR,
    TRITON_KERNELS,
    GpuBackend,
    selected_backend,
)


@pytest.mark.parametrize(
    "value,want", [("", GpuBackend.CUDA), ("cuda", GpuBackend.CUDA), ("triton", GpuBackend.TRITON)]
)
def test_selected_backend_reads_the_environment(monkeypatch, value, want):
    monkeypatch.setenv(ENV_VAR, value)
    assert selected_backend() is want


def test_unknown_backend_is_an_error(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "cutlass")
    with pytest.raises(ValueError, match="must be one of cuda, triton, got 'cutlass'"):
        selected_backend()


def test_triton_kernels_shadow_existing_ops():
    import torch

    from squeezeprompt.ops import OP_NAMES

    assert set(TRITON_KERNELS) <= set(OP_NAMES)
    for name in TRITON_KERNELS:
        ours = getattr(torch.ops.squeezeprompt, f"{name}_triton").default._schema
        main = getattr(torch.ops.squeezeprompt, name).default._schema
        assert [a.type for a in ours.arguments] == [a.type for a in main.arguments]
        assert [r.type for r in ours.returns] == [r.type for r in main.returns]


def test_import_works_without_triton():
    # sys.modules[name] = None makes `import triton` raise ImportError.
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import squeezeprompt, squeezeprompt.ops.triton as t\n"
        "assert t.AVAILABLE is False and t.BACKEND is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"PATH": ""}, timeout=120)
