# ConvNeXt-S (iso.), the baseline of the paper's Table 3 (22M params, 4.3G MACs, 79.7 top-1) as a MetaNeXt instance:
# isotropic ConvNeXt-S (a 16x16 patchify conv, 18 blocks at 384 channels with a 7x7 depthwise mixer and LayerNorm).
# The official weights (convnext_iso_small_1k_224_ema.pth: stem, blocks.j.*, norm, head) load as they are through
# init_cfg (MetaNeXtIsotropic.convert_checkpoint). Recipe: its own (TRAINING.md), which InceptionNeXt-S (iso.) follows:
# ./incnext_s_iso_in1k.py with the token mixer swapped.
_base_ = './incnext_s_iso_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MetaNeXtIsotropic',
        arch=dict(depth=18, channels=384, mlp_ratio=4, token_mixer=dict(type='DWConv2d', kernel_size=7)),
        patch_size=16,
        norm_cfg=dict(type='LN2d', eps=1e-6),
        out_norms=False,
        layer_scale_init_value=0.,
        drop_path_rate=0.1))
