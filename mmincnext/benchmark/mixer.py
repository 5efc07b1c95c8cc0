"""The token mixer alone: microseconds per call at each of the network's mixer shapes, and how close that comes to
the memory bandwidth (the mixer is memory-bound).

**What is fed.** The shapes, the input dtypes and the weights are read off the network itself: one forward of
:class:`~mmincnext.models.InceptionNeXt` (``arch``, the benchmark's image size, the device's default variant) with a
hook on every block's ``token_mixer`` (the module of the checkpoint keys ``stages.i.blocks.j.token_mixer.*``)
records what each mixer receives. With ``amp`` that forward runs under ``torch.autocast(precision)`` as training
does, and so does the timed call: under bf16/fp16 autocast most blocks hand the mixer the float32 residual stream
(only the first block of each stage gets its stem's or downsample's half-precision output), the mixer's convolutions
run in the autocast dtype and its output has the dtype autocast's ``cat`` gives (float32 for a float32 input). Each
distinct (stage, input dtype) is timed once and counted for the blocks that run it. Without ``amp`` every tensor,
weights included, is cast to ``precision`` and autocast is off: the kernel at its narrowest dtype.

**Implementations**: ``eager`` (:func:`~mmincnext.ops.inception_dwconv_reference`: split, three depthwise convs,
cat), ``fused`` (:func:`~mmincnext.ops.inception_dwconv`, where its Triton kernels run), ``compiled``
(``torch.compile`` of the eager formula, with ``compile``). A training call is the forward and ``autograd.grad``
with respect to the input and the six weights (as in the network, where the input is not a leaf).

**Bytes**: :func:`minimum_bytes`, the fewest any implementation must move; GB/s is those bytes over the time, and
its fraction of a device-to-device copy's bandwidth, measured in the same run, says how close to the physical
limit an implementation runs.
"""
import time
from contextlib import nullcontext
from typing import Callable, Dict, List, Optional

import torch

from .records import Recorder, error_text
from .timing import (MEMORY_FORMATS, PRECISIONS, autocast, copy_bandwidth_gbs, median, precision_flags, sync,
                     time_round, warm_up)

MIXER_MODULE = 'token_mixer'  # each block's mixer: checkpoint keys stages.<i>.blocks.<j>.token_mixer.*
WEIGHT_KEYS = ('dwconv_hw.weight', 'dwconv_hw.bias', 'dwconv_w.weight', 'dwconv_w.bias', 'dwconv_h.weight',
               'dwconv_h.bias')  # the op's argument order: square, 1 x k band, k x 1 band


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace('torch.', '')


def minimum_bytes(numel: int, channels: int, conv_channels: int, in_size: int, out_size: int, param_bytes: int,
                  mode: str) -> int:
    """The fewest bytes any implementation of the mixer must move between memory and the chip.

    ``numel`` elements of input x (``channels`` channels, ``conv_channels`` of them in the three conv branches, the
    rest identity), ``in_size`` / ``out_size`` bytes per input / output element, ``param_bytes`` the weights' and
    biases' bytes.

    Inference: read x once and write y once: ``numel * (in + out)``, plus the weights once.

    Training (forward and backward): the forward's bytes, then backward reads dy (``numel * out``) and writes dx
    (``numel * in``; on the identity channels dx is dy, copied). The weight gradients need x on the conv channels
    only: ``numel * conv/C * in`` more, read again. (Keeping those channels in the compute dtype instead, written in
    the forward and read back, costs ``2 * compute`` bytes an element: never fewer, since the input is either in
    the compute dtype or float32 with a 2-byte compute dtype.) The identity channels' x is never needed again.
    Weights: read forward and backward, their gradients written once. So ``numel * (2 in + 2 out + conv/C * in)``:
    InceptionNeXt (conv = 3/8 of the channels) in one dtype moves 4.375 times the tensor's bytes, not 5.
    """
    if mode == 'infer':
        return numel * (in_size + out_size) + param_bytes
    return numel * (2 * in_size + 2 * out_size) + numel * conv_channels // channels * in_size + 3 * param_bytes


def observe_inputs(model: torch.nn.Module, x: torch.Tensor, context, select: Callable[[str], bool]) -> List[dict]:
    """What each submodule whose name ``select`` accepts receives in one forward of ``model`` on ``x`` under
    ``context`` (no autograd): its name, module, input shape and dtype, in the order they run."""
    seen, hooks = [], []
    for name, module in model.named_modules():
        if select(name):

            def record(module, inputs, name=name):
                seen.append(dict(name=name, module=module, shape=tuple(inputs[0].shape), dtype=inputs[0].dtype))
            hooks.append(module.register_forward_pre_hook(record))
    try:
        with torch.no_grad(), context:
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    if not seen:
        raise RuntimeError(f'{type(model).__name__}: no module selected ran')
    return seen


def stage_of(name: str) -> int:
    """The paper's stage number (1-4) of a module named ``stages.<i>....`` (0 outside the stages)."""
    parts = name.split('.')
    return int(parts[1]) + 1 if len(parts) > 1 and parts[0] == 'stages' else 0


