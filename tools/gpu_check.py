"""The one GPU check: the CUDA tests, then the benchmark grid, profiles and the mixer, each result recorded as soon
as it is measured.

    bash tools/gpu_check.sh [OUT_DIR] [options]          # = make gpu-check; installs the wheels in $WHEELS first
    python tools/gpu_check.py --out OUT_DIR [--limit-s 600] [--sections a,b] [--dry-run]   # mmincnext importable

Needs a CUDA machine with torch, torchvision, timm, triton, numpy, pyyaml, opencv and pytest (matplotlib for the
chart), plus the pure-Python wheels ``tools/gpu_check.sh`` installs: mmengine 0.10.7, mmcv-lite 2.1.0, addict, yapf,
termcolor, platformdirs. mmseg and mmdet with mmcv's compiled ops are optional: without them the dense sections are
recorded as skipped.

**Time.** ``--limit-s`` is the wall-clock limit of the whole command (default 600 s), counted from the start of
``tools/gpu_check.sh`` (its wheel installation included) or of this interpreter, so the imports count too. The tests
run under their own limit (``--tests-limit-s``), their log streamed to ``OUT/cuda_tests.log`` as they run. Sections
run in the order of :data:`SECTIONS`, most decisive first; none starts, and within a section no model starts, unless
the longest a model of that section may take still fits before the limit, less a reserve for the last report. A
watchdog ends the process, printing where it was, 3 s before the limit, should anything hang.

**Failures.** A model that fails (error, out of memory) is recorded with its error and the section goes on; so does a
profile. Triton builds a small launcher the first time a kernel runs, with a C compiler (``$CC``, gcc or clang) and
``Python.h``: both are checked first, and where either is missing the check says so, runs every model eager and
records the fused variants as skipped.

**Output** (7 files in ``OUT``): ``gpu_check.jsonl`` (each result as measured), ``gpu_check.json`` (machine,
sections, results, profiles), ``gpu_check.md`` (the tables), ``gpu_check.png`` (the chart), ``profiles.txt`` (the
profiler's tables), ``cuda_tests.log`` and ``cuda_tests.xml``. All are rewritten as results come, so a run cut short
still reports.

``--dry-run`` runs every section's code on the CPU at tiny sizes for one step (the test suite does, so the command
is known to work before a GPU is at hand); it skips the compiled sections, whose CPU compilation takes minutes.
"""
import time

STARTED = time.time()  # before the imports below (torch, timm, mmengine): the budget counts them

import argparse  # noqa: E402
import faulthandler  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import sysconfig  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import List, NamedTuple, Optional  # noqa: E402

import torch  # noqa: E402

from mmincnext.benchmark import Recorder, mixer_table, model_table, plot_throughput  # noqa: E402
from mmincnext.benchmark.cli import parse_args as parse_benchmark_args  # noqa: E402
from mmincnext.benchmark.cli import parse_mixer_args  # noqa: E402
from mmincnext.benchmark.mixer import run_mixer  # noqa: E402
from mmincnext.benchmark.models import SWITCHES, needs_triton  # noqa: E402
from mmincnext.benchmark.profiles import PROFILE_BLOCKS, PROFILE_VARIANTS, profile_block, rows_table  # noqa: E402
from mmincnext.benchmark.records import error_text  # noqa: E402
from mmincnext.benchmark.report import mode_panels  # noqa: E402
from mmincnext.benchmark.runner import run_models  # noqa: E402
from mmincnext.benchmark.timing import precision_flags  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# ours: the per-device default, deployed, and each switch (models.SWITCHES: the GEMM path, the fused mixer, ...),
# against timm's InceptionNeXt, ConvNeXt and ResNet-50.
T_MODELS = ','.join(['ours', 'ours_deploy', *SWITCHES, 'timm_incnext', 'convnext', 'resnet50'])
COMPILED_MODELS = 'ours,ours_fused,timm_incnext,convnext'
SIZE_MODELS = 'ours,ours_fused,timm_incnext,convnext'
# The paper's other architectures, where their configs exist: Table 10's ConvNeXt-T variants, the ablations.
PAPER_CONFIGS = [str(p.relative_to(REPO)) for folder in ('configs/convnext_variants', 'configs/ablation')
                 for p in sorted((REPO / folder).glob('*.py'))]


class Section(NamedTuple):
    name: str
    kind: str  # 'models' (tools/benchmark.py), 'mixer' (tools/benchmark_mixer.py) or 'profiles'
    argv: List[str]
    entry_s: float  # the longest one model (or profile) of it may take: none starts unless this still fits


