# 12 epochs (steps at 8 and 11, 1000-iteration warm-up: ./schedule_1x_adamw.py) with the optimisation of mmdet's
# ConvNeXt-T Mask R-CNN (mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py): AdamW lr 1e-4, wd 0.05, layer-wise
# lr decay 0.95 over 6 layers, mixed precision (AmpOptimWrapper: float16 with dynamic loss scaling; bfloat16 autocast
# on a CPU).
_base_ = './schedule_1x_adamw.py'

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    # ConvNeXt's rules on InceptionNeXt's names; no weight decay on 1-D parameters (norms, biases, layer scales).
    constructor='InceptionNeXtLearningRateDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.95, decay_type='layer_wise', num_layers=6))  # 6 for T, 12 for S and B
