# ConvNeXt-B (iso.), the baseline of the paper's Table 3 (87M params, 16.9G MACs, 82.0 top-1): ConvNeXt-S (iso.) at
# 768 channels; the official convnext_iso_base_1k_224_ema.pth loads into it. Recipe: TRAINING.md's ConvNeXt-B
# (isotropic), the S recipe with drop path 0.2.
_base_ = './convnext_s_iso_in1k.py'

model = dict(backbone=dict(arch=dict(channels=768), drop_path_rate=0.2), head=dict(in_channels=768))
