"""Runs the candidates of :mod:`.models` under the settings of :func:`mmincnext.benchmark.cli.parse_args` and
records each result as it is measured (:class:`~.records.Recorder`).

With ``settings.keep_going`` a model that fails (to build, to run, out of memory) becomes an error record and the
others still run; without it the exception ends the run, as a user at a terminal wants. ``deadline`` (a
``time.time()`` value) starts no further model (CUDA) or round (CPU) after it: the GPU check's budget.
"""
import copy
import time
from typing import Callable, List, Optional

import torch
import torch.nn as nn

from ..compat import CPU_FP16_AUTOCAST, torch_requirement
from .models import build_candidate, config_name, needs_triton
from .records import Recorder, error_text
from .timing import (MEMORY_FORMATS, PRECISIONS, autocast, median, peak_memory_mb, precision_flags, relative_error,
                     time_round, warm_up)

PAST_DEADLINE = 'not started: past the deadline'


class Entry:
    """One (model, memory format, mode) to time: its step and the times measured."""

    def __init__(self, cand, mode: str, fmt: str, module: nn.Module, x: torch.Tensor, step: Callable):
        self.cand, self.mode, self.fmt, self.module, self.x, self.step = cand, mode, fmt, module, x, step
        self.times: List[float] = []
        self.warmup_s = 0.0
        self.float32_module: Optional[nn.Module] = None  # cast weights: the model before the cast


def autocast_precision(settings) -> str:
    """The precision autocast runs at: ``settings.precision``, or none (fp32) where the weights themselves are cast
    to it (``cast_weights``)."""
    return 'fp32' if settings.cast_weights else settings.precision


def make_step(cand, module: nn.Module, mode: str, x: torch.Tensor, settings) -> Callable:
    """Inference: forward under inference_mode. Training: forward, loss, backward, an SGD step (float16: through a
    GradScaler, as AmpOptimWrapper does). Each step sets the module's mode: a model is shared by its entries."""
    if mode == 'infer':

        def step():
            module.eval()
            with torch.inference_mode(), autocast(settings.device, autocast_precision(settings)):
                return cand.forward(module, x)
        return step
    from mmincnext.compat import grad_scaler
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-9, momentum=0.9)
    scaler = grad_scaler(torch.device(settings.device).type) if settings.precision == 'fp16' else None

    def step():
        module.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast(settings.device, settings.precision):
            loss = cand.loss(module, x)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return loss
    return step


def precision_error(entry: Entry, settings) -> Optional[float]:
    """Relative error of the output (infer) or of all gradients (train) under autocast (or in the cast weights'
    dtype), against float32 on the same weights and input."""
    if settings.precision == 'fp32' or entry.cand.limit:
        return None
    cand, module, x = entry.cand, entry.module, entry.x
    if entry.float32_module is not None:  # cast weights: the float32 model they were cast from, on the same input
        results = []
        for m, inputs in ((entry.float32_module, x.float()), (module, x)):
            m.eval()
            with torch.inference_mode():
                results.append(cand.forward(m, inputs).float())
        return relative_error(results[1], results[0])
    results = []
    for precision in ('fp32', settings.precision):
        ctx = autocast(settings.device, precision)
        if entry.mode == 'infer':
            module.eval()
            with torch.inference_mode(), ctx:
                results.append(cand.forward(module, x).float())
        else:
            # Train mode, but without touching BN statistics, so that both passes see the same model.
            module.train()
            for m in module.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
            module.zero_grad(set_to_none=True)
            with ctx:
                loss = cand.loss(module, x)
            loss.float().backward()
            results.append(torch.cat([p.grad.flatten().float() for p in module.parameters() if p.grad is not None]))
            module.zero_grad(set_to_none=True)
    return relative_error(results[1], results[0])


def build_entries(name: str, fmt: str, settings, config: Optional[str] = None) -> List[Entry]:
    cand = build_candidate(name, settings, config)
    module = cand.module.to(settings.device, memory_format=MEMORY_FORMATS[fmt])
    float32_module, dtype = None, None
    if settings.cast_weights:
        dtype = PRECISIONS[settings.precision]
        float32_module = None if cand.limit else copy.deepcopy(module)
        module = module.to(dtype)
    if settings.compile and not cand.limit:
        module = torch.compile(module, fullgraph=cand.fullgraph)
    batch = dict(infer=settings.batch_size, train=settings.train_batch_size)
    entries = []
    for mode in settings.modes:
        if mode not in cand.modes:
            continue
        x = torch.randn(batch[mode], 3, *settings.img_size, generator=torch.Generator().manual_seed(0))
        x = x.to(settings.device, dtype).contiguous(memory_format=MEMORY_FORMATS[fmt])
        entries.append(Entry(cand, mode, fmt, module, x, make_step(cand, module, mode, x, settings)))
        entries[-1].float32_module = float32_module
    return entries


def setting_fields(settings) -> dict:
    return dict(img_size=list(settings.img_size), arch=settings.arch, precision=settings.precision,
                cast_weights=settings.cast_weights, compile=settings.compile,
                classifier=settings.classifier, device=settings.device)


