# UperNet schedule of the paper (Swin's): 160k iterations, AdamW lr 6e-5, wd 0.01, 1500-iteration linear warm-up,
# then poly decay (power 1) to 0. Validation and checkpoints every 16k iterations (mmseg's schedule_160k).
_base_ = 'mmseg::_base_/schedules/schedule_160k.py'
optimizer = dict(_delete_=True, type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=optimizer,
    # No decay on norm layers (the paper; Swin's config) nor on the layer scales `gamma`: both are per-channel
    # scales, which the ImageNet pretraining did not decay either (timm exempts 1-D parameters), and decaying
    # gamma would pull every residual branch towards zero.
    paramwise_cfg=dict(norm_decay_mult=0., custom_keys={'.gamma': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0., power=1.0, by_epoch=False, begin=1500, end=160000),
]
