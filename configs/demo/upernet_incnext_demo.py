# The embedded demo: UperNet on a small InceptionNeXt, trained from scratch on synthetic scenes that
# SyntheticScenesDataset writes (in ADE20K's folder and label layout) to data/synthetic_scenes on first use.
# Needs nothing downloaded; on 2 CPU cores it generates the data, trains, validates and checkpoints in minutes.
#   python tools/train.py configs/demo/upernet_incnext_demo.py
#   python tools/test.py configs/demo/upernet_incnext_demo.py work_dirs/upernet_incnext_demo/iter_<last>.pth
# The paper's model, data and schedule, shrunk to a CPU: ADE20K's layout and loading path, 128x128 images instead
# of 512x512 crops, BN instead of SyncBN (one process), slimmer heads, a shorter schedule with a larger lr (no
# ImageNet initialisation).
_base_ = [
    '../_base_/models/upernet_incnext.py', '../_base_/datasets/ade20k.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_160k_adamw.py'
]

image_size = 128
crop_size = (image_size, image_size)
norm_cfg = dict(type='BN', requires_grad=True)
dims = (32, 64, 128, 256)
num_classes = 9  # backdrop and eight object classes (mmincnext.datasets.synthetic_scenes.CLASSES)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(_delete_=True, depths=(2, 2, 4, 2), dims=dims, band_kernel_size=9, branch_ratio=0.25),
        drop_path_rate=0.,
        # From scratch in a few hundred iterations: residual branches at full strength from the start (1e-6 is
        # for long ImageNet schedules).
        layer_scale_init_value=1.,
        norm_cfg=norm_cfg),
    decode_head=dict(in_channels=list(dims), channels=64, num_classes=num_classes, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=dims[2], channels=32, num_classes=num_classes, norm_cfg=norm_cfg))

# ADE20K's loading path (LoadAnnotations with reduce_zero_label: label 0, "other", is ignored), without the
# resizing for 2048x512 scenes: the synthetic images already have the training size.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    # ADE20K's test resize shrunk like the rest (2048x512 -> 512x128): a no-op on the 128x128 scenes, but the
    # single-scale view of --tta below for any image.
    dict(type='Resize', scale=(4 * image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
# Every split is generated from these settings; both datasets must name the same ones (checked on reuse).
scenes = dict(
    type='SyntheticScenesDataset', data_root='data/synthetic_scenes', num_train=600, num_val=120,
    image_size=image_size, seed=0)
train_dataloader = dict(
    batch_size=8, num_workers=1, dataset=dict(**scenes, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=1, dataset=dict(**scenes, pipeline=test_pipeline))
test_dataloader = val_dataloader
# --tta: the paper's protocol shrunk like the rest of the demo: each ratio r rescales the image to fit (512r, 128r), so
# the 128x128 scenes are fed at 64..224 and r=1.0 unflipped is the single-scale test view. The ADE20K scale
# (2048r, 512r) would feed them at 256..896, far from the size the demo trains and tests at.
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=(int(4 * image_size * r), int(image_size * r)), keep_ratio=True)
             for r in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)],
            [dict(type='RandomFlip', prob=0., direction='horizontal'),
             dict(type='RandomFlip', prob=1., direction='horizontal')],
            [dict(type='LoadAnnotations', reduce_zero_label=True)],
            [dict(type='PackSegInputs')],
        ])
]

max_iters = 900
warmup_iters = 50
optim_wrapper = dict(optimizer=dict(lr=4e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0., power=1.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 2)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters // 2, max_keep_ckpts=2),
    # tools/test.py --show-dir paints every validation batch (mmseg's every 50th would paint none of the 15).
    visualization=dict(interval=1))
randomness = dict(seed=0)
