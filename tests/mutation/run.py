"""Mutation check: put each named bug of tests/mutation/mutants.py into a temporary copy of the repository, run the
tests that must catch it, and report which bugs the suite kills and which survive (``make mutation``).

    python tests/mutation/run.py                  # every mutant; exit status 1 if one survives
    python tests/mutation/run.py --list           # the mutants and their tests
    python tests/mutation/run.py --only 'BN folding without eps' --keep

The working tree is never changed: the copy holds the files git tracks or would track (no venvs, no work_dirs), and
its tests run with this interpreter, the copy first on ``sys.path``. Before any mutant runs, every snippet must be
found exactly once (a refactor that moved one fails here, naming it) and each mutant's tests must pass unmutated.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from mutants import MUTANTS  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--only', nargs='+', metavar='NAME', help='run only these mutants (names as --list shows)')
    parser.add_argument('--list', action='store_true', help='list the mutants and their tests, run nothing')
    parser.add_argument('--timeout', type=float, default=900, help='seconds per pytest run; a mutant that runs '
                        'longer counts as killed (timeout). Default 900')
    parser.add_argument('--json', metavar='PATH', help='also write the results as JSON')
    parser.add_argument('--keep', action='store_true', help='keep the temporary copy (its path is printed)')
    return parser.parse_args(argv)


def repository_files(repo: Path) -> list:
    """What git tracks, and untracked files it would not ignore: the code as it stands, without venvs or outputs."""
    out = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=repo,
                         check=True, capture_output=True).stdout
    return [name for name in out.decode().split('\0') if name and (repo / name).is_file()]


def copy_repository(repo: Path, dest: Path) -> None:
    for name in repository_files(repo):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, target, follow_symlinks=False)
    mim = dest / 'mmincnext' / '.mim'  # setup.py's links, which the config-prefix tests read
    mim.mkdir(exist_ok=True)
    for name in ('configs', 'tools', 'model-index.yml'):
        (mim / name).symlink_to(Path('..', '..', name))


def stale(mutants) -> list:
    """Mutants whose snippet is not found exactly once in the working tree's file."""
    problems = []
    for m in mutants:
        path = REPO / m.path
        count = path.read_text().count(m.original) if path.is_file() else 0
        if count != 1 or m.original == m.replacement:
            problems.append(f'{m.name}: {m.path} holds its snippet {count} times (needs exactly 1):\n'
                            f'    {m.original!r}')
    return problems


def run_pytest(copy: Path, tests, env_extra, timeout: float, basetemp: Path):
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE='1', **env_extra)
    env.pop('PYTEST_ADDOPTS', None)
    cmd = [sys.executable, '-m', 'pytest', *tests, '-q', '-rfE', '-p', 'no:cacheprovider', '-o',
           'addopts=', f'--basetemp={basetemp}']
    start = time.perf_counter()
    try:
        result = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 'timeout', time.perf_counter() - start, ''
    shutil.rmtree(basetemp, ignore_errors=True)
    return result.returncode, time.perf_counter() - start, result.stdout + result.stderr


def summary_line(output: str) -> str:
    lines = [line for line in output.splitlines() if re.search(r'\d+ (passed|failed|error|skipped|deselected)', line)]
    return lines[-1].strip('= ') if lines else output.strip().splitlines()[-1] if output.strip() else ''


def failures(output: str) -> list:
    """The test ids pytest's short summary reports as failed or erroring."""
    return [line.split(' - ')[0].split(' ', 1)[1] for line in output.splitlines()
            if line.startswith(('FAILED ', 'ERROR '))]


def check_import(copy: Path) -> None:
    out = subprocess.run([sys.executable, '-c', 'import mmincnext; print(mmincnext.__file__)'], cwd=copy,
                         env=dict(os.environ, PYTHONPATH=str(copy)), capture_output=True, text=True)
    if out.returncode or not Path(out.stdout.strip()).resolve().is_relative_to(copy.resolve()):
        sys.exit(f'the copy does not import its own mmincnext: {out.stdout.strip()} {out.stderr[-2000:]}')


