from .fast_paths import FusedInceptionDWConv2d, GemmMetaNeXtBlock
from .metanext_block import ConvMlp, MetaNeXtBlock
from .norm import LayerNorm2d
from .token_mixers import DWConv2d, InceptionDWConv2d, PartialDWConv2d, SelfAttention2d

__all__ = [
    'ConvMlp', 'DWConv2d', 'FusedInceptionDWConv2d', 'GemmMetaNeXtBlock', 'InceptionDWConv2d', 'LayerNorm2d',
    'MetaNeXtBlock', 'PartialDWConv2d', 'SelfAttention2d'
]
