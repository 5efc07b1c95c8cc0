"""A synthetic instance-segmentation set in COCO's layout and JSON format, generated on first use.

Five of the synthetic scenes' object classes (``synthetic_scenes.OBJECT_CLASSES``: each a shape with its own texture
family, in random colours, sizes, rotations and texture periods) on the scenes' random backdrops. Instances overlap
and occlude each other; each is annotated with the RLE mask of its visible part, the box of that mask and its
area, as COCO annotates. Layout (mmdet's COCO layout, read by mmdet's COCO path)::

    data_root/annotations/instances_{train,val}2017.json
    data_root/{train,val}2017/000001.jpg ...
    data_root/meta.json             # the generation settings, checked on reuse

The train and val splits come from independent random streams of one seed: distinct, and the same bytes on every
machine.
"""
import json
import os
import os.path as osp

import cv2
import mmcv
import numpy as np
import pycocotools.mask as mask_util
from mmdet.registry import DATASETS

from .coco import CheckedCocoDataset
from .generated import write_once
from .synthetic_scenes import GENERATOR_VERSION as SCENES_VERSION
from .synthetic_scenes import OBJECT_CLASSES, _backdrop, _colour_pair, object_coordinates

# disc (dots), square (checker), triangle (stripes), ring (speckle), cross (grid)
OBJECTS = OBJECT_CLASSES[:5]
CLASSES = tuple(name for name, _, _ in OBJECTS)
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48)]
SPLITS = ('train2017', 'val2017')
# Bump when the rendering changes, so an existing folder made by an older generator is not silently reused.
GENERATOR_VERSION = 1
# An instance stays at least this visible: placements that would hide more of an earlier one are redrawn, so no
# annotation is a sliver and no object is hidden unannotated.
MIN_VISIBLE_FRACTION = 0.5


def _render_image(size: int, max_objects: int, rng: np.random.Generator):
    """One ``(size, size, 3)`` uint8 image and its instances ``[(class_index, visible_mask)]``, drawn back to
    front, with radii of 15-30% of the image side."""
    image = _backdrop(rng, size)
    ys, xs = np.mgrid[:size, :size].astype(np.float32)
    masks, labels = [], []
    for _ in range(int(rng.integers(1, max_objects, endpoint=True))):
        for _attempt in range(20):
            label = int(rng.integers(len(OBJECTS)))
            radius = size * rng.uniform(0.15, 0.30)
            cx, cy = rng.uniform(radius, size - radius, size=2)
            angle = rng.uniform(0, 2 * np.pi)
            x, y = object_coordinates(xs, ys, cx, cy, angle)
            _, shape, texture = OBJECTS[label]
            mask = shape(x, y, radius, rng)
            if all((_visible(masks, i) & ~mask).sum() >= MIN_VISIBLE_FRACTION * m.sum() for i, m in enumerate(masks)):
                break
        else:
            continue  # no placement keeps the others visible enough: one object fewer
        first, second = _colour_pair(rng, 80.)  # the texture's two colours, clearly apart
        image[mask] = (first + texture(x, y, radius, rng)[..., None] * (second - first))[mask]
        masks.append(mask)
        labels.append(label)
    image += rng.normal(0, rng.uniform(2, 8), size=image.shape).astype(np.float32)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return image, [(label, _visible(masks, i)) for i, label in enumerate(labels)]


def _visible(masks, i):
    """The part of ``masks[i]`` that the later (front) masks leave uncovered."""
    return masks[i] & ~np.logical_or.reduce(masks[i + 1:]) if i + 1 < len(masks) else masks[i]


def _coco_split(split: str, num_images: int, image_size: int, max_objects: int, seed: int, img_dir: str) -> dict:
    """Render one split into ``img_dir``; returns its COCO annotation dict."""
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        # Every image has its own stream, seeded by (seed, split, index): val never shares one with train.
        rng = np.random.default_rng((seed, SPLITS.index(split), image_id))
        image, instances = _render_image(image_size, max_objects, rng)
        file_name = f'{image_id:06d}.jpg'
        mmcv.imwrite(image, osp.join(img_dir, file_name), params=[cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append(dict(id=image_id, file_name=file_name, height=image_size, width=image_size))
        for label, mask in instances:
            ys, xs = np.nonzero(mask)
            rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
            x0, y0 = int(xs.min()), int(ys.min())
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id, category_id=label + 1, iscrowd=0,
                area=int(mask.sum()),
                bbox=[x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0],
                segmentation=dict(size=[int(v) for v in rle['size']], counts=rle['counts'].decode('ascii'))))
    categories = [dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(CLASSES)]
    return dict(images=images, annotations=annotations, categories=categories)


def generate_synthetic_coco(data_root: str, num_train_images: int = 600, num_val_images: int = 100,
                            image_size: int = 128, max_objects: int = 4, seed: int = 0) -> dict:
    """Write the set under ``data_root`` unless it is there already; returns the settings (``meta.json``).

    Written atomically and checked on reuse (:func:`~mmincnext.datasets.generated.write_once`).
    """
    settings = dict(generator_version=GENERATOR_VERSION, scenes_generator_version=SCENES_VERSION,
                    num_train_images=num_train_images, num_val_images=num_val_images, image_size=image_size,
                    max_objects=max_objects, seed=seed, classes=list(CLASSES))

    def write(folder: str):
        os.makedirs(osp.join(folder, 'annotations'))
        for split, num_images in zip(SPLITS, (num_train_images, num_val_images)):
            os.makedirs(osp.join(folder, split))
            coco = _coco_split(split, num_images, image_size, max_objects, seed, osp.join(folder, split))
            with open(osp.join(folder, 'annotations', f'instances_{split}.json'), 'w') as f:
                json.dump(coco, f)

    return write_once(data_root, settings, write)


@DATASETS.register_module()
class SyntheticCocoDataset(CheckedCocoDataset):
    """The synthetic set, read by mmdet's COCO path; generated under ``data_root`` the first time it is used.

    Args:
        data_root (str): Where the set lives (or is written). Defaults to ``'data/synthetic_coco'``.
        generator (dict, optional): Arguments of :func:`generate_synthetic_coco` other than ``data_root``.
        Other arguments as mmdet's ``CocoDataset`` (``ann_file``, ``data_prefix``, ``pipeline``, ...).
    """

    METAINFO = dict(classes=CLASSES, palette=PALETTE)

    def __init__(self, *args, data_root: str = 'data/synthetic_coco', generator: dict = None, **kwargs):
        self.generator = generator or {}
        super().__init__(*args, data_root=data_root, **kwargs)

    def load_data_list(self):
        generate_synthetic_coco(self.data_root, **self.generator)
        return super().load_data_list()
