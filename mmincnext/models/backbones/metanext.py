"""MetaNeXt (the paper's Section 3) as backbones: a four-stage layout (ConvNeXt's, InceptionNeXt's) and an isotropic
one (one stage after a patchify stem, ViT-style: Table 3), each built from :class:`MetaNeXtBlock` with the token
mixer and norm the config names.

    backbone=dict(type='MetaNeXt', arch=dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)),
                  token_mixer=dict(type='PartialDWConv2d', kernel_size=3, conv_ratio=0.25),
                  norm_cfg=dict(type='LN2d', eps=1e-6))

Parameter names follow the official releases: ``stem.0``/``stem.1``, ``stages.i.downsample.{0,1}``,
``stages.i.blocks.j.*`` (four stages); ``stem``, ``blocks.j.*`` (isotropic); ``norm{i}`` on the returned outputs.
"""
import re
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from ...checkpoint import load_pretrained
from ..layers.fast_paths import select_block, select_token_mixer
from ..layers.metanext_block import (MetaNeXtBlock, fold_bn_into_next_conv, fold_bn_into_previous_conv,
                                     is_norm_foldable)

DEFAULT_INIT_CFG = dict(type='TruncNormal', layer=['Conv2d', 'Linear'], std=.02, bias=0.)

# The official ConvNeXt releases' layout (facebookresearch/ConvNeXt's four-stage and isotropic models, and the
# InceptionNeXt release's Table 10 variants, whose partial conv is ``dwconv.conv``) and ours, as (pattern, ours).
CONVNEXT_BLOCK_NAMES = dict(dwconv='token_mixer', norm='norm', pwconv1='mlp.fc1', pwconv2='mlp.fc2', gamma='gamma')
_BLOCK = r'(?P<part>dwconv|norm|pwconv1|pwconv2|gamma)(?P<tail>(\..+)?)'
# Four stages: ``downsample_layers.0`` is the stem, ``downsample_layers.i`` (i > 0) stage i's downsample.
CONVNEXT_RULES = (
    (r'downsample_layers\.0\.(?P<rest>.+)', 'stem.{rest}'),
    (r'downsample_layers\.(?P<stage>\d+)\.(?P<rest>.+)', 'stages.{stage}.downsample.{rest}'),
    (r'stages\.(?P<stage>\d+)\.(?P<block>\d+)\.' + _BLOCK, 'stages.{stage}.blocks.{block}.{part}{tail}'),
)
ISOTROPIC_CONVNEXT_RULES = ((r'blocks\.(?P<block>\d+)\.' + _BLOCK, 'blocks.{block}.{part}{tail}'), )
# The norm after the pooling and the linear classifier: NormLinearClsHead's ``norm`` and ``fc``.
CONVNEXT_HEAD_RULES = ((r'norm\.(?P<rest>.+)', 'head.norm.{rest}'), (r'head\.(?P<rest>.+)', 'head.fc.{rest}'))


def convert_convnext_checkpoint(state_dict: dict, rules: Sequence[tuple]) -> dict:
    """An official ConvNeXt state_dict in this package's layout: backbone keys, and ``head.norm``/``head.fc`` for
    the classifier's :class:`~mmincnext.models.classifiers.NormLinearClsHead`. The Linear ``pwconv`` weights (out,
    in) become the 1x1 convs' (out, in, 1, 1). Keys that match no rule are kept as they are, so that strict loading
    names them."""
    converted = {}
    for key, value in state_dict.items():
        new_key = key
        for pattern, template in tuple(rules) + CONVNEXT_HEAD_RULES:
            match = re.fullmatch(pattern, key)
            if match:
                fields = match.groupdict()
                part = fields.get('part')
                if part is not None:
                    fields['part'] = CONVNEXT_BLOCK_NAMES[part]
                    if part.startswith('pwconv') and fields['tail'] == '.weight' and value.dim() == 2:
                        value = value[:, :, None, None]
                new_key = template.format(**fields)
                break
        converted[new_key] = value
    return converted


def merge_token_mixer(base: Optional[dict], override: Optional[dict]) -> dict:
    """A stage's token mixer: ``override`` updates ``base`` (the arch's), or replaces it where it names another
    ``type``."""
    if override is None:
        if base is None:
            raise ValueError('No token mixer: give token_mixer=dict(type=...) or an arch with one')
        return dict(base)
    if base is None or override.get('type', base.get('type')) != base.get('type'):
        return dict(override)
    return {**base, **override}


