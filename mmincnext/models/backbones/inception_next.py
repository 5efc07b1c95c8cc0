"""InceptionNeXt (Yu et al., "InceptionNeXt: When Inception Meets ConvNeXt", CVPR 2024): MetaNeXt with the Inception
depthwise convolution as token mixer and BatchNorm.

Module names follow the official release (and timm's ``inception_next_*``), so their checkpoints load as they are:
``stem.0``, ``stages.i.downsample.1``, ``stages.i.blocks.j.token_mixer.dwconv_hw``, ``...mlp.fc1``, ``...gamma``.
For dense prediction each returned stage output gets a new norm layer (``norm{i}``), as the authors did for their
segmentation experiments.
"""
from typing import Dict, Union

from mmengine.registry import MODELS

from .metanext import MetaNeXt, MetaNeXtIsotropic


@MODELS.register_module()
class InceptionNeXt(MetaNeXt):
    """InceptionNeXt backbone returning multi-scale features (strides 4, 8, 16, 32; channels = ``dims``).

    Registered in mmengine's root ``MODELS``, so ``type='InceptionNeXt'`` builds under any downstream scope
    (mmseg, mmdet, mmpretrain).

    Args:
        arch (str | dict): One of ``arch_settings`` ('atto', 'tiny', 'small', 'base') or a dict with the keys
            ``depths``, ``dims``, ``mlp_ratios``, ``band_kernel_size`` and ``branch_ratio``.
        token_mixer (dict, optional): Options of the Inception depthwise mixer over the arch's
            (:class:`~mmincnext.models.layers.token_mixers.InceptionDWConv2d`: the ablation's ``branches``,
            ``bands``, ``band_kernel_size``, ``branch_ratio``, ``square_kernel_size``), or another mixer by ``type``.
        Others: as :class:`~mmincnext.models.backbones.metanext.MetaNeXt` (in_channels, norm_cfg (default BN;
        dense configs use SyncBN), out_indices, drop_path_rate, layer_scale_init_value, out_norms, frozen_stages,
        norm_eval, with_cp, fast_path, fused_mixer, init_cfg).

    For inference, :meth:`switch_to_deploy` folds the BNs and layer scales into the convs.
    """

    arch_settings: Dict[str, dict] = {
        'atto': dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320), mlp_ratios=(4, 4, 4, 3),
                     band_kernel_size=9, branch_ratio=1 / 4),
        'tiny': dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 3),
                     band_kernel_size=11, branch_ratio=1 / 8),
        'small': dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 3),
                      band_kernel_size=11, branch_ratio=1 / 8),
        'base': dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024), mlp_ratios=(4, 4, 4, 3),
                     band_kernel_size=11, branch_ratio=1 / 8),
    }

    def __init__(self, arch: Union[str, dict] = 'tiny', **kwargs):
        super().__init__(arch, **kwargs)

    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        if isinstance(arch, dict) and 'token_mixer' not in arch:
            arch = dict(dict(mlp_ratios=(4, 4, 4, 3), band_kernel_size=11, branch_ratio=1 / 8), **arch)
        parsed = super().parse_arch(arch)
        if parsed['token_mixer'] is None:
            parsed['token_mixer'] = dict(type='InceptionDWConv2d', band_kernel_size=parsed['band_kernel_size'],
                                         branch_ratio=parsed['branch_ratio'])
        return parsed

    @classmethod
    def arch_keys(cls) -> list:
        return ['depths', 'dims', 'mlp_ratios', 'band_kernel_size', 'branch_ratio']


@MODELS.register_module()
class IsotropicInceptionNeXt(MetaNeXtIsotropic):
    """InceptionNeXt (iso.) of the paper's Table 3: isotropic ConvNeXt's layout (16x16 patchify stem, 18 blocks at
    384 or 768 channels, LayerNorm, MLP ratio 4) with the Inception depthwise mixer (square 3, bands 11, 1/8 of the
    channels per branch). Arguments: as :class:`~mmincnext.models.backbones.metanext.MetaNeXtIsotropic`."""

    arch_settings: Dict[str, dict] = {
        'small': dict(depth=18, channels=384, mlp_ratio=4,
                      token_mixer=dict(type='InceptionDWConv2d', band_kernel_size=11, branch_ratio=1 / 8)),
        'base': dict(depth=18, channels=768, mlp_ratio=4,
                     token_mixer=dict(type='InceptionDWConv2d', band_kernel_size=11, branch_ratio=1 / 8)),
    }

    def __init__(self, arch: Union[str, dict] = 'small', **kwargs):
        super().__init__(arch, **kwargs)
