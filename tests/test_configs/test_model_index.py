"""The model index (model-index.yml, configs/metafiles/*.yml): one entry per config, the paper's results and no
invented ones, no claimed weights, and parameters and FLOPs as tools/get_flops.py counts them."""
import copy
import functools
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.config import Config
from helpers import (INDEX, PAPER_SIZES, REPO, entries, load_tool, model_index, paper_precision,
                     require_config)

from mmincnext.models.layers import SelfAttention2d

# configs/demo/ holds the embedded demos (synthetic data, trained from scratch, no figure comparable to anything):
# deliberately not in the index.
NOT_INDEXED = ('_base_', 'demo')
# mmdet's RoI heads run the box branch on every proposal and the mask branch on the first 100 (`rois[:100]` in
# StandardRoIHead.forward, the `mode='tensor'` path get_flops traces; get_flops makes CascadeRoIHead do the same).
MASK_ROIS = 100
RELEASE = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_{}.pth'
ARCHS = dict(atto='atto', t='tiny', s='small', b='base')
# The other released weights the paper's figures come from: Table 10's ConvNeXt-T variants (the InceptionNeXt
# release; 7x7 is ConvNeXt's own) and isotropic ConvNeXt (ConvNeXt's release). The ablation's, the isotropic
# InceptionNeXt's and MetaNeXt-Attn's were never released.
TABLE10_RELEASE = 'https://github.com/sail-sg/inceptionnext/releases/download/model/convnext_tiny_{}_1k_224_ema.pth'
CONVNEXT_RELEASE = 'https://dl.fbaipublicfiles.com/convnext/convnext_{}_1k_224_ema.pth'
OTHER_WEIGHTS = {
    **{f'convnext_t_{v}_in1k': TABLE10_RELEASE.format(v)
       for v in ('k5', 'k3', 'k3_par1_2', 'k3_par3_8', 'k3_par1_4', 'k3_par1_8', 'k3_par1_16')},
    'convnext_t_k7_in1k': CONVNEXT_RELEASE.format('tiny'), 'convnext_s_iso_in1k': CONVNEXT_RELEASE.format('iso_small'),
    'convnext_b_iso_in1k': CONVNEXT_RELEASE.format('iso_base'),
}
# ../shared/PAPER.md: every figure the paper has for these models. UperNet's are multi-scale; Semantic FPN's are
# single-scale (the PVT/PoolFormer protocol it follows); the paper gives no single-scale UperNet figure.
PAPER = {
    'upernet_incnext_t_ade20k': {'mIoU(ms)': 47.9}, 'upernet_incnext_s_ade20k': {'mIoU(ms)': 50.0},
    'upernet_incnext_b_ade20k': {'mIoU(ms)': 50.6}, 'fpn_incnext_t_ade20k': {'mIoU': 43.1},
    'fpn_incnext_s_ade20k': {'mIoU': 45.6}, 'fpn_incnext_b_ade20k': {'mIoU': 46.4},
    'incnext_atto_in1k': {'Top 1 Accuracy': 75.3}, 'incnext_t_in1k': {'Top 1 Accuracy': 82.3},
    'incnext_s_in1k': {'Top 1 Accuracy': 83.5}, 'incnext_b_in1k': {'Top 1 Accuracy': 84.0},
    # The ablation table, Table 10 and Table 3 (ImageNet-1K top-1).
    **{f'incnext_t_{name}_in1k': {'Top 1 Accuracy': top1} for name, top1 in dict(
        no_w_band=81.9, no_h_band=81.9, no_square=82.0, bands_in_sequence=82.1, band7=82.1, band9=82.1, band13=82.0,
        ratio1_4=82.2, ratio1_16=81.8).items()},
    **{f'convnext_t_{name}_in1k': {'Top 1 Accuracy': top1} for name, top1 in dict(
        k7=82.1, k5=82.0, k3=81.5, k3_par1_2=81.4, k3_par3_8=81.4, k3_par1_4=81.3, k3_par1_8=80.8,
        k3_par1_16=80.1).items()},
    'incnext_s_iso_in1k': {'Top 1 Accuracy': 79.7}, 'incnext_b_iso_in1k': {'Top 1 Accuracy': 82.1},
    'metanext_attn_s_iso_in1k': {'Top 1 Accuracy': 3.9}, 'convnext_s_iso_in1k': {'Top 1 Accuracy': 79.7},
    'convnext_b_iso_in1k': {'Top 1 Accuracy': 82.0},
    'incnext_b_in1k_384': {'Top 1 Accuracy': 85.2},
}
# Fine-tunes: the released weights of the paper's figure, and the released weights the config starts from.
FINE_TUNES = {'incnext_b_in1k_384': ('base_384', 'base')}


