"""What every benchmark script shares: the run header, the table printer, GPU peak rates, the batch search.

Each script prints one table per run, preceded by the device, date, commit and command, and with `--markdown PATH`
appends the same block to a markdown file (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from NVIDIA's datasheets (H100 / H200 / A100 / L40S / L4
# / B200 product pages; their headline numbers are "with sparsity", twice these). Matched in order against
# torch.cuda.get_device_name(), so the more specific names come first. MFU is quoted against these, as PaLM's
# definition does; the bf16 matmul rate measured on the same card is printed beside them in the header.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H200 NVL", 835.0),
    ("GH200", 989.0),
    ("H100", 989.0),  # SXM5, e.g. "NVIDIA H100 80GB HBM3"
    ("H200", 989.0),  # SXM, "NVIDIA H200"
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)


def peak_bf16_tflops(device_name: str) -> float | None:
    """The datasheet dense bf16 peak of a GPU from its name, or None when the table does not know it."""
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops
    return None


def available_cpus() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_counts(max_workers: int) -> list[int]:
    """1, 2, 4, ... up to max_workers, with max_workers itself last when it is not a power of two."""
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    counts, n = [], 1
    while n <= max_workers:
        counts.append(n)
        n *= 2
    if counts[-1] != max_workers:
        counts.append(max_workers)
    return counts


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available here; use --device cpu or auto")
    return device


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device(device: torch.device) -> str:
    cpus = f"{available_cpus()} CPU cores ({_cpu_model()})"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        gpu = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs"
        return f"{gpu}; {cpus}; torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"CPU only: {cpus}; torch {torch.__version__}"


def git_commit() -> str:
    """`git describe --always --dirty` of the repository (other files may be uncommitted: '-dirty' says so)."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git not available)"
    return out.stdout.strip() or "unknown (not a git checkout)"


def command_line(script: str | os.PathLike, argv: Sequence[str]) -> str:
    with contextlib.suppress(ValueError):  # a script outside the repository keeps its own path
        script = Path(script).resolve().relative_to(ROOT)
    return shlex.join(["python", str(script), *argv])


def run_header(device: torch.device, script: str | os.PathLike, argv: Sequence[str]) -> list[str]:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"device: {describe_device(device)}",
        f"date: {now}",
        f"commit: {git_commit()}",
        f"command: `{command_line(script, argv)}`",
    ]


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; every row must have one cell per column."""
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"row {list(row)} has {len(row)} cells for {len(columns)} columns")
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(
    title: str,
    header: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    notes: Sequence[str] = (),
    markdown: str | os.PathLike | None = None,
) -> str:
    """Print the run's block (title, header lines, table, notes) and append it to `markdown` if given."""
    block = "\n".join(
        [f"### {title}", "", *(f"- {h}" for h in header), "", markdown_table(columns, rows), ""]
        + [f"- {n}" for n in notes]
    )
    print(block, flush=True)
    if markdown:
        path = Path(markdown)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write("\n" + block.rstrip() + "\n")
        print(f"appended to {path}", file=sys.stderr)
    return block


def measured_matmul_tflops(device: torch.device, n: int = 8192, repeats: int = 10) -> float | None:
    """bf16 n x n x n matrix products per second on random data (the achievable ceiling), CUDA only."""
    if device.type != "cuda":
        return None
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        a @ b
    end.record()
    end.synchronize()
    seconds = start.elapsed_time(end) / 1e3
    del a, b
    torch.cuda.empty_cache()
    return 2 * n**3 * repeats / seconds / 1e12


def largest_fitting(fits: Callable[[int], bool], start: int, limit: int, tolerance: float = 0.125) -> int:
    """Largest n in 1..limit with fits(n), for a monotone predicate (0 if even 1 does not fit).

    Doubles from `start` until a failure or `limit`, then bisects between the last fit and the first failure
    until they are within `tolerance` of each other (so a few probes, each a training step, suffice).
    """
    if start < 1 or limit < start:
        raise ValueError(f"need 1 <= start <= limit, got start={start}, limit={limit}")
    if fits(start):
        lo, hi = start, None
        while hi is None:
            if lo >= limit:
                return limit
            n = min(lo * 2, limit)
            if fits(n):
                lo = n
            else:
                hi = n
    else:
        lo, hi = 0, start
    while hi - lo > max(1, int(lo * tolerance)):
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


class Timer:
    """Wall-clock seconds of a block, with the device synchronised at both ends."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = 0.0

    def __enter__(self) -> Timer:
        synchronize(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._t0


def fmt(value: float | None, digits: int = 1) -> str:
    """A number for a table cell ('-' for None)."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"
