# Cascade Mask R-CNN + FPN, InceptionNeXt-B, COCO, 1x: as the S config (mmdet has no ConvNeXt-B cascade), with
# drop path 0.7, the value of ConvNeXt's own Cascade Mask R-CNN ConvNeXt-B (ImageNet-1K) config.
_base_ = './cascade_mask_rcnn_incnext_t_coco.py'

checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_base.pth'  # ImageNet-1K

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.7, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
