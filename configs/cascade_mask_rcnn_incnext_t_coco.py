# Cascade Mask R-CNN + FPN, InceptionNeXt-T, COCO, 1x: the model and optimisation of
# cascade_mask_rcnn_incnext_t_coco_3x.py (mmdet's ConvNeXt-T recipe, which mmdet ships as 3x only) on mmdet's 1x
# schedule: 12 epochs, lr x0.1 after epochs 8 and 11, single-scale 1333x800 training
# (cascade-mask-rcnn_r50_fpn_1x_coco.py); the recipe's 1000-iteration warm-up.
_base_ = [
    '_base_/models/cascade_mask_rcnn_incnext_fpn.py',
    '_base_/datasets/coco_instance.py',
    '_base_/schedules/schedule_1x_adamw_layer_decay.py',
    '_base_/det_runtime.py',
]

checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'  # ImageNet-1K

model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
optim_wrapper = dict(optimizer=dict(lr=2e-4), paramwise_cfg=dict(decay_rate=0.7))
