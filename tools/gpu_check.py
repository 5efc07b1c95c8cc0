"""The one GPU check: the CUDA tests, then the benchmark grid, each result recorded as soon as it is measured.

    bash tools/gpu_check.sh [OUT_DIR]                       # = make gpu-check; installs the wheels in $WHEELS first
    python tools/gpu_check.py --out OUT_DIR [--budget-s 400] [--sections a,b] [--dry-run]

Needs a CUDA machine with torch, torchvision, timm, triton, numpy, pyyaml, matplotlib and pytest (a stock PyTorch
image has them), plus the pure-Python wheels ``tools/gpu_check.sh`` installs: mmengine 0.10.7, mmcv-lite 2.1.0,
addict, yapf, termcolor, platformdirs. mmseg and mmdet with mmcv's compiled ops are optional: without them the
dense sections are recorded as skipped.

Sections run in the order below, most important first; none starts after ``--budget-s`` (default 400 s, which
leaves the section in flight room in an 8-minute slot). Each writes its results to ``OUT/gpu_check.jsonl`` as they
come and refreshes ``OUT/gpu_check.json``, ``.md`` (the README's tables) and ``.png``, so a run cut short still
reports. ``--dry-run`` runs every section's code on the CPU at tiny sizes for one step (the test suite does, so the
command is known to work before a GPU is at hand); it skips the compiled sections, whose CPU compilation would take
minutes.
"""
import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'tools'))

import benchmark  # noqa: E402  (tools/benchmark.py)

T_MODELS = 'ours,ours_deploy,ours_gemm,ours_fused,timm_incnext,convnext,resnet50'
COMPILED_MODELS = 'ours,ours_fused,timm_incnext,convnext'
SIZE_MODELS = 'ours,ours_fused,timm_incnext,convnext'
# (name, tools/benchmark.py arguments): the paper's protocol (--paper: batch 128, 224x224, classifiers with
# cross-entropy, cudnn.benchmark, TF32 on) in the precisions users train with, then compiled, then S/B, the mixer
# alone, and UperNet's training iteration.
SECTIONS = [
    ('tf32_t', ['--paper', '--models', T_MODELS]),
    ('bf16_t', ['--paper', '--precision', 'bf16', '--models', T_MODELS]),
    ('mixer_bf16', ['--mixer', '--precision', 'bf16', '--batch-size', '128', '--compile']),
    ('fp16_t', ['--paper', '--precision', 'fp16', '--models', T_MODELS]),
    ('bf16_t_compiled', ['--paper', '--precision', 'bf16', '--compile', '--memory-format', 'channels_last',
                         '--models', COMPILED_MODELS]),
    ('bf16_s', ['--paper', '--precision', 'bf16', '--arch', 'small', '--models', SIZE_MODELS]),
    ('bf16_b', ['--paper', '--precision', 'bf16', '--arch', 'base', '--models', SIZE_MODELS]),
    ('mixer_fp32', ['--mixer', '--batch-size', '128', '--tf32', 'on']),
    ('dense_upernet_fp16', ['--dense', '--precision', 'fp16', '--modes', 'train', '--train-batch-size', '8',
                            '--memory-format', 'nchw']),
    ('dense_mask_rcnn_fp16', ['--dense', '--task', 'det', '--precision', 'fp16', '--modes', 'train',
                              '--train-batch-size', '2', '--img-size', '800', '1216', '--memory-format', 'nchw']),
]
TIMING = ['--warmup', '3', '--rounds', '3', '--steps', '10']
DRY_RUN = ['--device', 'cpu', '--img-size', '64', '--batch-size', '2', '--train-batch-size', '2', '--warmup', '1',
           '--rounds', '1', '--steps', '1', '--threads', '1']
# The dry run's models: each code path once (ours, folded, fused switch, a timm classifier; S/B: ours).
DRY_RUN_MODELS = 'ours,ours_deploy,ours_fused,timm_incnext'
CUDA_TESTS = ['tests/test_precision.py', 'tests/test_fused_mixer.py']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='work_dirs/gpu_check', help='output folder (default work_dirs/gpu_check)')
    parser.add_argument('--budget-s', type=float, default=400, help='start no section after this many seconds')
    parser.add_argument('--sections', help=f'comma-separated subset of {[s for s, _ in SECTIONS]} (and tests)')
    parser.add_argument('--no-tests', action='store_true', help='skip the CUDA tests')
    parser.add_argument('--dry-run', action='store_true', help='CPU, tiny sizes, one step: checks the command')
    return parser.parse_args(argv)


def dry_run_args(section_args: list) -> list:
    """A section's arguments shrunk for the CPU: fewer models (each code path once), one layout, atto for the
    classifier sections, and the dense section in float32 (CPU float16 convolutions are emulated: minutes)."""
    argv = list(section_args)
    if '--models' in argv:
        argv[argv.index('--models') + 1] = 'ours' if '--arch' in argv else DRY_RUN_MODELS
    if '--memory-format' not in argv:
        argv += ['--memory-format', 'channels_last']
    if '--paper' in argv and '--arch' not in argv:
        argv += ['--arch', 'atto']
    if '--dense' in argv and '--precision' in argv:
        argv[argv.index('--precision') + 1] = 'fp32'
    if '--img-size' in argv:  # DRY_RUN's size instead
        i = j = argv.index('--img-size')
        while j + 1 < len(argv) and argv[j + 1].isdigit():
            j += 1
        del argv[i:j + 1]
    return argv + DRY_RUN


