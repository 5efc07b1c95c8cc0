"""Classification (ImageNet pretraining) on mmpretrain: needs mmpretrain, so configs import this package through
``custom_imports`` and ``import mmincnext`` does not depend on it."""
from .image_classifier import InceptionNeXtClassifier
from .mlp_cls_head import MlpClsHead
from .norm_linear_cls_head import NormLinearClsHead

__all__ = ['InceptionNeXtClassifier', 'MlpClsHead', 'NormLinearClsHead']
