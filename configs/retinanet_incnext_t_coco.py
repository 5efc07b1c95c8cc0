# RetinaNet + FPN, InceptionNeXt-T, COCO detection, 1x (12 epochs, batch 16 = 8 GPUs x 2): mmdet's RetinaNet with
# the backbone swapped as in retinanet_swin-t-p4-w7_fpn_1x_coco.py, trained with the recipe of mmdet's PVT RetinaNets
# (retinanet_pvt-t_fpn_1x_coco.py, as its PVTv2 ones): AdamW lr 1e-4, weight decay 1e-4 on every parameter, on
# mmdet's 1x schedule (500-iteration linear warm-up, lr x0.1 after epochs 8 and 11). mmdet's Swin-T RetinaNet keeps
# R50's SGD (lr 0.01) and publishes no result; the PVT RetinaNets are the transformer-era RetinaNets mmdet reports.
_base_ = [
    '_base_/models/retinanet_incnext_fpn.py',
    '_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    '_base_/det_runtime.py',
]

checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'  # ImageNet-1K

model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001))