def machine() -> dict:
    info = dict(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
                cpu=platform.processor() or platform.machine())
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name()
        try:
            info['driver'] = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                                            capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            info['driver'] = None
    for name in ('timm', 'triton', 'mmengine', 'mmcv'):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    return info


def run_tests(out: Path) -> dict:
    """The CUDA cases of the numerics and fused-mixer tests (``-k cuda``; on the CPU all of them skip)."""
    start = time.time()
    cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-k', 'cuda', '-o', 'addopts=',
           f'--junitxml={out / "cuda_tests.xml"}'] + CUDA_TESTS
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    (out / 'cuda_tests.log').write_text(proc.stdout + proc.stderr)
    tail = [line for line in proc.stdout.splitlines() if line.strip()][-1:] or ['(no output)']
    return dict(section='tests', returncode=proc.returncode, summary=tail[0], seconds=time.time() - start)


def plot(results: list, path: Path, title: str):
    """One panel per benchmark section and mode: img/s of each model's best layout (ours orange)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = {}
    for r in results:
        if 'img_per_s' in r:
            key = (r['section'], r['mode'])
            best = panels.setdefault(key, {})
            if r['model'] not in best or r['img_per_s'] > best[r['model']]:
                best[r['model']] = r['img_per_s']
    if not panels:
        return
    cols = 2
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.6 * rows), squeeze=False)
    for ax, ((section, mode), best) in zip(axes.flat, panels.items()):
        bars = ax.barh(list(best), list(best.values()),
                       color=['tab:orange' if n.startswith('ours') else 'tab:gray' for n in best])
        ax.bar_label(bars, fmt='%.0f')
        ax.invert_yaxis()
        ax.set_title(f'{section}: {mode} (img/s)', fontsize=9)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis('off')
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(report: dict, title: str) -> str:
    """The README's GPU tables: per section, tools/benchmark.py's own table (img/s per layout, best layout, peak
    memory, ratios to ConvNeXt and to timm's InceptionNeXt, error against float32) under the machine's name."""
    m = report['machine']
    lines = [f'# {title}', '', f'GPU {m.get("gpu")}, driver {m.get("driver")}, torch {m["torch"]} (CUDA {m["cuda"]}), '
             f'timm {m["timm"]}, triton {m["triton"]}']
    for name, section in report['sections'].items():
        lines += ['', f'## {name}: ' + ' '.join(section.get('argv', [])).replace('--jsonl', '')]
        results = [r for r in report['results'] if r['section'] == name]
        if 'skipped' in section or 'error' in section or name == 'tests':
            lines.append(section.get('skipped') or section.get('error') or section.get('summary'))
        elif results and results[0].get('kind') == 'mixer':
            lines.append(benchmark.mixer_table(results))
        elif results:
            lines.append(benchmark.table(results))
    return '\n'.join(lines) + '\n'


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / 'gpu_check.jsonl'
    jsonl.unlink(missing_ok=True)
    start = time.time()
    report = dict(machine=machine(), dry_run=args.dry_run, sections={}, results=[])
    title = f'{report["machine"].get("gpu") or "CPU (dry run)"}, torch {torch.__version__}'

    def save():
        (out / 'gpu_check.json').write_text(json.dumps(report, indent=1))
        (out / 'gpu_check.md').write_text(markdown(report, title))
        plot(report['results'], out / 'gpu_check.png', title)

    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit('gpu_check: no CUDA device (torch.cuda.is_available() is False); --dry-run checks on CPU')
    wanted = set(args.sections.split(',')) if args.sections else None
    if not args.no_tests and (wanted is None or 'tests' in wanted):
        report['sections']['tests'] = run_tests(out)
        print(f'[gpu_check] tests: {report["sections"]["tests"]["summary"]}', flush=True)
        save()
    for name, section_args in SECTIONS:
        if wanted is not None and name not in wanted:
            continue
        elapsed = time.time() - start
        if elapsed > args.budget_s:
            report['sections'][name] = dict(skipped=f'budget of {args.budget_s:.0f} s spent ({elapsed:.0f} s)')
            continue
        if args.dry_run and '--compile' in section_args:
            report['sections'][name] = dict(skipped='dry run: CPU compilation would take minutes')
            continue
        library = 'mmdet' if 'det' in section_args else 'mmseg'
        if '--dense' in section_args and not (importlib.util.find_spec(library) and importlib.util.find_spec('mmcv')
                                              and importlib.util.find_spec('mmcv._ext')):
            report['sections'][name] = dict(skipped=f'needs {library} and mmcv with its compiled ops')
            continue
        argv_ = dry_run_args(section_args) if args.dry_run else section_args + ['--device', 'cuda'] + TIMING
        section_start = time.time()
        before = len(jsonl.read_text().splitlines()) if jsonl.exists() else 0
        try:
            results = benchmark.main(argv_ + ['--jsonl', str(jsonl)])
            report['sections'][name] = dict(argv=argv_, seconds=time.time() - section_start, n=len(results))
        except Exception as error:  # noqa: BLE001  (record and go on: the next section may still run)
            report['sections'][name] = dict(argv=argv_, error=f'{type(error).__name__}: {error}',
                                            seconds=time.time() - section_start)
        lines = jsonl.read_text().splitlines()[before:] if jsonl.exists() else []
        report['results'] += [dict(json.loads(line), section=name) for line in lines]
        print(f'[gpu_check] {name}: {report["sections"][name].get("error") or report["sections"][name]["seconds"]}'
              f' ({time.time() - start:.0f} s in all)', flush=True)
        save()
    report['seconds'] = time.time() - start
    save()
    return report


if __name__ == '__main__':
    main()
