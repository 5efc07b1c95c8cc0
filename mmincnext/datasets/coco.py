"""COCO as mmdet reads it, with an error that names the expected files when they are not there."""
import os
import os.path as osp

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from . import DatasetLayoutError

COCO_LAYOUT = """\
    {data_root}
    ├── annotations/
    │   ├── instances_train2017.json
    │   └── instances_val2017.json
    ├── train2017/   (*.jpg)
    └── val2017/     (*.jpg)"""


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset`` that first checks the annotation file and the image folder exist.

    Without the check a missing COCO surfaces as a bare ``FileNotFoundError`` deep in pycocotools (or, for the
    images, only when the first batch is loaded); this says which file is missing and what layout is expected.
    """

    def load_data_list(self):
        self.check_layout()
        return super().load_data_list()

    def check_layout(self):
        img_dir = self.data_prefix.get('img', '')
        problems = []
        if not osp.isfile(self.ann_file):
            problems.append(f'annotation file {self.ann_file!r} does not exist')
        if not osp.isdir(img_dir):
            problems.append(f'image folder {img_dir!r} does not exist')
        elif not any(entry.is_file() for entry in os.scandir(img_dir)):
            problems.append(f'image folder {img_dir!r} holds no files')
        if problems:
            raise DatasetLayoutError(
                f'{type(self).__name__}: COCO is not where the config expects it: ' + '; '.join(problems) +
                '.\nExpected mmdet\'s standard COCO layout (https://cocodataset.org/#download):\n' +
                COCO_LAYOUT.format(data_root=self.data_root or '<data_root>') +
                "\nDownload it there, or point the config at it, e.g. --cfg-options "
                "train_dataloader.dataset.data_root=... val_dataloader.dataset.data_root=... "
                "val_evaluator.ann_file=...")
