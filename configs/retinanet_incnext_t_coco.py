# RetinaNet + FPN, InceptionNeXt-T, COCO detection, 1x (12 epochs, batch 16 = 8 GPUs x 2): mmdet's RetinaNet with
# the backbone swapped as in retinanet_swin-t-p4-w7_fpn_1x_coco.py, trained with the AdamW recipe of the Mask R-CNN
# configs (see _base_/schedules/schedule_1x_adamw.py). mmdet's Swin-T RetinaNet keeps R50's SGD (lr 0.01) and
# publishes no result; its PVT RetinaNets, the transformer RetinaNets it does report, train with AdamW lr 1e-4.
_base_ = [
    '_base_/models/retinanet_incnext_fpn.py',
    '_base_/datasets/coco_detection.py',
    '_base_/schedules/schedule_1x_adamw.py',
    '_base_/det_runtime.py',
]

checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'  # ImageNet-1K

model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
