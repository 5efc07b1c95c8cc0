# Table 10: ConvNeXt-T with a 3x3 depthwise conv on 1/4 of the channels (28.3M params, 4.4G MACs, 81.3 top-1); the
# official convnext_tiny_k3_par1_4 weights load into it. As the release's PartialConv2d: the first C - int(C * 1/4)
# channels pass unchanged, the last int(C * 1/4) are convolved (`dwconv.conv` in the official keys).
# The recipe is the base's, scripts/convnext_variants/train_convnext_tiny_k3_par1_4_ema.sh (which names the model
# inceptionnext_tiny_k3_par1_4, a name the release does not register: its weights and models/convnext.py call it
# convnext_tiny_k3_par1_4).
_base_ = './convnext_t_k7_in1k.py'

model = dict(backbone=dict(token_mixer=dict(type='PartialDWConv2d', kernel_size=3, conv_ratio=1 / 4)))
