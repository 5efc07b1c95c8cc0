# InceptionNeXt-B fine-tuned and evaluated at 384x384: the official scripts/inceptionnext/finetune_inceptionnext_base.sh
# point by point, with the official train.py's defaults (timm 0.6.11's) where the script sets nothing. Paper: 86.67M
# params, 43.6G MACs at 384x384, 85.2 top-1 (the official inceptionnext_base_384.pth, which is timm's
# inception_next_base.sail_in1k_384).
#
# As the script: from the 224 weights (--initial-checkpoint: the official inceptionnext_base.pth, loaded strictly
# into the whole classifier); 384x384 crops (--img-size 384); 30 epochs (--epochs 30) at a constant AdamW lr 5e-5
# (--sched None: no warm-up, no cosine, no cool-down, so train.py's --warmup-epochs/--warmup-lr/--min-lr/
# --cooldown-epochs do not apply) at a total batch of 1024; no mixup or cutmix (--mixup 0 --cutmix 0: the labels are
# hard, label-smoothed by 0.1); drop path 0.7; head dropout 0.5 (--drop, the MlpHead's dropout); an EMA of the
# weights with decay 0.9999 (--model-ema --model-ema-decay 0.9999).
# Inherited from the B config, as train.py's defaults: AdamW betas (0.9, 0.999), eps 1e-8, weight decay 0.05 (none
# on 1-D parameters), no gradient clipping, float32; RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25 ('pixel'),
# horizontal flip, RandomResizedCrop scale (0.08, 1) with bilinear or bicubic per image, no colour jitter; label
# smoothing 0.1; seed 42 offset by the rank; BN statistics averaged over the GPUs after every epoch; last incomplete
# batch dropped.
#
# Which weights are kept and evaluated: train.py validates the EMA after every epoch and tracks its top-1 (the EMA's
# metrics replace the model's for the best checkpoint); so does this config (TimmEMAHook: mmengine's EMAHook kept
# as timm's ModelEmaV2; validation and testing run the EMA). A checkpoint written here holds the EMA in its
# `state_dict` (what tools/test.py, the Inferencers, init_cfg Pretrained and a dense backbone load) and the trained
# weights in `ema_state_dict` (for --resume); timm's train.py writes them the other way round (`state_dict`: trained,
# `state_dict_ema`: EMA). The released inceptionnext_base_384.pth is one flat state_dict, the weights of the 85.2.
_base_ = './incnext_b_in1k.py'

model = dict(
    backbone=dict(drop_path_rate=0.7),
    head=dict(dropout=0.5),
    # mixup/cutmix off: no batch augments; LabelSmoothLoss sees the hard labels (train.py: LabelSmoothingCrossEntropy)
    train_cfg=None,
    init_cfg=dict(type='Pretrained',
                  checkpoint='https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_base.pth'))

image_size = 384
# The B config's pipeline at 384 (one list: a config cannot change one entry of an inherited list;
# tests/test_configs/test_incnext_b_384.py keeps the two equal but for the crop size).
bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomResizedCrop', scale=image_size, backend='pillow', interpolation=interpolation)]
        for interpolation in ('bilinear', 'bicubic')]),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10, magnitude_level=9,
         magnitude_std=0.5, hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02, max_area_ratio=1 / 3,
         fill_color=bgr_mean, fill_std=bgr_std),
    dict(type='PackInputs'),
]
# timm's pretrained config of inception_next_base.sail_in1k_384 (the official default_cfg): input 384, crop_pct 1.0,
# bicubic: the short side resized to 384 (= 384 / crop_pct), the centre 384x384 crop.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=image_size, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs'),
]
# 32 images per GPU, as the script's forward passes (8 GPUs x 32, 4 accumulated steps); here 32 GPUs x 32 = 1024.
# On 8 GPUs: --cfg-options optim_wrapper.accumulative_counts=4 auto_scale_lr.base_batch_size=256 (the EMA follows
# the optimizer steps by itself).
train_dataloader = dict(batch_size=32, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=32, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

lr = 5e-5
max_epochs = 30
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = []  # --sched None: the lr stays 5e-5 (scaled with the actual batch, auto_scale_lr)
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=1024)

# The B config's hooks (a list is replaced, not extended) and the EMA: momentum 1e-4 = 1 - decay; update_buffers, as
# ModelEmaV2 averages the BN statistics too. Above CheckpointHook's priority, as EMAHook must be.
custom_hooks = [
    dict(type='NonFiniteLossHook'), dict(type='RandomStateHook'), dict(type='SyncBuffersHook'),
    dict(type='TimmEMAHook', momentum=1e-4, update_buffers=True, priority='ABOVE_NORMAL'),
]
