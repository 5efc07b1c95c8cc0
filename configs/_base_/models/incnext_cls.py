# InceptionNeXt-T ImageNet classifier as the paper has it: the backbone's last stage (no extra norm: out_norms=False),
# global average pooling and the MlpHead (Linear 3x, GELU, LayerNorm, dropout, Linear). InceptionNeXtClassifier is
# mmpretrain's ImageClassifier, plus strict loading of official / timm / own checkpoints through
# init_cfg=dict(type='Pretrained', checkpoint=...).
model = dict(
    type='InceptionNeXtClassifier',
    backbone=dict(type='InceptionNeXt', arch='tiny', out_indices=(3, ), out_norms=False, drop_path_rate=0.1),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='MlpClsHead',
        num_classes=1000,
        in_channels=768,
        # Label smoothing 0.1 (the official train.py's --smoothing), applied to the mixed targets.
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)),
    # Mixup (alpha 0.8) or CutMix (alpha 1.0), one of the two per batch with equal chance: timm's Mixup with
    # mixup_alpha 0.8, cutmix_alpha 1.0, switch_prob 0.5, the official train.py's defaults.
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)
