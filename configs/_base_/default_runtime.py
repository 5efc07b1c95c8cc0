# mmseg's runtime (default_scope='mmseg', SegLocalVisualizer) plus this package's modules:
# the InceptionNeXt backbone, the safe checkpoint reader and the ADE20K layout check.
_base_ = ['mmseg::_base_/default_runtime.py', './reliable_runtime.py']
custom_imports = dict(
    imports=['mmincnext', 'mmincnext.datasets.seg', 'mmincnext.models.segmentors',
             'mmincnext.evaluation'],
    allow_failed_imports=False)
# --tta also reports the single-scale result: view 4 of ./datasets/ade20k.py's tta_pipeline (ratios 0.5, 0.75, 1.0,
# ... x no flip, flip) is r=1.0 unflipped. Here, not there: two bases may not both set tta_model.
tta_model = dict(type='SingleAndMultiScaleTTAModel', single_scale_view=4)
