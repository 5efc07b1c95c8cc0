# The paper's ablation on InceptionNeXt-T: branch ratio 1/8 -> 1/16: each of the three conv branches takes int(C/16)
# channels, the identity C - 3 int(C/16) (paper: 28.0M params, 4.2G MACs, 81.8 top-1; InceptionNeXt-T: 28.1M, 4.2G,
# 82.3).
# The recipe and everything else are InceptionNeXt-T's (../incnext_t_in1k.py); only the backbone's token mixer changes
# (its options update the arch's InceptionDWConv2d: square 3x3, bands 11, 1/8 of the channels per branch).
_base_ = '../incnext_t_in1k.py'

model = dict(backbone=dict(token_mixer=dict(branch_ratio=1 / 16)))
