from typing import Sequence

from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class SingleScaleIoUMetric(IoUMetric):
    """mmseg's ``IoUMetric`` of the single-scale prediction that ``SingleAndMultiScaleTTAModel`` keeps next to the
    multi-scale one (``pred_sem_seg_single_scale``), so that one ``--tta`` run reports both."""

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        if data_samples and 'pred_sem_seg_single_scale' not in data_samples[0]:
            raise KeyError('SingleScaleIoUMetric needs the single-scale prediction of SingleAndMultiScaleTTAModel '
                           "(tta_model=dict(type='SingleAndMultiScaleTTAModel', ...) and tools/test.py --tta)")
        super().process(data_batch, [{**sample, 'pred_sem_seg': sample['pred_sem_seg_single_scale']}
                                     for sample in data_samples])
