# ImageNet-1K in the usual folder layout (data/imagenet/{train,val}/<wnid>/*.JPEG), 128 images per GPU.
# mmpretrain's Swin/ConvNeXt pipeline is exactly the official recipe's timm augmentation (train.py defaults):
# RandomResizedCrop 224 (bicubic), horizontal flip, RandAugment rand-m9-mstd0.5-inc1 ('timm_increasing',
# magnitude 9, std 0.5), RandomErasing 0.25 in timm's 'pixel' mode (per-pixel normal noise), no colour jitter
# (timm drops it when RandAugment is on); test: resize the short side to 256, centre crop 224 (crop_pct 0.875).
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py'

train_dataloader = dict(batch_size=128, persistent_workers=True)
val_dataloader = dict(batch_size=128, persistent_workers=True)
test_dataloader = val_dataloader
