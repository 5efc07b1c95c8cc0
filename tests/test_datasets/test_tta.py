"""--tta feeds the paper's multi-scale protocol: mmseg 0.x's MultiScaleFlipAug(img_scale, img_ratios 0.5-1.75,
flip=True) with Resize(keep_ratio=True), checked view by view against that formula written out here."""
import math
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.registry import init_default_scope
from helpers import load_config, require

mmseg = require('mmseg')  # mmseg's test-time augmentation and pipelines


IMG_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
# (w, h): short side below, at and above 512 (128: the demo's scenes); landscape, portrait, square; very wide and tall.
SHAPES = [(128, 128), (256, 256), (512, 384), (683, 512), (384, 600), (1000, 700), (4000, 300), (300, 4000)]


def mmseg0x_view_size(w: int, h: int, img_scale: tuple, ratio: float) -> tuple:
    """mmseg 0.x: MultiScaleFlipAug scales img_scale by the ratio (int), Resize(keep_ratio=True) fits the image into
    it with mmcv.rescale_size: factor min(long max / long side, short max / short side), sides rounded half up."""
    scale = (int(img_scale[0] * ratio), int(img_scale[1] * ratio))
    factor = min(max(scale) / max(w, h), min(scale) / min(w, h))
    return int(w * factor + 0.5), int(h * factor + 0.5)


def paper_views(w: int, h: int, img_scale: tuple, size_divisor: int = None) -> list:
    """The 12 (w, h, flip) views in TestTimeAug's order (the flip varies fastest)."""
    views = []
    for ratio in IMG_RATIOS:
        new_w, new_h = mmseg0x_view_size(w, h, img_scale, ratio)
        if size_divisor:  # ResizeToMultiple rounds up
            new_w, new_h = (math.ceil(side / size_divisor) * size_divisor for side in (new_w, new_h))
        views += [(new_w, new_h, False), (new_w, new_h, True)]
    return views


def write_sample(root, w: int, h: int) -> dict:
    rng = np.random.default_rng(w * 10007 + h)
    img_path, seg_path = str(root / f'{w}x{h}.jpg'), str(root / f'{w}x{h}.png')
    mmcv.imwrite(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), img_path)
    mmcv.imwrite(np.zeros((h, w), np.uint8), seg_path)
    return dict(img_path=img_path, seg_map_path=seg_path, reduce_zero_label=True)


def fed_views(pipeline: list, sample: dict) -> list:
    """(w, h, flip) and the tensor of every view the pipeline feeds the model."""
    views = Compose(pipeline)(dict(sample, seg_fields=[]))
    return [(inputs.shape[-1], inputs.shape[-2], data_sample.flip, inputs)
            for inputs, data_sample in zip(views['inputs'], views['data_samples'])]


def mismatches(pipeline: list, samples: list, img_scale: tuple, size_divisor: int = None) -> list:
    found = []
    for (w, h), sample in samples:
        fed = [view[:3] for view in fed_views(pipeline, sample)]
        expected = paper_views(w, h, img_scale, size_divisor)
        if fed != expected:
            found.append(((w, h), fed, expected))
    return found


@pytest.fixture(scope='module')
def samples(tmp_path_factory):
    init_default_scope('mmseg')
    root = tmp_path_factory.mktemp('tta')
    return [((w, h), write_sample(root, w, h)) for w, h in SHAPES]


# The ADE20K configs follow the paper's scale; the demo's 128x128 scenes follow it shrunk by 4 (its own test size).
@pytest.mark.parametrize('config,img_scale,size_divisor', [
    ('upernet_incnext_t_ade20k.py', (2048, 512), None), ('fpn_incnext_t_ade20k.py', (2048, 512), 32),
    ('demo/upernet_incnext_demo.py', (512, 128), None)])
def test_tta_feeds_the_paper_protocol_views(config, img_scale, size_divisor, samples):
    cfg = load_config(config)
    for (w, h), sample in samples:
        views = fed_views(cfg.tta_pipeline, sample)
        assert [view[:3] for view in views] == paper_views(w, h, img_scale, size_divisor), (w, h)
        # r=1.0 unflipped, the view the tta_model reports as single-scale, is what the single-scale test feeds
        single = Compose(cfg.test_pipeline)(dict(sample, seg_fields=[]))['inputs']
        assert torch.equal(views[cfg.tta_model.single_scale_view][3], single), (w, h)
        for unflipped, flipped in zip(views[::2], views[1::2]):
            assert torch.equal(flipped[3], unflipped[3].flip(-1)), (w, h)


def test_mmseg_1x_scale_factor_tta_fails_the_protocol(samples):
    """mmseg 1.x's own ADE20K tta_pipeline (Resize(scale_factor=r) of the original image) is caught by the check
    above: it agrees only for the image whose short side is already 512."""
    mmseg_cfg = Config.fromfile(osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', '_base_', 'datasets',
                                         'ade20k.py'))
    failing = [shape for shape, *_ in mismatches(mmseg_cfg.tta_pipeline, samples, (2048, 512))]
    assert failing == [shape for shape in SHAPES if min(shape) != 512]
