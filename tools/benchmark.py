"""Training and inference throughput (img/s) and peak memory of our InceptionNeXt next to timm's models.

    # backbones at 224x224 on the CPU: ours, ours deployed, timm's InceptionNeXt, ConvNeXt, ResNet-50, Swin-T
    python tools/benchmark.py --threads 2 --rounds 7 --json work_dirs/bench.json --plot work_dirs/bench.png
    # the paper's GPU protocol (batch 128, 224x224, TF32, cudnn.benchmark, classifiers with cross-entropy)
    python tools/benchmark.py --device cuda --paper --precision bf16 [--compile] [--arch small]
    # whole segmentors at 512x512: UperNet + InceptionNeXt-T against mmseg's own UperNet + ConvNeXt-T
    python tools/benchmark.py --dense --batch-size 2 --train-batch-size 2
    # Mask R-CNN + InceptionNeXt-T against mmdet's Mask R-CNN + ConvNeXt-T (needs mmcv's ops on that device)
    python tools/benchmark.py --dense --task det --img-size 800 1216 --device cuda --precision fp16
    # the token mixer alone per stage shape: fused Triton kernel vs eager (vs torch.compile), and memory bandwidth
    python tools/benchmark.py --device cuda --mixer --precision bf16 --batch-size 128 --compile

On the CPU all models run in one process, interleaved (A B C A B C ...) for ``--rounds`` rounds, so that a load that
comes and goes on a shared machine hits them alike; the table reports the median. On CUDA (a dedicated device) each
entry is timed in turn: warm-up steps, then ``--rounds`` rounds of ``--steps`` steps between device
synchronisations, the median round; its result is written to ``--jsonl`` as soon as it is measured, so a run cut
short keeps what it had. With ``--memory-format both`` (default) every model is timed NCHW and channels-last, and the
ratios compare each model's best layout.

Without ``--classifier`` models run without their heads (``forward_features``; ours returns the last stage only) and
a training step is forward, ``features.mean()``, backward and an SGD step. With it (and with ``--paper``), they run
with their ImageNet heads (ours with timm's head of the same arch, so only the backbones differ) and a training step
is forward, cross-entropy on random labels, backward and an SGD step. ``--precision bf16`` and ``fp16`` run under
``torch.autocast`` (fp16 with a GradScaler, as AmpOptimWrapper does) and also report the relative error of the output
(inference) or of all gradients (training) against float32, on the same weights and input.

Precision is the user's: TF32 stays as PyTorch's flags say unless ``--tf32 on|off`` (``--paper``: on, as on the
paper's A100, whose "FP32" img/s exceed the A100's plain-fp32 peak) sets both the cuDNN and the cuBLAS flag.
"""
import argparse
import json
import statistics
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from mmincnext.models import InceptionNeXt

REFERENCE = 'convnext'
TIMM_NAMES = dict(timm_incnext='inception_next_{arch}', convnext='convnext_{arch}', resnet50='resnet50',
                  swin_t='swin_tiny_patch4_window7_224')
# ours: the per-device default (CPU: the GEMM path; CUDA: timm's op sequence); ours_gemm: the CPU's GEMM path forced
# (channels-last, F.linear, folded layer scale), to measure it on another device; ours_fused: the fused Triton mixer.
OURS = dict(ours=dict(), ours_deploy=dict(), ours_gemm=dict(fast_path='gemm'), ours_fused=dict(fused_mixer=True))
DEFAULT_MODELS = ('ours', 'ours_deploy', 'timm_incnext', 'convnext', 'resnet50', 'swin_t')
KNOWN_MODELS = tuple(OURS) + tuple(TIMM_NAMES)
# --dense: whole models from their configs, ours against the upstream ConvNeXt-T config of the same recipe.
DENSE_CONFIGS = dict(
    seg=dict(ours='configs/upernet_incnext_t_ade20k.py',
             convnext='mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py'),
    det=dict(ours='configs/mask_rcnn_incnext_t_coco_3x_convnext_recipe.py',
             convnext='mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py'))
MEMORY_FORMATS = dict(nchw=torch.contiguous_format, channels_last=torch.channels_last)
PRECISIONS = dict(fp32=None, bf16=torch.bfloat16, fp16=torch.float16)
# InceptionNeXt-T's four stages at 224x224 (channels, side): the mixer benchmark's shapes.
MIXER_STAGES = ((96, 56), (192, 28), (384, 14), (768, 7))


