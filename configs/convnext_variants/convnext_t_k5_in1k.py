# Table 10: ConvNeXt-T with a 5x5 depthwise conv on all channels (28.4M params, 4.4G MACs, 82.0 top-1); the official
# convnext_tiny_k5 weights load into it.
# The recipe is the base's, scripts/convnext_variants/train_convnext_tiny_k5_ema.sh (which names the model
# inceptionnext_tiny_k5, a name the release does not register: its weights and models/convnext.py call it
# convnext_tiny_k5).
_base_ = './convnext_t_k7_in1k.py'

model = dict(backbone=dict(token_mixer=dict(type='DWConv2d', kernel_size=5)))
