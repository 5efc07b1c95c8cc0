# RetinaNet with FPN on InceptionNeXt-T: mmdet's ResNet-50 RetinaNet (RetinaHead, anchors, focal loss, assigner,
# test settings, 80 COCO classes) with the backbone swapped, as mmdet's retinanet_swin-t-p4-w7_fpn_1x_coco.py does.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='InceptionNeXt',
        arch='tiny',
        # RetinaNet predicts on strides 8-128: the FPN takes stages 1-3 (strides 8, 16, 32) and adds P6/P7 by
        # stride-2 convs. Stage 0 is not returned, so it gets no output norm (an unused norm0 would hold parameters
        # without gradients, which DDP rejects); Swin-T's config returns (1, 2, 3) for the same reason.
        out_indices=(1, 2, 3),
        drop_path_rate=0.2,  # as the Mask R-CNN configs (the paper's dense value for T; Swin-T's RetinaNet: 0.2)
        # The authors' dense recipe, as in mask_rcnn_incnext_fpn.py: SyncBN trained in the backbone and the norms.
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        frozen_stages=-1),
    # (init_cfg: each model config sets dict(type='Pretrained', checkpoint=<its ImageNet-1K weights>).)
    # The three returned stages all feed the FPN (start_level 0, as Swin-T's; R50 starts at 1 to skip its stride-4
    # C2); P6 is built on the last input (add_extra_convs='on_input', inherited), like R50's on C5.
    neck=dict(in_channels=[192, 384, 768], start_level=0, num_outs=5))
