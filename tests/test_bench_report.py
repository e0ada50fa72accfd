"""The benchmark report's header says how the decode kernels read codes in that run."""

from __future__ import annotations

import pytest

pytest.importorskip("bench")  # the repository's benchmark package, not installed
from bench.report import _decode  # noqa: E402


def test_header_names_the_effective_code_reading():
    machine = {"code_decode": "auto", "codes_as_subnormals": True}
    assert _decode({"machine": machine}) == "codes as subnormals (SQUEEZEPROMPT_CODE_DECODE=auto)"
    machine = {"code_decode": "subnormal", "codes_as_subnormals": False}  # e.g. under DAZ
    assert _decode({"machine": machine}) == "codes converted (SQUEEZEPROMPT_CODE_DECODE=subnormal)"
