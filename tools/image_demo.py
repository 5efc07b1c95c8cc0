"""Run a model on one image and save its prediction drawn over the image as a PNG.

    python tools/image_demo.py demo.jpg configs/upernet_incnext_t_ade20k.py model.pth --out-file out.png

The config's ``default_scope`` picks the task: ``mmseg`` draws the segmentation map, ``mmdet`` the boxes/masks.
"""
import argparse
import os.path as osp

import mmcv
from mmengine.config import Config, DictAction
from mmengine.utils import mkdir_or_exist

from mmincnext.utils import sync_bn_to_bn


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw a model prediction over an image')
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-file', default='result.png', help='output PNG (default: result.png)')
    parser.add_argument('--device', default='cpu', help='device, e.g. cpu or cuda:0 (default: cpu)')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='segmentation: opacity of the painted map in (0, 1] (default: 0.5)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: draw boxes/masks scoring at least this (default: 0.3)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def draw_segmentation(image, cfg: Config, args):
    from mmseg.apis import inference_model, init_model, show_result_pyplot

    model = init_model(cfg, args.checkpoint, device=args.device)
    result = inference_model(model, args.img)
    return show_result_pyplot(model, image, result, opacity=args.opacity, show=False, draw_gt=False,
                              out_file=args.out_file)


def draw_detection(image, cfg: Config, args):
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS

    model = init_detector(cfg, args.checkpoint, device=args.device)
    result = inference_detector(model, args.img)
    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.dataset_meta = model.dataset_meta
    visualizer.add_datasample('result', image, data_sample=result, draw_gt=False, show=False,
                              pred_score_thr=args.score_thr, out_file=args.out_file)
    return visualizer.get_image()


DRAWERS = {'mmseg': draw_segmentation, 'mmdet': draw_detection}


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.img):
        raise FileNotFoundError(f'Image not found: {args.img!r}')
    if not args.out_file.lower().endswith('.png'):
        raise ValueError(f'--out-file must be a .png file, got {args.out_file!r}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    scope = cfg.get('default_scope')
    if scope not in DRAWERS:
        raise ValueError(f'{args.config}: default_scope={scope!r} has no image demo; '
                         f'supported scopes: {sorted(DRAWERS)}')
    if not args.device.startswith('cuda'):
        sync_bn_to_bn(cfg.model)  # one process, nothing to synchronise
    mkdir_or_exist(osp.dirname(osp.abspath(args.out_file)))
    image = mmcv.imread(args.img, channel_order='rgb')
    DRAWERS[scope](image, cfg, args)
    print(f'Saved the prediction over {args.img} to {args.out_file}')


if __name__ == '__main__':
    main()
