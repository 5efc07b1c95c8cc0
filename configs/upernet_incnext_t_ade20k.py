# UperNet + InceptionNeXt-T, ADE20K 512x512, 160k iterations, batch 16 (8 GPUs x 2).
# Paper: 56M params, 933G MACs at 512x2048, 47.9 mIoU multi-scale (tools/test.py --tta).
_base_ = [
    './_base_/models/upernet_incnext.py', './_base_/datasets/ade20k.py', './_base_/default_runtime.py',
    './_base_/schedules/schedule_160k_adamw.py'
]
# The official ImageNet-1K weights; set a local path here (or the backbone's init_cfg) to train offline.
checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'  # noqa: E501
model = dict(
    backbone=dict(
        arch='tiny', drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
train_dataloader = dict(batch_size=2)