def parse_args(argv: Optional[Sequence[str]] = None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', help=f'comma-separated, from {KNOWN_MODELS} (default: {",".join(DEFAULT_MODELS)}'
                        '; dense: ours,convnext)')
    parser.add_argument('--arch', default='tiny', help="arch of ours, timm's InceptionNeXt and ConvNeXt (default tiny)")
    parser.add_argument('--modes', default='infer,train', help='infer, train or both (default)')
    parser.add_argument('--batch-size', type=int, default=None, help='inference batch (default 16; --paper 128)')
    parser.add_argument('--train-batch-size', type=int, default=None, help='training batch (default 8; --paper 128)')
    parser.add_argument('--img-size', type=int, nargs='+', default=None, help='H [W] (default 224, dense 512)')
    parser.add_argument('--precision', choices=tuple(PRECISIONS) + ('amp', ), default='fp32',
                        help='bf16 / fp16: torch.autocast (fp16 with a GradScaler); amp: the same as fp16')
    parser.add_argument('--memory-format', choices=('nchw', 'channels_last', 'both'), default='both')
    parser.add_argument('--compile', action='store_true', help='torch.compile every model (ours with fullgraph=True)')
    parser.add_argument('--classifier', action='store_true',
                        help='whole classifiers (heads included); training on cross-entropy (default: features)')
    parser.add_argument('--tf32', choices=('keep', 'on', 'off'), default=None,
                        help="cuDNN and cuBLAS TF32 flags (default keep: the user's; --paper: on)")
    parser.add_argument('--paper', action='store_true',
                        help='the paper protocol: batch 128 both modes, --classifier, --tf32 on, cudnn.benchmark')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--rounds', type=int, default=None, help='timed rounds; the median is reported (default 5)')
    parser.add_argument('--steps', type=int, default=None, help='steps per timed round (default 1; CUDA 10)')
    parser.add_argument('--warmup', type=int, default=None, help='untimed steps per model first (default 1; CUDA 5)')
    parser.add_argument('--dense', action='store_true', help='time whole models from configs (see DENSE_CONFIGS)')
    parser.add_argument('--task', choices=tuple(DENSE_CONFIGS), default='seg',
                        help='--dense: UperNet segmentors (seg, default) or Mask R-CNN detectors (det)')
    parser.add_argument('--mixer', action='store_true',
                        help="time the token mixer alone at InceptionNeXt-T's stage shapes: fused, eager, compiled")
    parser.add_argument('--json', help='write the results here')
    parser.add_argument('--jsonl', help='append each result here as a JSON line as soon as it is measured')
    parser.add_argument('--plot', help='draw the img/s comparison as a PNG here (needs matplotlib)')
    args = parser.parse_args(argv)
    cuda = args.device.startswith('cuda')
    if args.precision == 'amp':
        args.precision = 'fp16'
    known = tuple(DENSE_CONFIGS[args.task]) if args.dense else KNOWN_MODELS
    args.models = [m for m in args.models.split(',') if m] if args.models else list(
        known if args.dense else DEFAULT_MODELS)
    args.modes = [m for m in args.modes.split(',') if m]
    args.memory_formats = list(MEMORY_FORMATS) if args.memory_format == 'both' else [args.memory_format]
    unknown = [m for m in args.models if m not in known] + [m for m in args.modes if m not in ('infer', 'train')]
    if unknown:
        parser.error(f'unknown model or mode {unknown}; models are {known}, modes infer/train')
    if args.paper:
        args.classifier = True
        args.tf32 = args.tf32 or 'on'
    args.tf32 = args.tf32 or 'keep'
    default_batch = 128 if args.paper else None
    args.batch_size = args.batch_size or default_batch or 16
    args.train_batch_size = args.train_batch_size or default_batch or 8
    args.rounds = args.rounds or 5
    args.steps = args.steps or (10 if cuda else 1)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    size = args.img_size or [512 if args.dense else 224]
    if len(size) > 2:
        parser.error('--img-size takes H or H W')
    args.img_size = (size[0], size[-1])
    return args


# ----------------------------------------------------------------------------------------------------------------
# Models: each entry builds a module and says how to run it (``forward``: its output; ``loss``: a scalar to train on)
# ----------------------------------------------------------------------------------------------------------------
class Candidate:

    def __init__(self, name: str, module: nn.Module, forward: Callable, loss: Callable, modes=('infer', 'train')):
        self.name, self.module, self.forward, self.loss, self.modes = name, module, forward, loss, modes


class OursClassifier(nn.Module):
    """Our backbone's last stage under timm's head of the same arch: the classifier the paper times, with exactly
    timm's head, so that only the backbones differ."""

    def __init__(self, backbone: InceptionNeXt, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        return self.head(self.backbone(x)[-1])


def backbone_candidate(name: str, args) -> Candidate:
    import timm
    if name in OURS:
        model = InceptionNeXt(args.arch, out_indices=(3, ), out_norms=False, **OURS[name])
        if args.classifier:
            model = OursClassifier(model, timm.create_model(f'inception_next_{args.arch}').head)
        if name == 'ours_deploy':
            (model.backbone if args.classifier else model).eval().switch_to_deploy()

        def forward(m, x):
            return m(x) if args.classifier else m(x)[-1]
        modes = ('infer', ) if name == 'ours_deploy' else ('infer', 'train')
    else:
        kwargs = dict(img_size=args.img_size) if name == 'swin_t' else {}
        model = timm.create_model(TIMM_NAMES[name].format(arch=args.arch), pretrained=False, **kwargs)

        def forward(m, x):
            return m(x) if args.classifier else m.forward_features(x)
        modes = ('infer', 'train')
    if args.classifier:
        labels = torch.randint(1000, (args.train_batch_size, ), generator=torch.Generator().manual_seed(0))
        labels = labels.to(args.device)

        def loss(m, x):
            return nn.functional.cross_entropy(forward(m, x).float(), labels[:len(x)])
    else:

        def loss(m, x):
            return forward(m, x).float().mean()
    return Candidate(name, model, forward, loss, modes)


def dense_candidate(name: str, args) -> Candidate:
    from mmengine.config import Config
    from mmengine.hub import get_config
    import mmpretrain.models  # noqa: F401  (the upstream ConvNeXt configs use mmpretrain.ConvNeXt)

    from mmincnext.utils import build_model_from_config

    path = DENSE_CONFIGS[args.task][name]
    cfg = get_config(path) if '::' in path else Config.fromfile(Path(__file__).resolve().parents[1] / path)
    model = build_model_from_config(cfg)  # random weights: nothing to download or read
    return (segmentor_candidate if args.task == 'seg' else detector_candidate)(name, model, args)


def detector_candidate(name: str, model: nn.Module, args) -> Candidate:
    """A Mask R-CNN: inference is ``predict`` (RPN, RoI heads, masks), training ``loss`` on mmdet's demo boxes and
    masks (3 objects an image)."""
    from mmdet.testing import demo_mm_inputs
    n = max(args.batch_size, args.train_batch_size)
    data = demo_mm_inputs(batch_size=n, image_shapes=(3, *args.img_size), num_items=[3] * n, num_classes=80,
                          with_mask=True)
    samples = data['data_samples']
    for sample in samples:  # what mmdet's data preprocessor adds for a batch of one size
        sample.set_metainfo(dict(batch_input_shape=args.img_size, pad_shape=args.img_size))
    samples = [sample.to(args.device) for sample in samples]

    def forward(m, x):
        return torch.stack([r.pred_instances.scores.sum() for r in m(x, samples[:len(x)], mode='predict')])

    def loss(m, x):
        parsed, _ = m.parse_losses(m(x, samples[:len(x)], mode='loss'))
        return parsed

    return Candidate(name, model, forward, loss)


def segmentor_candidate(name: str, model: nn.Module, args) -> Candidate:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    img_size, batch_size = args.img_size, args.train_batch_size
    num_classes = model.decode_head.num_classes
    gen = torch.Generator().manual_seed(0)

    def samples(n):
        meta = dict(img_shape=img_size, pad_shape=img_size, ori_shape=img_size)
        return [SegDataSample(metainfo=meta, gt_sem_seg=PixelData(
            data=torch.randint(num_classes, (1, *img_size), generator=gen))).to(args.device) for _ in range(n)]

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
def autocast(device: str, precision: str):
    if PRECISIONS[precision] is None:
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=PRECISIONS[precision])


def make_step(cand: Candidate, module: nn.Module, mode: str, x: torch.Tensor, args) -> Callable:
    # Each step sets the mode: a model is shared by its inference and training entries.
    if mode == 'infer':

        def step():
            module.eval()
            with torch.inference_mode(), autocast(args.device, args.precision):
                return cand.forward(module, x)
        return step
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-9, momentum=0.9)
    scaler = torch.amp.GradScaler(torch.device(args.device).type) if args.precision == 'fp16' else None

    def step():
        module.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast(args.device, args.precision):
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
    """Relative error of the output (infer) or of all gradients (train) under autocast, against float32."""
    if args.precision == 'fp32':
        return None
    results = []
    for precision in ('fp32', args.precision):
        ctx = autocast(args.device, precision)
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


