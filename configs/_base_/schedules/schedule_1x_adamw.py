# 12 epochs, batch 16 (8 GPUs x 2): mmdet's Swin-T Mask R-CNN 1x optimisation (mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py):
# AdamW lr 1e-4, weight decay 0.05, 1000-iteration linear warm-up, lr x0.1 after epochs 8 and 11.
# Plain AdamW as Swin-T (the paper's UperNet follows Swin's recipe too), for the Mask R-CNN configs. ConvNeXt-T's
# recipe, layer-wise lr decay (0.95 over 6 layers) and AMP, is ./schedule_1x_adamw_layer_decay.py (and its 3x and
# 160k siblings), through InceptionNeXtLearningRateDecayOptimizerConstructor (mmdet's own constructor only knows
# ConvNeXt/BEiT parameter names); the *_convnext_recipe and Cascade Mask R-CNN configs use it.
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    # No decay on normalisation layers (Swin-T: its 'norm' key) and on the layer scales 'gamma' (ConvNeXt-T's
    # constructor exempts every 1-D parameter). BN layers are found by type: the stem's and downsamples' BN are not
    # named 'norm'.
    paramwise_cfg=dict(norm_decay_mult=0., custom_keys={'.gamma': dict(decay_mult=0.)}))
