# Classification demo: a small InceptionNeXt pretrained on the synthetic ImageNet-layout set (10 shape-and-texture
# classes, 48x48, generated into data/synthetic_imagenet on first use): 2.5 minutes on 2 idle CPU cores, top-1 76.8.
#   python tools/train.py configs/demo/incnext_cls_demo.py
# Its final checkpoint (work_dirs/incnext_cls_demo/epoch_8.pth) initialises a dense model's backbone of the
# same arch: backbone=dict(arch=<arch below>, init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')).
# Same model, optimizer and runtime as the ImageNet configs; smaller arch, data, augmentation and schedule.
_base_ = [
    '../_base_/models/incnext_cls.py', '../_base_/schedules/imagenet_adamw_300e.py', '../_base_/cls_runtime.py'
]

# The segmentation demo's backbone (configs/demo/upernet_incnext_demo.py), so that this checkpoint initialises it.
arch = dict(depths=(2, 2, 4, 2), dims=(32, 64, 128, 256), band_kernel_size=9, branch_ratio=0.25)
num_classes = 10
image_size = 48
max_epochs = 8
lr = 2e-3

data_preprocessor = dict(
    num_classes=num_classes, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
model = dict(
    backbone=dict(arch=dict(_delete_=True, **arch), drop_path_rate=0.),  # _delete_: a dict replaces 'tiny'
    head=dict(num_classes=num_classes, in_channels=arch['dims'][-1]),
    # Too few epochs for mixup/cutmix to pay off.
    train_cfg=None)

# Many distinct images rather than many epochs: a small set is memorised before shapes and textures are learnt.
dataset = dict(type='SyntheticImageNet', data_root='data/synthetic_imagenet', num_train=600, num_val=50,
               image_size=image_size)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
# The images are tiny: loading them in the main process beats worker processes on 2 shared cores.
train_dataloader = dict(
    batch_size=32, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(split='train', pipeline=train_pipeline, **dataset))
val_dataloader = dict(
    batch_size=128, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(split='val', pipeline=test_pipeline, **dataset))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
auto_scale_lr = dict(enable=False)  # lr above is for this batch

default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1, save_best=None))
randomness = dict(seed=0)
