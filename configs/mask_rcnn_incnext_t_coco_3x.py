# Mask R-CNN + FPN, InceptionNeXt-T, COCO, 3x (36 epochs) with multi-scale + crop training: the recipe of mmdet's
# mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py (ConvNeXt-T's 3x config uses the same augmentation and schedule).
_base_ = [
    '_base_/models/mask_rcnn_incnext_fpn.py',
    '_base_/datasets/coco_instance_ms_crop.py',
    '_base_/schedules/schedule_3x_adamw.py',
    '_base_/det_runtime.py',
]

checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'  # ImageNet-1K

model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
