"""Where a block's training step spends its time: the PyTorch profiler's table of one block, fed what the network
feeds it.

:func:`profile_block` takes one block of our backbone (by its checkpoint path, e.g. ``stages.2.blocks.1``: the
second block of the paper's stage 3, which receives the residual stream as most blocks do), its input shape and
dtype read off one forward of the whole network under the same autocast, and profiles a few training steps of it
alone (forward, backward into the input and the weights). On CUDA the rows are the device's kernels (cuDNN, GEMMs,
Triton, elementwise, copies), by their time; on the CPU, the operators by their own CPU time.
"""
from contextlib import nullcontext
from typing import List, Sequence

import torch

from .mixer import observe_inputs, stage_of
from .models import OURS_VARIANTS
from .timing import MEMORY_FORMATS, PRECISIONS, autocast, sync, warm_up

# The blocks the GPU check profiles: one of the paper's stage 1 (large maps, few channels) and one of stage 3 (the
# deep stage), in the default variant and with the fused mixer.
PROFILE_BLOCKS = ('stages.0.blocks.1', 'stages.2.blocks.1')
PROFILE_VARIANTS = ('ours', 'ours_fused')


def _device_time_attribute() -> str:
    """The profiler's name for a kernel's own time: ``self_device_time_total`` from torch 2.4, before
    ``self_cuda_time_total``."""
    from torch.autograd.profiler_util import FunctionEventAvg
    return 'self_device_time_total' if hasattr(FunctionEventAvg(), 'self_device_time_total') else \
        'self_cuda_time_total'


def _is_device_event(event) -> bool:
    from torch.autograd import DeviceType
    return getattr(event, 'device_type', DeviceType.CPU) != DeviceType.CPU


def profile_block(variant: str, block: str, arch: str = 'tiny', device: str = 'cuda', precision: str = 'bf16',
                  batch: int = 128, img_size: Sequence[int] = (224, 224), memory_format: str = 'channels_last',
                  warmup: int = 3, steps: int = 5, row_limit: int = 15) -> dict:
    """Profiles ``steps`` training steps of ``block`` of ``InceptionNeXt(arch, **OURS_VARIANTS[variant])`` under
    ``precision``'s autocast. Returns the rows (name, calls and microseconds per step, share of the total), the
    total per step, and the profiler's own table (``table``)."""
    from mmincnext.models import InceptionNeXt
    model = InceptionNeXt(arch, out_indices=(3, ), out_norms=False, **OURS_VARIANTS[variant]).to(device)
    context = (lambda: autocast(device, precision)) if PRECISIONS[precision] else nullcontext
    fmt = MEMORY_FORMATS[memory_format]
    probe = torch.randn(1, 3, *img_size, device=device).contiguous(memory_format=fmt)
    seen = observe_inputs(model.eval(), probe, context(), lambda name: name == block)[0]
    module = seen['module'].train()
    x = torch.randn(batch, *seen['shape'][1:], device=device).to(seen['dtype']).contiguous(memory_format=fmt)
    x.requires_grad_()
    with torch.no_grad(), context():
        out_like = module(x[:1])
    dy = torch.randn(batch, *out_like.shape[1:], device=device).to(out_like.dtype).contiguous(memory_format=fmt)

    def step():
        with context():
            out = module(x)
        out.backward(dy)
        x.grad = None
        module.zero_grad(set_to_none=True)

    from torch.profiler import ProfilerActivity, profile
    on_device = device.startswith('cuda')
    warm_up(step, warmup, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_device else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    sort_by = _device_time_attribute() if on_device else 'self_cpu_time_total'
    averages = prof.key_averages()
    events = sorted((e for e in averages if _is_device_event(e) == on_device), key=lambda e: getattr(e, sort_by),
                    reverse=True)
    total = sum(getattr(e, sort_by) for e in events)
    rows = [dict(name=e.key, calls_per_step=e.count / steps, us_per_step=getattr(e, sort_by) / steps,
                 share=getattr(e, sort_by) / total if total else 0.0) for e in events[:row_limit]]
    return dict(variant=variant, block=block, stage=stage_of(block), arch=arch, device=device, precision=precision,
                batch=batch, img_size=list(img_size), memory_format=memory_format,
                input_shape=[batch, *seen['shape'][1:]], input_dtype=str(seen['dtype']).replace('torch.', ''),
                output_dtype=str(out_like.dtype).replace('torch.', ''), steps=steps,
                time='device kernels' if on_device else 'CPU operators', us_per_step=total / steps, rows=rows,
                table=averages.table(sort_by=sort_by, row_limit=row_limit))


def rows_table(profile: dict, limit: int = 10) -> str:
    """A profile's first rows as markdown: name (shortened), calls and microseconds per step, share of the step."""
    lines = [f'{profile["time"]}, {profile["us_per_step"]:.0f} us per step; input {profile["input_shape"]} '
             f'{profile["input_dtype"]}, output {profile["output_dtype"]}', '',
             '| kernel / operator | calls | us/step | share |', '| --- | --- | --- | --- |']
    for row in profile['rows'][:limit]:
        name = row['name'] if len(row['name']) <= 80 else row['name'][:77] + '...'
        name = name.replace('|', '/')
        lines.append(f'| {name} | {row["calls_per_step"]:g} | {row["us_per_step"]:.1f} | {100 * row["share"]:.0f}% |')
    return '\n'.join(lines)


def profile_blocks(variants: Sequence[str] = PROFILE_VARIANTS, blocks: Sequence[str] = PROFILE_BLOCKS,
                   **kwargs) -> List[dict]:
    """:func:`profile_block` for each variant and block."""
    return [profile_block(variant, block, **kwargs) for variant in variants for block in blocks]