@contextmanager
def precision_flags(args):
    """Within: ``--tf32`` applied (nothing for 'keep') and cudnn.benchmark on CUDA; yields the flags in force.
    The process's own flags come back afterwards (main() may be called from other code, e.g. tools/gpu_check.py)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    try:
        yield set_precision_flags(args)
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = saved


def set_precision_flags(args) -> dict:
    if args.tf32 != 'keep':
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32 == 'on'
    if args.device.startswith('cuda'):
        torch.backends.cudnn.benchmark = True
    return dict(cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                cudnn_benchmark=torch.backends.cudnn.benchmark)


def build_entries(name: str, fmt: str, args) -> List[dict]:
    cand = dense_candidate(name, args) if args.dense else backbone_candidate(name, args)
    module = cand.module.to(args.device, memory_format=MEMORY_FORMATS[fmt])
    if args.compile:
        module = torch.compile(module, fullgraph=name in OURS and not args.dense and not args.classifier)
    batch = dict(infer=args.batch_size, train=args.train_batch_size)
    entries = []
    for mode in args.modes:
        if mode not in cand.modes:
            continue
        x = torch.randn(batch[mode], 3, *args.img_size, generator=torch.Generator().manual_seed(0))
        x = x.to(args.device).contiguous(memory_format=MEMORY_FORMATS[fmt])
        entries.append(dict(cand=cand, mode=mode, fmt=fmt, module=module, x=x,
                            step=make_step(cand, module, mode, x, args)))
    return entries


def time_round(entry: dict, args) -> float:
    sync(args.device)
    start = time.perf_counter()
    for _ in range(args.steps):
        entry['step']()
    sync(args.device)
    return (time.perf_counter() - start) / args.steps


def warm_up(entry: dict, args):
    start = time.perf_counter()
    for _ in range(max(args.warmup, 1)):  # the first step builds caches (and compiles)
        entry['step']()
    sync(args.device)
    entry['warmup_s'] = time.perf_counter() - start


def finish(entry: dict, args, flags: dict) -> dict:
    median = statistics.median(entry['times'])
    result = dict(
        model=entry['cand'].name, mode=entry['mode'], memory_format=entry['fmt'], batch=len(entry['x']),
        img_size=list(args.img_size), arch=args.arch, precision=args.precision, compile=args.compile,
        classifier=args.classifier, device=args.device, img_per_s=len(entry['x']) / median,
        step_s=entry['times'], warmup_s=entry['warmup_s'], **flags,
        # On CPU the profiler does not see what inductor-compiled code allocates: no figure rather than a wrong one.
        peak_mem_mb=None if args.compile and args.device == 'cpu' else peak_memory_mb(entry['step'], args.device),
        rel_err_vs_fp32=precision_error(entry['cand'], entry['module'], entry['mode'], entry['x'], args))
    return record(result, args)


def record(result: dict, args) -> dict:
    """Append ``result`` to ``--jsonl`` at once (a run cut short keeps it) and return it."""
    if args.jsonl:
        Path(args.jsonl).parent.mkdir(parents=True, exist_ok=True)
        with open(args.jsonl, 'a') as f:
            f.write(json.dumps(result) + '\n')
    return result


def run(args) -> List[dict]:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with precision_flags(args) as flags:
        return run_with_flags(args, flags)


def run_with_flags(args, flags: dict) -> List[dict]:
    formats = args.memory_formats
    results = []
    if args.device.startswith('cuda'):
        # A dedicated device: one entry after another, each recorded as soon as it is measured, its memory freed.
        for name in args.models:
            for fmt in formats:
                entries = build_entries(name, fmt, args)
                for entry in entries:
                    warm_up(entry, args)
                    entry['times'] = [time_round(entry, args) for _ in range(args.rounds)]
                    results.append(finish(entry, args, flags))
                del entries
                torch.cuda.empty_cache()
        return results
    entries = [e for name in args.models for fmt in formats for e in build_entries(name, fmt, args)]
    for e in entries:
        warm_up(e, args)
        e['times'] = []
    for _ in range(args.rounds):
        for e in entries:
            e['times'].append(time_round(e, args))
    return [finish(e, args, flags) for e in entries]


# ----------------------------------------------------------------------------------------------------------------
# The token mixer alone (issue: the fused Triton mixer): microseconds per call and memory bandwidth
# ----------------------------------------------------------------------------------------------------------------
def copy_bandwidth_gbs(device: str, nbytes: int = 2**30) -> Optional[float]:
    """The device's practical memory bandwidth: a device-to-device copy, bytes read plus written per second."""
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


