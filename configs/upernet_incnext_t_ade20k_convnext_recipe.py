# UperNet + InceptionNeXt-T, ADE20K 512x512, on mmseg's ConvNeXt-T recipe (convnext-tiny_upernet_8xb2-amp-160k_
# ade20k-512x512.py) instead of the paper's (Swin's, upernet_incnext_t_ade20k.py): AdamW lr 1e-4, wd 0.05, stage-wise
# lr decay 0.9 over 6, AMP, drop path 0.4, sliding-window test (512x512 windows, stride 341). Same model, data and
# iterations as the paper's config, so InceptionNeXt and ConvNeXt compare under one recipe.
_base_ = [
    './_base_/models/upernet_incnext.py', './_base_/datasets/ade20k.py', './_base_/default_runtime.py',
    './_base_/schedules/schedule_160k_adamw_layer_decay.py'
]
checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'  # noqa: E501
model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.4, init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
train_dataloader = dict(batch_size=2)  # x 8 GPUs
