"""The command lines of ``tools/benchmark.py`` and ``tools/benchmark_mixer.py``: their arguments (the settings the
library runs on) and ``main`` functions. The GPU check parses its sections' arguments here too, so every section is
also a command a user can run."""
import argparse
import json
import platform
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from .models import DEFAULT_MODELS, DENSE_CONFIGS, config_name, known_models
from .records import Recorder
from .report import mixer_table, mode_panels, model_table, plot_throughput
from .timing import MEMORY_FORMATS, PRECISIONS

BENCHMARK_USAGE = """\
Training and inference throughput (img/s) and peak memory of our InceptionNeXt next to timm's models.

    # backbones at 224x224 on the CPU: ours, ours deployed, timm's InceptionNeXt, ConvNeXt, ResNet-50, Swin-T
    python tools/benchmark.py --threads 2 --rounds 7 --json work_dirs/bench.json --plot work_dirs/bench.png
    # the paper's GPU protocol (batch 128, 224x224, TF32, cudnn.benchmark, classifiers with cross-entropy)
    python tools/benchmark.py --device cuda --paper --precision bf16 [--compile] [--arch small]
    # bf16 inference on a CPU with AMX, bf16 weights, against the MLP GEMMs alone and the previous CPU path
    python tools/benchmark.py --precision bf16 --cast-weights --modes infer --memory-format channels_last \\
        --models ours_deploy,ours_gemm_deploy,convnext,mlp_gemms
    # whole segmentors at 512x512: UperNet + InceptionNeXt-T against mmseg's own UperNet + ConvNeXt-T
    python tools/benchmark.py --dense --batch-size 2 --train-batch-size 2
    # Mask R-CNN + InceptionNeXt-T against mmdet's Mask R-CNN + ConvNeXt-T (needs mmcv's ops on that device)
    python tools/benchmark.py --dense --task det --img-size 800 1216 --device cuda --precision fp16
    # any backbone by its config (e.g. the paper's ablations), next to ConvNeXt-T
    python tools/benchmark.py --config configs/ablation/incnext_t_band7_in1k.py --models convnext
    # the token mixer alone: tools/benchmark_mixer.py (--mixer here runs it with these arguments)
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
``torch.autocast`` (fp16 with a GradScaler, as AmpOptimWrapper does), or with ``--cast-weights`` in that dtype
throughout (inference), and also report the relative error of the output (inference) or of all gradients (training)
against float32, on the same weights and input. ``mlp_gemms`` (a model name) times our backbone's MLP GEMMs alone at
its shapes: the limit of a model whose time they dominate (its column ``x mlp_gemms`` is the share of a model's time
those GEMMs would take).

Precision is the user's: TF32 stays as PyTorch's flags say unless ``--tf32 on|off`` (``--paper``: on, as on the
paper's A100, whose "FP32" img/s exceed the A100's plain-fp32 peak) sets both the cuDNN and the cuBLAS flag.
"""

MIXER_USAGE = """\
The token mixer alone at the network's shapes: fused Triton kernel, eager, compiled; bytes moved.

    # bf16 AMP as training runs it: most blocks pass the float32 residual stream, the convs run in bf16
    python tools/benchmark_mixer.py --device cuda --precision bf16 --amp --batch-size 128 [--compile]
    # every tensor cast to bf16, autocast off: the kernel at its narrowest dtype
    python tools/benchmark_mixer.py --device cuda --precision bf16 --batch-size 128

The shapes, input dtypes and weights are those the network's mixers receive in one forward at ``--img-size``
(mmincnext/benchmark/mixer.py says how); GB/s counts the fewest bytes any implementation must move, and is compared
with a device-to-device copy measured in the same run.
"""


