# ImageNet-1K as ConvNeXt's main.py reads it (datasets.build_transform with its defaults): ./imagenet_bs128.py
# (timm's create_transform: RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25 in 'pixel' mode, no colour jitter
# beside RandAugment; test: short side 256 bicubic, centre crop 224) with one difference, --train_interpolation
# bicubic: RandomResizedCrop always bicubic, where InceptionNeXt's train.py picks bilinear or bicubic per image.
_base_ = './imagenet_bs128.py'

# The base's ImageNet mean and std (BGR) for padding and erasing: a base's variables are not visible here.
bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10, magnitude_level=9,
         magnitude_std=0.5, hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02, max_area_ratio=1 / 3,
         fill_color=bgr_mean, fill_std=bgr_std),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