# Most decisive first. The paper's protocol (--paper: batch 128, 224x224, classifiers with cross-entropy,
# cudnn.benchmark, TF32 on) under bf16 AMP, then where a block's time goes, the mixer as the network feeds it, TF32
# and fp16, compiled, S/B, the mixer compiled and in plain dtypes, the paper's other architectures, UperNet and
# Mask R-CNN.
SECTIONS = [
    Section('bf16_t', 'models', ['--paper', '--precision', 'bf16', '--models', T_MODELS], 20),
    Section('profiles_bf16', 'profiles', ['--precision', 'bf16', '--tf32', 'on', '--batch-size', '128',
                                          '--memory-format', 'channels_last'], 30),
    Section('mixer_bf16_amp', 'mixer', ['--precision', 'bf16', '--amp', '--batch-size', '128'], 20),
    Section('tf32_t', 'models', ['--paper', '--models', T_MODELS], 20),
    Section('fp16_t', 'models', ['--paper', '--precision', 'fp16', '--models', T_MODELS], 20),
    Section('bf16_t_compiled', 'models', ['--paper', '--precision', 'bf16', '--compile', '--memory-format',
                                          'channels_last', '--models', COMPILED_MODELS], 150),
    Section('bf16_s', 'models', ['--paper', '--precision', 'bf16', '--arch', 'small', '--models', SIZE_MODELS], 25),
    Section('bf16_b', 'models', ['--paper', '--precision', 'bf16', '--arch', 'base', '--models', SIZE_MODELS], 30),
    Section('mixer_bf16_compiled', 'mixer', ['--precision', 'bf16', '--amp', '--batch-size', '128', '--compile',
                                             '--memory-format', 'channels_last'], 90),
    Section('mixer_fp32', 'mixer', ['--batch-size', '128', '--tf32', 'on'], 20),
    Section('mixer_bf16', 'mixer', ['--precision', 'bf16', '--batch-size', '128'], 20),  # all bf16: the narrowest
    Section('paper_configs_bf16', 'models', ['--precision', 'bf16', '--tf32', 'on', '--batch-size', '128',
                                             '--train-batch-size', '128', '--memory-format', 'channels_last',
                                             '--models', 'ours,convnext'] +
            [a for c in PAPER_CONFIGS for a in ('--config', c)], 20),
    Section('dense_upernet_fp16', 'models', ['--dense', '--precision', 'fp16', '--modes', 'train',
                                             '--train-batch-size', '8', '--memory-format', 'nchw'], 60),
    Section('dense_mask_rcnn_fp16', 'models', ['--dense', '--task', 'det', '--precision', 'fp16', '--modes', 'train',
                                               '--train-batch-size', '2', '--img-size', '800', '1216',
                                               '--memory-format', 'nchw'], 60),
]
TIMING = ['--warmup', '3', '--rounds', '3', '--steps', '10']
DRY_RUN = ['--device', 'cpu', '--img-size', '64', '--batch-size', '2', '--warmup', '1', '--rounds', '1', '--steps',
           '1', '--threads', '1']
# The dry run's models: each code path once (ours, folded, each switch, a timm classifier; S/B: ours).
DRY_RUN_MODELS = ','.join(['ours', 'ours_deploy', *SWITCHES, 'timm_incnext'])
CUDA_TEST_FILES = ('test_precision.py', 'test_fused_mixer.py')  # found anywhere under tests/
FINAL_RESERVE_S = 10  # the last report's writing
WATCHDOG_MARGIN_S = 3


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='work_dirs/gpu_check', help='output folder (default work_dirs/gpu_check)')
    parser.add_argument('--limit-s', type=float, default=600,
                        help='wall-clock limit of the whole command, start-up included (default 600)')
    parser.add_argument('--tests-limit-s', type=float, default=120, help='time limit of the CUDA tests (default 120)')
    parser.add_argument('--sections', help=f'comma-separated subset of {["tests"] + [s.name for s in SECTIONS]}')
    parser.add_argument('--no-tests', action='store_true', help='skip the CUDA tests')
    parser.add_argument('--dry-run', action='store_true', help='CPU, tiny sizes, one step: checks the command')
    args = parser.parse_args(argv)
    known = {'tests'} | {s.name for s in SECTIONS}
    args.sections = set(args.sections.split(',')) if args.sections else None
    if args.sections and args.sections - known:
        parser.error(f'unknown sections {sorted(args.sections - known)}; sections are {sorted(known)}')
    return args


