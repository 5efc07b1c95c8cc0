# Mask2Former + InceptionNeXt-T, ADE20K semantic segmentation, 512x512, 160k iterations, batch 16 (8 GPUs x 2):
# mmseg's mask2former_swin-t_8xb2-160k_ade20k-512x512.py with the backbone swapped.
_base_ = './_base_/models/mask2former_incnext.py'
# The official ImageNet-1K weights; set a local path here (or the backbone's init_cfg) to train offline.
checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'  # noqa: E501
depths = (3, 3, 9, 3)
model = dict(
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.3,  # Swin-T's in mmseg's Swin-T Mask2Former
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))

# Swin-T's parameter groups, mapped to InceptionNeXt's names: the backbone trains at 0.1x the lr; its norm layers
# and per-channel scales are not decayed (Swin: its LayerNorms, relative position bias tables and absolute position
# embedding), nor are the head's query and level embeddings. mmengine gives a parameter the first custom key it
# contains (longest first) and then skips norm_decay_mult, so every backbone norm is named, as Swin-T's config does:
# the BN of the stem, of each downsample, of each block, and the output norms. InceptionNeXt's layer scales `gamma`
# take the place of Swin's position tables: per-channel scales, not decayed in ImageNet pretraining (timm exempts
# 1-D parameters), and decaying them would pull every residual branch towards zero.
backbone_no_decay = dict(lr_mult=0.1, decay_mult=0.0)
embed_multi = dict(lr_mult=1.0, decay_mult=0.0)
custom_keys = {
    'backbone': dict(lr_mult=0.1, decay_mult=1.0),
    'backbone.stem.1': backbone_no_decay,
    'backbone.norm': backbone_no_decay,
    'query_embed': embed_multi,
    'query_feat': embed_multi,
    'level_embed': embed_multi
}
custom_keys.update({f'backbone.stages.{stage}.downsample.0': backbone_no_decay for stage in range(1, len(depths))})
custom_keys.update({
    f'backbone.stages.{stage}.blocks.{block}.{name}': backbone_no_decay
    for stage, num_blocks in enumerate(depths) for block in range(num_blocks) for name in ('norm', 'gamma')
})
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=custom_keys, norm_decay_mult=0.0))
