"""The benchmark library (mmincnext.benchmark) and its command lines (tools/benchmark.py, tools/benchmark_mixer.py):
the report's arithmetic on made-up timings with known answers, the tools on tiny models, what the mixer benchmark
feeds and counts. Speed itself is never asserted here."""
import json

import pytest
import timm
import torch
from helpers import load_tool, timm_backbone_params

from mmincnext.benchmark import best_per_model, mixer_table, model_table, speedup
from mmincnext.benchmark.cli import parse_args, parse_mixer_args
from mmincnext.benchmark.mixer import minimum_bytes, mixer_shapes, observe_inputs, stage_of
from mmincnext.benchmark.models import OURS_VARIANTS, build_candidate
from mmincnext.benchmark.profiles import profile_block
from mmincnext.benchmark.runner import run_models


@pytest.fixture
def restore_threads():
    """The tools' --threads is process-wide: put torch's thread count back afterwards."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# One thread: tiny ops on a loaded machine wait far longer for a second OpenMP thread than they compute.
TINY_RUN = ['--arch', 'atto', '--img-size', '64', '--batch-size', '2', '--train-batch-size', '2', '--rounds', '1',
            '--threads', '1']


def timing(model, mode, memory_format, img_per_s, peak_mem_mb=None, rel_err=None, batch=16):
    return dict(model=model, mode=mode, memory_format=memory_format, img_per_s=img_per_s, peak_mem_mb=peak_mem_mb,
                rel_err_vs_fp32=rel_err, batch=batch)


def table_rows(table: str, mode: str) -> dict:
    """model -> {column header: cell} of one mode's markdown table."""
    lines = table.split(f'\n{mode} (batch ')[1].split('\n\n')[0].splitlines()[1:]
    header = [c.strip() for c in lines[0].strip('|').split('|')]
    rows = [[c.strip() for c in line.strip('|').split('|')] for line in lines[2:] if line.startswith('|')]
    return {row[0]: dict(zip(header, row)) for row in rows}


def test_report_ratios_and_best_layout_on_known_timings():
    """Made-up timings with known answers: ours 200 img/s against timm's 100 is 2.00x (not 0.50), each model is
    compared in its faster layout, and the peak memory and error shown are that layout's."""
    results = [
        timing('ours', 'infer', 'nchw', 150.0, peak_mem_mb=111, rel_err=9e-3),
        timing('ours', 'infer', 'channels_last', 200.0, peak_mem_mb=222, rel_err=1e-3),
        timing('timm_incnext', 'infer', 'nchw', 100.0, peak_mem_mb=333, rel_err=2e-3),
        timing('timm_incnext', 'infer', 'channels_last', 80.0, peak_mem_mb=444, rel_err=8e-3),
        timing('convnext', 'infer', 'nchw', 40.0, peak_mem_mb=555, rel_err=3e-3),
        timing('convnext', 'infer', 'channels_last', 50.0, peak_mem_mb=666, rel_err=7e-3),
        timing('ours', 'train', 'nchw', 30.0, batch=8),
        timing('convnext', 'train', 'nchw', 60.0, batch=8),
    ]
    best = best_per_model(results, 'infer')
    assert {name: r['memory_format'] for name, r in best.items()} == dict(
        ours='channels_last', timm_incnext='nchw', convnext='channels_last')
    assert speedup(best['ours'], best['timm_incnext']) == 2.0
    table = model_table(results)
    infer = table_rows(table, 'infer')
    assert infer['ours'] == {'model': 'ours', 'img/s channels_last': '200.00', 'img/s nchw': '150.00',
                             'best': 'channels_last', 'peak MiB': '222', 'x convnext': '4.00',
                             'x timm_incnext': '2.00', 'rel.err vs fp32': '1.0e-03'}
    assert infer['timm_incnext']['x timm_incnext'] == '1.00' and infer['timm_incnext']['x convnext'] == '2.00'
    assert infer['timm_incnext']['peak MiB'] == '333' and infer['timm_incnext']['rel.err vs fp32'] == '2.0e-03'
    assert infer['convnext']['x convnext'] == '1.00' and infer['convnext']['x timm_incnext'] == '0.50'
    # A mode without the timm reference says so rather than dividing by something else; the slower model is < 1.
    train = table_rows(table, 'train')
    assert train['ours']['x convnext'] == '0.50' and train['ours']['x timm_incnext'] == '-'
    assert '\ntrain (batch 8)' in table and '\ninfer (batch 16)' in table


