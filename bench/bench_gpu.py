"""GPU kernels against cuBLAS: our CUDA and Triton weight-only kernels vs bf16/fp16 F.linear.

    python bench/bench_gpu.py                      # all cases, writes bench/results/gpu.*
    python bench/bench_gpu.py --out DIR --m 1 16   # a subset, elsewhere
    python bench/bench_gpu.py --smoke              # tiny shapes on CPU: checks the harness

Timing: CUDA events around ``iters`` back-to-back calls after a warm-up, synchronised,
median over repeats. Each contender cycles through enough copies of its weight to
exceed twice the L2 cache, so at small M the weight really comes from HBM (an 8 MB
int4 4096x4096 weight would otherwise sit in an H100's 50 MB L2). Every kernel's
output is checked against the bf16 cuBLAS result (SQNR) before it is timed.
Ratios are within one run; DESIGN.md's GPU goal: int4 weight-only >= 3x cuBLAS bf16
at M <= 16.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

RESULTS = Path(__file__).resolve().parent / "results"
M_VALUES = (1, 8, 16, 64, 128, 512)
# (k, n, model): a 4096 square layer, and SmolLM2-135M's attention, MLP-up and MLP-down.
SHAPES = ((4096, 4096, "4096-square"), (576, 576, "SmolLM2-135M"), (576, 1536, "SmolLM2-135M"),
          (1536, 576, "SmolLM2-135M"))  # fmt: skip
GOAL_INT4_SMALL_M = 3.0


@dataclass(frozen=True)
class GpuCase:
    """``m`` activation rows against an ``[n, k]`` weight.

    Example:
        >>> GpuCase(m=1, k=576, n=1536, model="SmolLM2-135M").group_size
        64
    """

    m: int
    k: int
    n: int
    model: str

    def __post_init__(self) -> None:
        if min(self.m, self.k, self.n) <= 0:
            raise ValueError(f"GpuCase sizes must be positive, got {self}")

    @property
    def group_size(self) -> int:
        """128 where it divides K (4096), else 64 (SmolLM2's 576 = 9 * 64)."""
        return 128 if self.k % 128 == 0 else 64


def sqnr_db(actual: torch.Tensor, reference: torch.Tensor) -> float:
    ref = reference.double()
    noise = (actual.double() - ref).pow(2).sum()
    return float("inf") if noise == 0 else float(10 * torch.log10(ref.pow(2).sum() / noise))


def time_calls(calls: list[Callable[[], object]], iters: int, repeats: int, device: str) -> float:
    """Median seconds per call; each timed block runs ``iters`` calls cycling over ``calls``."""
    for c in calls:
        c()
    samples = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for i in range(iters):
                calls[i % len(calls)]()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end) / 1e3 / iters)
        else:
            t0 = time.perf_counter()
            for i in range(iters):
                calls[i % len(calls)]()
            samples.append((time.perf_counter() - t0) / iters)
    return statistics.median(samples)


def weight_copies(bytes_per_copy: int, device: str) -> int:
    if device != "cuda":
        return 1
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    return max(1, min(64, math.ceil(2 * l2 / max(bytes_per_copy, 1))))


def contenders(case: GpuCase, device: str, use_triton: bool) -> dict[str, tuple[list, int]]:
    """name -> (one zero-argument call per weight copy, weight bytes read per call)."""
    from squeezeprompt.quantize import quantize_int4, quantize_int8

    ops = torch.ops.squeezeprompt
    w = torch.randn(case.n, case.k, device=device) / math.sqrt(case.k)
    g = case.group_size
    x16 = {
        dt: torch.randn(case.m, case.k, device=device).to(dt)
        for dt in (torch.bfloat16, torch.float16)
    }
    q4, q8 = quantize_int4(w, group_size=g), quantize_int8(w)
    b4 = q4.qweight.numel() + 2 * 4 * q4.scales.numel()
    b8 = q8.qweight.numel() + 4 * q8.scales.numel()
    out: dict[str, tuple[list, int]] = {}

    def add(name: str, nbytes: int, make: Callable[[], Callable[[], object]]) -> None:
        out[name] = ([make() for _ in range(weight_copies(nbytes, device))], nbytes)

    for dt, tag in ((torch.bfloat16, "bf16"), (torch.float16, "fp16")):
        x = x16[dt]

        def dense(x=x, dt=dt):
            wc = w.to(dt).clone()
            return lambda: F.linear(x, wc)

        def int4(x=x, op=ops.int4_weight_linear):
            q = q4.qweight.clone()
            return lambda: op(x, q, q4.scales, q4.zeros, g, None)

        def int8(x=x, op=ops.int8_weight_linear):
            q = q8.qweight.clone()
            return lambda: op(x, q, q8.scales, None)

        add(f"cublas_{tag}", w.numel() * 2, dense)
        add(f"int4_g{g}_cuda_{tag}", b4, int4)
        add(f"int8_cuda_{tag}", b8, int8)
        if use_triton:
            add(f"int4_g{g}_triton_{tag}", b4, lambda x=x: int4(x, ops.int4_weight_linear_triton))
            add(f"int8_triton_{tag}", b8, lambda x=x: int8(x, ops.int8_weight_linear_triton))

    def w8a8():
        q = q8.qweight.clone()
        return lambda: ops.int8_dynamic_linear(x16[torch.bfloat16], q, q8.scales, None)

    add("w8a8_cuda_bf16", b8, w8a8)
    return out


