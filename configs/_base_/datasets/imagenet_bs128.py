# ImageNet-1K in the usual folder layout (data/imagenet/{train,val}/<wnid>/*.JPEG), 128 images per GPU.
# mmpretrain's Swin/ConvNeXt pipeline with the official recipe's timm augmentation (train.py defaults):
# RandomResizedCrop 224 with timm's --train-interpolation 'random' (bilinear or bicubic, chosen per image),
# horizontal flip, RandAugment rand-m9-mstd0.5-inc1 ('timm_increasing', magnitude 9, std 0.5), RandomErasing 0.25 in
# timm's 'pixel' mode (per-pixel normal noise), no colour jitter (timm drops it when RandAugment is on); test: resize
# the short side to 256 (bicubic, the model's default), centre crop 224 (crop_pct 0.875).
# A choice: RandAugment's rotate/shear/translate stay bicubic (timm's 'random' picks per op; mmpretrain's RandAugment
# takes one interpolation).
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py'

# The ImageNet mean and std (data_preprocessor's, in BGR order, as the images are loaded) for padding and erasing.
bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation=interpolation)]
        for interpolation in ('bilinear', 'bicubic')]),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10, magnitude_level=9,
         magnitude_std=0.5, hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02, max_area_ratio=1 / 3,
         fill_color=bgr_mean, fill_std=bgr_std),
    dict(type='PackInputs'),
]
# timm's training loader drops the last incomplete batch.
train_dataloader = dict(batch_size=128, persistent_workers=True, drop_last=True,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=128, persistent_workers=True)
test_dataloader = val_dataloader
