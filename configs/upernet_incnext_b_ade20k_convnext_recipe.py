# UperNet + InceptionNeXt-B on mmseg's ConvNeXt-B recipe (convnext-base_upernet_8xb2-amp-160k_ade20k-512x512.py):
# as the T config (drop path 0.4 too), with the stage-wise decay over 12 layers and B's wider head inputs.
_base_ = './upernet_incnext_t_ade20k_convnext_recipe.py'
checkpoint = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_base.pth'  # noqa: E501
model = dict(
    backbone=dict(arch='base', init_cfg=dict(checkpoint=checkpoint)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
