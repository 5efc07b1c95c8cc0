# Mask R-CNN + FPN, InceptionNeXt-B, COCO, 1x. Drop path 0.4: the paper's dense-prediction value for B.
_base_ = './mask_rcnn_incnext_t_coco.py'

checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_base.pth'  # ImageNet-1K

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.4, init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
