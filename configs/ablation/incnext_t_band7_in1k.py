# The paper's ablation on InceptionNeXt-T: band kernel size 11 -> 7 (1x7 and 7x1) (paper: 28.0M params, 4.2G MACs,
# 82.1 top-1; InceptionNeXt-T: 28.1M, 4.2G, 82.3).
# The recipe and everything else are InceptionNeXt-T's (../incnext_t_in1k.py); only the backbone's token mixer changes
# (its options update the arch's InceptionDWConv2d: square 3x3, bands 11, 1/8 of the channels per branch).
_base_ = '../incnext_t_in1k.py'

model = dict(backbone=dict(token_mixer=dict(band_kernel_size=7)))