class MetaNeXtStage(nn.Module):
    """A downsample (norm + 2x2 stride-2 conv; none in the first stage) and the stage's ``blocks``. The backbone
    runs them one by one, so that activation checkpointing can wrap each."""

    def __init__(self, in_channels: int, channels: int, downsample: bool, norm_cfg: dict, blocks: List[nn.Module]):
        super().__init__()
        self.downsample = nn.Sequential(
            build_norm_layer(norm_cfg, in_channels)[1],
            nn.Conv2d(in_channels, channels, kernel_size=2, stride=2),
        ) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*blocks)


class MetaNeXtBackbone(BaseModule):
    """What both layouts share: output indices and norms, freezing, ``norm_eval``, strict pretrained loading, the
    fast-path block class picked once, the channels-last switch it implies, and :meth:`switch_to_deploy`.

    Subclasses build ``self.stem`` and their blocks in ``__init__`` and implement :meth:`forward_stages`, which
    yields the output of each unit that ``out_indices`` may name (a stage, or an isotropic model's block) in order.
    """

    min_input_size: int  # the total stride: a smaller side leaves the last downsample without a window

    def __init__(self, num_outputs: int, out_indices, frozen_stages: int, norm_eval: bool, with_cp: bool,
                 fast_path: str, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.out_indices = self._parse_out_indices(out_indices, num_outputs)
        if not -1 <= frozen_stages <= num_outputs:
            raise ValueError(f'frozen_stages={frozen_stages} is out of range: -1 (nothing), 0 (the stem) '
                             f'up to {num_outputs} (the stem and all {type(self).unit_name}s)')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.fast_path = fast_path
        self.block_type = select_block(fast_path)
        self.deploy = False

    @staticmethod
    def _parse_out_indices(out_indices, num_outputs: int) -> List[int]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        if not isinstance(out_indices, Sequence) or not out_indices:
            raise TypeError(f'out_indices must be an int or a non-empty sequence of ints, got {out_indices!r}')
        bad = [i for i in out_indices if not -num_outputs <= i < num_outputs]
        if bad:
            raise ValueError(f'out_indices {list(out_indices)} has indices out of range {bad}: valid are '
                             f'0..{num_outputs - 1} (or negative from the end)')
        return sorted(i % num_outputs for i in out_indices)

    def _add_out_norms(self, out_norms: bool, norm_cfg: dict, channels: Sequence[int]):
        self.out_norms = out_norms
        for i in self.out_indices:
            self.add_module(f'norm{i}', build_norm_layer(norm_cfg, channels[i])[1] if out_norms else nn.Identity())

    def run_block(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(block, x, use_reentrant=False)
        return block(x)

    def init_weights(self):
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            # Every backbone weight comes from the checkpoint (a missing one raises); the new output norms keep
            # their identity initialisation.
            cfg = {k: v for k, v in self.init_cfg.items() if k != 'type'}
            load_pretrained(self, optional_prefixes=tuple(f'norm{i}.' for i in self.out_indices),
                            convert=self.convert_checkpoint, **cfg)
            self._is_init = True
        else:
            super().init_weights()

    def convert_checkpoint(self, state_dict: dict) -> dict:
        """Another release's key layout mapped to ours (subclasses override it); the identity here."""
        return state_dict

    def frozen_modules(self) -> List[nn.Module]:
        raise NotImplementedError

    def _freeze_stages(self):
        for module in self.frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def forward_stages(self, x: torch.Tensor):
        raise NotImplementedError

    def forward(self, x: torch.Tensor):
        if x.shape[-2] < self.min_input_size or x.shape[-1] < self.min_input_size:
            raise ValueError(f'{type(self).__name__} needs inputs of at least {self.min_input_size}x'
                             f'{self.min_input_size} pixels (its total stride), got {x.shape[-2]}x{x.shape[-1]} '
                             "(HxW): resize the image, or pad it (the data preprocessor's size or size_divisor)")
        memory_format = torch.contiguous_format if x.is_contiguous() else torch.channels_last
        if self.block_type.channels_last:  # runs channels-last; the outputs come back in the input's format
            x = x.contiguous(memory_format=torch.channels_last)
        outs = []
        for i, x in enumerate(self.forward_stages(x)):
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x)
                outs.append(out.contiguous(memory_format=memory_format) if self.block_type.channels_last else out)
        return tuple(outs)

    @torch.no_grad()
    def switch_to_deploy(self):
        """Fold every BN that can be folded (with its running statistics) into a neighbouring conv, and each layer
        scale into fc2, for inference: the stem's BN into the stem conv, each downsample's BN into its 2x2 conv,
        each block's BN into fc1. The outputs stay the same (to float rounding); the output norms stay. Only for
        inference: the folded model has no BN to train, and its state_dict no longer matches the checkpoints."""
        if self.deploy:
            return
        self._fold_stem_and_downsamples()
        for block in [m for m in self.modules() if isinstance(m, MetaNeXtBlock)]:
            block.switch_to_deploy()
        self.deploy = True

    def _fold_stem_and_downsamples(self):
        pass


@MODELS.register_module()
class MetaNeXt(MetaNeXtBackbone):
    """Four-stage MetaNeXt backbone returning multi-scale features (strides 4, 8, 16, 32; channels = ``dims``).

    Registered in mmengine's root ``MODELS``, so ``type='MetaNeXt'`` builds under any downstream scope (mmseg, mmdet,
    mmpretrain). ConvNeXt's layout: a 4x4 stride-4 conv and a norm as the stem; each later stage begins with a norm
    and a 2x2 stride-2 conv; blocks ``x + drop_path(gamma * mlp(norm(token_mixer(x))))``.

    Args:
        arch (str | dict): A name in ``arch_settings``, or a dict with ``depths``, ``dims`` and optionally
            ``mlp_ratios`` (one per stage, or one for all; default 4) and ``token_mixer``.
        in_channels (int): Input image channels. Defaults to 3.
        token_mixer (dict | list[dict], optional): A registered token mixer
            (:mod:`mmincnext.models.layers.token_mixers`), or one per stage. It updates the arch's mixer, or
            replaces it where it names another ``type``.
        norm_cfg (dict): Every norm: stem, downsamples, blocks and output norms. Defaults to BN; ConvNeXt's is
            ``dict(type='LN2d', eps=1e-6)``.
        out_indices (Sequence[int] | int): Stages whose (normalised) outputs are returned. Defaults to all four.
        drop_path_rate (float): Stochastic depth, rising linearly over all blocks from 0 to this. Defaults to 0.
        layer_scale_init_value (float): Initial layer scale; 0 disables it. Defaults to 1e-6.
        out_norms (bool): A new norm (``norm{i}``) on each returned stage output (the InceptionNeXt authors' recipe
            for dense prediction); False returns the raw stage outputs. Defaults to True.
        frozen_stages (int): -1 freezes nothing, 0 the stem, k > 0 the stem and the first k stages.
        norm_eval (bool): Keep every BN layer in eval mode during training. Defaults to False.
        with_cp (bool): Activation checkpointing of every block (less memory, slower). Defaults to False.
        fast_path (str): Which implementation of the blocks runs, with the same function and weights
            (:func:`mmincnext.models.layers.fast_paths.select_block`): ``'onednn'`` CPU inference through oneDNN's
            fused linear ops, ``'gemm'`` the MLPs as GEMMs over channels-last views, ``'fused_residual'`` timm's op
            sequence with the residual in one op, ``'reference'`` timm's op sequence, ``'auto'`` (default)
            ``'onednn'`` (or ``'gemm'``) where the model will run on a CPU, the reference elsewhere. Chosen once, at
            construction.
        fused_mixer (bool, optional): The Inception mixer as one fused Triton kernel on CUDA inputs
            (:class:`~mmincnext.models.layers.fast_paths.FusedInceptionDWConv2d`); None (default) reads
            ``MMINCNEXT_FUSED_MIXER`` (1 or 0), else off.
        init_cfg (dict | list[dict], optional): ``dict(type='Pretrained', checkpoint=PATH[, prefix='backbone.'])``
            loads a released ``.pth`` (the official ConvNeXt layout too: :meth:`convert_checkpoint`), a timm
            ``.safetensors`` or an mmengine checkpoint strictly (a missing backbone key or a shape mismatch raises:
            :func:`mmincnext.checkpoint.load_pretrained`). Defaults to truncated-normal (std 0.02) conv and linear
            weights with zero bias.
    """

    arch_settings: Dict[str, dict] = {}
    num_stages = 4
    unit_name = 'stage'
    min_input_size = 32  # 4 x 2 x 2 x 2

    def __init__(self,
                 arch: Union[str, dict],
                 in_channels: int = 3,
                 token_mixer: Union[dict, Sequence[dict], None] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 out_norms: bool = True,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 fast_path: str = 'auto',
                 fused_mixer: Optional[bool] = None,
                 init_cfg=DEFAULT_INIT_CFG):
        super().__init__(self.num_stages, out_indices, frozen_stages, norm_eval, with_cp, fast_path,
                         init_cfg=init_cfg)
        self.arch = self.parse_arch(arch)
        depths, dims, mlp_ratios = self.arch['depths'], self.arch['dims'], self.arch['mlp_ratios']
        self.dims = tuple(dims)
        token_mixers = self._stage_token_mixers(token_mixer, fused_mixer)

        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, dims[0], kernel_size=4, stride=4),
            build_norm_layer(norm_cfg, dims[0])[1],
        )
        drop_paths = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        stages, prev = [], dims[0]
        for i in range(self.num_stages):
            first = sum(depths[:i])
            stages.append(MetaNeXtStage(prev, dims[i], downsample=i > 0, norm_cfg=norm_cfg, blocks=[
                self.block_type(dims[i], token_mixers[i], norm_cfg, mlp_ratios[i], layer_scale_init_value,
                                drop_paths[first + j]) for j in range(depths[i])
            ]))
            prev = dims[i]
        self.stages = nn.Sequential(*stages)
        self._add_out_norms(out_norms, norm_cfg, dims)
        self._freeze_stages()

    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        """``arch`` as a dict with ``depths``, ``dims``, ``mlp_ratios`` (one per stage) and ``token_mixer``."""
        if isinstance(arch, str):
            if arch not in cls.arch_settings:
                raise ValueError(f'Unknown {cls.__name__} arch {arch!r}; valid archs are '
                                 f'{sorted(cls.arch_settings)} or a dict with the keys {cls.arch_keys()}')
            arch = cls.arch_settings[arch]
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')
        missing = {'depths', 'dims'} - set(arch)
        if missing:
            raise ValueError(f'A custom {cls.__name__} arch needs the keys {sorted(missing)}; got {sorted(arch)}')
        parsed = dict(mlp_ratios=4, token_mixer=None)
        parsed.update(arch)
        if isinstance(parsed['mlp_ratios'], (int, float)):
            parsed['mlp_ratios'] = (parsed['mlp_ratios'], ) * cls.num_stages
        for key in ('depths', 'dims', 'mlp_ratios'):
            if len(parsed[key]) != cls.num_stages:
                raise ValueError(f'arch[{key!r}] must have {cls.num_stages} entries, got {parsed[key]!r}')
        return parsed

    @classmethod
    def arch_keys(cls) -> list:
        return ['depths', 'dims', 'mlp_ratios', 'token_mixer']

    def _stage_token_mixers(self, token_mixer, fused_mixer) -> List[dict]:
        overrides = list(token_mixer) if isinstance(token_mixer, (list, tuple)) else [token_mixer] * self.num_stages
        if len(overrides) != self.num_stages:
            raise ValueError(f'token_mixer needs one dict or {self.num_stages} (one per stage), got {token_mixer!r}')
        return [select_token_mixer(merge_token_mixer(self.arch['token_mixer'], override), fused_mixer)
                for override in overrides]

    def convert_checkpoint(self, state_dict: dict) -> dict:
        """The official ConvNeXt layout (``downsample_layers.*``, ``stages.i.j.{dwconv[.conv], norm, pwconv1,
        pwconv2, gamma}``, ``norm``, ``head``: ConvNeXt's release and the InceptionNeXt release's Table 10 variants)
        mapped to ours (:func:`convert_convnext_checkpoint`); any other layout is returned as it is."""
        if any(key.startswith('downsample_layers.') for key in state_dict):
            return convert_convnext_checkpoint(state_dict, CONVNEXT_RULES)
        return state_dict

    def frozen_modules(self) -> List[nn.Module]:
        return [self.stem] + list(self.stages[:self.frozen_stages]) if self.frozen_stages >= 0 else []

    def forward_stages(self, x: torch.Tensor):
        x = self.stem(x)
        for stage in self.stages:
            x = stage.downsample(x)
            for block in stage.blocks:
                x = self.run_block(block, x)
            yield x

    def _fold_stem_and_downsamples(self):
        if is_norm_foldable(self.stem[1]):
            fold_bn_into_previous_conv(self.stem[0], self.stem[1])
            self.stem[1] = nn.Identity()
        for stage in self.stages:
            if isinstance(stage.downsample, nn.Sequential) and is_norm_foldable(stage.downsample[0]):
                fold_bn_into_next_conv(stage.downsample[0], stage.downsample[1])
                stage.downsample[0] = nn.Identity()


