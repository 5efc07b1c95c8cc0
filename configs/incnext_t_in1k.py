# InceptionNeXt-T on ImageNet-1K, the paper's recipe (official train.py and train_inceptionnext_tiny.sh): 300 cosine
# epochs + 10 cool-down epochs, AdamW 4e-3 at batch 4096 (here 32 GPUs x 128; lr scales linearly with the actual
# batch), drop path 0.1. Paper: 28.06M params, 4.2G MACs, 82.3 top-1.
_base_ = [
    './_base_/models/incnext_cls.py', './_base_/datasets/imagenet_bs128.py',
    './_base_/schedules/imagenet_adamw_300e.py', './_base_/cls_runtime.py'
]
# train.py's --seed 42, offset by the rank (timm's random_seed(seed, rank)).
randomness = dict(seed=42, diff_rank_seed=True)
# train.py's --dist-bn reduce: the BN running statistics are averaged over the GPUs after every epoch (mmengine's
# DDP wrapper does not broadcast buffers). The first two are cls_runtime's (a list is replaced, not extended).
custom_hooks = [dict(type='NonFiniteLossHook'), dict(type='RandomStateHook'), dict(type='SyncBuffersHook')]
