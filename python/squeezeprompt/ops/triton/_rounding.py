"""Rounding shared by the Triton kernels, bit-exact with ``torch.round``.

Triton has no portable round-half-to-even (``libdevice.rint`` is CUDA-only and the
interpreter lacks some libdevice calls), so it is built from ``floor``.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def round_half_even(v):
    """Rounds float32 ``v`` to the nearest integer, ties to even, like ``torch.round``.

    ``v - floor(v)`` is exact for every float32 (Sterbenz, or an exact 0 when
    ``|v| >= 2**23``), so the tie test ``frac == 0.5`` is exact too; ``floor(v + 0.5)``
    would not be (0.49999997 + 0.5 rounds up to 1.0).
    """
    r = tl.floor(v)
    frac = v - r
    odd = (r - 2.0 * tl.floor(r * 0.5)) != 0.0
    up = (frac > 0.5) | ((frac == 0.5) & odd)
    return tl.where(up, r + 1.0, r)


@triton.jit
def grid_zero(zero_point, qmin, qmax):
    """The integer zero point the references use: ``clamp(round(zero_point), qmin, qmax)``."""
    return tl.minimum(tl.maximum(round_half_even(zero_point), qmin), qmax)
