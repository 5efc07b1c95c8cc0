"""How a step is timed, and what else is measured around it.

CPU (a shared machine, whose load comes and goes): all entries in one process, interleaved round by round (A B C
A B C ...), one step a round by default, so that a load hits them alike; the median round is reported. CUDA (a
dedicated device): each entry in turn, warm-up steps first (the first builds caches, autotunes, compiles), then
rounds of several steps between device synchronisations, the median round.
"""
import statistics
import time
from contextlib import contextmanager, nullcontext
from typing import Callable, List, Optional

import torch

PRECISIONS = dict(fp32=None, bf16=torch.bfloat16, fp16=torch.float16)
MEMORY_FORMATS = dict(nchw=torch.contiguous_format, channels_last=torch.channels_last)


def sync(device: str):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def autocast(device: str, precision: str):
    """``torch.autocast`` to the precision's dtype on the device's type; nothing for fp32."""
    if PRECISIONS[precision] is None:
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=PRECISIONS[precision])


@contextmanager
def precision_flags(tf32: str, device: str):
    """Within: ``tf32`` ('on'/'off'; 'keep' leaves the user's flags) applied to both cuDNN and cuBLAS, and
    cudnn.benchmark on CUDA; yields the flags in force. The process's own flags come back afterwards (the benchmark
    may run inside other code, e.g. the GPU check)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    try:
        if tf32 != 'keep':
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32 == 'on'
        if device.startswith('cuda'):
            torch.backends.cudnn.benchmark = True
        yield dict(cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                   matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                   cudnn_benchmark=torch.backends.cudnn.benchmark)
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = saved


def warm_up(step: Callable, steps: int, device: str) -> float:
    """``steps`` untimed steps (at least one: the first builds caches and compiles); returns their seconds."""
    start = time.perf_counter()
    for _ in range(max(steps, 1)):
        step()
    sync(device)
    return time.perf_counter() - start


def time_round(step: Callable, steps: int, device: str) -> float:
    """Seconds per step over one round of ``steps`` steps between two device synchronisations."""
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - start) / steps


def median(times: List[float]) -> float:
    return statistics.median(times)


def peak_memory_mb(step: Callable, device: str) -> float:
    """Peak of the tensor memory a step allocates on top of what was already allocated, in MiB."""
    if device.startswith('cuda'):
        sync(device)
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        sync(device)
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    # CPU keeps no allocator statistics: replay the profiler's record of what each op allocated and freed (net,
    # so an op's own scratch memory is not seen), in time order.
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak / 2**20


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|a - b| / |b|`` (Frobenius norms) in float32."""
    a, b = a.detach().float(), b.detach().float()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def copy_bandwidth_gbs(device: str, nbytes: int = 2**30) -> Optional[float]:
    """The device's practical memory bandwidth: a device-to-device copy, bytes read plus written per second (None on
    CPU, where a shared machine's figure would mean little)."""
    if not device.startswith('cuda'):
        return None
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    sync(device)
    start = time.perf_counter()
    for _ in range(20):
        dst.copy_(src)
    sync(device)
    return 2 * nbytes * 20 / (time.perf_counter() - start) / 1e9
