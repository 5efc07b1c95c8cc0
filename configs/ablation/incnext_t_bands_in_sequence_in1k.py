# The paper's ablation on InceptionNeXt-T: the two band kernels in sequence instead of in parallel. The channels split
# into identity (C - 2g), the 3x3 square branch (g) and one band branch (g), g = int(C/8): the band branch's channels
# go through the 1xk conv (dwconv_w), then the kx1 conv (dwconv_h), i.e. a k x k receptive field on g channels; the g
# channels the second band had in parallel join the identity. Same parameters and MACs as in parallel (paper: 28.1M
# params, 4.2G MACs, 82.1 top-1; InceptionNeXt-T: 28.1M, 4.2G, 82.3).
# The recipe and everything else are InceptionNeXt-T's (../incnext_t_in1k.py); only the backbone's token mixer changes
# (its options update the arch's InceptionDWConv2d: square 3x3, bands 11, 1/8 of the channels per branch).
_base_ = '../incnext_t_in1k.py'

model = dict(backbone=dict(token_mixer=dict(bands='sequence')))