def test_report_names_models_not_timed():
    results = [timing('ours', 'infer', 'nchw', 10.0),
               dict(model='ours_fused', mode='train', memory_format='nchw', error='OutOfMemoryError: CUDA out of'),
               dict(model='ours_gemm', mode=None, memory_format='channels_last', skipped='no C compiler')]
    table = model_table(results)
    assert '- ours_fused (nchw, train): error: OutOfMemoryError: CUDA out of' in table
    assert '- ours_gemm (channels_last): skipped: no C compiler' in table
    assert list(table_rows(table, 'infer')) == ['ours']


def test_benchmark_tool_runs_tiny(restore_threads, tmp_path):
    pytest.importorskip('matplotlib')
    benchmark = load_tool('benchmark')
    json_path, png_path, jsonl = tmp_path / 'bench.json', tmp_path / 'bench.png', tmp_path / 'runs/bench.jsonl'
    results = benchmark.main(['--models', 'ours,ours_deploy,timm_incnext', '--json', str(json_path), '--plot',
                              str(png_path), '--jsonl', str(jsonl)] + TINY_RUN)
    # ours and timm's: 2 memory formats x 2 modes; the deployed model: inference only.
    assert len(results) == 2 * 2 + 2 * 2 + 2
    assert all(r['img_per_s'] > 0 and r['peak_mem_mb'] > 0 for r in results)
    assert json.loads(json_path.read_text())['results'] == results
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == results  # as measured, in order
    assert png_path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_benchmark_bf16_reports_error(restore_threads):
    benchmark = load_tool('benchmark')
    results = benchmark.main(['--models', 'ours', '--precision', 'bf16', '--memory-format', 'channels_last'] +
                             TINY_RUN)
    assert {r['mode'] for r in results} == {'infer', 'train'}
    assert all(0 < r['rel_err_vs_fp32'] < 0.1 for r in results)


def test_mlp_gemms_are_the_models_gemms(restore_threads):
    """The GEMM limit runs, per block, fc1 and fc2 at the token counts and widths the backbone's blocks see (odd sizes
    included), and its ratio column is the share of a model's time those GEMMs take."""
    from mmincnext.benchmark.models import MLPGemms
    from mmincnext.models import InceptionNeXt
    model = InceptionNeXt('atto', out_norms=False).eval()
    seen = []
    for stage in model.stages:
        for block in stage.blocks:
            block.register_forward_hook(lambda m, args, out: seen.append(
                (args[0].shape[0] * args[0].shape[2] * args[0].shape[3], m.mlp.fc1.weight.shape[:2])))
    with torch.no_grad():
        model(torch.randn(3, 3, 75, 97))
    gemms = MLPGemms('atto', 3, (75, 97), torch.float32)
    expected = [(len(getattr(gemms, f'tokens{i}')), tuple(getattr(gemms, f'fc1_{i}').shape))
                for i, depth in enumerate(gemms.depths) for _ in range(depth)]
    assert expected == [(tokens, tuple(shape)) for tokens, shape in seen]
    results = run_models(parse_args(['--models', 'ours_deploy,mlp_gemms', '--modes', 'infer', '--memory-format',
                                     'channels_last', '--precision', 'bf16', '--cast-weights'] + TINY_RUN))
    assert [(r['model'], r['cast_weights'], r['rel_err_vs_fp32'] is None) for r in results] == [
        ('ours_deploy', True, False), ('mlp_gemms', True, True)]
    assert 0 < results[0]['rel_err_vs_fp32'] < 0.1  # against the float32 model it was cast from
    rows = table_rows(model_table(results), 'infer')
    assert float(rows['ours_deploy']['x mlp_gemms']) == pytest.approx(
        results[0]['img_per_s'] / results[1]['img_per_s'], abs=0.01)
    with pytest.raises(SystemExit):
        parse_args(['--cast-weights', '--modes', 'infer'])  # fp32: nothing to cast
    with pytest.raises(SystemExit):
        parse_args(['--cast-weights', '--precision', 'bf16'])  # training in bf16 weights is not timed


