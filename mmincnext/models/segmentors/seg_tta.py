from typing import List

from mmengine.structures import PixelData
from mmseg.models import SegTTAModel
from mmseg.registry import MODELS
from mmseg.utils import SampleList


@MODELS.register_module()
class SingleAndMultiScaleTTAModel(SegTTAModel):
    """mmseg's ``SegTTAModel`` (softmax scores of all views averaged at the original resolution) that also keeps the
    prediction of one view, the single-scale test view, as ``pred_sem_seg_single_scale``.

    One ``--tta`` pass thus gives the multi-scale and the single-scale result (``SingleScaleIoUMetric``) without
    running the single-scale view twice. Each view's prediction comes from ``module.test_step`` on that view's batch,
    so the single-scale one is exactly what a plain single-scale test predicts.

    Args:
        single_scale_view (int): index of the single-scale view in the order ``TestTimeAug`` produces the views.
    """

    def __init__(self, single_scale_view: int, **kwargs):
        super().__init__(**kwargs)
        self.single_scale_view = single_scale_view

    def merge_preds(self, data_samples_list: List[SampleList]) -> SampleList:
        predictions = super().merge_preds(data_samples_list)
        for views, prediction in zip(data_samples_list, predictions):
            if not 0 <= self.single_scale_view < len(views):
                raise ValueError(f'single_scale_view={self.single_scale_view}, but the tta_pipeline gives '
                                 f'{len(views)} views')
            view = views[self.single_scale_view]
            if view.metainfo.get('flip', False):
                raise ValueError(f'view {self.single_scale_view} of the tta_pipeline is flipped: single_scale_view '
                                 'must name the unflipped single-scale view')
            prediction.set_data({'pred_sem_seg_single_scale': PixelData(data=view.pred_sem_seg.data)})
        return predictions
