"""Run a model on one image and save a picture people can read: the input, the prediction and, when given, the
ground truth side by side, with a legend of the classes shown.

    python tools/image_demo.py scene.jpg configs/demo/upernet_incnext_demo.py iter_900.pth --gt scene.png
    python tools/image_demo.py image.jpg configs/demo/mask_rcnn_incnext_demo.py epoch_16.pth \
        --gt data/synthetic_coco/annotations/instances_val2017.json
    python tools/image_demo.py image.JPEG configs/demo/incnext_cls_demo.py epoch_8.pth --gt disc_dots

The config's ``default_scope`` picks the task and the OpenMMLab Inferencer that runs the model: mmseg's
``MMSegInferencer`` (each pixel in its class colour), mmdet's ``DetInferencer`` (instance masks, boxes and scores)
or mmpretrain's ``ImageClassificationInferencer`` (the top-5 classes). Class names and colours are the checkpoint's
``dataset_meta``, as the Inferencers read it; every weight of the checkpoint must fit the config's model (the
Inferencers alone would only warn). ``--gt`` is a label map (segmentation, in the dataset's encoding:
the config's ``LoadAnnotations`` reads it), a COCO annotation file holding the image (detection) or a class name
(classification). Small images are enlarged by a whole factor, nearest neighbour, so that every panel is at least
``--min-size`` (384) pixels: a 128x128 demo image becomes 384x384.
"""
import argparse
import math
import os.path as osp
from typing import List, Sequence, Tuple

import cv2
import mmcv
import numpy as np
from mmengine.config import Config, DictAction
from mmengine.utils import mkdir_or_exist

from mmincnext.checkpoint import load_state_dict_strictly, read_state_dict
from mmincnext.utils import sync_bn_to_bn

Colour = Tuple[int, int, int]  # RGB
Panel = Tuple[str, np.ndarray]  # (title, RGB image)
Legend = List[Tuple[str, Colour]]  # (class name, RGB colour)

