# Cascade Mask R-CNN + FPN, InceptionNeXt-S, COCO, 3x: as the T config, with mmdet's ConvNeXt-S settings
# (cascade-mask-rcnn_convnext-s-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py): drop path 0.6, decay over 12 layers.
_base_ = './cascade_mask_rcnn_incnext_t_coco_3x.py'

checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_small.pth'  # ImageNet-1K

model = dict(backbone=dict(arch='small', drop_path_rate=0.6, init_cfg=dict(checkpoint=checkpoint)))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
