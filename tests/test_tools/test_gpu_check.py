"""The one prepared GPU check (tools/gpu_check.py, `make gpu-check`) runs here as its dry run: every section's code
on the CPU at tiny sizes for one step, with the same recording (JSONL as it goes, JSON, markdown, PNG, profiles) a
GPU run uses; and each way it must survive a first GPU run: a model that fails, tests that hang, the time limit, no C
compiler or Python.h for Triton's launcher."""
import importlib.util
import json

import pytest
from helpers import load_tool

from mmincnext import compat
from mmincnext.benchmark.models import OURS_VARIANTS, SWITCHES


@pytest.fixture
def gpu_check():
    import torch
    threads = torch.get_num_threads()
    yield load_tool('gpu_check')
    torch.set_num_threads(threads)


def dense_available(library: str) -> bool:
    return all(importlib.util.find_spec(m) for m in (library, 'mmcv')) and importlib.util.find_spec('mmcv._ext')


def test_dry_run_runs_every_section_and_records(gpu_check, tmp_path):
    report = gpu_check.main(['--dry-run', '--out', str(tmp_path)])
    sections = report['sections']
    assert list(sections) == ['tests'] + [s.name for s in gpu_check.SECTIONS]
    assert sections['tests']['returncode'] == 0, (tmp_path / 'cuda_tests.log').read_text()
    for section in gpu_check.SECTIONS:
        entry = sections[section.name]
        if '--compile' in section.argv:
            assert 'dry run' in entry['skipped']
        elif section.name.startswith('paper_configs') and not gpu_check.PAPER_CONFIGS:
            assert 'paper configs' in entry['skipped']
        elif '--dense' in section.argv and not dense_available('mmdet' if 'det' in section.argv else 'mmseg'):
            assert 'needs' in entry['skipped']
        elif section.name.startswith('paper_configs') and not importlib.util.find_spec('mmpretrain'):
            # Those configs inherit mmpretrain's: reading them needs it (the --models entries still run).
            assert entry['results'] > entry['problems'] > 0, (section.name, entry)
            assert all('mmpretrain' in r['error'] for r in report['results']
                       if r['section'] == section.name and ('error' in r or 'skipped' in r))
        elif 'fp16' in section.argv and not compat.CPU_FP16_AUTOCAST:  # the dry run's CPU, torch < 2.2
            assert entry['results'] == entry['problems'] > 0, (section.name, entry)
            assert all('CPU float16 autocast needs torch >= 2.2' in r['skipped'] for r in report['results']
                       if r['section'] == section.name)
        else:
            assert 'error' not in entry and 'skipped' not in entry, entry
            assert entry['results'] > 0 and entry['problems'] == 0, (section.name, entry)
    lines = (tmp_path / 'gpu_check.jsonl').read_text().splitlines()
    assert len(lines) == len(report['results']) == sum(s.get('results', 0) for s in sections.values()
                                                       if s.get('kind') != 'profiles')
    assert [json.loads(line) for line in lines] == [{k: v for k, v in r.items() if k != 'section'}
                                                    for r in report['results']]
    saved = json.loads((tmp_path / 'gpu_check.json').read_text())
    assert saved['results'] == report['results'] and saved['machine']['torch']
    assert (tmp_path / 'gpu_check.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert len(list(tmp_path.iterdir())) <= 8  # what a GPU machine's output folder hands back
    tables = (tmp_path / 'gpu_check.md').read_text()
    assert '## bf16_t:' in tables and '| ours_deploy |' in tables and 'x timm_incnext' in tables
    assert '## bf16_t_compiled:' in tables and 'dry run' in tables
    # The paper sections time classifiers with heads: ours, folded ours, each switch and timm's.
    paper = [r for r in report['results'] if r['section'] == 'bf16_t']
    expected = {('ours', 'infer'), ('ours', 'train'), ('ours_deploy', 'infer'), ('timm_incnext', 'infer'),
                ('timm_incnext', 'train')} | {(s, mode) for s in SWITCHES for mode in ('infer', 'train')}
    if report['launcher_problem']:  # (no C compiler or Python.h here: the fused variants are recorded as skipped)
        expected = {e for e in expected if e[0] != 'ours_fused'}
    assert {(r['model'], r['mode']) for r in paper if 'img_per_s' in r} == expected
    assert all(r['classifier'] and r['precision'] == 'bf16' and 0 < r['rel_err_vs_fp32'] < 0.1
               for r in paper if 'img_per_s' in r)
    mixer = [r for r in report['results'] if r['section'] == 'mixer_fp32']
    assert {r['impl'] for r in mixer} == {'eager'} and len(mixer) == 4 * 2  # 4 stages x infer/train, one layout
    amp = [r for r in report['results'] if r['section'] == 'mixer_bf16_amp']
    assert {r['in_dtype'] for r in amp} == {'float32', 'bfloat16'}
    # The profiles: one block of stage 1 and one of stage 3, default and fused; on the CPU the operators' table.
    profiles = report['profiles']
    assert [(p['variant'], p['block']) for p in profiles] == [
        (v, b) for v in ('ours', 'ours_fused') for b in ('stages.0.blocks.1', 'stages.2.blocks.1')]
    assert all(p['rows'] and p['input_dtype'] == 'float32' for p in profiles if 'skipped' not in p)
    text = (tmp_path / 'profiles.txt').read_text()
    assert text.count('== ') == 4 and 'Self CPU' in text
    assert '### ours, stages.2.blocks.1' in tables and '| kernel / operator |' in tables


def test_failures_are_recorded_and_the_check_goes_on(gpu_check, tmp_path, monkeypatch):
    """No C compiler: said once, the fused variants skipped (eager runs on); a model that fails: its error recorded
    and the rest of the section timed; tests past their time limit: stopped, their log kept."""
    monkeypatch.setenv('CC', str(tmp_path / 'no-such-cc'))
    monkeypatch.setitem(OURS_VARIANTS, 'ours_gemm', dict(fast_path='no_such_path'))
    report = gpu_check.main(['--dry-run', '--out', str(tmp_path), '--tests-limit-s', '1', '--sections',
                             'tests,bf16_t,profiles_bf16,mixer_bf16_amp'])
    problem = report['launcher_problem']
    assert 'no C compiler' in problem and 'no-such-cc' in problem
    tests = report['sections']['tests']
    assert tests['timed_out'] and tests['returncode'] is None and 'timed out after 1 s' in tests['summary']
    assert (tmp_path / 'cuda_tests.log').exists()
    paper = [r for r in report['results'] if r['section'] == 'bf16_t']
    timed = {'ours', 'ours_deploy', 'timm_incnext'} | set(SWITCHES) - {'ours_gemm', 'ours_fused'}
    assert {r['model'] for r in paper if 'img_per_s' in r} == timed
    errors = {r['model']: r['error'] for r in paper if 'error' in r}
    assert list(errors) == ['ours_gemm'] and errors['ours_gemm'].startswith('ValueError') and \
        'no_such_path' in errors['ours_gemm']
    skipped = [r for r in paper if 'skipped' in r]
    assert [r['model'] for r in skipped] == ['ours_fused'] and skipped[0]['skipped'] == problem
    assert report['sections']['bf16_t']['problems'] == 2
    assert [p['variant'] for p in report['profiles'] if p.get('skipped') == problem] == ['ours_fused'] * 2
    assert all(p['rows'] for p in report['profiles'] if p['variant'] == 'ours')
    tables = (tmp_path / 'gpu_check.md').read_text()
    assert f'Triton launcher: {problem}' in tables and '- ours_gemm (channels_last): error: ValueError' in tables


def test_launcher_probe_names_a_missing_python_h(gpu_check, tmp_path, monkeypatch):
    pytest.importorskip('triton')
    monkeypatch.setattr(gpu_check, 'python_include_dir', lambda: str(tmp_path))
    if gpu_check.shutil.which('gcc') or gpu_check.shutil.which('clang'):
        monkeypatch.delenv('CC', raising=False)
        assert f'no Python.h in {tmp_path}' in gpu_check.triton_launcher_problem()
        (tmp_path / 'Python.h').write_text('#error not the real header\n')
        assert 'could not compile against' in gpu_check.triton_launcher_problem()


def test_time_limit_stops_starting_sections(gpu_check, tmp_path):
    report = gpu_check.main(['--dry-run', '--limit-s', '0', '--out', str(tmp_path)])
    assert report['results'] == [] and list(report['sections']) == ['tests'] + [s.name for s in gpu_check.SECTIONS]
    assert all('budget' in s['skipped'] for s in report['sections'].values())
    assert (tmp_path / 'gpu_check.json').exists()


def test_dry_run_arguments():
    gpu_check = load_tool('gpu_check')
    by_name = {s.name: s for s in gpu_check.SECTIONS}
    argv = gpu_check.dry_run_args(by_name['dense_mask_rcnn_fp16'])
    assert '800' not in argv and argv[argv.index('--img-size') + 1:argv.index('--img-size') + 2] == ['64']
    assert argv[argv.index('--precision') + 1] == 'fp32'
    section = gpu_check.Section('paper_configs_x', 'models', ['--models', 'ours,convnext', '--config', 'a.py',
                                                               '--config', 'b.py', '--batch-size', '128'], 1)
    argv = gpu_check.dry_run_args(section)
    assert argv.count('--config') == 1 and 'a.py' in argv and 'b.py' not in argv and '128' not in argv