def _add_common(parser: argparse.ArgumentParser):
    """The arguments both benchmarks share: precision, layout, timing, device and output."""
    parser.add_argument('--arch', default='tiny', help="arch of ours, timm's InceptionNeXt and ConvNeXt (default tiny)")
    parser.add_argument('--modes', default='infer,train', help='infer, train or both (default)')
    parser.add_argument('--batch-size', type=int, default=None, help='inference batch (default 16; --paper 128)')
    parser.add_argument('--img-size', type=int, nargs='+', default=None, help='H [W] (default 224, dense 512)')
    parser.add_argument('--precision', choices=tuple(PRECISIONS) + ('amp', ), default='fp32',
                        help='bf16 / fp16: torch.autocast (fp16 with a GradScaler); amp: the same as fp16')
    parser.add_argument('--memory-format', choices=('nchw', 'channels_last', 'both'), default='both')
    parser.add_argument('--compile', action='store_true', help='torch.compile every model (ours with fullgraph=True)')
    parser.add_argument('--tf32', choices=('keep', 'on', 'off'), default=None,
                        help="cuDNN and cuBLAS TF32 flags (default keep: the user's; --paper: on)")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--rounds', type=int, default=None, help='timed rounds; the median is reported (default 5)')
    parser.add_argument('--steps', type=int, default=None, help='steps per timed round (default 1; CUDA 10)')
    parser.add_argument('--warmup', type=int, default=None, help='untimed steps per model first (default 1; CUDA 5)')
    parser.add_argument('--keep-going', action='store_true',
                        help='record a model that fails (error, out of memory) and time the others')
    parser.add_argument('--json', help='write the results here')
    parser.add_argument('--jsonl', help='append each result here as a JSON line as soon as it is measured')


def _resolve_common(args, parser: argparse.ArgumentParser, default_size: int):
    cuda = args.device.startswith('cuda')
    if args.precision == 'amp':
        args.precision = 'fp16'
    args.modes = [m for m in args.modes.split(',') if m]
    if [m for m in args.modes if m not in ('infer', 'train')]:
        parser.error(f'unknown mode in {args.modes}; modes are infer, train')
    args.memory_formats = list(MEMORY_FORMATS) if args.memory_format == 'both' else [args.memory_format]
    args.tf32 = args.tf32 or 'keep'
    args.batch_size = args.batch_size or 16
    args.rounds = args.rounds or 5
    args.steps = args.steps or (10 if cuda else 1)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    size = args.img_size or [default_size]
    if len(size) > 2:
        parser.error('--img-size takes H or H W')
    args.img_size = (size[0], size[-1])
    return args


def benchmark_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=BENCHMARK_USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', help=f'comma-separated, from {known_models()} (default: {",".join(DEFAULT_MODELS)}'
                        '; dense: ours,convnext; with --config: none)')
    parser.add_argument('--config', action='append', default=[], dest='configs', metavar='CONFIG',
                        help="time this config's backbone (model.backbone) too; repeatable")
    parser.add_argument('--train-batch-size', type=int, default=None, help='training batch (default 8; --paper 128)')
    parser.add_argument('--classifier', action='store_true',
                        help='whole classifiers (heads included); training on cross-entropy (default: features)')
    parser.add_argument('--paper', action='store_true',
                        help='the paper protocol: batch 128 both modes, --classifier, --tf32 on, cudnn.benchmark')
    parser.add_argument('--dense', action='store_true', help='time whole models from configs (see DENSE_CONFIGS)')
    parser.add_argument('--task', choices=tuple(DENSE_CONFIGS), default='seg',
                        help='--dense: UperNet segmentors (seg, default) or Mask R-CNN detectors (det)')
    parser.add_argument('--cast-weights', action='store_true',
                        help='inference in --precision\'s dtype throughout (weights and input cast, model.to(dtype)) '
                        'instead of autocast')
    parser.add_argument('--mixer', action='store_true', help='run tools/benchmark_mixer.py with these arguments')
    parser.add_argument('--plot', help='draw the img/s comparison as a PNG here (needs matplotlib)')
    _add_common(parser)
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The settings of a model benchmark (``tools/benchmark.py``'s arguments), defaults resolved."""
    parser = benchmark_parser()
    args = parser.parse_args(argv)
    if args.paper:
        args.classifier = True
        args.tf32 = args.tf32 or 'on'
    if args.paper and not args.batch_size:
        args.batch_size = 128
    args.train_batch_size = args.train_batch_size or (128 if args.paper else 8)
    _resolve_common(args, parser, 512 if args.dense else 224)
    known = tuple(DENSE_CONFIGS[args.task]) if args.dense else known_models()
    default = known if args.dense else () if args.configs else DEFAULT_MODELS
    args.models = [m for m in args.models.split(',') if m] if args.models else list(default)
    unknown = [m for m in args.models if m not in known]
    if unknown:
        parser.error(f'unknown model {unknown}; models are {known}')
    if args.cast_weights and (args.precision == 'fp32' or 'train' in args.modes):
        parser.error('--cast-weights times inference in bf16 or fp16: give --precision bf16|fp16 --modes infer')
    if args.configs and (args.dense or args.classifier):
        parser.error("--config times a config's backbone: not with --dense, --classifier or --paper")
    clash = [c for c in args.configs if config_name(c) in known]
    if clash:
        parser.error(f'--config {clash}: a config may not have the name of a model')
    return args


def mixer_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=MIXER_USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--amp', action='store_true',
                        help='feed what the network passes under --precision autocast (input dtypes as observed, '
                        'float32 weights, autocast on) instead of casting every tensor to --precision')
    _add_common(parser)
    return parser


