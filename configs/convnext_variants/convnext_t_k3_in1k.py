# Table 10: ConvNeXt-T with a 3x3 depthwise conv on all channels (28.3M params, 4.4G MACs, 81.5 top-1); the official
# convnext_tiny_k3 weights load into it.
# The recipe is the base's, scripts/convnext_variants/train_convnext_tiny_k3_ema.sh (which names the model
# inceptionnext_tiny_k3, a name the release does not register: its weights and models/convnext.py call it
# convnext_tiny_k3).
_base_ = './convnext_t_k7_in1k.py'

model = dict(backbone=dict(token_mixer=dict(type='DWConv2d', kernel_size=3)))
