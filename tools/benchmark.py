"""Training and inference throughput (img/s) and peak memory of our InceptionNeXt next to timm's models.

    # backbones at 224x224: ours, ours after switch_to_deploy(), timm's InceptionNeXt-T, ConvNeXt-T, ResNet-50, Swin-T
    python tools/benchmark.py --json work_dirs/bench.json --plot work_dirs/bench.png
    # whole segmentors at 512x512: UperNet + InceptionNeXt-T against mmseg's own UperNet + ConvNeXt-T
    python tools/benchmark.py --dense --batch-size 2 --train-batch-size 2

All models run in one process, interleaved (A B C A B C ...) for ``--rounds`` rounds, so that a load that comes and
goes on a shared machine hits them alike; the table reports the median. With ``--memory-format both`` (default)
every model is timed NCHW and channels-last, and the ratios compare each model's best layout. Classification models
are timed without their heads (``forward_features``; ours returns the last stage only): a training step is
forward, ``features.mean()``, backward and an SGD step. ``--precision bf16`` (CPU or CUDA autocast) and ``amp``
(CUDA float16 autocast with a GradScaler) also report the relative error of the features (inference) or of all
gradients (training) against float32, on the same weights and input.
"""
import argparse
import json
import statistics
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from mmincnext.models import InceptionNeXt

REFERENCE = 'convnext_t'
TIMM_NAMES = dict(timm_incnext='inception_next_{arch}', convnext_t='convnext_tiny', resnet50='resnet50',
                  swin_t='swin_tiny_patch4_window7_224')
DEFAULT_MODELS = ('ours', 'ours_deploy', 'timm_incnext', 'convnext_t', 'resnet50', 'swin_t')
DENSE_CONFIGS = dict(ours='configs/upernet_incnext_t_ade20k.py',
                     convnext_t='mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py')
MEMORY_FORMATS = dict(nchw=torch.contiguous_format, channels_last=torch.channels_last)