def dry_run_args(section: Section) -> list:
    """A section's arguments shrunk for the CPU: fewer models (each code path once), one layout, atto for the
    classifier sections, one paper config, and the dense sections in float32 (CPU float16 convolutions are emulated:
    minutes)."""
    argv = list(section.argv)
    if '--config' in argv:  # the first config only
        configs = [argv[i + 1] for i, a in enumerate(argv) if a == '--config']
        argv = _without(argv, '--config', 1) + ['--config', configs[0]]
    if '--models' in argv:
        argv[argv.index('--models') + 1] = 'ours' if '--arch' in argv or '--config' in argv else DRY_RUN_MODELS
    if '--memory-format' not in argv:
        argv += ['--memory-format', 'channels_last']
    if ('--paper' in argv or section.kind != 'models') and '--arch' not in argv:
        argv += ['--arch', 'atto']
    if '--dense' in argv and '--precision' in argv:
        argv[argv.index('--precision') + 1] = 'fp32'
    for flag, values in (('--img-size', 2), ('--batch-size', 1), ('--train-batch-size', 1)):  # DRY_RUN's instead
        argv = _without(argv, flag, values)
    if section.kind == 'models':
        argv += ['--train-batch-size', '2']
    return argv + DRY_RUN


def _without(argv: list, flag: str, values: int) -> list:
    """``argv`` without every ``flag`` and the (up to ``values``) numbers or paths that follow it."""
    kept, skip = [], 0
    for arg in argv:
        if arg == flag:
            skip = values
        elif skip and not arg.startswith('--'):
            skip -= 1
        else:
            skip = 0
            kept.append(arg)
    return kept


def machine() -> dict:
    info = dict(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
                cpu=platform.processor() or platform.machine())
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name()
        try:
            info['driver'] = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                                            capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            info['driver'] = None
    for name in ('timm', 'triton', 'mmengine', 'mmcv'):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    return info


def python_include_dir() -> str:
    """Where Triton looks for ``Python.h`` (triton/runtime/build.py: the default scheme's include path, Debian's
    'posix_local' read as 'posix_prefix')."""
    scheme = getattr(sysconfig, 'get_default_scheme', None) or sysconfig._get_default_scheme  # public from 3.10
    scheme = scheme()
    return sysconfig.get_paths(scheme='posix_prefix' if scheme == 'posix_local' else scheme)['include']


def triton_launcher_problem() -> Optional[str]:
    """Why Triton cannot build its kernel launcher here, or None. At a kernel's first run Triton compiles a small C
    file against ``Python.h`` with ``$CC``, else gcc, else clang; this compiles such a file the same way."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return 'Triton is not installed'
    cc = os.environ.get('CC') or shutil.which('gcc') or shutil.which('clang')
    if not cc or not shutil.which(cc):
        return (f'no C compiler ({"CC=" + cc if cc else "no $CC, gcc or clang"}): Triton builds its kernel launcher '
                'with one; install gcc or point CC at a compiler')
    include = python_include_dir()
    if not (Path(include) / 'Python.h').exists():
        return (f'no Python.h in {include}: Triton builds its kernel launcher against it; install the Python '
                f'development headers (e.g. python{sys.version_info.major}.{sys.version_info.minor}-dev)')
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / 'probe.c'
        source.write_text('#include <Python.h>\nint probe(void) { return Py_IsInitialized(); }\n')
        try:
            proc = subprocess.run([cc, '-fsyntax-only', f'-I{include}', str(source)], capture_output=True, text=True,
                                  timeout=60)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f'{cc} could not compile against Python.h: {error_text(error)}'
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ['(no message)'])[0]
        return f'{cc} could not compile against {include}/Python.h: {first}'
    return None


def run_tests(out: Path, limit_s: float, without_fused: bool) -> dict:
    """The CUDA cases of the numerics and fused-mixer tests (``-k cuda``; on the CPU all of them skip), in a
    subprocess under ``limit_s``, its output streamed to ``OUT/cuda_tests.log``."""
    start = time.time()
    files = [str(p.relative_to(REPO)) for name in CUDA_TEST_FILES for p in sorted((REPO / 'tests').rglob(name))]
    if not files:
        return dict(skipped=f'none of {CUDA_TEST_FILES} found under tests/')
    selection = 'cuda and not fused' if without_fused else 'cuda'
    log = out / 'cuda_tests.log'
    cmd = [sys.executable, '-m', 'pytest', '-v', '-p', 'no:cacheprovider', '-k', selection, '-o', 'addopts=',
           f'--junitxml={out / "cuda_tests.xml"}'] + files
    timed_out = False
    with open(log, 'w') as stream:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=stream, stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(os.environ, PYTHONUNBUFFERED='1'))
        try:
            returncode = proc.wait(timeout=max(limit_s, 0))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # pytest and anything it started
            proc.wait()
            returncode, timed_out = None, True
    lines = [line for line in log.read_text(errors='replace').splitlines() if line.strip()]
    last = lines[-1] if lines else '(no output)'
    summary = f'timed out after {limit_s:.0f} s; the log so far ends: {last}' if timed_out else last
    return dict(argv=['-k', selection] + files, returncode=returncode, timed_out=timed_out, summary=summary,
                seconds=time.time() - start)


def markdown(report: dict, title: str) -> str:
    """The tables: per section, the benchmark's own table (img/s per layout, best layout, peak memory, ratios to
    ConvNeXt and to timm's InceptionNeXt, error against float32), the mixer's, or the profiles' first rows."""
    m = report['machine']
    lines = [f'# {title}', '', f'GPU {m.get("gpu")}, driver {m.get("driver")}, torch {m["torch"]} (CUDA {m["cuda"]}), '
             f'timm {m["timm"]}, triton {m["triton"]}', '',
             f'Triton launcher: {report["launcher_problem"] or "builds (C compiler and Python.h found)"}']
    for name, section in report['sections'].items():
        lines += ['', f'## {name}: ' + ' '.join(section.get('argv', []))]
        results = [r for r in report['results'] if r['section'] == name]
        if 'skipped' in section or name == 'tests':
            lines.append(section.get('skipped') or section.get('summary'))
        elif section.get('kind') == 'profiles':
            for profile in report['profiles']:
                lines += ['', f'### {profile["variant"]}, {profile["block"]}',
                          profile.get('error') or profile.get('skipped') or rows_table(profile)]
        elif section.get('kind') == 'mixer':
            lines.append(mixer_table(results))
        else:
            lines.append(model_table(results))
        if 'error' in section:
            lines.append(f'section stopped: {section["error"]}')
    return '\n'.join(lines) + '\n'