def family(config: str) -> str:
    """The metafile a config belongs in: its folder's (configs/isotropic/*.py -> isotropic.yml), or for a config at
    the top, its prefix (upernet_incnext_t_ade20k -> upernet.yml, incnext_t_in1k -> incnext.yml)."""
    path = Path(config).relative_to('configs')
    if len(path.parts) > 1:
        return path.parts[0]
    return path.stem.split('incnext_')[0].rstrip('_') or 'incnext'


@functools.lru_cache(maxsize=None)
def _config(path: str) -> Config:
    return Config.fromfile(str(REPO / path))


def config(path: str) -> Config:
    require_config(path)
    return copy.deepcopy(_config(path))


def test_every_config_has_exactly_one_entry():
    configs = sorted(str(path.relative_to(REPO)) for path in (REPO / 'configs').rglob('*.py')
                     if path.relative_to(REPO / 'configs').parts[0] not in NOT_INDEXED)
    listed = sorted(model.config for model in model_index().models)
    assert len(set(listed)) == len(listed), f'listed twice: {sorted({c for c in listed if listed.count(c) > 1})}'
    assert not set(configs) - set(listed), f'configs without an entry in {INDEX.name}: {set(configs) - set(listed)}'
    assert not set(listed) - set(configs), f'entries whose Config does not exist: {set(listed) - set(configs)}'
    collections = {collection.name for collection in model_index().collections}
    for model in model_index().models:
        name = Path(model.config).stem
        assert model.name == name, f'{model.name}: Name must be the config\'s name, which mim looks up'
        metafile = f'{family(model.config)}.yml'
        assert Path(model.filepath).name == metafile, f'{name} belongs in configs/metafiles/{metafile}'
        assert model.in_collection in collections, name


def test_index_loads_in_modelindex_and_mim():
    index = model_index()
    assert index.check(silent=True) == []
    search = pytest.importorskip('mim.commands.search', reason='openmim is not installed')
    table = search.convert2df(index)  # the table `mim search mmincnext` filters and prints
    assert sorted(table.index) == sorted(entries())
    assert table.loc['upernet_incnext_t_ade20k', 'ade20k/miou(ms)'] == 47.9
    assert table.loc['incnext_t_in1k', 'imagenet-1k/top_1_accuracy'] == 82.3
    assert table.loc['mask_rcnn_incnext_t_coco', 'flops'] == entries()['mask_rcnn_incnext_t_coco'].metadata.flops


def test_results_are_the_papers_and_no_others():
    for name, model in entries().items():
        metrics = {key: value for result in model.results for key, value in result.metrics.items()}
        assert metrics == PAPER.get(name, {}), f'{name}: the paper\'s figures, and none invented'
        if name in PAPER:
            assert model.metadata.data['Results From'].startswith('the paper'), name


def test_sizes_are_the_papers():
    """The sizes of the entries the paper's tables print, at its precision (get_flops' exact counts are the
    entries': test_entry_matches_its_config)."""
    for name, (params, macs) in PAPER_SIZES.items():
        meta = entries()[name].metadata
        assert meta.data['Input Size'] == '224x224', name
        assert (paper_precision(meta.parameters, params), paper_precision(meta.flops, macs)) == (params, macs), name


def test_paper_precision():
    assert [paper_precision(28055680, '28.1M'), paper_precision(21965416, '22M'), paper_precision(4579e6, '4.6G')] \
        == ['28.1M', '22M', '4.6G']


def trace(model: torch.nn.Module, gf, height: int, width: int) -> dict:
    """get_flops' count of ``model`` at ``height x width`` (one image; ``mode='tensor'`` with the data samples
    bound to the forward, as get_flops binds them), per module."""
    samples = gf.data_samples_for(model, height, width)
    model.forward = functools.partial(type(model).forward, model, data_samples=samples, mode='tensor')
    analyzer = FlopAnalyzer(model, (torch.rand(1, 3, height, width), ))
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    try:
        with torch.no_grad():
            return analyzer.by_module()
    finally:
        del model.forward


