# MetaNeXt-Attn of the paper's Table 3 (22M params, 4.6G MACs; 3.9 top-1: it does not converge): isotropic MetaNeXt
# with multi-head self-attention as the token mixer, in DeiT-S's shape: 12 blocks at 384 channels, 6 heads (qkv
# with bias), MLP ratio 4, 16x16 patches. The rest is MetaNeXt's, as InceptionNeXt-S (iso.): one residual per
# block (attention, LayerNorm, MLP), a patchify conv stem, global average pooling, LayerNorm and Linear; no class
# token and no position embedding (DeiT-S has both: 76k parameters, ~0.3% of the count).
# Recipe: InceptionNeXt-S (iso.)'s (./incnext_s_iso_in1k.py, isotropic ConvNeXt-S's): drop path 0.1 (also DeiT-S's),
# no layer scale.
_base_ = './incnext_s_iso_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MetaNeXtIsotropic',
        arch=dict(depth=12, channels=384, mlp_ratio=4, token_mixer=dict(type='SelfAttention2d', num_heads=6)),
        patch_size=16,
        norm_cfg=dict(type='LN2d', eps=1e-6),
        out_norms=False,
        layer_scale_init_value=0.,
        drop_path_rate=0.1))
