"""A synthetic ImageNet-layout classification set, generated on first use.

Each image is one large object on a shaded backdrop. A class is a shape with a texture, drawn from the synthetic
scenes' shape/texture table (``synthetic_scenes.OBJECT_CLASSES``, so both demos see the same objects), plus two
swapped pairs (``disc_checker``, ``square_dots``) so that neither the shape nor the texture alone names every
class. The backdrop colour, the texture's two colours, the size, position, rotation and texture period are random,
so colour says nothing. The layout is the one mmpretrain's ``ImageNet`` reads::

    data_root/train/<class>/<class>_00000.JPEG
    data_root/val/<class>/val_00000.JPEG
    data_root/meta.json              # the generation settings, checked on reuse

Every image has its own random stream, seeded by (seed, split, class, index): the same settings give the same
bytes, and the validation split never shares a stream with the training split.
"""
import os.path as osp
from typing import Dict

import cv2
import mmcv
import numpy as np
from mmpretrain.datasets import ImageNet
from mmpretrain.registry import DATASETS

from . import synthetic_scenes
from .generated import write_once
from .synthetic_scenes import OBJECT_CLASSES, object_coordinates

# Bump when the rendering changes, so an existing folder made by an older generator is not silently reused.
GENERATOR_VERSION = 1
SPLITS = ('train', 'val')

_SHAPES = {name: shape for name, shape, _ in OBJECT_CLASSES}
_TEXTURES = {name: texture for name, _, texture in OBJECT_CLASSES}
_PAIRS = [(name, name) for name in _SHAPES] + [('disc', 'square'), ('square', 'disc')]  # (shape of, texture of)
# (class name, shape, texture), e.g. 'disc_dots'; sorted by name, the order in which mmpretrain numbers the class
# folders.
IMAGE_CLASSES = tuple(sorted(
    (f"{shape_of}_{_TEXTURES[texture_of].__name__.lstrip('_')}", _SHAPES[shape_of], _TEXTURES[texture_of])
    for shape_of, texture_of in _PAIRS))
CLASSES = tuple(name for name, _, _ in IMAGE_CLASSES)


def _distinct_colours(rng: np.random.Generator, count: int, min_distance: float) -> np.ndarray:
    """``count`` random RGB colours, pairwise at least ``min_distance`` apart."""
    while True:
        colours = rng.uniform(0, 255, size=(count, 3)).astype(np.float32)
        gaps = np.linalg.norm(colours[:, None] - colours[None], axis=-1)[np.triu_indices(count, 1)]
        if gaps.min() >= min_distance:
            return colours


def render_object_image(rng: np.random.Generator, class_index: int, size: int = 64) -> np.ndarray:
    """A ``(size, size, 3)`` uint8 image of one object of class ``CLASSES[class_index]`` (random colours, so the
    channel order does not matter)."""
    _, shape, texture = IMAGE_CLASSES[class_index]
    backdrop, first, second = _distinct_colours(rng, 3, min_distance=60.)
    # Backdrop: one colour with a low-frequency shading.
    coarse = rng.uniform(-30, 30, size=(int(rng.integers(2, 6)), ) * 2).astype(np.float32)
    image = backdrop + cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)[..., None]
    # The object, drawn in its own frame.
    radius = size * rng.uniform(0.3, 0.42)
    cx, cy = rng.uniform(0.45, 0.55, size=2) * size
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    x, y = object_coordinates(xs, ys, cx, cy, angle)
    mask = shape(x, y, radius, rng)
    pattern = texture(x, y, radius, rng)[..., None]
    image[mask] = (first + pattern * (second - first))[mask]
    image += rng.normal(0, rng.uniform(2, 6), size=image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def generate_synthetic_imagenet(data_root: str, num_train: int = 160, num_val: int = 50, image_size: int = 64,
                                seed: int = 0) -> Dict:
    """Write both splits (``num_train`` / ``num_val`` images per class) under ``data_root`` unless they are there
    already; returns the settings (``meta.json``).

    Written atomically and checked on reuse (:func:`~mmincnext.datasets.generated.write_once`).
    """
    # The shapes and textures are the scenes generator's: its version is part of ours.
    meta = dict(generator_version=[GENERATOR_VERSION, synthetic_scenes.GENERATOR_VERSION], seed=seed,
                image_size=image_size, images_per_class=dict(train=num_train, val=num_val), classes=list(CLASSES))

    def write(folder: str):
        for split_id, split in enumerate(SPLITS):
            for class_index, class_name in enumerate(CLASSES):
                stem = class_name if split == 'train' else split
                for i in range(meta['images_per_class'][split]):
                    image = render_object_image(np.random.default_rng((seed, split_id, class_index, i)),
                                                class_index, image_size)
                    mmcv.imwrite(image, osp.join(folder, split, class_name, f'{stem}_{i:05d}.JPEG'),
                                 params=[cv2.IMWRITE_JPEG_QUALITY, 90])

    return write_once(data_root, meta, write)


@DATASETS.register_module()
class SyntheticImageNet(ImageNet):
    """The synthetic ImageNet-layout set (see the module docstring), generated under ``data_root`` on first use.

    Everything else is mmpretrain's ``ImageNet``: ``split='train'`` or ``'val'`` picks the folder, classes are
    the sorted folder names.

    Args:
        data_root (str): Where the dataset is (or will be written). Defaults to ``data/synthetic_imagenet``.
        split (str): ``'train'`` or ``'val'``.
        num_train / num_val (int): Images per class in each split. Defaults to 160 / 50.
        image_size (int): Side of the square images. Defaults to 64.
        seed (int): Seed of the whole dataset. Defaults to 0.
        **kwargs: ``ImageNet``'s arguments (``pipeline``, ...).
    """
    METAINFO = dict(classes=CLASSES)

    def __init__(self, data_root: str = 'data/synthetic_imagenet', split: str = 'train', num_train: int = 160,
                 num_val: int = 50, image_size: int = 64, seed: int = 0, **kwargs):
        if split not in SPLITS:
            raise ValueError(f'SyntheticImageNet split must be one of {SPLITS}, got {split!r}')
        generate_synthetic_imagenet(data_root, num_train=num_train, num_val=num_val, image_size=image_size,
                                    seed=seed)
        super().__init__(data_root=data_root, split=split, **kwargs)
