# UperNet + InceptionNeXt-S on mmseg's ConvNeXt-S recipe (convnext-small_upernet_8xb2-amp-160k_ade20k-512x512.py):
# as the T config, with drop path 0.3 and the stage-wise decay over 12 layers.
_base_ = './upernet_incnext_t_ade20k_convnext_recipe.py'
checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_small.pth'  # noqa: E501
model = dict(backbone=dict(arch='small', drop_path_rate=0.3, init_cfg=dict(checkpoint=checkpoint)))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