def run_case(case: GpuCase, device: str, use_triton: bool, iters: int, repeats: int) -> list[dict]:
    torch.manual_seed(0)
    cands = contenders(case, device, use_triton)
    ref = {tag: cands[f"cublas_{tag}"][0][0]().float() for tag in ("bf16", "fp16")}
    rows = []
    for name, (calls, nbytes) in cands.items():
        sqnr = sqnr_db(calls[0]().float(), ref[name.rsplit("_", 1)[1]])
        seconds = time_calls(calls, iters, repeats, device)
        flops = 2 * case.m * case.k * case.n
        rows.append({**asdict(case), "group_size": case.group_size, "kernel": name,
                     "time_us": seconds * 1e6, "weight_gbs": nbytes / seconds / 1e9,
                     "tflops": flops / seconds / 1e12, "sqnr_vs_cublas_db": sqnr,
                     "weight_copies": len(calls)})  # fmt: skip
    for row in rows:
        base = next(r for r in rows if r["kernel"] == "cublas_" + row["kernel"].rsplit("_", 1)[1])
        row["speedup_vs_cublas"] = base["time_us"] / row["time_us"]
    return rows


def write_markdown(rows: list[dict], meta: dict, path: Path) -> None:
    lines = [f"# GPU kernels vs cuBLAS ({meta['device']})", "",
             f"torch {meta['torch']}, CUDA {meta['cuda']}, triton {meta['triton']}. "
             "Speed-up is against cuBLAS `F.linear` in the same activation dtype; "
             f"goal for int4 at M <= 16: >= {GOAL_INT4_SMALL_M}x.", "",
             "| shape (K x N) | model | M | kernel | us | weight GB/s | TFLOP/s | speed-up "
             "| SQNR dB |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['k']}x{r['n']} | {r['model']} | {r['m']} | {r['kernel']} | {r['time_us']:.1f} "
            f"| {r['weight_gbs']:.0f} | {r['tflops']:.2f} | {r['speedup_vs_cublas']:.2f}x "
            f"| {r['sqnr_vs_cublas_db']:.1f} |"
        )
    path.write_text("\n".join(lines) + "\n")


def write_plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = sorted({(r["k"], r["n"]) for r in rows})
    fig, axes = plt.subplots(1, len(shapes), figsize=(4.5 * len(shapes), 4), squeeze=False)
    for ax, (k, n) in zip(axes[0], shapes, strict=True):
        sub = [r for r in rows if (r["k"], r["n"]) == (k, n) and r["kernel"].endswith("bf16")]
        for kernel in sorted({r["kernel"] for r in sub}):
            pts = sorted((r["m"], r["speedup_vs_cublas"]) for r in sub if r["kernel"] == kernel)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=kernel)
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set(xscale="log", xlabel="M", ylabel="speed-up vs cuBLAS bf16", title=f"K={k}, N={n}")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--m", type=int, nargs="+", default=list(M_VALUES))
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--no-triton", action="store_true", help="skip the Triton kernels")
    p.add_argument("--smoke", action="store_true", help="tiny shapes on CPU (harness check)")
    args = p.parse_args(argv)

    import squeezeprompt  # noqa: F401  (registers the ops)

    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device; use --smoke to check the harness on CPU", file=sys.stderr)
        return 2
    use_triton = not args.no_triton
    if use_triton:
        import squeezeprompt.ops.triton as sp_triton

        if not sp_triton.AVAILABLE:
            print("bench_gpu: triton is not installed; pass --no-triton", file=sys.stderr)
            return 2
    shapes = ((64, 48, "smoke"),) if args.smoke else SHAPES
    ms = [1, 16] if args.smoke else args.m
    iters, repeats = (2, 1) if args.smoke else (args.iters, args.repeats)
    rows = []
    for k, n, model in shapes:
        for m in ms:
            case = GpuCase(m=m, k=k, n=n, model=model)
            rows += run_case(case, device, use_triton, iters, repeats)
            print(f"bench_gpu: m={m} k={k} n={n} done", flush=True)
    name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu"
    meta = {
        "device": name,
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "triton": __import__("triton").__version__ if use_triton else None,
        "gpu_backend_env": os.environ.get("SQUEEZEPROMPT_GPU_BACKEND", ""),
        "iters": iters, "repeats": repeats, "smoke": args.smoke,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=1))
    write_markdown(rows, meta, args.out / "gpu.md")
    write_plot(rows, args.out / "gpu.png")
    print(f"bench_gpu: wrote {args.out}/gpu.json, gpu.md, gpu.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
