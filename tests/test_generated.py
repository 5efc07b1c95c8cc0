"""The generated datasets share one writer (mmincnext.datasets.generated.write_once): a generation stopped half-way
leaves nothing behind, so the next run starts clean instead of reusing half a dataset."""
import mmcv
import pytest

from mmincnext.datasets.cls import generate_synthetic_imagenet
from mmincnext.datasets.det import generate_synthetic_coco
from mmincnext.datasets.seg import generate_synthetic_scenes

GENERATORS = [
    (generate_synthetic_scenes, dict(num_train=24, num_val=6, image_size=64)),
    (generate_synthetic_imagenet, dict(num_train=6, num_val=3, image_size=48)),
    (generate_synthetic_coco, dict(num_train_images=8, num_val_images=4, image_size=64)),
]


@pytest.mark.parametrize('generate, settings', GENERATORS, ids=lambda g: getattr(g, '__name__', ''))
def test_interrupted_generation_leaves_nothing(generate, settings, tmp_path, monkeypatch):
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
