"""The generated datasets share one writer (mmincnext.datasets.generated.write_once): a generation stopped half-way
leaves nothing behind, so the next run starts clean instead of reusing half a dataset."""
import importlib

import mmcv
import pytest
from helpers import require

# (the task library the dataset registers with, its module in mmincnext.datasets, the generator, its settings)
GENERATORS = [
    ('mmseg', 'seg', 'generate_synthetic_scenes', dict(num_train=24, num_val=6, image_size=64)),
    ('mmpretrain', 'cls', 'generate_synthetic_imagenet', dict(num_train=6, num_val=3, image_size=48)),
    ('mmdet', 'det', 'generate_synthetic_coco', dict(num_train_images=8, num_val_images=4, image_size=64)),
]


@pytest.mark.parametrize('library, module, name, settings', GENERATORS, ids=[g[2] for g in GENERATORS])
def test_interrupted_generation_leaves_nothing(library, module, name, settings, tmp_path, monkeypatch):
    require(library)
    generate = getattr(importlib.import_module(f'mmincnext.datasets.{module}'), name)
    calls = []
    imwrite = mmcv.imwrite

    def failing_imwrite(*args, **kwargs):
        calls.append(args[1])
        if len(calls) > 5:
            raise KeyboardInterrupt
        return imwrite(*args, **kwargs)

    monkeypatch.setattr(mmcv, 'imwrite', failing_imwrite)
    with pytest.raises(KeyboardInterrupt):
        generate(str(tmp_path / 'generated'), **settings)
    assert len(calls) == 6  # it was stopped in the middle, not before writing
    assert list(tmp_path.iterdir()) == []
