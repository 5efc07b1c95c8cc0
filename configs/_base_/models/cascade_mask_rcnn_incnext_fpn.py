# Cascade Mask R-CNN with FPN on InceptionNeXt-T: mmdet's ResNet-50 Cascade Mask R-CNN (RPN, three cascade stages
# with IoU 0.5/0.6/0.7, 4-conv mask head, 80 COCO classes) with the backbone swapped and the box heads of mmdet's
# ConvNeXt-T config (cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py): 4 shared convs
# with SyncBN + 1 fc, regressing decoded boxes with GIoU loss.
_base_ = 'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py'

model = dict(
    backbone=dict(  # as in ./mask_rcnn_incnext_fpn.py
        _delete_=True,
        type='InceptionNeXt',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.4,  # ConvNeXt-T's for this model; S/B configs raise it
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        frozen_stages=-1),
    neck=dict(in_channels=[96, 192, 384, 768]),
    roi_head=dict(bbox_head=[
        dict(
            type='ConvFCBBoxHead',
            num_shared_convs=4,
            num_shared_fcs=1,
            in_channels=256,
            conv_out_channels=256,
            fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=80,
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=target_stds),
            reg_class_agnostic=False,
            reg_decoded_bbox=True,
            norm_cfg=dict(type='SyncBN', requires_grad=True),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
        # The three stages' box-delta scales, as in mmdet's base.
        for target_stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
    ]))