def main(argv=None) -> int:
    args = parse_args(argv)
    mutants = MUTANTS
    names = [m.name for m in MUTANTS]
    if len(set(names)) != len(names):
        sys.exit('two mutants share a name: ' + ', '.join(sorted({n for n in names if names.count(n) > 1})))
    if args.only:
        unknown = set(args.only) - set(names)
        if unknown:
            sys.exit(f'no mutant named {sorted(unknown)}; see --list')
        mutants = [m for m in MUTANTS if m.name in args.only]
    if args.list:
        for m in mutants:
            print(f'{m.name}\n    {m.path}: {m.bug}\n    tests: {shlex.join(m.tests)}')
        return 0
    problems = stale(mutants)
    if problems:
        print('Snippets not found: update tests/mutation/mutants.py to the code as it is now.\n' +
              '\n'.join(problems), file=sys.stderr)
        return 2

    workspace = Path(tempfile.mkdtemp(prefix='mmincnext-mutation-'))
    copy, basetemp = workspace / 'repo', workspace / 'pytest'
    results = []
    try:
        copy_repository(REPO, copy)
        check_import(copy)
        print(f'copy: {copy} ({len(mutants)} mutants)', flush=True)

        # Unmutated, every selection must pass and run at least one test: otherwise each mutant would look killed
        # (or survive because everything skipped).
        baselines = {}
        for m in mutants:
            key = (tuple(m.tests), tuple(sorted(m.env.items())))
            if key in baselines:
                continue
            code, seconds, output = run_pytest(copy, m.tests, m.env, args.timeout, basetemp)
            baselines[key] = seconds
            line = summary_line(output)
            print(f'baseline {seconds:6.1f} s  {shlex.join(m.tests)}: {line}', flush=True)
            if code != 0 or ' passed' not in line:
                print(output[-6000:], file=sys.stderr)
                print(f'The unmutated tests {m.tests} do not pass here: fix them before checking mutants.',
                      file=sys.stderr)
                return 2

        for m in mutants:
            path = copy / m.path
            original = path.read_text()
            path.write_text(original.replace(m.original, m.replacement, 1))
            try:
                code, seconds, output = run_pytest(copy, m.tests, m.env, args.timeout, basetemp)
            finally:
                path.write_text(original)
            status = 'timeout' if code == 'timeout' else 'survived' if code == 0 else 'killed'
            # pytest's 5 (nothing collected) or 2-4 (usage, internal errors) are not a test catching the bug
            if code in (2, 3, 4, 5):
                status = 'error'
            failed = failures(output) if status == 'killed' else []
            by = (failed[0] + (f' and {len(failed) - 1} more' if len(failed) > 1 else '')) if failed else \
                summary_line(output)
            results.append(dict(name=m.name, path=m.path, status=status, seconds=round(seconds, 1), bug=m.bug,
                                failed=failed))
            print(f'{status:8s} {seconds:6.1f} s  {m.name}  ({by})', flush=True)
            if status == 'error':
                print(output[-4000:], file=sys.stderr)
    finally:
        if args.keep:
            print(f'kept {workspace}')
        else:
            shutil.rmtree(workspace, ignore_errors=True)

    killed = sum(r['status'] in ('killed', 'timeout') for r in results)
    survivors = [r for r in results if r['status'] == 'survived']
    errors = [r for r in results if r['status'] == 'error']
    print(f'\nkill rate: {killed}/{len(results)} ({100 * killed / len(results):.0f}%)')
    for r in survivors:
        print(f'SURVIVED: {r["name"]} ({r["path"]}): {r["bug"]}')
    for r in errors:
        print(f'ERROR (pytest could not run the tests): {r["name"]}')
    if args.json:
        Path(args.json).write_text(json.dumps(dict(killed=killed, total=len(results), results=results), indent=1))
    return 1 if survivors or errors else 0


if __name__ == '__main__':
    sys.exit(main())
