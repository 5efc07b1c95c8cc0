# mmdet's runtime (default_scope='mmdet', hooks, DetLocalVisualizer), plus the imports that register the
# InceptionNeXt backbone and the COCO dataset classes.
_base_ = ['mmdet::_base_/default_runtime.py', './reliable_runtime.py']

custom_imports = dict(imports=['mmincnext', 'mmincnext.datasets.det'], allow_failed_imports=False)
