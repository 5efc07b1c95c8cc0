# UperNet + InceptionNeXt-S, ADE20K 512x512, 160k iterations, batch 16 (8 GPUs x 2).
# Paper: 78M params, 1020G MACs at 512x2048, 50.0 mIoU multi-scale (tools/test.py --tta).
_base_ = [
    './_base_/models/upernet_incnext.py', './_base_/datasets/ade20k.py', './_base_/default_runtime.py',
    './_base_/schedules/schedule_160k_adamw.py'
]
# The official ImageNet-1K weights; set a local path here (or the backbone's init_cfg) to train offline.
checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_small.pth'  # noqa: E501
model = dict(
    backbone=dict(
        arch='small', drop_path_rate=0.3, init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
train_dataloader = dict(batch_size=2)
