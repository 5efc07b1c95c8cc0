"""Synthetic scene parsing in ADE20K's folder and label layout, generated on first use.

Each scene is a random textured backdrop with overlapping objects of eight classes. A class is a shape with its
own texture family (a disc with dots, a square with a checkerboard, ...) in random colours, sizes, rotations and
texture periods, so neither colour nor one local cue alone identifies it; later objects occlude earlier ones.
Irregular "clutter" blobs are labelled 0 ("other"), which ADE20K's ``reduce_zero_label`` turns into the ignore
index, exactly as for ADE20K's unlabelled pixels. Layout (what mmseg's ``ADE20KDataset`` reads)::

    data_root/images/{training,validation}/scene_00000.jpg
    data_root/annotations/{training,validation}/scene_00000.png   # uint8: 0 other, 1 backdrop, 2.. objects
    data_root/meta.json                                           # the generation settings, checked on reuse

Every image has its own random stream, seeded by (seed, split, index): the same settings give the same bytes,
and the validation split never shares a stream with the training split.

This module needs no task library (the detection and classification generators share its renderer); the dataset
class that reads these scenes, ``SyntheticScenesDataset``, is mmseg's and lives in ``ade20k.py``.
"""
import os.path as osp
from typing import Callable, Dict, Tuple

import cv2
import mmcv
import numpy as np

from .generated import write_once

# Bump when the rendering changes, so an existing folder made by an older generator is not silently reused.
GENERATOR_VERSION = 1
SPLITS = ('training', 'validation')
OTHER, BACKDROP = 0, 1
LUMA = np.array([0.114, 0.587, 0.299], dtype=np.float32)  # BGR weights (images are written as BGR)


# --- shapes: masks in an object's own (rotated, centred) coordinates; r is the object's radius in pixels ---
def _regular_polygon(sides: int) -> Callable:

    def mask(x, y, r, rng):
        sector = 2 * np.pi / sides
        offset = np.mod(np.arctan2(y, x), sector) - sector / 2
        return np.hypot(x, y) <= r * np.cos(np.pi / sides) / np.cos(offset)

    return mask


def _star(x, y, r, rng):
    sector = 2 * np.pi / 5
    to_tip = np.abs(2 * np.mod(np.arctan2(y, x), sector) / sector - 1)  # 1 at a tip, 0 between two
    inner = 0.45 * r
    return np.hypot(x, y) <= inner + (r - inner) * to_tip


def _ring(x, y, r, rng):
    dist = np.hypot(x, y)
    return (dist <= r) & (dist >= r * rng.uniform(0.5, 0.65))


def _ellipse(x, y, r, rng):
    return (x / r)**2 + (y / (r * rng.uniform(0.4, 0.6)))**2 <= 1


def _cross(x, y, r, rng):
    arm = r * rng.uniform(0.25, 0.35)
    return ((np.abs(x) <= arm) & (np.abs(y) <= r)) | ((np.abs(y) <= arm) & (np.abs(x) <= r))


def _square(x, y, r, rng):
    return np.maximum(np.abs(x), np.abs(y)) <= 0.8 * r


def _disc(x, y, r, rng):
    return np.hypot(x, y) <= r


# --- textures: a pattern in [0, 1] that blends an object's two colours; periods are in pixels ---
def _dots(x, y, r, rng):
    period = rng.uniform(8, 12)
    dx, dy = np.mod(x, period) - period / 2, np.mod(y, period) - period / 2
    return (np.hypot(dx, dy) <= period * rng.uniform(0.25, 0.35)).astype(np.float32)


def _checker(x, y, r, rng):
    cell = rng.uniform(5, 9)
    return np.mod(np.floor(x / cell) + np.floor(y / cell), 2).astype(np.float32)


def _stripes(x, y, r, rng):
    period = rng.uniform(8, 12)
    return (np.mod(x, period) < period / 2).astype(np.float32)


def _speckle(x, y, r, rng):
    return rng.random(x.shape, dtype=np.float32)


def _grid(x, y, r, rng):
    period, width = rng.uniform(9, 13), rng.uniform(2, 3)
    return ((np.mod(x, period) < width) | (np.mod(y, period) < width)).astype(np.float32)


def _waves(x, y, r, rng):
    period, amplitude, wavelength = rng.uniform(8, 12), rng.uniform(2, 4), rng.uniform(16, 28)
    return (np.mod(x + amplitude * np.sin(2 * np.pi * y / wavelength), period) < period / 2).astype(np.float32)


def _gradient(x, y, r, rng):
    return np.clip((x / r + 1) / 2, 0, 1).astype(np.float32)


def _concentric(x, y, r, rng):
    period = rng.uniform(7, 11)
    return (np.mod(np.hypot(x, y), period) < period / 2).astype(np.float32)


# One entry per object class: (name, shape, texture). Label = position + 2 (0 is "other", 1 the backdrop).
OBJECT_CLASSES: Tuple[Tuple[str, Callable, Callable], ...] = (
    ('disc', _disc, _dots),
    ('square', _square, _checker),
    ('triangle', _regular_polygon(3), _stripes),
    ('ring', _ring, _speckle),
    ('cross', _cross, _grid),
    ('ellipse', _ellipse, _waves),
    ('star', _star, _gradient),
    ('hexagon', _regular_polygon(6), _concentric),
)
CLASSES = ('backdrop', ) + tuple(name for name, _, _ in OBJECT_CLASSES)
PALETTE = [[120, 120, 120], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
           [145, 30, 180], [70, 240, 240], [240, 50, 230]]