@MODELS.register_module()
class MetaNeXtIsotropic(MetaNeXtBackbone):
    """Isotropic MetaNeXt, ViT-style (the paper's Table 3, built as isotropic ConvNeXt): a ``patch_size`` x
    ``patch_size`` conv of stride ``patch_size`` (``stem``), then ``depth`` blocks at ``channels`` channels
    (``blocks.j``), one resolution throughout (stride ``patch_size``).

    ``out_indices`` name blocks: the classifiers take the last (-1, the default); dense prediction takes several at
    one stride and rescales them as mmseg does for ViT/DeiT (``MultiLevelNeck``).

    Args:
        arch (str | dict): A name in ``arch_settings`` or a dict with ``depth``, ``channels`` and optionally
            ``mlp_ratio`` (default 4) and ``token_mixer``.
        patch_size (int): The stem's kernel and stride. Defaults to 16.
        norm_cfg (dict): The blocks' norm and the output norms. Defaults to ``dict(type='LN2d', eps=1e-6)``
            (isotropic ConvNeXt's).
        out_norms (bool): A new norm (``norm{i}``) on each returned block output. Defaults to False.
        frozen_stages (int): -1 freezes nothing, 0 the stem, k > 0 the stem and the first k blocks.
        Others: as :class:`MetaNeXt`.
    """

    arch_settings: Dict[str, dict] = {}
    unit_name = 'block'

    def __init__(self,
                 arch: Union[str, dict],
                 in_channels: int = 3,
                 patch_size: int = 16,
                 token_mixer: Optional[dict] = None,
                 norm_cfg: dict = dict(type='LN2d', eps=1e-6),
                 out_indices: Union[int, Sequence[int]] = -1,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 out_norms: bool = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 fast_path: str = 'auto',
                 fused_mixer: Optional[bool] = None,
                 init_cfg=DEFAULT_INIT_CFG):
        arch = self.parse_arch(arch)
        super().__init__(arch['depth'], out_indices, frozen_stages, norm_eval, with_cp, fast_path, init_cfg=init_cfg)
        self.arch, self.min_input_size = arch, patch_size
        depth, channels = self.arch['depth'], self.arch['channels']
        self.channels = channels
        mixer = select_token_mixer(merge_token_mixer(self.arch['token_mixer'], token_mixer), fused_mixer)
        self.stem = nn.Conv2d(in_channels, channels, kernel_size=patch_size, stride=patch_size)
        drop_paths = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.Sequential(*[
            self.block_type(channels, mixer, norm_cfg, self.arch['mlp_ratio'], layer_scale_init_value, drop_paths[j])
            for j in range(depth)
        ])
        self._add_out_norms(out_norms, norm_cfg, [channels] * depth)
        self._freeze_stages()

    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            if arch not in cls.arch_settings:
                raise ValueError(f'Unknown {cls.__name__} arch {arch!r}; valid archs are {sorted(cls.arch_settings)} '
                                 "or a dict with the keys 'depth', 'channels', 'mlp_ratio', 'token_mixer'")
            arch = cls.arch_settings[arch]
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')
        missing = {'depth', 'channels'} - set(arch)
        if missing:
            raise ValueError(f'A custom {cls.__name__} arch needs the keys {sorted(missing)}; got {sorted(arch)}')
        return dict(dict(mlp_ratio=4, token_mixer=None), **arch)

    def convert_checkpoint(self, state_dict: dict) -> dict:
        """Isotropic ConvNeXt's official layout (``stem``, ``blocks.j.{dwconv, norm, pwconv1, pwconv2[, gamma]}``,
        ``norm``, ``head``) mapped to ours (:func:`convert_convnext_checkpoint`); any other layout is returned as it
        is."""
        if any(re.fullmatch(r'blocks\.\d+\.pwconv1\.weight', key) for key in state_dict):
            return convert_convnext_checkpoint(state_dict, ISOTROPIC_CONVNEXT_RULES)
        return state_dict

    def frozen_modules(self) -> List[nn.Module]:
        return [self.stem] + list(self.blocks[:self.frozen_stages]) if self.frozen_stages >= 0 else []

    def forward_stages(self, x: torch.Tensor):
        x = self.stem(x)
        for block in self.blocks:
            x = self.run_block(block, x)
            yield x
