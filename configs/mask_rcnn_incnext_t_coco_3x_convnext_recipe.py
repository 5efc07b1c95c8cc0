# Mask R-CNN + FPN, InceptionNeXt-T, COCO, 3x (36 epochs) with multi-scale + crop training, on mmdet's ConvNeXt-T
# recipe (mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py) instead of Swin-T's (mask_rcnn_incnext_t_coco_3x.py):
# AdamW lr 1e-4, wd 0.05, layer-wise lr decay 0.95 over 6 layers, AMP, drop path 0.4. Same model and data.
_base_ = [
    '_base_/models/mask_rcnn_incnext_fpn.py',
    '_base_/datasets/coco_instance_ms_crop.py',
    '_base_/schedules/schedule_3x_adamw_layer_decay.py',
    '_base_/det_runtime.py',
]

checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'  # ImageNet-1K

model = dict(backbone=dict(drop_path_rate=0.4, init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