def parse_args(argv: Optional[Sequence[str]] = None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', help=f'comma-separated, from {DEFAULT_MODELS} (default: all; dense: '
                        f'{",".join(DENSE_CONFIGS)})')
    parser.add_argument('--arch', default='tiny', help="InceptionNeXt arch for ours and timm's (default tiny)")
    parser.add_argument('--modes', default='infer,train', help='infer, train or both (default)')
    parser.add_argument('--batch-size', type=int, default=16, help='inference batch (default 16)')
    parser.add_argument('--train-batch-size', type=int, default=8, help='training batch (default 8)')
    parser.add_argument('--img-size', type=int, nargs='+', default=None, help='H [W] (default 224, dense 512)')
    parser.add_argument('--precision', choices=('fp32', 'bf16', 'amp'), default='fp32',
                        help='bf16: torch.autocast bfloat16 (CPU or CUDA); amp: CUDA float16 autocast + GradScaler')
    parser.add_argument('--memory-format', choices=('nchw', 'channels_last', 'both'), default='both')
    parser.add_argument('--compile', action='store_true', help='torch.compile every model (ours with fullgraph=True)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--rounds', type=int, default=5, help='timed rounds; the median is reported (default 5)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed steps per model first (default 1)')
    parser.add_argument('--dense', action='store_true', help='time whole UperNet segmentors (see DENSE_CONFIGS)')
    parser.add_argument('--json', help='write the results here')
    parser.add_argument('--plot', help='draw the img/s comparison as a PNG here (needs matplotlib)')
    args = parser.parse_args(argv)
    known = tuple(DENSE_CONFIGS) if args.dense else DEFAULT_MODELS
    args.models = [m for m in args.models.split(',') if m] if args.models else list(known)
    args.modes = [m for m in args.modes.split(',') if m]
    unknown = [m for m in args.models if m not in known] + [m for m in args.modes if m not in ('infer', 'train')]
    if unknown:
        parser.error(f'unknown model or mode {unknown}; models are {known}, modes infer/train')
    if args.precision == 'amp' and not args.device.startswith('cuda'):
        parser.error('--precision amp is CUDA float16 autocast; on CPU use --precision bf16')
    size = args.img_size or [512 if args.dense else 224]
    if len(size) > 2:
        parser.error('--img-size takes H or H W')
    args.img_size = (size[0], size[-1])
    return args


# ----------------------------------------------------------------------------------------------------------------
# Models: each entry builds a module and says how to run it (``forward``: features; ``loss``: a scalar to train on)
# ----------------------------------------------------------------------------------------------------------------
class Candidate:

    def __init__(self, name: str, module: nn.Module, forward: Callable, loss: Callable, modes=('infer', 'train')):
        self.name, self.module, self.forward, self.loss, self.modes = name, module, forward, loss, modes


def backbone_candidate(name: str, arch: str, img_size) -> Candidate:
    if name in ('ours', 'ours_deploy'):
        model = InceptionNeXt(arch, out_indices=(3, ), out_norms=False)
        if name == 'ours_deploy':
            model.eval().switch_to_deploy()

        def forward(m, x):
            return m(x)[-1]
        modes = ('infer', ) if name == 'ours_deploy' else ('infer', 'train')
    else:
        import timm
        kwargs = dict(img_size=img_size) if name == 'swin_t' else {}
        model = timm.create_model(TIMM_NAMES[name].format(arch=arch), pretrained=False, **kwargs)

        def forward(m, x):
            return m.forward_features(x)
        modes = ('infer', 'train')
    return Candidate(name, model, forward, lambda m, x: forward(m, x).float().mean(), modes)


def dense_candidate(name: str, img_size, batch_size: int) -> Candidate:
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    import mmpretrain.models  # noqa: F401  (mmseg's ConvNeXt configs use mmpretrain.ConvNeXt)

    from mmincnext.utils import build_model_from_config

    path = DENSE_CONFIGS[name]
    cfg = get_config(path) if '::' in path else Config.fromfile(Path(__file__).resolve().parents[1] / path)
    model = build_model_from_config(cfg)  # random weights: nothing to download or read
    num_classes = model.decode_head.num_classes
    gen = torch.Generator().manual_seed(0)

    def samples(n):
        meta = dict(img_shape=img_size, pad_shape=img_size, ori_shape=img_size)
        return [SegDataSample(metainfo=meta, gt_sem_seg=PixelData(
            data=torch.randint(num_classes, (1, *img_size), generator=gen))) for _ in range(n)]

    train_samples = samples(batch_size)

    def forward(m, x):
        return m(x, mode='tensor')

    def loss(m, x):
        parsed, _ = m.parse_losses(m(x, train_samples[:len(x)], mode='loss'))
        return parsed

    return Candidate(name, model, forward, loss)


# ----------------------------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------------------------
def autocast(args):
    if args.precision == 'fp32':
        return nullcontext()
    dtype = torch.bfloat16 if args.precision == 'bf16' else torch.float16
    return torch.autocast(torch.device(args.device).type, dtype=dtype)


def make_step(cand: Candidate, module: nn.Module, mode: str, x: torch.Tensor, args) -> Callable:
    # Each step sets the mode: a model is shared by its inference and training entries.
    if mode == 'infer':

        def step():
            module.eval()
            with torch.inference_mode(), autocast(args):
                return cand.forward(module, x)
        return step
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-9, momentum=0.9)
    scaler = torch.amp.GradScaler('cuda') if args.precision == 'amp' else None

    def step():
        module.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast(args):
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


def sync(device: str):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


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
    a, b = a.detach().float(), b.detach().float()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def precision_error(cand: Candidate, module: nn.Module, mode: str, x: torch.Tensor, args) -> Optional[float]:
    """Relative error of the features (infer) or of all gradients (train) under autocast, against float32."""
    if args.precision == 'fp32':
        return None
    results = []
    for precision in ('fp32', args.precision):
        ctx = autocast(argparse.Namespace(precision=precision, device=args.device))
        if mode == 'infer':
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