def pyramid_form(trace_at, height: int, width: int, period: int, check: bool) -> Fraction:
    """MACs at ``height x width`` of a detector whose coarsest map has stride ``period``: on the sizes with H = 0
    and W = width modulo ``period`` (1280x800: 0 and 32 modulo 64 or 128) every map is exactly H/s high and its
    width is affine in W, so the count is c + a H W + b H. Three traces fix it, a fourth checks it."""
    assert height % period == 0, f'{height} is not a multiple of the coarsest stride {period}'
    h0, w0 = period, width % period or period
    base, taller, wider = trace_at(h0, w0), trace_at(2 * h0, w0), trace_at(h0, w0 + period)
    per_area = Fraction(wider - base, h0 * period)
    per_height = Fraction(taller - base, h0) - per_area * w0

    def form(h, w):  # exact in rationals
        return base + per_area * (h * w - h0 * w0) + per_height * (h - h0)

    if check:
        assert form(2 * h0, w0 + period) == trace_at(2 * h0, w0 + period), 'MACs are not c + a H W + b H'
    return form(height, width)


def affine_form(trace_at, height: int, width: int, check: bool, side: int = 32) -> Fraction:
    """MACs at ``height x width`` of a model whose count is c + a H W on multiples of ``side``: two traces fix it,
    a third checks it."""
    small, wide = trace_at(side, side), trace_at(side, 2 * side)
    if check:
        assert trace_at(2 * side, 2 * side) - small == 3 * (wide - small), 'MACs are not affine in H x W'
    return small + Fraction(wide - small, side * side) * (height * width - side * side)


# Settings that change neither the parameters nor the traced forward: configs that differ only in these (a recipe's
# drop path, the checkpoint, the test mode; the detectors' proposal count is applied after the count) share one.
NOT_COUNTED = ('drop_path_rate', 'init_cfg', 'pretrained', 'train_cfg', 'test_cfg')
_counts = {}
# The form of the count is checked by an extra trace on the first model of each kind (a model type and its
# coarsest stride); the T/S/B variants of a kind differ in widths and depths only, which the form does not see.
_checked = set()


def structure(node):
    if isinstance(node, dict):
        return {key: structure(value) for key, value in node.items() if key not in NOT_COUNTED}
    if isinstance(node, (list, tuple)):
        return [structure(value) for value in node]
    return node


def counted(cfg: Config, height: int, width: int):
    """(parameters with any auxiliary head, MACs) of the config's model as ``tools/get_flops.py --shape height
    width`` counts them, without tracing dense models at full size (UperNet-B at 512x2048 is ~1.2 TMACs of CPU time).

    The model is built as get_flops builds it and traced as it traces: at full size where that is cheap (224x224
    classifiers) or the count has no simple form (global self-attention), otherwise at small sizes. Segmentors work
    on H/s x W/s maps (s up to 32) plus fixed-size parts (pyramid pooling, heads, queries), so their MACs are
    c + a H W on multiples of 32; detectors follow ``pyramid_form``. A two-stage detector runs there with one RPN
    proposal, and its RoI head's count is scaled to the config's ``max_per_img`` proposals for the box branches
    (1000: on a 1280x800 image mmdet's RPN keeps that many) and to 100 RoIs for the mask branches. Direct
    full-size counts gave the same integers: Mask R-CNN-T at 1280x800 and the classifiers at 224x224 (measured
    for this test), Semantic FPN-T at 512x512 (tests/test_configs/test_seg_configs.py).
    """
    proposals = cfg.model.get('test_cfg', {}).get('rpn', {}).get('max_per_img')
    key = (cfg.get('default_scope'), repr(structure(cfg.model.to_dict())), height, width)
    if key not in _counts:
        _counts[key] = count(cfg, height, width)
    params, dense, roi_branches = _counts[key]
    total = dense + sum(macs * (min(proposals, MASK_ROIS) if 'mask' in branch else proposals)
                        for branch, macs in roi_branches.items())
    return params, total