def object_coordinates(xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, angle: float):
    """Pixel grids ``xs``, ``ys`` in an object's own frame: centred on ``(cx, cy)``, rotated by ``angle``. The
    shapes and textures above are drawn in these coordinates."""
    x = np.cos(angle) * (xs - cx) + np.sin(angle) * (ys - cy)
    y = -np.sin(angle) * (xs - cx) + np.cos(angle) * (ys - cy)
    return x, y


def _colour_pair(rng: np.random.Generator, min_luma_gap: float) -> Tuple[np.ndarray, np.ndarray]:
    """Two random colours (any hues) whose brightness differs by at least ``min_luma_gap`` (of 255)."""
    while True:
        first, second = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
        if abs(float((first - second) @ LUMA)) >= min_luma_gap:
            return first, second


def _smooth_noise(rng: np.random.Generator, shape: Tuple[int, int]) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a coarse random grid, bicubically upsampled."""
    cells = int(rng.integers(3, 8))
    coarse = rng.random((cells, cells), dtype=np.float32)
    return np.clip(cv2.resize(coarse, shape[::-1], interpolation=cv2.INTER_CUBIC), 0, 1)


def _backdrop(rng: np.random.Generator, size: int) -> np.ndarray:
    low, high = _colour_pair(rng, min_luma_gap=20.)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    ramp = ramp[None, :] if rng.random() < 0.5 else ramp[:, None]
    pattern = 0.7 * _smooth_noise(rng, (size, size)) + 0.3 * ramp
    return low + pattern[..., None] * (high - low)


def render_scene(rng: np.random.Generator, size: int = 128, num_objects: Tuple[int, int] = (4, 8),
                 max_clutter: int = 2) -> Tuple[np.ndarray, np.ndarray]:
    """One scene: a ``(size, size, 3)`` uint8 image and its ``(size, size)`` uint8 label map."""
    image = _backdrop(rng, size)
    label = np.full((size, size), BACKDROP, dtype=np.uint8)
    objects = [int(c) for c in rng.integers(0, len(OBJECT_CLASSES), size=rng.integers(*num_objects, endpoint=True))]
    objects += [-1] * int(rng.integers(0, max_clutter, endpoint=True))
    for index in rng.permutation(objects):  # clutter lands at any depth, occluding and occluded
        radius = size * rng.uniform(0.10, 0.30)
        cx, cy = rng.uniform(0, size, size=2)
        angle = rng.uniform(0, 2 * np.pi)
        # Draw in a window around the object (every shape, rotated, lies within 1.6 radii of its centre).
        reach = 1.6 * radius
        top, left = max(int(cy - reach), 0), max(int(cx - reach), 0)
        ys, xs = np.mgrid[top:min(int(cy + reach) + 1, size), left:min(int(cx + reach) + 1, size)]
        x, y = object_coordinates(xs, ys, cx, cy, angle)
        if index < 0:  # clutter: an irregular blob, flat colour with mottling
            theta = np.arctan2(y, x)
            edge = radius * (1 + sum(rng.uniform(-0.2, 0.2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
                                     for k in range(2, 5)))
            mask, pattern, value = np.hypot(x, y) <= edge, 0.3 * _smooth_noise(rng, x.shape), OTHER
        else:
            _, shape, texture = OBJECT_CLASSES[index]
            mask, pattern, value = shape(x, y, radius, rng), texture(x, y, radius, rng), index + 2
        first, second = _colour_pair(rng, min_luma_gap=80.)  # textures stay visible in brightness alone
        window = (slice(top, top + x.shape[0]), slice(left, left + x.shape[1]))
        image[window][mask] = (first + pattern[..., None] * (second - first))[mask]
        label[window][mask] = value
    image += rng.normal(0, rng.uniform(2, 8), size=image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), label


def generate_synthetic_scenes(data_root: str, num_train: int = 600, num_val: int = 120, image_size: int = 128,
                              seed: int = 0) -> Dict:
    """Write both splits under ``data_root`` unless they are there already; returns the settings (``meta.json``).

    Written atomically and checked on reuse (:func:`~mmincnext.datasets.generated.write_once`).
    """
    meta = dict(generator_version=GENERATOR_VERSION, seed=seed, image_size=image_size,
                num_images=dict(training=num_train, validation=num_val), classes=list(CLASSES))

    def write(folder: str):
        for split_id, split in enumerate(SPLITS):
            for i in range(meta['num_images'][split]):
                image, label = render_scene(np.random.default_rng((seed, split_id, i)), image_size)
                name = f'scene_{i:05d}'
                mmcv.imwrite(image, osp.join(folder, 'images', split, name + '.jpg'),
                             params=[cv2.IMWRITE_JPEG_QUALITY, 90])
                mmcv.imwrite(label, osp.join(folder, 'annotations', split, name + '.png'))

    return write_once(data_root, meta, write)
