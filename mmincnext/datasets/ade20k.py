"""ADE20K-format datasets (they need mmsegmentation): ADE20K with an up-front check of the directory layout, and the
synthetic scenes of the segmentation demo.

mmseg's ``ADE20KDataset`` lists whatever the configured folders hold: a wrong ``data_root`` ends in an empty dataset
or a low-level ``FileNotFoundError`` deep in the data loader. This subclass checks first and says where it looked and
what it expects.
"""
import os
import os.path as osp
from typing import List

from mmseg.datasets import ADE20KDataset
from mmseg.registry import DATASETS

from . import DatasetLayoutError
from .synthetic_scenes import CLASSES, PALETTE, generate_synthetic_scenes

EXPECTED_LAYOUT = """\
ADEChallengeData2016/                      <- data_root (default: data/ade/ADEChallengeData2016)
    images/training/*.jpg                  20210 training images
    images/validation/*.jpg                2000 validation images
    annotations/training/*.png             one label map per image, same file stem
    annotations/validation/*.png
(ADEChallengeData2016.zip from http://sceneparsing.csail.mit.edu unpacks to this layout; or set data_root, e.g.
--cfg-options train_dataloader.dataset.data_root=... val_dataloader.dataset.data_root=...
test_dataloader.dataset.data_root=...)"""


@DATASETS.register_module()
class CheckedADE20KDataset(ADE20KDataset):
    """mmseg's ``ADE20KDataset`` that fails early, with the expected layout, when the data is not there.

    Checked before listing: the image folder exists and holds at least one ``img_suffix`` file, the annotation
    folder (if configured) exists, and every listed image has its label map. Only local paths are checked
    (with ``backend_args`` set, the files live elsewhere and mmseg's own listing is used as is).
    """

    def load_data_list(self) -> List[dict]:
        if self.backend_args is not None:
            return super().load_data_list()
        img_dir = self.data_prefix.get('img_path', '')
        ann_dir = self.data_prefix.get('seg_map_path')
        self._require_dir(img_dir, 'image', self.img_suffix)
        if ann_dir:
            self._require_dir(ann_dir, 'annotation', self.seg_map_suffix)
        data_list = super().load_data_list()
        if not data_list:
            self._fail(f'no image ending in {self.img_suffix!r} under the image folder {osp.abspath(img_dir)!r}' +
                       (f' (listed by the ann_file {self.ann_file!r})' if self.ann_file else ''))
        unlabelled = [info['img_path'] for info in data_list
                      if 'seg_map_path' in info and not osp.isfile(info['seg_map_path'])]
        if unlabelled:
            shown = '\n    '.join(unlabelled[:5])
            self._fail(f'{len(unlabelled)} of {len(data_list)} images have no label map '
                       f'({self.seg_map_suffix!r}, same stem) under {osp.abspath(ann_dir)!r}, e.g.:\n    {shown}')
        return data_list

    def _require_dir(self, path: str, kind: str, suffix: str) -> None:
        if not path or not osp.isdir(path):
            self._fail(f'the {kind} folder {osp.abspath(path)!r} does not exist')
        if not self.ann_file and not any(
                name.endswith(suffix) for _, _, names in os.walk(path) for name in names):
            self._fail(f'the {kind} folder {osp.abspath(path)!r} holds no {suffix!r} file')

    def _fail(self, problem: str) -> None:
        raise DatasetLayoutError(
            f'ADE20K dataset (data_root={osp.abspath(self.data_root or ".")!r}): {problem}.\n'
            f'Expected layout:\n{EXPECTED_LAYOUT}')


@DATASETS.register_module()
class SyntheticScenesDataset(ADE20KDataset):
    """ADE20K-format synthetic scenes (see the module docstring), generated under ``data_root`` on first use.

    Everything else is mmseg's ``ADE20KDataset``: ``.jpg`` images, ``.png`` labels, ``reduce_zero_label=True``;
    ``data_prefix`` picks the split, e.g. ``dict(img_path='images/validation',
    seg_map_path='annotations/validation')``.

    Args:
        data_root (str): Where the dataset is (or will be written). Defaults to ``data/synthetic_scenes``.
        num_train / num_val (int): Images per split. Defaults to 600 / 120.
        image_size (int): Side of the square images. Defaults to 128.
        seed (int): Seed of the whole dataset. Defaults to 0.
        **kwargs: ``ADE20KDataset``'s arguments (``data_prefix``, ``pipeline``, ...).
    """
    METAINFO = dict(classes=CLASSES, palette=PALETTE)

    def __init__(self, data_root: str = 'data/synthetic_scenes', num_train: int = 600, num_val: int = 120,
                 image_size: int = 128, seed: int = 0, **kwargs):
        generate_synthetic_scenes(data_root, num_train=num_train, num_val=num_val, image_size=image_size, seed=seed)
        super().__init__(data_root=data_root, **kwargs)