FONT = cv2.FONT_HERSHEY_SIMPLEX
BACKGROUND, INK = (255, 255, 255), (20, 20, 20)
GAP = 12  # pixels between panels and around the picture
IGNORED = ('not labelled', (0, 0, 0))  # label 255 of a segmentation ground truth
BAR, TRUTH = (70, 110, 180), (46, 139, 87)  # classification: score bars, the true class


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw input | prediction (| ground truth) with a class legend')
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-file', default='result.png', help='output PNG (default: result.png)')
    parser.add_argument('--gt', help='ground truth: a label map (segmentation), a COCO annotation file holding the '
                        'image (detection) or the class name (classification)')
    parser.add_argument('--device', default='cpu', help='device, e.g. cpu or cuda:0 (default: cpu)')
    parser.add_argument('--opacity', type=float, default=1.0,
                        help='segmentation: opacity of the class colours over the image in (0, 1] (default: 1, '
                        'colours only; the input is the panel beside)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: draw instances scoring at least this (default: 0.3)')
    parser.add_argument('--topk', type=int, default=5, help='classification: classes listed (default: 5)')
    parser.add_argument('--min-size', type=int, default=384,
                        help='enlarge smaller images by a whole factor to at least this many pixels (default: 384)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement: every pixel becomes a factor x factor block, nothing is smoothed."""
    return image if factor == 1 else np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def class_colours(palette, num_classes: int) -> np.ndarray:
    """The dataset's palette as a (num_classes, 3) uint8 RGB array; fixed random colours when it has none."""
    if isinstance(palette, (list, tuple)) and len(palette) >= num_classes:
        return np.asarray(palette[:num_classes], dtype=np.uint8).reshape(num_classes, 3)
    return np.random.default_rng(0).integers(0, 256, (num_classes, 3), dtype=np.uint8)


def check_all_weights_loaded(model, checkpoint: str):
    """The Inferencers load non-strictly: a key that does not fit only gets a warning, and the model predicts with
    random weights there. Load again, strictly: every weight must fit (mmincnext.checkpoint.CheckpointError)."""
    state_dict = read_state_dict(checkpoint)
    load_state_dict_strictly(model, state_dict, repr(checkpoint), ignore_prefixes=())


def text_scale(size: int) -> float:
    return max(0.5, size / 640)


def put_text(canvas: np.ndarray, text: str, left: int, baseline: int, scale: float, colour: Colour = INK):
    cv2.putText(canvas, text, (left, baseline), FONT, scale, colour, max(1, round(scale * 1.6)), cv2.LINE_AA)


def text_size(text: str, scale: float) -> Tuple[int, int]:
    (width, height), _ = cv2.getTextSize(text, FONT, scale, max(1, round(scale * 1.6)))
    return width, height


def fit(text: str, width: int, scale: float) -> str:
    """``text``, shortened with '...' to at most ``width`` pixels (ImageNet's class names are long)."""
    if text_size(text, scale)[0] <= width:
        return text
    while len(text) > 1 and text_size(text + '...', scale)[0] > width:
        text = text[:-1]
    return text + '...'


# --- segmentation -------------------------------------------------------------------------------------------------
def read_label_map(cfg: Config, path: str) -> np.ndarray:
    """A ground-truth label map decoded as the config's test pipeline does (e.g. ADE20K's reduce_zero_label)."""
    from mmseg.registry import TRANSFORMS

    loaders = [t for t in cfg.test_dataloader.dataset.get('pipeline', []) if t['type'] == 'LoadAnnotations']
    load = dict(loaders[0]) if loaders else dict(type='LoadAnnotations')
    results = TRANSFORMS.build(load).transform(dict(
        seg_map_path=path, seg_fields=[], reduce_zero_label=load.get('reduce_zero_label') or False))
    return results['gt_seg_map']


def segmentation(cfg: Config, image: np.ndarray, factor: int, args) -> Tuple[List[Panel], Legend]:
    from mmseg.apis import MMSegInferencer

    inferencer = MMSegInferencer(model=cfg, weights=args.checkpoint, device=args.device)
    check_all_weights_loaded(inferencer.model, args.checkpoint)
    prediction = inferencer(args.img, return_datasamples=True).pred_sem_seg.data[0].cpu().numpy()
    meta = inferencer.model.dataset_meta
    classes = list(meta['classes'])
    colours = class_colours(meta.get('palette'), len(classes))
    maps = [('prediction', prediction)]
    if args.gt:
        label = read_label_map(cfg, args.gt)
        if label.shape != prediction.shape:
            raise ValueError(f'--gt {args.gt!r} is {label.shape[1]}x{label.shape[0]}, the image '
                             f'{prediction.shape[1]}x{prediction.shape[0]}')
        maps.append(('ground truth', label))
    lookup = np.zeros((256, 3), np.uint8)
    lookup[:len(classes)] = colours  # everything else (255: not labelled) stays black
    panels = []
    for title, label in maps:
        painted = lookup[label]
        painted = np.where(label[..., None] < len(classes),
                           (1 - args.opacity) * image + args.opacity * painted, painted)
        panels.append((title, enlarge(np.rint(painted).astype(np.uint8), factor)))
    present = np.unique(np.concatenate([label.ravel() for _, label in maps]))
    legend = [(classes[i], tuple(int(c) for c in colours[i])) for i in present if i < len(classes)]
    if (present >= len(classes)).any():
        legend.append(IGNORED)
    return panels, legend


# --- detection ----------------------------------------------------------------------------------------------------
def draw_instances(image: np.ndarray, factor: int, instances: Sequence[dict], classes: Sequence[str],
                   colours: np.ndarray, empty_note: str) -> np.ndarray:
    """Masks (half transparent), boxes and 'class score' tags, the lowest score first so the best stay on top;
    ``empty_note`` when there is none."""
    canvas = enlarge(image, factor).astype(np.float32)
    for instance in instances:
        if instance.get('mask') is not None:
            mask = enlarge(instance['mask'], factor).astype(bool)
            canvas[mask] = 0.5 * canvas[mask] + 0.5 * colours[instance['label']]
    canvas = canvas.astype(np.uint8)
    scale = text_scale(canvas.shape[0]) * 0.9
    for instance in instances:
        colour = tuple(int(c) for c in colours[instance['label']])
        x1, y1, x2, y2 = (int(round(v * factor)) for v in instance['box'])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        tag = classes[instance['label']] + (f" {instance['score']:.2f}" if 'score' in instance else '')
        put_tag(canvas, tag, x1, y1, scale, colour)
    if not instances:  # say so, rather than show what looks like a copy of the input
        put_tag(canvas, empty_note, 0, canvas.shape[0], scale, BACKGROUND)
    return canvas


def put_tag(canvas: np.ndarray, text: str, left: int, bottom: int, scale: float, colour: Colour):
    """``text`` on a filled box of ``colour`` whose bottom left corner is (left, bottom), kept inside the canvas."""
    width, height = text_size(text, scale)
    top = max(0, bottom - height - 8)
    cv2.rectangle(canvas, (left, top), (left + width + 6, top + height + 8), colour, -1)
    put_text(canvas, text, left + 3, top + height + 4, scale, INK if sum(colour) > 380 else BACKGROUND)


def coco_instances(path: str, image_file: str, classes: Sequence[str]) -> List[dict]:
    """The annotations of ``image_file`` (matched by file name) in COCO file ``path``, as instances to draw."""
    from pycocotools.coco import COCO

    coco = COCO(path)
    name = osp.basename(image_file)
    ids = [i for i, info in coco.imgs.items() if osp.basename(info['file_name']) == name]
    if not ids:
        raise ValueError(f'--gt {path!r} has no image named {name!r}')
    instances = []
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=ids[0], iscrowd=None)):
        category = coco.cats[ann['category_id']]['name']
        if category not in classes:
            raise ValueError(f'--gt {path!r}: category {category!r} is not a class of the checkpoint {classes}')
        x, y, w, h = ann['bbox']
        instances.append(dict(label=classes.index(category), box=(x, y, x + w, y + h), mask=coco.annToMask(ann)))
    return instances