class Check:
    """One run: the report, its files, the clock."""

    def __init__(self, args):
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.out / 'gpu_check.jsonl'
        self.jsonl.unlink(missing_ok=True)
        (self.out / 'profiles.txt').write_text('')
        self.started = min(STARTED, float(os.environ.get('GPU_CHECK_STARTED') or STARTED))
        self.limit_at = self.started + args.limit_s
        self.deadline = self.limit_at - FINAL_RESERVE_S
        self.report = dict(machine=machine(), dry_run=args.dry_run, limit_s=args.limit_s, launcher_problem=None,
                           sections={}, results=[], profiles=[])
        self.title = f'{self.report["machine"].get("gpu") or "CPU (dry run)"}, torch {torch.__version__}'

    def elapsed(self) -> float:
        return time.time() - self.started

    def save(self, plot: bool = False):
        (self.out / 'gpu_check.json').write_text(json.dumps(self.report, indent=1))
        (self.out / 'gpu_check.md').write_text(markdown(self.report, self.title))
        if plot:
            self.plot()

    def plot(self):
        panels = []
        for name in self.report['sections']:
            results = [r for r in self.report['results'] if r['section'] == name and 'img_per_s' in r]
            panels += mode_panels(results, prefix=f'{name}: ')
        try:
            plot_throughput(panels, str(self.out / 'gpu_check.png'), self.title, columns=2, panel_size=(6, 2.6),
                            value_format='%.0f')
        except ImportError:  # no matplotlib: the tables still say it all
            pass

    def recorder(self, section: str) -> Recorder:

        def file_under_section(result: dict):
            self.report['results'].append(dict(result, section=section))
            self.save()
        return Recorder(str(self.jsonl), listeners=[file_under_section])

    def run_section(self, section: Section):
        start = time.time()
        entry = dict(kind=section.kind)
        self.report['sections'][section.name] = entry
        deadline = self.deadline - section.entry_s
        if time.time() > deadline:
            entry['skipped'] = (f'budget: {self.elapsed():.0f} s of {self.args.limit_s:.0f} s spent, a model of '
                                f'this section may take {section.entry_s:.0f} s')
            return
        if self.args.dry_run and '--compile' in section.argv:
            entry['skipped'] = 'dry run: CPU compilation would take minutes'
            return
        if '--config' not in section.argv and section.name.startswith('paper_configs'):
            entry['skipped'] = 'none of the paper configs (configs/convnext_variants, configs/ablation) found'
            return
        if '--dense' in section.argv:
            library = 'mmdet' if 'det' in section.argv else 'mmseg'
            if not all(_importable(m) for m in (library, 'mmcv', 'mmcv._ext')):
                entry['skipped'] = f'needs {library} and mmcv with its compiled ops'
                return
        argv = dry_run_args(section) if self.args.dry_run else section.argv + ['--device', 'cuda'] + TIMING
        entry['argv'] = argv
        problem = self.report['launcher_problem']
        try:
            if section.kind == 'profiles':
                self.run_profiles(argv, deadline, problem)
            else:
                parse = parse_benchmark_args if section.kind == 'models' else parse_mixer_args
                settings = parse(argv)
                settings.keep_going = True
                run = run_models if section.kind == 'models' else run_mixer
                run(settings, self.recorder(section.name), deadline=deadline, triton_problem=problem)
        except Exception as error:  # noqa: BLE001  (what is not one model's: record it, go on to the next section)
            entry['error'] = error_text(error)
        entry['seconds'] = time.time() - start
        mine = self.report['profiles'] if section.kind == 'profiles' else [
            r for r in self.report['results'] if r['section'] == section.name]
        entry['results'] = len(mine)
        entry['problems'] = sum(1 for r in mine if 'error' in r or 'skipped' in r)

    def run_profiles(self, argv: list, deadline: float, problem: Optional[str]):
        """The profiler's table of one block of stage 1 and one of stage 3, default and fused mixer, a training
        step under the section's autocast, with the grid's flags (cudnn.benchmark, TF32)."""
        settings = parse_mixer_args(argv)  # the same size, precision, flags and device arguments
        with precision_flags(settings.tf32, settings.device):
            for variant in PROFILE_VARIANTS:
                for block in PROFILE_BLOCKS:
                    profile = self.profile(variant, block, settings, deadline, problem)
                    text = profile.get('table') or profile.get('error') or profile['skipped']
                    with open(self.out / 'profiles.txt', 'a') as f:
                        f.write(f'== {variant}, {block}\n{text}\n\n')
                    self.report['profiles'].append({k: v for k, v in profile.items() if k != 'table'})
                    self.save()

    @staticmethod
    def profile(variant: str, block: str, settings, deadline: float, problem: Optional[str]) -> dict:
        if problem and needs_triton(variant):
            return dict(variant=variant, block=block, skipped=problem)
        if time.time() > deadline:
            return dict(variant=variant, block=block, skipped='not started: past the deadline')
        try:
            return profile_block(variant, block, arch=settings.arch, device=settings.device,
                                 precision=settings.precision, batch=settings.batch_size, img_size=settings.img_size,
                                 memory_format=settings.memory_formats[0], warmup=settings.warmup,
                                 steps=max(settings.steps // 2, 1))
        except Exception as error:  # noqa: BLE001  (one profile's failure: record it, go on)
            return dict(variant=variant, block=block, error=error_text(error))


def _importable(module: str) -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a submodule of a package that is not there
        return False


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit('gpu_check: no CUDA device (torch.cuda.is_available() is False); --dry-run checks on CPU')
    check = Check(args)
    if not args.dry_run:  # should anything hang, end before the command's limit, saying where
        faulthandler.dump_traceback_later(max(check.limit_at - WATCHDOG_MARGIN_S - time.time(), 1), exit=True)
    problem = check.report['launcher_problem'] = triton_launcher_problem()
    if problem:
        print(f'[gpu_check] Triton cannot build its kernel launcher here: {problem}. Every model runs eager; the '
              'fused-mixer variants and tests are skipped.', flush=True)
        os.environ['MMINCNEXT_FUSED_MIXER'] = '0'
    wanted = args.sections
    check.save()
    try:
        if not args.no_tests and (wanted is None or 'tests' in wanted):
            limit = min(args.tests_limit_s, check.deadline - time.time())
            check.report['sections']['tests'] = run_tests(check.out, limit, without_fused=problem is not None) \
                if limit > 0 else dict(skipped=f'budget: {check.elapsed():.0f} s of {args.limit_s:.0f} s spent')
            tests = check.report['sections']['tests']
            print(f'[gpu_check] tests: {tests.get("summary") or tests["skipped"]} ({check.elapsed():.0f} s)',
                  flush=True)
            check.save()
        for section in SECTIONS:
            if wanted is not None and section.name not in wanted:
                continue
            check.run_section(section)
            entry = check.report['sections'][section.name]
            done = entry.get('skipped') or entry.get('error') or (f'{entry["results"]} results '
                                                                  f'({entry["problems"]} not timed)')
            print(f'[gpu_check] {section.name}: {done} ({check.elapsed():.0f} s in all)', flush=True)
            check.save(plot=True)
    finally:
        faulthandler.cancel_dump_traceback_later()
    check.report['seconds'] = check.elapsed()
    check.save(plot=True)
    return check.report


if __name__ == '__main__':
    main()