def parse_mixer_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The settings of a mixer benchmark (``tools/benchmark_mixer.py``'s arguments), defaults resolved."""
    parser = mixer_parser()
    args = _resolve_common(parser.parse_args(argv), parser, 224)
    if args.amp and args.precision == 'fp32':
        parser.error('--amp needs --precision bf16 or fp16 (the autocast dtype)')
    return args


def describe_device(device: str) -> str:
    if device.startswith('cuda'):
        return f'{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})'
    return (f'{cpu_name()}, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}'
            f'{", AMX" if "amx_bf16" in _cpuinfo_field("flags").split() else ""}')


def _cpuinfo_field(name: str) -> str:
    """The first ``name`` line of /proc/cpuinfo (Linux), else ''."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            key, _, value = line.partition(':')
            if key.strip() == name:
                return value.strip()
    except OSError:
        pass
    return ''


def cpu_name() -> str:
    """The CPU as lscpu names it: model name, family and model (virtual machines often report a generic name)."""
    model = _cpuinfo_field('model name') or platform.processor() or platform.machine()
    family, number = _cpuinfo_field('cpu family'), _cpuinfo_field('model')
    return f'{model} (family {family} model {number})' if family and number else f'{model} CPU'


def describe(settings, mixer: bool = False) -> str:
    """One line: what was timed, at what size and precision, on which device and torch, how."""
    if mixer:
        what = f'mixer ({settings.arch}{", AMP" if settings.amp else ""})'
    elif getattr(settings, 'dense', False):
        what = f'dense ({dict(seg="UperNet", det="Mask R-CNN")[settings.task]})'
    else:
        what = f'{"classifiers" if settings.classifier else "backbones"} ({settings.arch})'
    tf32 = '' if settings.tf32 == 'keep' else f', TF32 {settings.tf32}'
    precision = settings.precision
    if precision != 'fp32':
        precision += ' weights' if getattr(settings, 'cast_weights', False) else ' autocast'
    return (f'{what} {settings.img_size[0]}x{settings.img_size[1]}, {precision}{tf32}'
            f'{", compiled" if settings.compile else ""}, {describe_device(settings.device)}, '
            f'torch {torch.__version__}, median of {settings.rounds} rounds of {settings.steps} step(s)')


def write_json(path: Optional[str], title: str, results: List[dict]):
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(dict(setting=title, results=results), indent=1))


def benchmark_main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    """``tools/benchmark.py``: times the models, prints the table, writes ``--json`` and ``--plot``."""
    import sys

    from .runner import run_models
    argv = sys.argv[1:] if argv is None else list(argv)
    if '--mixer' in argv:
        return mixer_main([a for a in argv if a != '--mixer'])
    args = parse_args(argv)
    results = run_models(args, Recorder(args.jsonl))
    title = describe(args)
    print(title + model_table(results))
    write_json(args.json, title, results)
    if args.plot:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot_throughput(mode_panels(results), args.plot, title)
    return results


def mixer_main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    """``tools/benchmark_mixer.py``: times the token mixer, prints the table, writes ``--json``."""
    from .mixer import run_mixer
    args = parse_mixer_args(argv)
    results = run_mixer(args, Recorder(args.jsonl))
    title = describe(args, mixer=True)
    print(title + mixer_table(results))
    write_json(args.json, title, results)
    return results
