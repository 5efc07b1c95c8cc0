# Semantic FPN + InceptionNeXt-B, ADE20K 512x512, 40k iterations, batch 32 (8 GPUs x 4).
# Paper: 85M params, 100G MACs at 512x512, 46.4 mIoU.
_base_ = [
    './_base_/models/fpn_incnext.py', './_base_/datasets/ade20k_divisor32.py', './_base_/default_runtime.py',
    './_base_/schedules/schedule_40k_adamw.py'
]
# The official ImageNet-1K weights; set a local path here (or the backbone's init_cfg) to train offline.
checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_base.pth'  # noqa: E501
model = dict(
    backbone=dict(
        arch='base', drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
train_dataloader = dict(batch_size=4)
