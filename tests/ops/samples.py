"""Sample inputs and error bounds shared by the op tests.

Every op test walks the same activation cases (``X_CASES``): 1-D, 2-D and 3-D ``x``,
contiguous and not (transposed and strided views), M = 0, 1, a prime (7) and M > 16,
where the CPU kernels leave their streaming path for a dequantize + GEMM path.
The weight makers build operands with K and N that are not multiples of 64.

Bounds, not tolerances chosen to pass: a float32 dot product of length K computed in
any order differs from the exact one by at most ``K * u * sum|x||w|`` (u = eps / 2),
so two implementations differ by at most ``K * eps * sum|x||w|``; a final cast to a
16-bit dtype adds at most one unit in the last place of the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor
from torch._subclasses.fake_tensor import FakeTensorMode

from squeezeprompt.formats import pack_int4
from squeezeprompt.ops import sparse24_pack

DTYPES = (torch.float32, torch.bfloat16, torch.float16)
DTYPE_IDS = ("fp32", "bf16", "fp16")

# Shapes the foundation promises: K and N off the multiples of 64.
INT8_K, INT8_N = 100, 40
INT4_K, INT4_N = 72, 40
SPARSE_KS = (72, 100)  # 100 = 8 * 12 + 4: an odd number of 2:4 groups, half a meta byte


@dataclass(frozen=True)
class XCase:
    """How to build an activation: its leading shape and the view that makes it."""

    name: str
    lead: tuple[int, ...]
    layout: str  # "contiguous", "transposed" (2-D x = y.t()), "strided" (every other column)

    @property
    def rows(self) -> int:
        m = 1
        for d in self.lead:
            m *= d
        return m


X_CASES = (
    XCase("vector", (), "contiguous"),
    XCase("m0", (0,), "contiguous"),
    XCase("m1", (1,), "contiguous"),
    XCase("m7", (7,), "contiguous"),
    XCase("m33", (33,), "contiguous"),
    XCase("3d_m7", (1, 7), "contiguous"),
    XCase("3d_m33", (3, 11), "contiguous"),
    XCase("transposed_m7", (7,), "transposed"),
    XCase("transposed_m20", (20,), "transposed"),
    XCase("strided_m5", (5,), "strided"),
    XCase("strided_3d_m24", (2, 12), "strided"),
)
X_CASE_IDS = tuple(c.name for c in X_CASES)


def make_x(case: XCase, k: int, dtype: torch.dtype, scale: float = 1.0) -> Tensor:
    """An activation ``[*case.lead, k]`` laid out as the case says.

    Example:
        >>> make_x(X_CASES[7], 16, torch.float32).is_contiguous()
        False
    """
    # The view is taken last: arithmetic on a strided view would return a contiguous copy.
    if case.layout == "contiguous":
        x = (torch.randn(*case.lead, k) * scale).to(dtype)
    elif case.layout == "transposed":
        (m,) = case.lead
        x = (torch.randn(k, m) * scale).to(dtype).t()
    elif case.layout == "strided":
        x = (torch.randn(*case.lead, 2 * k) * scale).to(dtype)[..., ::2]
    else:
        raise ValueError(f"make_x: unknown layout {case.layout!r}")
    if case.layout != "contiguous" and x.numel() > 1:
        assert not x.is_contiguous(), f"case {case.name} should give a non-contiguous x"
    return x


def linear_bound(x: Tensor, w: Tensor, bias: Tensor | None, out: Tensor, eps: float) -> Tensor:
    """Per-element bound on the difference of two evaluations of ``x @ w.T + bias``.

    ``(K + 2) * eps * (|x| @ |w|.T + |bias|)`` covers any summation order of K products
    and the bias add when both sides accumulate with unit roundoff ``eps / 2``; one unit
    in the last place of ``out`` (plus the dtype's smallest normal, for subnormals)
    covers a final cast to ``out.dtype`` when it is narrower than float32.

    Example:
        >>> x, w = torch.ones(1, 4), torch.ones(3, 4)
        >>> linear_bound(x, w, None, torch.zeros(1, 3), eps=2.0**-23).shape
        torch.Size([1, 3])
    """
    k = x.shape[-1]
    mag = x.double().abs() @ w.double().abs().T
    if bias is not None:
        mag = mag + bias.double().abs()
    bound = (k + 2) * eps * mag
    if out.dtype != torch.float32:
        info = torch.finfo(out.dtype)
        bound = bound + info.eps * out.double().abs() + info.smallest_normal
    return bound


def assert_within(actual: Tensor, expected: Tensor, bound: Tensor, what: str) -> None:
    """Asserts ``|actual - expected| <= bound`` element-wise, naming the worst element.

    Example:
        >>> assert_within(torch.ones(2), torch.ones(2), torch.zeros(2), "ones")
    """
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if actual.numel() == 0:
        return
    err = (actual.double() - expected.double()).abs()
    excess = err - bound.double().expand_as(err)
    worst = int(excess.argmax())
    assert bool((excess <= 0).all()), (
        f"{what}: |diff| = {err.flatten()[worst].item():.3e} exceeds the bound "
        f"{bound.double().expand_as(err).flatten()[worst].item():.3e} at flat index {worst} "
        f"({int((excess > 0).sum())} of {err.numel()} elements out of bound)"
    )


def int8_weight(n: int = INT8_N, k: int = INT8_K) -> tuple[Tensor, Tensor]:
    """A random int8 weight over the full code range and positive per-channel scales.

    Example:
        >>> q, s = int8_weight(4, 8)
        >>> q.dtype, s.shape
        (torch.int8, torch.Size([4]))
    """
    q = torch.randint(-128, 128, (n, k), dtype=torch.int8)
    scales = torch.rand(n) * 0.02 + 0.001
    return q, scales


@dataclass(frozen=True)
class Int4Sample:
    qweight: Tensor
    scales: Tensor
    zeros: Tensor
    group_size: int


def int4_weight(n: int = INT4_N, k: int = INT4_K, group_size: int = 24) -> Int4Sample:
    """Random packed int4 codes with positive scales and non-integer zero points.

    Non-integer zeros are legal (``w = (q - zero) * scale``) and catch a kernel that
    rounds the zero point the reference does not round.

    Example:
        >>> int4_weight(4, 16, 8).scales.shape
        torch.Size([4, 2])
    """
    codes = torch.randint(0, 16, (n, k), dtype=torch.uint8)
    g = k // group_size
    return Int4Sample(
        qweight=pack_int4(codes),
        scales=torch.rand(n, g) * 0.05 + 0.005,
        zeros=torch.rand(n, g) * 15.0,
        group_size=group_size,
    )


def sparse24_dense(n: int, k: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """A random 2:4-sparse ``[n, k]`` weight whose groups hold 0, 1 or 2 nonzeros.

    Example:
        >>> w = sparse24_dense(3, 8)
        >>> bool(((w.reshape(3, 2, 4) != 0).sum(-1) <= 2).all())
        True
    """
    groups = k // 4
    # A random score per column; keep the two best, then drop some kept ones so that
    # groups with 0 and 1 nonzeros occur too.
    keep_rank = torch.rand(n, groups, 4).argsort(-1).argsort(-1) < 2
    keep = keep_rank & (torch.rand(n, groups, 4) > 0.2)
    w = torch.randn(n, groups, 4) * keep
    return w.reshape(n, k).to(dtype)


def sparse24_int8(n: int, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Packed 2:4 int8 ``(values, meta, scales)`` from a 2:4 integer-valued weight.

    Example:
        >>> v, m, s = sparse24_int8(4, 8)
        >>> v.dtype, m.shape, s.shape
        (torch.int8, torch.Size([4, 1]), torch.Size([4]))
    """
    pattern = sparse24_dense(n, k) != 0
    ints = torch.randint(-127, 128, (n, k)).float() * pattern
    values, meta = sparse24_pack(ints)
    scales = torch.rand(n) * 0.02 + 0.001
    return values.to(torch.int8), meta, scales


def maybe_bias(with_bias: bool, n: int, dtype: torch.dtype) -> Tensor | None:
    """A random bias ``[n]`` in ``dtype``, or None.

    Example:
        >>> maybe_bias(False, 4, torch.float32) is None
        True
    """
    return torch.randn(n).to(dtype) if with_bias else None


def grad_of(fn: Callable[..., Tensor], inputs: list[Tensor], grad_out: Tensor) -> list[Tensor]:
    """Gradients of ``fn(*inputs)`` for a given output gradient, for inputs that need them.

    Example:
        >>> x = torch.ones(2, requires_grad=True)
        >>> grad_of(lambda t: t * 3, [x], torch.ones(2))[0].tolist()
        [3.0, 3.0]
    """
    out = fn(*inputs)
    need = [t for t in inputs if t.requires_grad]
    return list(torch.autograd.grad(out, need, grad_out))


def leaf(t: Tensor | None) -> Tensor | None:
    """A new leaf sharing ``t``'s storage and strides that requires grad (None stays None).

    ``detach`` keeps a non-contiguous view non-contiguous, where ``clone`` may not.

    Example:
        >>> leaf(torch.ones(2)).requires_grad
        True
    """
    return None if t is None else t.detach().requires_grad_(True)


F32_EPS = torch.finfo(torch.float32).eps


def assert_rejects(
    op: Callable[..., object], args: tuple, op_name: str, arg_name: str, fake: bool = False
) -> None:
    """Asserts ``op(*args)`` raises a RuntimeError/ValueError naming ``op_name`` and ``arg_name``.

    With ``fake=True`` the tensors become fake tensors (same shapes, dtypes and devices,
    no data), so the op runs its fake kernel: the check ``torch.compile`` relies on.

    Example:
        >>> assert_rejects(torch.ops.squeezeprompt.sparse24_pack, (torch.ones(2, 6),),
        ...                "sparse24_pack", "in_features")
    """
    with pytest.raises((RuntimeError, ValueError)) as info:
        if fake:
            with FakeTensorMode() as mode:
                fake_args = tuple(mode.from_tensor(a) if isinstance(a, Tensor) else a for a in args)
                op(*fake_args)
        else:
            op(*args)
    message = str(info.value)
    assert op_name in message, f"the error should name the op {op_name!r}: {message!r}"
    assert arg_name in message, f"the error should name the argument {arg_name!r}: {message!r}"


def assert_fake_matches_real(op: Callable[..., object], args: tuple) -> None:
    """opcheck's schema and fake-tensor tests only: the fake kernel's output metadata
    (shape, dtype, strides) must equal the real kernel's, or torch.compile's generated
    code rejects the real output (it asserts sizes and strides of extern kernels).

    Example:
        >>> assert_fake_matches_real(torch.ops.squeezeprompt.sparse24_pack, (torch.zeros(2, 8),))
    """
    torch.library.opcheck(op, args, test_utils=("test_schema", "test_faketensor"))


@dataclass(frozen=True)
class Sparse24Int4Sample:
    values: Tensor
    meta: Tensor
    scales: Tensor
    zeros: Tensor
    group_size: int


def sparse24_int4_weight(
    n: int, k: int, group_size: int, integer_zeros: bool = False, gen: torch.Generator | None = None
) -> Sparse24Int4Sample:
    """Random packed 2:4 + int4 operands: any two kept columns per group, any codes.

    Non-integer zeros (the default) are legal for the op and catch a kernel that rounds
    them; ``integer_zeros`` gives what RTN gives, where code == zero is an exact 0.

    Example:
        >>> p = sparse24_int4_weight(4, 32, 16)
        >>> p.values.shape, p.meta.shape, p.scales.shape
        (torch.Size([4, 8]), torch.Size([4, 4]), torch.Size([4, 2]))
    """
    groups = k // 4
    idx = torch.rand(n, groups, 4, generator=gen).argsort(-1)[..., :2].sort(-1).values
    nibble = (idx[..., 0] | (idx[..., 1] << 2)).to(torch.uint8)
    if groups % 2:
        nibble = torch.nn.functional.pad(nibble, (0, 1))
    meta = nibble[:, 0::2] | (nibble[:, 1::2] << 4)
    values = torch.randint(0, 256, (n, groups), dtype=torch.uint8, generator=gen)
    g = k // group_size
    scales = torch.rand(n, g, generator=gen) * 0.05 + 0.005
    zeros = torch.rand(n, g, generator=gen) * 15.0
    if integer_zeros:
        zeros = zeros.round()
    return Sparse24Int4Sample(values, meta, scales, zeros, group_size)


def int4_args(**override: object) -> tuple:
    """Valid ``(x, qweight, scales, zeros, group_size, bias)`` for the int4 linears
    (K = INT4_K, group 24), with ``override`` replacing some of them."""
    w = int4_weight(group_size=24)
    args = {
        "x": torch.randn(3, INT4_K),
        "qweight": w.qweight,
        "scales": w.scales,
        "zeros": w.zeros,
        "group_size": 24,
        "bias": torch.randn(INT4_N),
    }
    args.update(override)
    return tuple(args.values())


# Bad shapes, dtypes and devices of the int4 linears' arguments: name -> (override of
# int4_args, the argument the error must name).
INT4_SHAPE_ERRORS = {
    "x_int": (dict(x=torch.ones(3, INT4_K, dtype=torch.int64)), "x"),
    "x_float64": (dict(x=torch.randn(3, INT4_K, dtype=torch.float64)), "x"),
    "x_scalar": (dict(x=torch.tensor(1.0)), "x"),
    "x_last_dim": (dict(x=torch.randn(3, INT4_K - 2)), "x.shape[-1]"),
    "qweight_float": (dict(qweight=torch.randn(INT4_N, INT4_K // 2)), "qweight"),
    "qweight_int8": (dict(qweight=torch.ones(INT4_N, INT4_K // 2, dtype=torch.int8)), "qweight"),
    "qweight_1d": (dict(qweight=torch.ones(INT4_K // 2, dtype=torch.uint8)), "qweight"),
    "scales_shape": (dict(scales=torch.ones(INT4_N, 4)), "scales"),
    "scales_n_plus_1": (dict(scales=torch.ones(INT4_N + 1, 3)), "scales"),
    "scales_int": (dict(scales=torch.ones(INT4_N, 3, dtype=torch.int32)), "scales"),
    "zeros_shape": (dict(zeros=torch.ones(INT4_N, 2)), "zeros"),
    "zeros_int": (dict(zeros=torch.ones(INT4_N, 3, dtype=torch.int32)), "zeros"),
    "group_not_dividing": (dict(group_size=16), "group_size"),
    "group_zero": (dict(group_size=0), "group_size"),
    "group_negative": (dict(group_size=-24), "group_size"),
    "bias_shape": (dict(bias=torch.ones(INT4_N - 1)), "bias"),
    "bias_int": (dict(bias=torch.ones(INT4_N, dtype=torch.int64)), "bias"),
    "zeros_device": (dict(zeros=torch.ones(INT4_N, 3, device="meta")), "zeros"),
    "scales_device": (dict(scales=torch.ones(INT4_N, 3, device="meta")), "scales"),
    "bias_device": (dict(bias=torch.ones(INT4_N, device="meta")), "bias"),
}