def detection(cfg: Config, image: np.ndarray, factor: int, args) -> Tuple[List[Panel], Legend]:
    from mmdet.apis import DetInferencer
    from mmdet.visualization.palette import get_palette

    inferencer = DetInferencer(model=cfg, weights=args.checkpoint, device=args.device, show_progress=False)
    check_all_weights_loaded(inferencer.model, args.checkpoint)
    predicted = inferencer(args.img, return_datasamples=True, no_save_vis=True)['predictions'][0].pred_instances
    predicted = predicted[predicted.scores >= args.score_thr].cpu()
    classes = list(inferencer.model.dataset_meta['classes'])
    colours = np.asarray(get_palette(inferencer.model.dataset_meta.get('palette', 'random'), len(classes)), np.uint8)
    masks = predicted.masks.numpy() if 'masks' in predicted else [None] * len(predicted)
    drawn = {'prediction': [dict(label=int(label), box=box.tolist(), score=float(score), mask=mask)
                            for label, box, score, mask in zip(predicted.labels, predicted.bboxes, predicted.scores,
                                                               masks)][::-1]}  # sorted by score: best last
    if args.gt:
        drawn['ground truth'] = coco_instances(args.gt, args.img, classes)
    notes = {'prediction': f'no instance scores >= {args.score_thr:g}', 'ground truth': 'no annotation'}
    panels = [(title, draw_instances(image, factor, instances, classes, colours, notes[title]))
              for title, instances in drawn.items()]
    present = sorted({instance['label'] for instances in drawn.values() for instance in instances})
    return panels, [(classes[i], tuple(int(c) for c in colours[i])) for i in present]


# --- classification -----------------------------------------------------------------------------------------------
def classification(cfg: Config, image: np.ndarray, factor: int, args) -> Tuple[List[Panel], Legend]:
    from mmpretrain.apis import ImageClassificationInferencer

    inferencer = ImageClassificationInferencer(model=cfg, pretrained=args.checkpoint, device=args.device)
    check_all_weights_loaded(inferencer.model, args.checkpoint)
    scores = inferencer(args.img)[0]['pred_scores']
    classes = list(inferencer.classes or [str(i) for i in range(len(scores))])
    if args.gt and args.gt not in classes:
        raise ValueError(f'--gt {args.gt!r} is not one of the checkpoint\'s {len(classes)} classes, e.g. '
                         f'{classes[:10]}')
    size = factor * image.shape[0]
    scale = text_scale(size)
    _, line = text_size('Ag', scale)
    rows = [(classes[i], float(scores[i])) for i in np.argsort(-scores)[:args.topk]]
    panel = np.full((size, max(size, text_size('m' * 20, scale)[0] + 2 * GAP), 3), BACKGROUND, np.uint8)
    pitch, bar = 3 * line, panel.shape[1] - 2 * GAP
    for row, (name, score) in enumerate(rows):
        top = GAP + row * pitch
        colour = TRUTH if name == args.gt else BAR
        cv2.rectangle(panel, (GAP, top + line + 8), (GAP + max(1, int(bar * score)), top + 2 * line + 8), colour, -1)
        put_text(panel, fit(f'{score:.2f}  {name}', panel.shape[1] - 2 * GAP, scale), GAP, top + line, scale)
    if args.gt:
        put_text(panel, fit(f'true class: {args.gt}', panel.shape[1] - 2 * GAP, scale), GAP, size - GAP, scale, TRUTH)
    return [(f'top-{len(rows)}', panel)], []