def test_a_failing_model_is_recorded_and_the_others_run(restore_threads, monkeypatch):
    monkeypatch.setitem(OURS_VARIANTS, 'ours_broken', dict(fast_path='no_such_path'))
    argv = ['--models', 'ours_broken,ours', '--modes', 'infer', '--memory-format', 'nchw'] + TINY_RUN
    with pytest.raises(ValueError, match='fast_path'):  # a user at a terminal sees the error itself
        run_models(parse_args(argv))
    results = run_models(parse_args(argv + ['--keep-going']))
    assert [(r['model'], 'error' in r) for r in results] == [('ours_broken', True), ('ours', False)]
    assert 'ValueError' in results[0]['error'] and 'fast_path' in results[0]['error']


def test_any_backbone_by_config(restore_threads, tmp_path):
    """``--config`` times the config's ``model.backbone`` (here the atto backbone under a classifier config)."""
    config = tmp_path / 'incnext_atto_cls.py'
    config.write_text("model = dict(type='ImageClassifier', backbone=dict(type='InceptionNeXt', arch='atto', "
                      "out_indices=(3, ), out_norms=False), head=dict(type='LinearClsHead'))\n")
    settings = parse_args(['--config', str(config)] + TINY_RUN)
    assert settings.models == []  # with --config, only what is asked for
    cand = build_candidate(None, settings, str(config))
    assert cand.name == 'incnext_atto_cls'
    assert sum(p.numel() for p in cand.module.parameters()) == timm_backbone_params('atto')
    results = run_models(parse_args(['--config', str(config), '--modes', 'infer', '--memory-format', 'nchw'] +
                                    TINY_RUN))
    assert [(r['model'], r['mode']) for r in results] == [('incnext_atto_cls', 'infer')]
    with pytest.raises(SystemExit):
        parse_args(['--config', str(config), '--paper'])


def test_mixer_network_totals_on_known_timings():
    """Made-up mixer timings with known answers: the network's time is each shape's time per call times the blocks
    that run it (3 x 10 us + 9 x 20 us = 210 us eager, 105 us fused: 2.00x); an implementation not timed on every
    shape gets no total."""
    def row(stage, blocks, impl, us):
        return dict(stage=stage, channels=8 * stage, height=16 // stage, width=16 // stage, in_dtype='float32',
                    out_dtype='float32', memory_format='nchw', mode='infer', impl=impl, us_per_call=us,
                    blocks=blocks, gb_per_s=1.0, bandwidth_fraction=0.5)

    rows = [row(1, 3, 'eager', 10.0), row(2, 9, 'eager', 20.0), row(1, 3, 'fused', 5.0), row(2, 9, 'fused', 10.0),
            row(1, 3, 'partial', 1.0)]
    table = mixer_table(rows)
    assert '| nchw | infer | eager | 210 | 1.00 |' in table
    assert '| nchw | infer | fused | 105 | 2.00 |' in table
    assert '| partial |' not in table.split('all blocks of the network')[1]


def test_mixer_minimum_bytes():
    """InceptionNeXt's split (3/8 of the channels in the conv branches): inference reads and writes the tensor once
    (2x), training also reads dy, writes dx and reads x again on the conv channels only: 4.375x, not 5x."""
    n, c, g = 8 * 10 * 10, 96, 12
    numel = n * c
    assert minimum_bytes(numel, c, 3 * g, 2, 2, 0, 'infer') == 2 * numel * 2
    assert minimum_bytes(numel, c, 3 * g, 2, 2, 0, 'train') == 4.375 * numel * 2
    # Under AMP most blocks pass float32 in and get float32 out; the weights are read twice and their grads written.
    assert minimum_bytes(numel, c, 3 * g, 4, 4, 100, 'train') == numel * (8 + 8 + 1.5) + 300