def run(args) -> List[dict]:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    formats = list(MEMORY_FORMATS) if args.memory_format == 'both' else [args.memory_format]
    batch = dict(infer=args.batch_size, train=args.train_batch_size)
    entries = []  # (candidate, mode, format name, module, step)
    for name in args.models:
        for fmt in formats:
            cand = (dense_candidate(name, args.img_size, args.train_batch_size) if args.dense else
                    backbone_candidate(name, args.arch, args.img_size))
            module = cand.module.to(args.device, memory_format=MEMORY_FORMATS[fmt])
            if args.compile:
                module = torch.compile(module, fullgraph=name.startswith('ours') and not args.dense)
            for mode in args.modes:
                if mode not in cand.modes:
                    continue
                x = torch.randn(batch[mode], 3, *args.img_size, device=args.device)
                x = x.contiguous(memory_format=MEMORY_FORMATS[fmt])
                entries.append(dict(cand=cand, mode=mode, fmt=fmt, module=module, x=x,
                                    step=make_step(cand, module, mode, x, args)))
    for e in entries:
        start = time.perf_counter()
        for _ in range(max(args.warmup, 1)):  # the first step builds caches (and compiles)
            e['step']()
        sync(args.device)
        e['warmup_s'] = time.perf_counter() - start
        e['times'] = []
    for _ in range(args.rounds):
        for e in entries:
            sync(args.device)
            start = time.perf_counter()
            e['step']()
            sync(args.device)
            e['times'].append(time.perf_counter() - start)
    results = []
    for e in entries:
        median = statistics.median(e['times'])
        results.append(dict(
            model=e['cand'].name, mode=e['mode'], memory_format=e['fmt'], batch=len(e['x']),
            img_size=list(args.img_size), precision=args.precision, compile=args.compile, device=args.device,
            img_per_s=len(e['x']) / median, step_s=e['times'], warmup_s=e['warmup_s'],
            # On CPU the profiler does not see what inductor-compiled code allocates: no figure rather than a wrong one.
            peak_mem_mb=None if args.compile and args.device == 'cpu' else peak_memory_mb(e['step'], args.device),
            rel_err_vs_fp32=precision_error(e['cand'], e['module'], e['mode'], e['x'], args)))
    return results


# ----------------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------------
def best_per_model(results: List[dict], mode: str) -> Dict[str, dict]:
    best = {}
    for r in results:
        if r['mode'] == mode and (r['model'] not in best or r['img_per_s'] > best[r['model']]['img_per_s']):
            best[r['model']] = r
    return best


def table(results: List[dict]) -> str:
    lines = []
    for mode in ('infer', 'train'):
        best = best_per_model(results, mode)
        if not best:
            continue
        formats = sorted({r['memory_format'] for r in results if r['mode'] == mode})
        header = ['model'] + [f'img/s {f}' for f in formats] + ['best', 'peak MiB', f'x {REFERENCE}',
                                                                    'x timm_incnext']
        if any(r['rel_err_vs_fp32'] is not None for r in best.values()):
            header.append('rel.err vs fp32')
        lines += [f'\n{mode} (batch {next(iter(best.values()))["batch"]})', '| ' + ' | '.join(header) + ' |',
                  '|' + ' --- |' * len(header)]
        for name, b in best.items():
            row = [name]
            for f in formats:
                match = [r for r in results if (r['model'], r['mode'], r['memory_format']) == (name, mode, f)]
                row.append(f'{match[0]["img_per_s"]:.2f}' if match else '-')
            row += [b['memory_format'], '-' if b['peak_mem_mb'] is None else f'{b["peak_mem_mb"]:.0f}']
            for ref in (REFERENCE, 'timm_incnext'):
                row.append(f'{b["img_per_s"] / best[ref]["img_per_s"]:.2f}' if ref in best else '-')
            if 'rel.err vs fp32' in header:
                row.append(f'{b["rel_err_vs_fp32"]:.1e}' if b['rel_err_vs_fp32'] is not None else '-')
            lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def plot(results: List[dict], path: str, title: str):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    modes = [m for m in ('infer', 'train') if best_per_model(results, m)]
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        best = best_per_model(results, mode)
        names = list(best)
        values = [best[n]['img_per_s'] for n in names]
        bars = ax.barh(names, values, color=['tab:orange' if n.startswith('ours') else 'tab:gray' for n in names])
        ax.bar_label(bars, fmt='%.1f')
        ax.invert_yaxis()
        ax.set_xlabel('img/s (best memory format, median)')
        ax.set_title(f'{mode}, batch {best[names[0]]["batch"]}')
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def describe(args) -> str:
    import platform
    device = torch.cuda.get_device_name() if args.device.startswith('cuda') else (
        f'{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads, '
        f'{torch.backends.cpu.get_cpu_capability()}')
    return (f'{"dense (UperNet)" if args.dense else "backbones"} {args.img_size[0]}x{args.img_size[1]}, '
            f'{args.precision}{", compiled" if args.compile else ""}, {device}, torch {torch.__version__}, '
            f'median of {args.rounds} interleaved rounds')


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    args = parse_args(argv)
    results = run(args)
    title = describe(args)
    print(title + table(results))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(dict(setting=title, results=results), indent=1))
    if args.plot:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot(results, args.plot, title)
    return results


if __name__ == '__main__':
    main()
