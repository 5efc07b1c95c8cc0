# Mask2Former + InceptionNeXt-T, ADE20K semantic segmentation, 512x512, 160k iterations, batch 16 (8 GPUs x 2):
# mmseg's mask2former_swin-t_8xb2-160k_ade20k-512x512.py with the backbone swapped.
_base_ = './_base_/models/mask2former_incnext.py'
# The official ImageNet-1K weights; set a local path here (or the backbone's init_cfg) to train offline.
checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'  # noqa: E501
model = dict(
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.3,  # Swin-T's in mmseg's Swin-T Mask2Former
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))

# Swin-T's parameter groups, mapped to InceptionNeXt's names: the backbone trains at 0.1x the lr; its norm layers
# and per-channel scales are not decayed (Swin: its LayerNorms, relative position bias tables and absolute position
# embedding), nor are the head's query and level embeddings. InceptionNeXt's layer scales `gamma` take the place of
# Swin's position tables: per-channel scales, not decayed in ImageNet pretraining (timm exempts 1-D parameters), and
# decaying them would pull every residual branch towards zero.
# mmengine gives a parameter the longest custom key its name contains and then skips norm_decay_mult, so a catch-all
# 'backbone' key would decay every backbone norm that no longer key names. Swin-T's config names each norm by block
# index, which fits one depth only (a small or base config inheriting this file would decay stage 2's blocks 9-26).
# Here the catch-all is the no-decay group, and the decayed parameters are named by pattern, for any depth: the
# backbone's convolutions (weights and biases), i.e. the stem's conv, each downsample's conv, the token mixers'
# depthwise convs and the MLPs' 1x1 convs. Everything else in InceptionNeXt is a BN (stem, downsamples, blocks,
# output norms) or a layer scale. tests/test_configs/test_retinanet_mask2former.py checks every parameter of T, S and B.
backbone_decay = dict(lr_mult=0.1, decay_mult=1.0)
embed_multi = dict(lr_mult=1.0, decay_mult=0.0)
custom_keys = {
    'backbone': dict(lr_mult=0.1, decay_mult=0.0),
    'backbone.stem.0': backbone_decay,
    '.downsample.1.': backbone_decay,
    '.token_mixer.': backbone_decay,
    '.mlp.fc1.': backbone_decay,
    '.mlp.fc2.': backbone_decay,
    'query_embed': embed_multi,
    'query_feat': embed_multi,
    'level_embed': embed_multi
}
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=custom_keys, norm_decay_mult=0.0))