TASKS = {'mmseg': segmentation, 'mmdet': detection, 'mmpretrain': classification}


def compose(panels: List[Panel], legend: Legend) -> Tuple[np.ndarray, dict]:
    """Panels in a row under their titles, the legend to their right; returns the picture and where each part is
    (``{'panels': {title: (x, y, w, h)}, 'legend': [(name, colour, (x, y, w, h) of its swatch)]}``)."""
    height = max(panel.shape[0] for _, panel in panels)
    scale = text_scale(height)
    _, line = text_size('Ag', scale)
    title_height = line + 2 * GAP
    swatch = line + 10
    legend_width = (max(text_size(name, scale)[0] for name, _ in legend) + swatch + 3 * GAP) if legend else 0
    width = GAP + sum(panel.shape[1] + GAP for _, panel in panels) + legend_width
    canvas = np.full((title_height + height + GAP, width, 3), BACKGROUND, np.uint8)
    layout = dict(panels={}, legend=[])
    left = GAP
    for title, panel in panels:
        put_text(canvas, title, left, GAP + line, scale)
        canvas[title_height:title_height + panel.shape[0], left:left + panel.shape[1]] = panel
        layout['panels'][title] = (left, title_height, panel.shape[1], panel.shape[0])
        left += panel.shape[1] + GAP
    if legend:
        put_text(canvas, 'classes', left + GAP, GAP + line, scale)
        for row, (name, colour) in enumerate(legend):
            top = title_height + row * (swatch + GAP // 2)
            cv2.rectangle(canvas, (left + GAP - 1, top - 1), (left + GAP + swatch, top + swatch), INK, 1)
            canvas[top:top + swatch, left + GAP:left + GAP + swatch] = colour
            put_text(canvas, name, left + 2 * GAP + swatch, top + (swatch + line) // 2, scale)
            layout['legend'].append((name, colour, (left + GAP, top, swatch, swatch)))
    return canvas, layout


def main(argv=None) -> dict:
    """Writes the picture; returns its layout (see :func:`compose`)."""
    args = parse_args(argv)
    if not osp.isfile(args.img):
        raise FileNotFoundError(f'Image not found: {args.img!r}')
    if not args.out_file.lower().endswith('.png'):
        raise ValueError(f'--out-file must be a .png file, got {args.out_file!r}')
    if not 0 < args.opacity <= 1:
        raise ValueError(f'--opacity must be in (0, 1], got {args.opacity}')
    cfg = Config.fromfile(args.config)  # imports the config's custom_imports (the backbone, its datasets)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise ValueError(f'{args.config}: default_scope={scope!r} has no image demo; supported scopes: '
                         f'{sorted(TASKS)}')
    if not args.device.startswith('cuda'):
        sync_bn_to_bn(cfg.model)  # one process, nothing to synchronise
    image = mmcv.imread(args.img, channel_order='rgb')
    factor = max(1, math.ceil(args.min_size / min(image.shape[:2])))
    panels, legend = TASKS[scope](cfg, image, factor, args)
    panels = [('input', enlarge(image, factor))] + panels
    canvas, layout = compose(panels, legend)
    mkdir_or_exist(osp.dirname(osp.abspath(args.out_file)))
    mmcv.imwrite(mmcv.rgb2bgr(canvas), args.out_file)
    print(f'Saved {" | ".join(title for title, _ in panels)} of {args.img} to {args.out_file}')
    return dict(layout, factor=factor)


if __name__ == '__main__':
    main()
