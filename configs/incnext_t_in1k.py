# InceptionNeXt-T on ImageNet-1K, the paper's recipe: 300 epochs, AdamW 4e-3 at batch 4096 (here 32 GPUs x 128;
# lr scales linearly with the actual batch), drop path 0.1. Paper: 28.06M params, 4.2G MACs, 82.3 top-1.
_base_ = [
    './_base_/models/incnext_cls.py', './_base_/datasets/imagenet_bs128.py',
    './_base_/schedules/imagenet_adamw_300e.py', './_base_/cls_runtime.py'
]