def mixer_shapes(settings) -> List[dict]:
    """The distinct (stage, input dtype) the network runs its mixer at, each with its number of blocks, the shape at
    batch 1 and the weights of its first block."""
    from mmincnext.models import InceptionNeXt
    model = InceptionNeXt(settings.arch, out_indices=(3, ), out_norms=False).to(settings.device).eval()
    x = torch.randn(1, 3, *settings.img_size, device=settings.device)
    context = autocast(settings.device, settings.precision) if settings.amp else nullcontext()
    groups: Dict[tuple, dict] = {}
    for seen in observe_inputs(model, x, context, lambda name: name.split('.')[-1] == MIXER_MODULE):
        dtype = seen['dtype'] if settings.amp else (PRECISIONS[settings.precision] or torch.float32)
        key = (stage_of(seen['name']), dtype, seen['shape'])
        if key not in groups:
            state = seen['module'].state_dict()
            groups[key] = dict(stage=key[0], dtype=dtype, shape=seen['shape'], blocks=0,
                               weights={k: state[k].detach().float().cpu().clone() for k in WEIGHT_KEYS})
        groups[key]['blocks'] += 1
    return list(groups.values())


def run_mixer(settings, recorder: Optional[Recorder] = None, deadline: Optional[float] = None,
              triton_problem: Optional[str] = None) -> List[dict]:
    """Times the mixer at each shape of :func:`mixer_shapes`, in each layout, mode and implementation; returns the
    records in the order measured. ``triton_problem``: why the fused kernels cannot run here (recorded as
    skipped)."""
    from mmincnext.ops import fused_inception_dwconv_available, inception_dwconv, inception_dwconv_reference
    recorder = recorder or Recorder(settings.jsonl)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    start_index = len(recorder.results)
    with precision_flags(settings.tf32, settings.device) as flags:
        bandwidth = copy_bandwidth_gbs(settings.device)
        compiled = torch.compile(inception_dwconv_reference, fullgraph=True) if settings.compile else None
        for group in mixer_shapes(settings):
            if deadline is not None and time.time() > deadline:
                recorder.add(dict(kind='mixer', stage=group['stage'], skipped='not started: past the deadline'))
                continue
            for fmt in settings.memory_formats:
                x = _input(group, settings, fmt)
                impls = dict(eager=inception_dwconv_reference)
                if fused_inception_dwconv_available(x):
                    if triton_problem:
                        recorder.add(dict(kind='mixer', impl='fused', stage=group['stage'], skipped=triton_problem))
                    else:
                        impls['fused'] = inception_dwconv
                if compiled is not None:
                    impls['compiled'] = compiled
                for mode in settings.modes:
                    for impl, fn in impls.items():
                        try:
                            recorder.add(_time_one(group, x, fmt, mode, impl, fn, settings, flags, bandwidth))
                        except Exception as error:  # noqa: BLE001  (keep_going: record it, time the rest)
                            if not settings.keep_going:
                                raise
                            recorder.add(dict(kind='mixer', impl=impl, mode=mode, stage=group['stage'],
                                              memory_format=fmt, error=error_text(error)))
                            if settings.device.startswith('cuda'):
                                torch.cuda.empty_cache()
    return recorder.results[start_index:]


def _input(group: dict, settings, fmt: str) -> torch.Tensor:
    _, channels, height, width = group['shape']
    x = torch.randn(settings.batch_size, channels, height, width, generator=torch.Generator().manual_seed(0))
    return x.to(settings.device, group['dtype']).contiguous(memory_format=MEMORY_FORMATS[fmt])


def _time_one(group: dict, x: torch.Tensor, fmt: str, mode: str, impl: str, fn: Callable, settings, flags: dict,
              bandwidth: Optional[float]) -> dict:
    # Parameters stay float32 under autocast (as the network's); without it they take the tensors' dtype.
    param_dtype = torch.float32 if settings.amp else group['dtype']
    train = mode == 'train'
    weights = [group['weights'][k].to(settings.device, param_dtype).requires_grad_(train) for k in WEIGHT_KEYS]
    x = x.detach().requires_grad_(train)
    context = (lambda: autocast(settings.device, settings.precision)) if settings.amp else nullcontext
    with torch.no_grad(), context():
        out_dtype = fn(x, *weights).dtype
    dy = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(settings.device, out_dtype)
    dy = dy.contiguous(memory_format=MEMORY_FORMATS[fmt])

    def step():
        if not train:
            with torch.no_grad(), context():
                return fn(x, *weights)
        with context():
            out = fn(x, *weights)
        return torch.autograd.grad(out, [x] + weights, dy)

    warm_up(step, settings.warmup, settings.device)
    seconds = median([time_round(step, settings.steps, settings.device) for _ in range(settings.rounds)])
    sync(settings.device)
    channels, conv_channels = x.shape[1], 3 * group['weights']['dwconv_hw.weight'].shape[0]
    nbytes = minimum_bytes(x.numel(), channels, conv_channels, x.element_size(),
                           torch.empty(0, dtype=out_dtype).element_size(),
                           sum(w.numel() * w.element_size() for w in weights), mode)
    _, _, height, width = x.shape
    return dict(kind='mixer', impl=impl, mode=mode, stage=group['stage'], blocks=group['blocks'], channels=channels,
                conv_channels=conv_channels, height=height, width=width, batch=len(x), memory_format=fmt,
                precision=settings.precision, amp=settings.amp, in_dtype=dtype_name(x.dtype),
                out_dtype=dtype_name(out_dtype), device=settings.device, us_per_call=seconds * 1e6, bytes=nbytes,
                gb_per_s=nbytes / seconds / 1e9, copy_gb_per_s=bandwidth,
                bandwidth_fraction=nbytes / seconds / 1e9 / bandwidth if bandwidth else None, **flags)
