# Table 10: ConvNeXt-T with a 3x3 depthwise conv on 1/16 of the channels (28.3M params, 4.4G MACs, 80.1 top-1); the
# official convnext_tiny_k3_par1_16 weights load into it. As the release's PartialConv2d: the first C - int(C * 1/16)
# channels pass unchanged, the last int(C * 1/16) are convolved (`dwconv.conv` in the official keys).
# The recipe is the base's, scripts/convnext_variants/train_convnext_tiny_k3_par1_16_ema.sh (which names the model
# inceptionnext_tiny_k3_par1_16, a name the release does not register: its weights and models/convnext.py call it
# convnext_tiny_k3_par1_16).
_base_ = './convnext_t_k7_in1k.py'

model = dict(backbone=dict(token_mixer=dict(type='PartialDWConv2d', kernel_size=3, conv_ratio=1 / 16)))
