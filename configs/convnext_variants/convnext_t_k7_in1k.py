# ConvNeXt-T as a MetaNeXt instance (the paper's Section 3: a 7x7 depthwise token mixer and LayerNorm), the first
# row of the paper's Table 10 (28.6M params, 4.5G MACs, 82.1 top-1) and the base of its variants in this folder,
# which change only the token mixer. The official ConvNeXt weights (downsample_layers.*, stages.i.j.*, norm, head)
# load as they are through init_cfg, into this classifier or its backbone (MetaNeXt.convert_checkpoint).
# Recipe: the InceptionNeXt release's train.py, as its scripts/convnext_variants/train_convnext_tiny_*_ema.sh run it
# for the Table 10 models (all seven scripts give the same arguments): --opt adamw --lr 4e-3 --warmup-epochs 20,
# batch 4096 (ALL_BATCH_SIZE), --drop-path 0.1, --model-ema --model-ema-decay 0.9999; the rest is train.py's
# defaults, as for InceptionNeXt-T (../incnext_t_in1k.py: 300 cosine + 10 cool-down epochs, wd 0.05, RandAugment,
# Mixup/CutMix, label smoothing, random erasing). The paper's 82.1 is ConvNeXt's own release, trained with ConvNeXt's
# main.py (the same lr, batch, warm-up, drop path and EMA; a per-iteration cosine without cool-down).
_base_ = '../incnext_t_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MetaNeXt',
        # ConvNeXt-T: depths 3-3-9-3, widths 96-768, MLP ratio 4 in every stage, layer scale 1e-6 (MetaNeXt's
        # default, ConvNeXt's), LayerNorm (eps 1e-6) in the stem, the downsamples and the blocks.
        arch=dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), mlp_ratios=4),
        token_mixer=dict(type='DWConv2d', kernel_size=7),
        norm_cfg=dict(type='LN2d', eps=1e-6),
        out_indices=(3, ),
        out_norms=False,
        drop_path_rate=0.1),
    # ConvNeXt's head: global average pooling (the neck), LayerNorm, Linear.
    head=dict(_delete_=True, type='NormLinearClsHead', num_classes=1000, in_channels=768,
              loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'), topk=(1, 5)))

# --model-ema --model-ema-decay 0.9999: timm's ModelEmaV2 after every optimizer step (TimmEMAHook: momentum
# 1 - decay; update_buffers as ModelEmaV2 averages the whole state_dict). Validation runs the average, and a
# checkpoint's state_dict holds it, as the released *_ema.pth files. The first two hooks are cls_runtime's (a list is
# replaced, not extended); the base's SyncBuffersHook (--dist-bn reduce) has nothing to average in a model without
# BatchNorm.
custom_hooks = [dict(type='NonFiniteLossHook'), dict(type='RandomStateHook'),
                dict(type='TimmEMAHook', momentum=1e-4, update_buffers=True, priority='ABOVE_NORMAL')]