def result_of(entry: Entry, settings, flags: dict) -> dict:
    seconds = median(entry.times)
    return dict(
        model=entry.cand.name, mode=entry.mode, memory_format=entry.fmt, batch=len(entry.x),
        **setting_fields(settings), img_per_s=len(entry.x) / seconds, step_s=entry.times,
        warmup_s=entry.warmup_s, **flags,
        # On CPU the profiler does not see what inductor-compiled code allocates: no figure rather than a wrong one.
        peak_mem_mb=None if settings.compile and settings.device == 'cpu' else peak_memory_mb(entry.step,
                                                                                              settings.device),
        rel_err_vs_fp32=precision_error(entry, settings))


def problem(name: str, fmt: str, mode: Optional[str], settings, **what) -> dict:
    """A record of a model that was not timed: ``error=...`` or ``skipped=...``."""
    return dict(model=name, mode=mode, memory_format=fmt, **setting_fields(settings), **what)


def run_models(settings, recorder: Optional[Recorder] = None, deadline: Optional[float] = None,
               triton_problem: Optional[str] = None) -> List[dict]:
    """Times ``settings.models`` (and ``settings.configs``) in ``settings.memory_formats`` and ``settings.modes``;
    returns the records in the order measured (also given to ``recorder``). ``triton_problem``: why Triton's kernels
    cannot run here (e.g. no C compiler for its launcher): the models that need them are recorded as skipped."""
    recorder = recorder or Recorder(settings.jsonl)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(0)
    start = len(recorder.results)
    with precision_flags(settings.tf32, settings.device) as flags:
        todo = [(name, None) for name in settings.models] + [(None, path) for path in settings.configs]
        no_fp16 = (settings.precision == 'fp16' and not settings.device.startswith('cuda') and not CPU_FP16_AUTOCAST
                   and torch_requirement(2, 2, 'CPU float16 autocast'))
        runnable = []
        for name, config in todo:
            skipped = no_fp16 or (triton_problem if name is not None and needs_triton(name) else None)
            if skipped:
                for fmt in settings.memory_formats:
                    recorder.add(problem(_label(name, config), fmt, None, settings, skipped=skipped))
            else:
                runnable.append((name, config))
        run = _run_in_turn if settings.device.startswith('cuda') else _run_interleaved
        run(runnable, settings, flags, recorder, deadline)
    return recorder.results[start:]


class RecordFailure:
    """Within: an exception of one model becomes its error record and the run goes on (``settings.keep_going``;
    otherwise it propagates). ``failed`` tells whether one happened."""

    def __init__(self, settings, recorder: Recorder, name: str, fmt: str, mode: Optional[str]):
        self.settings, self.recorder, self.where = settings, recorder, (name, fmt, mode)
        self.failed = False

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if not isinstance(error, Exception) or not self.settings.keep_going:
            return False
        self.failed = True
        self.recorder.add(problem(*self.where, self.settings, error=error_text(error)))
        if self.settings.device.startswith('cuda'):
            torch.cuda.empty_cache()
        return True


def _label(name: Optional[str], config: Optional[str]) -> str:
    return name if config is None else config_name(config)


def _run_in_turn(todo, settings, flags: dict, recorder: Recorder, deadline: Optional[float]):
    """A dedicated device: one entry after another, each recorded as soon as it is measured, its memory freed."""
    for name, config in todo:
        label = _label(name, config)
        for fmt in settings.memory_formats:
            if deadline is not None and time.time() > deadline:
                recorder.add(problem(label, fmt, None, settings, skipped=PAST_DEADLINE))
                continue
            entries = []
            with RecordFailure(settings, recorder, label, fmt, None):
                entries = build_entries(name, fmt, settings, config)
            for entry in entries:
                with RecordFailure(settings, recorder, label, fmt, entry.mode):
                    entry.warmup_s = warm_up(entry.step, settings.warmup, settings.device)
                    entry.times = [time_round(entry.step, settings.steps, settings.device)
                                   for _ in range(settings.rounds)]
                    recorder.add(result_of(entry, settings, flags))
            del entries
            if settings.device.startswith('cuda'):
                torch.cuda.empty_cache()


def _run_interleaved(todo, settings, flags: dict, recorder: Recorder, deadline: Optional[float]):
    """A shared CPU: all entries warmed up, then timed round by round, interleaved, so that a load that comes and
    goes hits them alike. The deadline ends the rounds early (after the first)."""
    entries = []
    for name, config in todo:
        label = _label(name, config)
        for fmt in settings.memory_formats:
            with RecordFailure(settings, recorder, label, fmt, None):
                entries += build_entries(name, fmt, settings, config)

    def attempt(entry: Entry, action: Callable) -> bool:
        with RecordFailure(settings, recorder, entry.cand.name, entry.fmt, entry.mode) as guard:
            action(entry)
        return not guard.failed

    def warm(entry: Entry):
        entry.warmup_s = warm_up(entry.step, settings.warmup, settings.device)

    def one_round(entry: Entry):
        entry.times.append(time_round(entry.step, settings.steps, settings.device))

    entries = [e for e in entries if attempt(e, warm)]
    for i in range(settings.rounds):
        if i > 0 and deadline is not None and time.time() > deadline:
            break
        entries = [e for e in entries if attempt(e, one_round)]
    for entry in entries:
        attempt(entry, lambda e: recorder.add(result_of(e, settings, flags)))

