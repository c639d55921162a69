"""Shared helpers for the benchmark scripts: timing, peak memory, machine description, JSON.

Why a helper module: every benchmark must time the same way (warm-up runs
first, then repeats, report the median), synchronise the GPU before reading a
clock (CUDA kernels are asynchronous), measure peak memory for the measured
call only, and record on which machine - and under how much foreign load - the
figures were taken, so a number in results/*.json can be judged later.

Peak memory on the CPU is the process's resident-set high-water mark
(``VmHWM``), reset before each measurement through ``/proc/self/clear_refs``
(Linux); tracemalloc is used as well for the Python/NumPy heap. On CUDA it is
``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_ROOT = BENCH_DIR.parent.parent


# ---------------------------------------------------------------------- devices
def resolve_device(name: str | None = "auto") -> "Any":
    """'auto' -> CUDA when present else CPU; 'cpu' / 'cuda' / 'cuda:1' as given (checked)."""
    import torch

    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"Device {name!r} asked for, but torch sees no CUDA GPU. Use --device cpu.")
    return dev


def devices_to_run(choice: str) -> list[Any]:
    """'all' -> CPU plus CUDA when present; otherwise the one device asked for."""
    import torch

    if choice == "all":
        return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    return [resolve_device(choice)]


def synchronize(device: Any = None) -> None:
    """Wait for queued GPU work so that a wall clock read afterwards is honest."""
    import torch

    if device is not None and getattr(device, "type", str(device)).startswith("cuda"):
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------- memory
def _read_status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux >= 4.0); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (since the last reset)."""
    kb = _read_status_kb("VmHWM")
    if kb is None:  # not Linux: the lifetime maximum is the best there is
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == "darwin":
            kb //= 1024
    return kb / 1024.0


def current_rss_mb() -> float:
    kb = _read_status_kb("VmRSS")
    return (kb or 0) / 1024.0


@dataclass
class Memory:
    """Peak memory of one measured block, MiB."""

    rss_peak_mb: float = 0.0  # process high-water mark during the block
    rss_before_mb: float = 0.0
    rss_delta_mb: float = 0.0  # peak - before: what the block added
    python_heap_peak_mb: float = 0.0  # tracemalloc (Python objects + NumPy buffers)
    gpu_peak_mb: float | None = None  # torch.cuda.max_memory_allocated


@contextlib.contextmanager
def measure_memory(device: Any = None, trace_python: bool = True) -> Iterator[Memory]:
    """Fill a :class:`Memory` for the enclosed block (values set when the block exits)."""
    mem = Memory()
    cuda = device is not None and getattr(device, "type", "") == "cuda"
    if cuda:
        import torch

        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    reset_peak_rss()
    mem.rss_before_mb = current_rss_mb()
    started_trace = trace_python and not tracemalloc.is_tracing()
    if started_trace:
        tracemalloc.start()
    elif tracemalloc.is_tracing():
        tracemalloc.reset_peak()
    try:
        yield mem
    finally:
        if cuda:
            import torch

            torch.cuda.synchronize(device)
            mem.gpu_peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
        if tracemalloc.is_tracing():
            mem.python_heap_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        if started_trace:
            tracemalloc.stop()
        mem.rss_peak_mb = peak_rss_mb()
        mem.rss_delta_mb = max(0.0, mem.rss_peak_mb - mem.rss_before_mb)


# ---------------------------------------------------------------------- timing
@dataclass
class Timing:
    """Wall-clock seconds of the repeats (after warm-up); ``median_s`` is the figure to quote."""

    median_s: float
    min_s: float
    max_s: float
    repeats: int
    warmup: int
    times_s: list[float] = field(default_factory=list)
    memory: Memory | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def time_call(fn: Callable[[], Any], *, repeats: int = 3, warmup: int = 1, device: Any = None,
              memory: bool = True, trace_python: bool = False) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` timed; memory of the last repeat.

    On CUDA the clock is read after ``torch.cuda.synchronize`` (CUDA events would
    measure only the GPU stream; the wall clock also counts host-side work and
    transfers, which is what a user waits for).
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    for _ in range(max(0, warmup)):
        fn()
        synchronize(device)
    times: list[float] = []
    mem: Memory | None = None
    for i in range(repeats):
        last = memory and i == repeats - 1
        ctx = measure_memory(device, trace_python) if last else contextlib.nullcontext(None)
        with ctx as m:
            synchronize(device)
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            times.append(time.perf_counter() - t0)
        if last:
            mem = m
    return Timing(statistics.median(times), min(times), max(times), repeats, warmup, times, mem)


class StageClock:
    """Consecutive named stages of one run: ``with clock.stage('load'): ...``."""

    def __init__(self, device: Any = None) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        synchronize(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


# ---------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(device: Any = None) -> dict[str, Any]:
    """Where the figures come from: CPU, cores, threads, load average, GPU, library versions."""
    import numpy as np
    import torch

    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_cores_usable": cores,
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": load,
        "shared_machine_note": None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "device": str(device) if device is not None else None,
    }
    if load is not None and cores and load[0] > 0.5 * cores:
        info["shared_machine_note"] = (
            f"1-min load average {load[0]:.1f} on {cores} usable cores when the run started: "
            "other jobs were running, CPU timings are inflated")
    return info


# ---------------------------------------------------------------------- output
def results_path(name: str, out_dir: str | os.PathLike | None = None) -> Path:
    """results/<name>.json; smoke-size (*_tiny) runs go to the gitignored results/tmp/ by default."""
    default = RESULTS_DIR / "tmp" if name.endswith("_tiny") else RESULTS_DIR
    return Path(out_dir or default) / f"{name}.json"


def write_results(name: str, payload: dict[str, Any], out_dir: str | os.PathLike | None = None) -> Path:
    """Write ``results/<name>.json`` atomically (with a timestamp) and return its path."""
    path = results_path(name, out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name,
           "written_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           **payload}
    try:
        from LongitudinalALLib.core import atomic

        atomic.write_json(path, doc)
    except ImportError:  # the peer virtualenvs need not hold the product
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=_json_default), encoding="utf-8")
        os.replace(tmp, path)
    return path


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    return str(obj)


def common_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Flags every benchmark takes."""
    parser.add_argument("--tiny", action="store_true",
                        help="smoke-test size (seconds, used by the test suite; figures meaningless)")
    parser.add_argument("--device", default="all",
                        help="'all' (CPU, plus CUDA when present), 'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (median is reported)")
    parser.add_argument("--out-dir", default=None, help=f"JSON output folder (default {RESULTS_DIR})")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return parser


def apply_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def print_table(rows: list[list[Any]], header: list[str]) -> None:
    """Plain fixed-width table on stdout."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for j, r in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
        if j == 0:
            print("  ".join("-" * w for w in widths))
