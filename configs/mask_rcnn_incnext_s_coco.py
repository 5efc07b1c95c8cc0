# Mask R-CNN + FPN, InceptionNeXt-S, COCO, 1x. Drop path 0.3: the paper's dense-prediction value for S.
_base_ = './mask_rcnn_incnext_t_coco.py'

checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_small.pth'  # ImageNet-1K

model = dict(
    backbone=dict(arch='small', drop_path_rate=0.3, init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
