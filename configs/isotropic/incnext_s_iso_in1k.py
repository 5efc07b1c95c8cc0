# InceptionNeXt-S (iso.) of the paper's Table 3 (22M params, 4.2G MACs, 79.7 top-1): built "following ConvNeXt", i.e.
# isotropic ConvNeXt-S (facebookresearch/ConvNeXt models/convnext_isotropic.py: a 16x16 stride-16 patchify conv,
# 18 blocks at 384 channels, MLP ratio 4, LayerNorm eps 1e-6; global average pooling, LayerNorm, Linear) with the
# Inception depthwise mixer (3x3 square, 1x11 and 11x1 bands, 1/8 of the channels per branch) as token mixer.
# Recipe: isotropic ConvNeXt-S's (TRAINING.md): batch 4096, AdamW lr 4e-3, 300 epochs with 50 warm-up epochs
# (../_base_/schedules/imagenet_adamw_300e_convnext.py), drop path 0.1, no layer scale (--layer_scale_init_value 0),
# model EMA 0.9999 evaluated (--model_ema true --model_ema_eval true), main.py's data defaults
# (../_base_/datasets/imagenet_bs128_convnext.py) and Mixup 0.8 / CutMix 1.0 / label smoothing 0.1 (as in
# ../incnext_t_in1k.py).
_base_ = [
    '../_base_/models/incnext_cls.py', '../_base_/datasets/imagenet_bs128_convnext.py',
    '../_base_/schedules/imagenet_adamw_300e_convnext.py', '../_base_/cls_runtime.py'
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='IsotropicInceptionNeXt',
        arch='small',
        # The classifier takes the last block's output (MetaNeXtIsotropic's default out_indices=-1), unnormalised:
        # the head's LayerNorm follows the pooling, as isotropic ConvNeXt's `norm`.
        out_norms=False,
        # Isotropic ConvNeXt-S/B train without layer scale (TRAINING.md: --layer_scale_init_value 0): no gamma.
        layer_scale_init_value=0.,
        drop_path_rate=0.1),
    head=dict(_delete_=True, type='NormLinearClsHead', num_classes=1000, in_channels=384,
              loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'), topk=(1, 5)))
# main.py's --seed 0, offset by the rank.
randomness = dict(seed=0, diff_rank_seed=True)
# --model_ema true --model_ema_decay 0.9999: timm's ModelEma after every optimizer step, started from the initial
# weights (TimmEMAHook: momentum 1 - decay; update_buffers as ModelEma averages the whole state_dict); validation
# (--model_ema_eval) runs the average, and a checkpoint's state_dict holds it. The first two hooks are cls_runtime's
# (a list is replaced, not extended); the model has no BatchNorm buffers to synchronise.
custom_hooks = [dict(type='NonFiniteLossHook'), dict(type='RandomStateHook'),
                dict(type='TimmEMAHook', momentum=1e-4, update_buffers=True, priority='ABOVE_NORMAL')]
