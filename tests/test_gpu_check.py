"""The one prepared GPU check (tools/gpu_check.py, `make gpu-check`) runs here as its dry run: every section's code
on the CPU at tiny sizes for one step, with the same recording (JSONL as it goes, JSON, PNG) a GPU run uses."""
import json

from conftest import load_tool


def test_dry_run_runs_every_section_and_records(tmp_path):
    gpu_check = load_tool('gpu_check')
    report = gpu_check.main(['--dry-run', '--out', str(tmp_path)])
    sections = report['sections']
    assert list(sections) == ['tests'] + [name for name, _ in gpu_check.SECTIONS]
    assert sections['tests']['returncode'] == 0, (tmp_path / 'cuda_tests.log').read_text()
    for name, args in gpu_check.SECTIONS:
        if '--compile' in args:
            assert 'dry run' in sections[name]['skipped']
        else:
            assert 'error' not in sections[name], sections[name]
            assert sections[name]['n'] > 0
    lines = (tmp_path / 'gpu_check.jsonl').read_text().splitlines()
    assert len(lines) == len(report['results']) == sum(s.get('n', 0) for s in sections.values())
    saved = json.loads((tmp_path / 'gpu_check.json').read_text())
    assert saved['results'] == report['results'] and saved['machine']['torch']
    assert (tmp_path / 'gpu_check.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    tables = (tmp_path / 'gpu_check.md').read_text()
    assert '## bf16_t:' in tables and '| ours_deploy |' in tables and 'x timm_incnext' in tables
    assert '## bf16_t_compiled:' in tables and 'dry run' in tables
    # The paper sections time classifiers with heads: ours, folded ours and timm's in both modes (not folded).
    paper = [r for r in report['results'] if r['section'] == 'bf16_t']
    assert {(r['model'], r['mode']) for r in paper} == {
        ('ours', 'infer'), ('ours', 'train'), ('ours_deploy', 'infer'), ('ours_fused', 'infer'),
        ('ours_fused', 'train'), ('timm_incnext', 'infer'), ('timm_incnext', 'train')}
    assert all(r['classifier'] and r['precision'] == 'bf16' and 0 < r['rel_err_vs_fp32'] < 0.1 for r in paper)
    mixer = [r for r in report['results'] if r['section'] == 'mixer_fp32']
    assert {r['impl'] for r in mixer} == {'eager'} and len(mixer) == 4 * 2  # 4 stages x infer/train, one layout


def test_budget_stops_starting_sections(tmp_path):
    gpu_check = load_tool('gpu_check')
    report = gpu_check.main(['--dry-run', '--no-tests', '--budget-s', '0', '--out', str(tmp_path)])
    assert report['results'] == []
    assert all('budget' in s['skipped'] for s in report['sections'].values())
    assert (tmp_path / 'gpu_check.json').exists()
