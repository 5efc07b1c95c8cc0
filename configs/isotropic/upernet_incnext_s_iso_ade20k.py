# UperNet + InceptionNeXt-S (iso.) on ADE20K 512x512, 160k iterations, batch 16 (8 GPUs x 2): an isotropic backbone
# run the way mmseg runs ViT/DeiT with UperNet (mmseg's vit/vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512.py,
# whose model base this config inherits): four block outputs at stride 16, rescaled by MultiLevelNeck (x4, x2, x1,
# x0.5) to strides 4, 8, 16, 32 for UPerHead (512 ch, pool scales 1-6) and the auxiliary FCNHead (on the stride-32
# map, mmseg's ViT in_index 3; loss weight 0.4). The paper has no dense result for its isotropic models.
# The schedule is mmseg's for DeiT-S + UperNet, which is also the paper's UperNet schedule (Swin's): AdamW lr 6e-5,
# wd 0.01 (none on norms), 1500-iteration linear warm-up, poly decay (power 1) (../_base_/schedules/).
_base_ = [
    'mmseg::_base_/models/upernet_vit-b16_ln_mln.py', '../_base_/datasets/ade20k.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_160k_adamw.py'
]
# No ImageNet-1K weights of InceptionNeXt-S (iso.) are released: the backbone starts from what
# `python tools/train.py configs/isotropic/incnext_s_iso_in1k.py` writes last (its state_dict holds the EMA weights).
checkpoint = 'work_dirs/incnext_s_iso_in1k/epoch_300.pth'
channels = 384
model = dict(
    # mmseg's base names a ViT checkpoint here, which EncoderDecoder would hand to the backbone.
    pretrained=None,
    data_preprocessor=dict(size=(512, 512)),  # pad training batches to the crop size
    backbone=dict(
        _delete_=True,
        type='IsotropicInceptionNeXt',
        arch='small',
        # The last block of each quarter of the 18 (ViT-B/DeiT's (2, 5, 8, 11) of 12, rounded up).
        out_indices=(4, 8, 13, 17),
        # A new LayerNorm on each of the four outputs, as the InceptionNeXt authors add a norm to each stage output
        # of their dense models (mmseg's ViT "-ln" variants normalise the last one only).
        out_norms=True,
        # As the ImageNet-1K model (isotropic ConvNeXt's --layer_scale_init_value 0); drop path 0.1 as mmseg's DeiT-S.
        layer_scale_init_value=0.,
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    neck=dict(in_channels=[channels] * 4, out_channels=channels, scales=[4, 2, 1, 0.5]),
    decode_head=dict(in_channels=[channels] * 4, num_classes=150),
    auxiliary_head=dict(in_channels=channels, num_classes=150))
train_dataloader = dict(batch_size=2)
