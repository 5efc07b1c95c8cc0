from .inception_next import InceptionNeXt

__all__ = ['InceptionNeXt']
