# Cascade Mask R-CNN + FPN, InceptionNeXt-B, COCO, 3x: as the S config (mmdet has no ConvNeXt-B cascade), with
# the ConvNeXt-B settings of ConvNeXt's own Cascade Mask R-CNN ConvNeXt-B (ImageNet-1K) config
# (cascade_mask_rcnn_convnext_base_patch4_window7_mstrain_480-800_giou_4conv1f_adamw_3x_coco_in1k.py): drop path
# 0.7, layer-wise lr decay 0.8 over 12 layers (AdamW lr 2e-4 and wd 0.05 as T and S).
_base_ = './cascade_mask_rcnn_incnext_t_coco_3x.py'

checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_base.pth'  # ImageNet-1K

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.7, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.8, num_layers=12))
