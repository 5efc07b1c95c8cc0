# InceptionNeXt-B (iso.) of the paper's Table 3 (86M params, 16.8G MACs, 82.1 top-1): InceptionNeXt-S (iso.) at 768
# channels, as isotropic ConvNeXt-B. Its recipe is the S config's but for drop path 0.2 (TRAINING.md's ConvNeXt-B
# (isotropic): --drop_path 0.2, --layer_scale_init_value 0).
_base_ = './incnext_s_iso_in1k.py'

model = dict(backbone=dict(arch='base', drop_path_rate=0.2), head=dict(in_channels=768))