def count(cfg: Config, height: int, width: int):
    """(parameters, MACs at ``height x width`` without the RoI head, the RoI head's branches' MACs per proposal)."""
    gf = load_tool('get_flops')
    two_stage = bool(cfg.model.get('test_cfg', {}).get('rpn'))
    if two_stage:
        cfg.model.test_cfg.rpn.max_per_img = 1
    model = gf.build_model_from_config(cfg).eval()
    params = sum(p.numel() for p in model.parameters())
    if getattr(model, 'auxiliary_head', None) is not None:
        model.auxiliary_head = None  # as get_flops: it only runs in training
    roi_heads = []

    def trace_at(h, w):
        counts = trace(model, gf, h, w)
        if not two_stage:
            return counts['']
        roi_heads.append({key.split('.')[1]: macs for key, macs in counts.items()
                          if key.startswith('roi_head.') and key.count('.') == 1})
        return counts[''] - counts['roi_head']

    head = cfg.model.get('rpn_head') or cfg.model.get('bbox_head')
    period = max(head.anchor_generator.strides) if head and 'anchor_generator' in head else 32
    kind = (cfg.model.type, period)
    check = kind not in _checked
    _checked.add(kind)
    if height * width <= 256 * 256 or any(isinstance(module, SelfAttention2d) for module in model.modules()):
        # One trace at full size: at 224x224 it costs what a small one does, and global attention's two matrix
        # products grow with the square of the tokens, so its count has no affine form.
        dense = Fraction(trace_at(height, width))
    elif period > 32:  # FPN levels down to the coarsest anchor stride (RPN: 64, RetinaNet: 128)
        dense = pyramid_form(trace_at, height, width, period, check)
    else:
        dense = affine_form(trace_at, height, width, check)
    assert dense.denominator == 1
    assert all(branches == roi_heads[0] for branches in roi_heads), 'one proposal must cost the same at every size'
    return params, int(dense), roi_heads[0] if roi_heads else {}


@pytest.mark.integration
@pytest.mark.parametrize('name', sorted(entries()))
def test_entry_matches_its_config(name):
    """Schedule, the ImageNet-1K weights the model starts from (no `Weights`: nothing of ours was trained, so
    `mim download` must find nothing), and the sizes tools/get_flops.py counts at the entry's Input Size."""
    model = entries()[name]
    meta = model.metadata.data
    cfg = config(model.config)
    assert model.weights is None, name
    four_stage = len(Path(model.config).parts) == 2  # configs/<name>.py; the paper's other models are in folders
    release = RELEASE.format(ARCHS[name.split('incnext_')[1].split('_')[0]]) if four_stage else OTHER_WEIGHTS.get(name)
    if name in FINE_TUNES:  # the paper's figure is the fine-tuned official weights'; the config starts from others
        weights, start = FINE_TUNES[name]
        assert model.data['Converted From']['Weights'] == RELEASE.format(weights)
        assert cfg.model.init_cfg.checkpoint == RELEASE.format(start)
        assert meta['Batch Size'] == cfg.auto_scale_lr.base_batch_size
    elif cfg.default_scope == 'mmpretrain':  # trained from scratch; the paper's figure is the official weights'
        assert model.data.get('Converted From', {}).get('Weights') == release, name
        assert meta['Batch Size'] == cfg.auto_scale_lr.base_batch_size
    else:
        checkpoint = cfg.model.backbone.init_cfg.checkpoint
        if release is None:  # no released ImageNet weights: the classification config's own run (its last epoch)
            assert 'Pretrained' not in meta and checkpoint.startswith(f'work_dirs/{name.split("_", 1)[1]}'.replace(
                '_ade20k', '_in1k/')), checkpoint
        else:
            assert meta['Pretrained'] == release == checkpoint
        assert meta['Batch Size'] == 8 * cfg.train_dataloader.batch_size  # the collections' 8x GPUs
    assert meta.get('Epochs') == cfg.train_cfg.get('max_epochs') and meta.get('Iterations') == cfg.train_cfg.get(
        'max_iters')
    if 'FLOPs' not in meta:  # only while get_flops cannot count the model (mmseg's Mask2Former): a fix fails this
        gf = load_tool('get_flops')
        assert meta['Parameters'] == sum(p.numel() for p in gf.build_model_from_config(cfg).parameters())
        with pytest.raises(TypeError, match='batch_data_samples'):
            gf.complexity(str(REPO / model.config), (32, 32))
        return
    height, width = (int(side) for side in meta['Input Size'].split('x'))
    params, macs = counted(cfg, height, width)
    assert (meta['Parameters'], meta['FLOPs']) == (params, macs), f'get_flops: {params} parameters, {macs} MACs'
