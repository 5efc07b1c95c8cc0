# mmpretrain's runtime (default_scope='mmpretrain', hooks, visualizer) and this package's reliable-training settings,
# plus the imports that register the InceptionNeXt backbone, the classifier and its head (mmincnext.models.classifiers
# needs mmpretrain, so `import mmincnext` alone does not load it) and the synthetic dataset.
_base_ = ['mmpretrain::_base_/default_runtime.py', './reliable_runtime.py']

custom_imports = dict(imports=['mmincnext', 'mmincnext.models.classifiers', 'mmincnext.datasets.cls'],
                      allow_failed_imports=False)
# Keep the three newest checkpoints and the best one by top-1 (mmpretrain keeps every epoch's).
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_best='auto'))
