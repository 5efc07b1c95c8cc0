# 36 epochs (steps at 27 and 33, as ./schedule_3x_adamw.py) with ./schedule_1x_adamw_layer_decay.py's optimisation:
# mmdet's ConvNeXt-T Mask R-CNN 3x schedule.
_base_ = './schedule_1x_adamw_layer_decay.py'

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