def test_mixer_amp_feeds_what_timm_passes():
    """The AMP mixer benchmark's input dtypes per stage are those timm's InceptionNeXt passes its token mixers under
    the same autocast (the independent reference): the first block of a stage its downsample's bf16, the others the
    float32 residual stream."""
    settings = parse_mixer_args(['--arch', 'atto', '--img-size', '64', '--precision', 'bf16', '--amp'])
    ours = [(g['stage'], g['dtype'], g['shape'][1:], g['blocks']) for g in mixer_shapes(settings)]
    reference = timm.create_model('inception_next_atto').eval()
    seen = observe_inputs(reference, torch.randn(1, 3, 64, 64), torch.autocast('cpu', dtype=torch.bfloat16),
                          lambda name: name.endswith('token_mixer'))
    expected = {}
    for s in seen:
        key = (stage_of(s['name']), s['dtype'], s['shape'][1:])
        expected[key] = expected.get(key, 0) + 1
    assert ours == [(*key, blocks) for key, blocks in expected.items()]
    assert {dtype for _, dtype, _, _ in ours} == {torch.bfloat16, torch.float32}
    # Without --amp every tensor is cast to the precision, one shape a stage.
    plain = mixer_shapes(parse_mixer_args(['--arch', 'atto', '--img-size', '64', '--precision', 'bf16']))
    assert [(g['stage'], g['dtype'], g['blocks']) for g in plain] == [
        (1, torch.bfloat16, 2), (2, torch.bfloat16, 2), (3, torch.bfloat16, 6), (4, torch.bfloat16, 2)]


def test_mixer_tool_times_the_network_dtypes(restore_threads, tmp_path):
    mixer = load_tool('benchmark_mixer')
    results = mixer.main(['--arch', 'atto', '--img-size', '64', '--batch-size', '2', '--rounds', '1', '--threads',
                          '1', '--precision', 'bf16', '--amp', '--memory-format', 'channels_last', '--json',
                          str(tmp_path / 'mixer.json')])
    # eager autocast's cat: a float32 input keeps float32 (identity channels), a bf16 one gives bf16
    assert {(r['in_dtype'], r['out_dtype']) for r in results} == {('float32', 'float32'), ('bfloat16', 'bfloat16')}
    assert {(r['mode'], r['impl']) for r in results} == {('infer', 'eager'), ('train', 'eager')}
    assert sum(r['blocks'] for r in results if r['mode'] == 'train') == sum((2, 2, 6, 2))
    assert all(r['us_per_call'] > 0 and r['bytes'] > 0 for r in results)
    assert json.loads((tmp_path / 'mixer.json').read_text())['results'] == results
    # tools/benchmark.py --mixer is the same tool
    benchmark = load_tool('benchmark')
    forwarded = benchmark.main(['--mixer', '--arch', 'atto', '--img-size', '64', '--batch-size', '2', '--rounds', '1',
                                '--modes', 'infer', '--memory-format', 'nchw', '--threads', '1'])
    assert {(r['stage'], r['in_dtype'], r['impl']) for r in forwarded} == {(s, 'float32', 'eager') for s in range(1, 5)}


def test_profile_of_one_block_under_amp():
    profile = profile_block('ours', 'stages.2.blocks.1', arch='atto', device='cpu', precision='bf16', batch=2,
                            img_size=(64, 64), warmup=1, steps=1)
    assert profile['input_shape'] == [2, 160, 4, 4] and profile['input_dtype'] == 'float32'  # the residual stream
    assert profile['stage'] == 3 and profile['rows'] and profile['us_per_step'] > 0
    assert any('conv' in row['name'] for row in profile['rows'])
    shares = [row['share'] for row in profile['rows']]
    assert shares == sorted(shares, reverse=True) and sum(shares) <= 1 + 1e-9
    assert 'Self CPU' in profile['table']
