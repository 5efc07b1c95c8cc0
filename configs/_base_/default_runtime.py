# mmseg's runtime (default_scope='mmseg', SegLocalVisualizer, SegTTAModel for --tta) plus this package's modules:
# the InceptionNeXt backbone, the safe checkpoint reader and the ADE20K layout check.
_base_ = ['mmseg::_base_/default_runtime.py', './reliable_runtime.py']
custom_imports = dict(imports=['mmincnext', 'mmincnext.datasets.seg', 'mmincnext.utils'], allow_failed_imports=False)
