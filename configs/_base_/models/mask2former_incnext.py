# Mask2Former on InceptionNeXt, ADE20K semantic segmentation. mmseg has no model-only base for Mask2Former: its R50
# config is the whole recipe (Mask2FormerHead with mmdet's deformable-attention pixel decoder, 100 queries, 9 decoder
# layers; 512x512 crops from short-edge multi-scale resizing; AdamW 1e-4, wd 0.05, grad clip 0.01, poly 0.9 over
# 160k iterations at batch 16), and its Swin configs inherit it with the backbone swapped. So does this file; the
# model configs add the backbone's parameter groups (see mask2former_incnext_t_ade20k.py).
_base_ = ['mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py', '../reliable_runtime.py']
# mmdet's modules (pixel decoder, assigner, losses) as mmseg's config imports them, and this package's.
custom_imports = dict(
    imports=['mmdet.models', 'mmincnext', 'mmincnext.datasets.seg'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='InceptionNeXt',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        # The authors' dense recipe: SyncBN trained in the backbone and a new SyncBN on each of the four outputs
        # (R50's frozen-affine SyncBN and Swin's LayerNorm do not apply).
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        out_norms=True,
        frozen_stages=-1),
    decode_head=dict(in_channels=[96, 192, 384, 768]))
# ADE20K read through CheckedADE20KDataset (names the missing folder and the expected layout).
train_dataloader = dict(dataset=dict(type='CheckedADE20KDataset'))
val_dataloader = dict(dataset=dict(type='CheckedADE20KDataset'))
test_dataloader = val_dataloader
