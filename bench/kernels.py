"""Builds, for one :class:`~bench.cases.Case`, our kernel and its baselines as callables.

A registry maps each :class:`~bench.cases.Kind` to a builder, so adding a kernel
family is one decorated function. Every contender gets identical inputs; the
``goal`` names the baseline that DESIGN.md's goal for the case is measured against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

import squeezeprompt  # noqa: F401  (registers torch.ops.squeezeprompt)
from bench.cases import Case, Kind
from squeezeprompt.formats import sparse24_int4_pack
from squeezeprompt.quantize.rtn import quantize_int4, quantize_int8

OPS = torch.ops.squeezeprompt


@dataclass
class Contenders:
    """Callables to time. ``weight_bytes``: bytes of weight each call of ``ours`` must read."""

    ours: dict[str, Callable[[], object]]
    baselines: dict[str, Callable[[], object]]
    goal: tuple[str, str]  # (our entry, baseline entry) that the DESIGN goal compares
    weight_bytes: int = 0
    flops: int = 0
    notes: list[str] = field(default_factory=list)


_BUILDERS: dict[Kind, Callable[[Case], Contenders]] = {}


def register(kind: Kind):
    def wrap(fn: Callable[[Case], Contenders]) -> Callable[[Case], Contenders]:
        _BUILDERS[kind] = fn
        return fn

    return wrap


def build(case: Case) -> Contenders:
    """Our kernel and its baselines for ``case``.

    Example:
        >>> from bench.cases import Case, Kind
        >>> c = build(Case(Kind.INT8_WEIGHT_ONLY, m=1, k=128, n=32))
        >>> sorted(c.ours)
        ['ours bf16', 'ours fp32']
    """
    return _BUILDERS[case.kind](case)


def _activations(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(case.m, case.k)
    return x, x.bfloat16()


def _dense_baselines(x: torch.Tensor, xb: torch.Tensor, w: torch.Tensor):
    wb = w.bfloat16()
    return {
        "torch fp32 F.linear": lambda: F.linear(x, w),
        "torch bf16 F.linear": lambda: F.linear(xb, wb),
    }


def _torch_int4(case: Case, scales: torch.Tensor, xb: torch.Tensor) -> Callable[[], object]:
    # torch's CPU int4 kernel: its own packed layout, bf16 scale-and-zero [K/G, N, 2]
    # (w = (q - 8) * scale + zero), codes as int32 [N, K].
    codes = torch.randint(0, 16, (case.n, case.k), dtype=torch.int32)
    packed = torch._convert_weight_to_int4pack_for_cpu(codes, 1)
    sz = torch.stack([scales.T, torch.zeros_like(scales.T)], dim=-1).bfloat16().contiguous()
    g = case.group_size
    return lambda: torch._weight_int4pack_mm_for_cpu(xb, packed, g, sz)


@register(Kind.INT4_WEIGHT_ONLY)
def _int4(case: Case) -> Contenders:
    x, xb = _activations(case)
    w = torch.randn(case.n, case.k)
    q = quantize_int4(w, case.group_size, symmetric=False)
    g = case.group_size
    base = {"torch int4 (bf16)": _torch_int4(case, q.scales, xb)}
    base.update(_dense_baselines(x, xb, w))
    ours = {
        "ours bf16": lambda: OPS.int4_weight_linear(xb, q.qweight, q.scales, q.zeros, g, None),
        "ours fp32": lambda: OPS.int4_weight_linear(x, q.qweight, q.scales, q.zeros, g, None),
    }
    goal_base = "torch int4 (bf16)" if case.m <= 8 else "torch bf16 F.linear"
    scale_bytes = 2 * q.scales.numel() * 4
    return Contenders(
        ours,
        base,
        ("ours bf16", goal_base),
        q.qweight.numel() + scale_bytes,
        2 * case.m * case.k * case.n,
    )


@register(Kind.INT4_DYNAMIC)
def _int4_dynamic(case: Case) -> Contenders:
    # W4A8 against the weight-only int4 kernel on the same packed weight (what it would
    # replace), torch's int4 kernel, W8A8 and dense F.linear.
    x, xb = _activations(case)
    w = torch.randn(case.n, case.k)
    q = quantize_int4(w, case.group_size, symmetric=False)
    q8 = quantize_int8(w)
    g = case.group_size
    args = (q.qweight, q.scales, q.zeros, g, None)
    ours = {
        "ours w4a8 fp32": lambda: OPS.int4_dynamic_linear(x, *args),
        "ours w4a8 bf16": lambda: OPS.int4_dynamic_linear(xb, *args),
    }
    base = {
        "ours int4 weight-only fp32": lambda: OPS.int4_weight_linear(x, *args),
        "ours int4 weight-only bf16": lambda: OPS.int4_weight_linear(xb, *args),
        "ours w8a8 fp32": lambda: OPS.int8_dynamic_linear(x, q8.qweight, q8.scales, None),
        "torch int4 (bf16)": _torch_int4(case, q.scales, xb),
        **_dense_baselines(x, xb, w),
    }
    return Contenders(
        ours,
        base,
        ("ours w4a8 fp32", "ours int4 weight-only fp32"),
        q.qweight.numel() + 2 * 4 * q.scales.numel(),
        2 * case.m * case.k * case.n,
    )


@register(Kind.INT8_WEIGHT_ONLY)
def _int8(case: Case) -> Contenders:
    x, xb = _activations(case)
    w = torch.randn(case.n, case.k)
    q = quantize_int8(w)
    sb = q.scales.bfloat16()
    base = {
        "torch int8 (bf16)": lambda: torch._weight_int8pack_mm(xb, q.qweight, sb),
        "torch int8 (fp32)": lambda: torch._weight_int8pack_mm(x, q.qweight, q.scales),
    }
    base.update(_dense_baselines(x, xb, w))
    ours = {
        "ours bf16": lambda: OPS.int8_weight_linear(xb, q.qweight, q.scales, None),
        "ours fp32": lambda: OPS.int8_weight_linear(x, q.qweight, q.scales, None),
    }
    return Contenders(
        ours,
        base,
        ("ours bf16", "torch int8 (bf16)"),
        q.qweight.numel() + 4 * case.n,
        2 * case.m * case.k * case.n,
    )


@register(Kind.W8A8)
def _w8a8(case: Case) -> Contenders:
    x, xb = _activations(case)
    w = torch.randn(case.n, case.k)
    q = quantize_int8(w)
    fbgemm = torch.ao.nn.quantized.dynamic.Linear(case.k, case.n, dtype=torch.qint8)
    fbgemm.set_weight_bias(
        torch.quantize_per_channel(
            w, q.scales.double(), torch.zeros(case.n, dtype=torch.long), 0, torch.qint8
        ),
        None,
    )
    base = {"fbgemm dynamic Linear": lambda: fbgemm(x)}
    base.update(_dense_baselines(x, xb, w))
    ours = {
        "ours fp32": lambda: OPS.int8_dynamic_linear(x, q.qweight, q.scales, None),
        "ours bf16": lambda: OPS.int8_dynamic_linear(xb, q.qweight, q.scales, None),
    }
    return Contenders(
        ours,
        base,
        ("ours fp32", "fbgemm dynamic Linear"),
        q.qweight.numel() + 4 * case.n,
        2 * case.m * case.k * case.n,
    )


def _prune24(w: torch.Tensor) -> torch.Tensor:
    groups = w.reshape(w.shape[0], -1, 4)
    keep = groups.abs().argsort(-1, descending=True)[..., :2]
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return (groups * mask).reshape(w.shape)


@register(Kind.SPARSE24)
def _sparse24(case: Case) -> Contenders:
    x, xb = _activations(case)
    w = _prune24(torch.randn(case.n, case.k))
    v32, meta = OPS.sparse24_pack(w)
    vb16, _ = OPS.sparse24_pack(w.bfloat16())
    q = quantize_int8(w)
    v8, meta8 = OPS.sparse24_pack(q.qweight.float())
    v8 = v8.to(torch.int8)
    wb = w.bfloat16()
    ours = {
        "ours 2:4 int8": lambda: OPS.sparse24_linear(xb, v8, meta8, q.scales, None),
        "ours 2:4 bf16": lambda: OPS.sparse24_linear(xb, vb16, meta, None, None),
        "ours 2:4 fp32": lambda: OPS.sparse24_linear(x, v32, meta, None, None),
    }
    base = {
        "ours dense int8": lambda: OPS.int8_weight_linear(xb, q.qweight, q.scales, None),
        "torch bf16 F.linear": lambda: F.linear(xb, wb),
        "torch fp32 F.linear": lambda: F.linear(x, w),
    }
    return Contenders(
        ours,
        base,
        ("ours 2:4 int8", "ours dense int8"),
        v8.numel() + meta8.numel() + 4 * case.n,
        case.m * case.k * case.n,
        ["dense fp32/bf16 weights use BLAS (masked_linear is at::linear on the masked weight)"],
    )


@register(Kind.SPARSE24_INT4)
def _sparse24_int4(case: Case) -> Contenders:
    # The same 2:4-pruned weight as dense int4 (what Sparse24Int4Linear replaced) and as
    # packed 2:4 floats, so every contender computes the same function.
    x, xb = _activations(case)
    w = _prune24(torch.randn(case.n, case.k))
    g = case.group_size
    q = quantize_int4(w, g, symmetric=False)
    p = sparse24_int4_pack(q.qweight, q.scales, q.zeros, g, mask=w != 0)
    v32, meta = OPS.sparse24_pack(w)
    vb16, _ = OPS.sparse24_pack(w.bfloat16())
    args = (p.values, p.meta, p.scales, p.zeros, g, None)
    ours = {
        "ours 2:4 int4 fp32": lambda: OPS.sparse24_int4_linear(x, *args),
        "ours 2:4 int4 bf16": lambda: OPS.sparse24_int4_linear(xb, *args),
    }
    base = {
        "ours dense int4 fp32": lambda: OPS.int4_weight_linear(
            x, q.qweight, q.scales, q.zeros, g, None
        ),
        "ours dense int4 bf16": lambda: OPS.int4_weight_linear(
            xb, q.qweight, q.scales, q.zeros, g, None
        ),
        "ours 2:4 bf16": lambda: OPS.sparse24_linear(xb, vb16, meta, None, None),
        "ours 2:4 fp32": lambda: OPS.sparse24_linear(x, v32, meta, None, None),
        "torch bf16 F.linear": lambda: F.linear(xb, w.bfloat16()),
    }
    grid = 2 * 4 * q.scales.numel()
    dense_bytes = q.qweight.numel() + grid
    sparse_bytes = p.values.numel() + p.meta.numel() + grid
    return Contenders(
        ours,
        base,
        ("ours 2:4 int4 fp32", "ours dense int4 fp32"),
        sparse_bytes,
        case.m * case.k * case.n,
        [f"weight bytes: 2:4 int4 {sparse_bytes}, dense int4 {dense_bytes}"],
    )


@register(Kind.FAKE_QUANT)
def _fake_quant(case: Case) -> Contenders:
    # Weight fake quantization during QAT: x is an [m, k] weight, 4-bit, forward + backward.
    x = torch.randn(case.m, case.k)
    g = case.group_size
    rows_groups = (case.m, case.k // g)
    scale = torch.full(rows_groups, 0.1)
    zero = torch.full(rows_groups, 8.0)
    grad = torch.randn_like(x)
    xr = x.clone().requires_grad_(True)

    def ours() -> None:
        s, z = scale.clone().requires_grad_(True), zero.clone().requires_grad_(True)
        OPS.fake_quantize(xr, s, z, 0, 15, g).backward(grad)

    ours_map = {"ours fp32 fwd+bwd": ours}
    base: dict[str, Callable[[], object]] = {}
    if g == case.k:
        ch_scale, ch_zero = scale[:, 0].clone(), zero[:, 0].int()

        def torch_fq() -> None:
            torch.fake_quantize_per_channel_affine(xr, ch_scale, ch_zero, 0, 0, 15).backward(grad)

        def torch_lsq() -> None:
            s = ch_scale.clone().requires_grad_(True)
            z = zero[:, 0].clone().requires_grad_(True)
            torch._fake_quantize_learnable_per_channel_affine(xr, s, z, 0, 0, 15, 1.0).backward(
                grad
            )

        base = {
            "torch fake_quantize_per_channel_affine": torch_fq,
            "torch learnable per-channel (LSQ)": torch_lsq,
        }
        goal = ("ours fp32 fwd+bwd", "torch fake_quantize_per_channel_affine")
    else:
        goal = ("ours fp32 fwd+bwd", "")  # group-wise: torch has no counterpart
    return Contenders(ours_map, base, goal, 3 * 4 * x.numel(), 0)
