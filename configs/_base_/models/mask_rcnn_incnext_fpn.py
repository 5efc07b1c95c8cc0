# Mask R-CNN with FPN on InceptionNeXt-T: mmdet's ResNet-50 Mask R-CNN (heads, assigners, samplers, test settings,
# 80 COCO classes) with the backbone swapped, as mmdet's Swin-T and ConvNeXt-T Mask R-CNN configs do.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='InceptionNeXt',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        # The paper's dense-prediction drop path for T (0.2; also Swin-T's in mmdet); S/B configs raise it.
        drop_path_rate=0.2,
        # The authors' dense recipe: SyncBN in the backbone and on the new output norms, statistics kept training
        # (unlike ResNet's frozen BN): with 2 images per GPU, SyncBN normalises over the whole batch of 16.
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        frozen_stages=-1),  # Swin-T / ConvNeXt-T freeze nothing either
    # (init_cfg: each model config sets dict(type='Pretrained', checkpoint=<its ImageNet-1K weights>).)
    neck=dict(in_channels=[96, 192, 384, 768]))