def run_mixer(args) -> List[dict]:
    """Each stage shape of InceptionNeXt-T at ``--img-size`` and ``--batch-size``: forward (``infer``) and forward +
    backward (``train``) of the eager mixer, the fused Triton op (where it runs) and, with ``--compile``,
    ``torch.compile`` of the eager mixer. The bytes counted are the fewest any implementation must move: one read of
    the input and one write of the output forward; backward reads the output gradient and the input (for the
    weight gradients) and writes the input gradient. They are compared with the copy bandwidth measured in the same
    run: the mixer is memory-bound, so that fraction is how close it is to the physical limit."""
    with precision_flags(args) as flags:
        return run_mixer_with_flags(args, flags)


def run_mixer_with_flags(args, flags: dict) -> List[dict]:
    from mmincnext.models import FusedInceptionDWConv2d, InceptionDWConv2d
    from mmincnext.ops import fused_inception_dwconv_available
    dtype = PRECISIONS[args.precision] or torch.float32
    bandwidth = copy_bandwidth_gbs(args.device)
    formats = args.memory_formats
    results = []
    for channels, side in MIXER_STAGES:
        side = max(1, side * args.img_size[0] // 224)
        for fmt in formats:
            mixer = FusedInceptionDWConv2d(channels).to(args.device, dtype)
            eager = InceptionDWConv2d(channels).to(args.device, dtype)
            eager.load_state_dict(mixer.state_dict())
            x = torch.randn(args.batch_size, channels, side, side, device=args.device, dtype=dtype)
            x = x.contiguous(memory_format=MEMORY_FORMATS[fmt]).requires_grad_()
            impls = dict(eager=eager)
            if args.compile:
                impls['compiled'] = torch.compile(eager, fullgraph=True)
            if fused_inception_dwconv_available(x):
                impls['fused'] = mixer
            for mode in args.modes:
                for impl, fn in impls.items():
                    def step(fn=fn, mode=mode):
                        if mode == 'infer':
                            with torch.no_grad():
                                return fn(x)
                        out = fn(x)
                        out.backward(torch.ones_like(out))
                    entry = dict(step=step)
                    warm_up(entry, args)
                    times = [time_round(entry, args) for _ in range(args.rounds)]
                    seconds = statistics.median(times)
                    nbytes = x.numel() * x.element_size() * (2 if mode == 'infer' else 5)
                    result = dict(kind='mixer', impl=impl, mode=mode, channels=channels, side=side,
                                  batch=args.batch_size, memory_format=fmt, precision=args.precision,
                                  device=args.device, us_per_call=seconds * 1e6, bytes=nbytes,
                                  gb_per_s=nbytes / seconds / 1e9, copy_gb_per_s=bandwidth,
                                  bandwidth_fraction=nbytes / seconds / 1e9 / bandwidth if bandwidth else None,
                                  **flags)
                    results.append(record(result, args))
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


def mixer_table(results: List[dict]) -> str:
    lines = ['\n| stage (C, side) | layout | mode | impl | us/call | GB/s | of copy bandwidth |',
             '|' + ' --- |' * 7]
    for r in results:
        fraction = '-' if r['bandwidth_fraction'] is None else f'{100 * r["bandwidth_fraction"]:.0f}%'
        lines.append(f'| {r["channels"]}, {r["side"]} | {r["memory_format"]} | {r["mode"]} | {r["impl"]} | '
                     f'{r["us_per_call"]:.1f} | {r["gb_per_s"]:.0f} | {fraction} |')
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


def describe_device(device: str) -> str:
    import platform
    if device.startswith('cuda'):
        return f'{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})'
    return (f'{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads, '
            f'{torch.backends.cpu.get_cpu_capability()}')


def describe(args) -> str:
    dense = dict(seg='UperNet', det='Mask R-CNN')[args.task]
    what = 'mixer' if args.mixer else f'dense ({dense})' if args.dense else \
        f'{"classifiers" if args.classifier else "backbones"} ({args.arch})'
    tf32 = '' if args.tf32 == 'keep' else f', TF32 {args.tf32}'
    return (f'{what} {args.img_size[0]}x{args.img_size[1]}, {args.precision}{tf32}'
            f'{", compiled" if args.compile else ""}, {describe_device(args.device)}, torch {torch.__version__}, '
            f'median of {args.rounds} rounds of {args.steps} step(s)')


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    args = parse_args(argv)
    results = run_mixer(args) if args.mixer else run(args)
    title = describe(args)
    print(title + (mixer_table(results) if args.mixer else table(results)))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(dict(setting=title, results=results), indent=1))
    if args.plot and not args.mixer:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot(results, args.plot, title)
    return results


if __name__ == '__main__':
    main()
