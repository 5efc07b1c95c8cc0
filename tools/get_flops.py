"""Parameters and MACs of the model in any config (segmentor, detector, classifier or a bare backbone).

    python tools/get_flops.py configs/upernet_incnext_t_ade20k.py --shape 512 2048
    python tools/get_flops.py configs/incnext_t_in1k.py             # 224x224, the size it evaluates at
    python tools/get_flops.py configs/incnext_b_in1k_384.py         # 384x384

The model is built in the config's ``default_scope`` (mmseg, mmdet, mmpretrain), SyncBN reverted to BN, no
checkpoint loaded, and traced with ``mmengine.analysis`` in ``mode='tensor'`` on one random image. mmengine
counts one multiply-add as one "flop", so its figure is what papers call MACs. As in mmseg's tool, a segmentor's
auxiliary head is dropped (it only runs in training); its parameters are reported separately. A detector's
mask branch is counted on 100 RoIs (see :func:`count_cascade_masks_like_standard_roi_head`).
"""
import argparse
import functools
from typing import Optional, Sequence

import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config, DictAction
from mmengine.model import BaseModel

import mmincnext  # noqa: F401  (registers InceptionNeXt and the safe checkpoint reader)
from mmincnext.utils import build_model_from_config


def parse_args(argv: Optional[Sequence[str]] = None):
    parser = argparse.ArgumentParser(description='Parameters and MACs of the model in a config')
    parser.add_argument('config', help='config file')
    parser.add_argument('--shape', type=int, nargs='+', default=None,
                        help='input H [W] (default: 512 2048 for segmentors, 1333 800 -> 800 1333 for detectors, '
                        "the test pipeline's CenterCrop size for classifiers, 224 otherwise)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def data_samples_for(model: torch.nn.Module, height: int, width: int):
    """A detector's ``mode='tensor'`` forward still reads the image meta (its RPN predicts proposals)."""
    try:
        from mmdet.models.detectors import BaseDetector
        from mmdet.structures import DetDataSample
    except ImportError:
        return None
    if not isinstance(model, BaseDetector):
        return None
    shape = (height, width)
    return [DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape, batch_input_shape=shape,
                                        scale_factor=(1., 1.)))]


# mmdet's StandardRoIHead.forward (mode='tensor') runs the mask branch on the first 100 RoIs, as many as inference
# keeps detections (max_per_img).
MASK_ROIS = 100


def count_cascade_masks_like_standard_roi_head(model: torch.nn.Module) -> None:
    """mmdet 3.3's ``CascadeRoIHead.forward`` (mode='tensor') runs each mask stage on every proposal (1000), where
    ``StandardRoIHead`` and inference run masks on at most 100 RoIs: that would triple Cascade Mask R-CNN's count
    (2.2T MACs for T at 1280x800) and make it incomparable with Mask R-CNN's and the Swin/ConvNeXt papers' (~745G).
    The mask stages here see the first 100 RoIs; the rest get zero masks, which cost no MACs."""
    try:
        from mmdet.models.roi_heads import CascadeRoIHead
    except ImportError:
        return
    roi_head = getattr(model, 'roi_head', None)
    if not isinstance(roi_head, CascadeRoIHead) or not roi_head.with_mask:
        return
    mask_forward = roi_head._mask_forward

    def first_rois_only(stage, x, rois):
        results = mask_forward(stage, x, rois[:MASK_ROIS])
        preds = results['mask_preds']
        results['mask_preds'] = torch.cat([preds, preds.new_zeros((len(rois) - len(preds), *preds.shape[1:]))])
        return results

    roi_head._mask_forward = first_rois_only


def default_shape(model: torch.nn.Module, cfg: Optional[Config] = None):
    name = type(model).__module__
    if name.startswith('mmseg.'):
        return 512, 2048
    if name.startswith('mmdet.'):
        return 800, 1333
    # A classifier is counted at the size it is evaluated at (e.g. 384 for a 384 fine-tune).
    pipeline = (cfg or {}).get('test_dataloader', {}).get('dataset', {}).get('pipeline', [])
    crops = [step['crop_size'] for step in pipeline if step.get('type') == 'CenterCrop']
    if crops:
        size = crops[-1]
        return (size, size) if isinstance(size, int) else (size[1], size[0])  # crop_size is (w, h)
    return 224, 224


def complexity(config: str, shape: Optional[Sequence[int]] = None, cfg_options: Optional[dict] = None) -> dict:
    """``{'params', 'macs', 'aux_params', 'shape', 'model'}`` of the config's model (counts, not strings)."""
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = build_model_from_config(cfg).eval()
    aux_params = 0
    if getattr(model, 'auxiliary_head', None) is not None:
        aux_params = sum(p.numel() for p in model.auxiliary_head.parameters())
        model.auxiliary_head = None
    if shape is None:
        shape = default_shape(model, cfg)
    elif len(shape) == 1:
        shape = (shape[0], shape[0])
    elif len(shape) != 2:
        raise ValueError(f'--shape takes H or H W, got {list(shape)}')
    height, width = shape
    count_cascade_masks_like_standard_roi_head(model)
    if isinstance(model, BaseModel):
        # The data samples are bound, not traced: jit tracing takes only tensors (as mmdet's get_flops does).
        model.forward = functools.partial(model.forward, data_samples=data_samples_for(model, height, width),
                                          mode='tensor')
    with torch.no_grad():
        info = get_model_complexity_info(model, inputs=(torch.rand(1, 3, height, width), ), show_table=False,
                                         show_arch=False)
    return dict(params=info['params'], macs=info['flops'], aux_params=aux_params, shape=(height, width),
                model=type(model).__name__)


def main(argv: Optional[Sequence[str]] = None):
    args = parse_args(argv)
    result = complexity(args.config, args.shape, args.cfg_options)
    height, width = result['shape']
    print(f'{args.config}: {result["model"]}, input 3x{height}x{width}')
    print(f'  params: {result["params"] / 1e6:.2f} M')
    if result['aux_params']:
        print(f'  (auxiliary head, not counted above: {result["aux_params"] / 1e6:.2f} M params)')
    print(f'  MACs:   {result["macs"] / 1e9:.2f} G')


if __name__ == '__main__':
    main()
