# Cascade Mask R-CNN + FPN, InceptionNeXt-T, COCO, 3x (36 epochs, batch 16 = 8 GPUs x 2) with multi-scale + crop
# training: mmdet's ConvNeXt-T recipe (cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py):
# 4conv1fc box heads with SyncBN and GIoU loss, AdamW lr 2e-4, wd 0.05, layer-wise lr decay 0.7 over 6 layers, AMP,
# drop path 0.4.
_base_ = [
    '_base_/models/cascade_mask_rcnn_incnext_fpn.py',
    '_base_/datasets/coco_instance_ms_crop.py',
    '_base_/schedules/schedule_3x_adamw_layer_decay.py',
    '_base_/det_runtime.py',
]

checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'  # ImageNet-1K

model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
optim_wrapper = dict(optimizer=dict(lr=2e-4), paramwise_cfg=dict(decay_rate=0.7))
