# Mask R-CNN + FPN, InceptionNeXt-T, COCO, 1x (12 epochs, batch 16 = 8 GPUs x 2): the recipe of mmdet's
# mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py (see the _base_ files for where each setting comes from).
_base_ = [
    '_base_/models/mask_rcnn_incnext_fpn.py',
    '_base_/datasets/coco_instance.py',
    '_base_/schedules/schedule_1x_adamw.py',
    '_base_/det_runtime.py',
]

checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'  # ImageNet-1K

model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
