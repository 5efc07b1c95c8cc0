from .inception_next import InceptionNeXt, IsotropicInceptionNeXt
from .metanext import MetaNeXt, MetaNeXtIsotropic

__all__ = ['InceptionNeXt', 'IsotropicInceptionNeXt', 'MetaNeXt', 'MetaNeXtIsotropic']
