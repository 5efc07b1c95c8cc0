"""Turn official InceptionNeXt ImageNet weights into an mmengine checkpoint of this package's classifier.

    python tools/convert_checkpoint.py inceptionnext_tiny.pth incnext_t_in1k.pth          # official release
    python tools/convert_checkpoint.py model.safetensors incnext_t_in1k.pth --arch tiny   # timm's hub file

The input is a flat state_dict (``stem.*``, ``stages.*``, ``head.*``: the official release's keys, which timm
keeps), read by the safe reader (:func:`mmincnext.checkpoint.read_checkpoint`). Its arch is recognised from the
tensor shapes, or checked against ``--arch``. The weights are loaded strictly into the ``InceptionNeXtClassifier``
of ``configs/incnext_<arch>_in1k.py`` (every key must land), and written, atomically, as a checkpoint that
``tools/train.py`` could have saved: ``state_dict`` (``backbone.*``, ``head.*``) and ``meta.dataset_meta`` with
ImageNet's class names. mmpretrain's Inferencer then labels predictions with them::

    ImageClassificationInferencer(model='configs/incnext_t_in1k.py', pretrained='incnext_t_in1k.pth')
    mmpretrain.get_model('configs/incnext_t_in1k.py', pretrained='incnext_t_in1k.pth')

A dense model's backbone needs no conversion: ``init_cfg=dict(type='Pretrained', checkpoint=<official file>)``.
"""
import argparse
import os
import os.path as osp
import re
from typing import Dict, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import get_state_dict, save_checkpoint, weights_to_cpu

import mmincnext
from mmincnext.checkpoint import CheckpointError, read_state_dict
from mmincnext.models.backbones import InceptionNeXt
from mmincnext.utils import build_model_from_config

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')
ARCH_CONFIGS = dict(atto='incnext_atto_in1k.py', tiny='incnext_t_in1k.py', small='incnext_s_in1k.py',
                    base='incnext_b_in1k.py')


def parse_args(argv: Optional[Sequence[str]] = None):
    parser = argparse.ArgumentParser(description='Convert official/timm InceptionNeXt ImageNet weights into an '
                                     'mmengine checkpoint of the mmpretrain classifier')
    parser.add_argument('src', help='official .pth or timm .safetensors file (flat stem.*/stages.*/head.* keys)')
    parser.add_argument('dst', help='output .pth (an mmengine checkpoint)')
    parser.add_argument('--arch', choices=sorted(ARCH_CONFIGS),
                        help='expected arch; by default it is recognised from the weights')
    return parser.parse_args(argv)


def arch_signature(state_dict: Dict[str, torch.Tensor]) -> dict:
    """Depths, widths, band kernel size and branch ratio, read off an official-layout state_dict."""
    depths, dims = [], []
    for stage in range(InceptionNeXt.num_stages):
        blocks = {int(m.group(1)) for k in state_dict
                  for m in [re.match(rf'stages\.{stage}\.blocks\.(\d+)\.', k)] if m}
        if not blocks or f'stages.{stage}.blocks.0.gamma' not in state_dict:
            raise CheckpointError(f'No InceptionNeXt stage {stage} (stages.{stage}.blocks.*) in the checkpoint: it is '
                                  'not an official/timm InceptionNeXt state_dict')
        depths.append(max(blocks) + 1)
        dims.append(state_dict[f'stages.{stage}.blocks.0.gamma'].shape[0])
    mixer = 'stages.0.blocks.0.token_mixer'
    return dict(depths=tuple(depths), dims=tuple(dims),
                band_kernel_size=state_dict[f'{mixer}.dwconv_w.weight'].shape[-1],
                branch_channels=state_dict[f'{mixer}.dwconv_hw.weight'].shape[0])


def recognise_arch(state_dict: Dict[str, torch.Tensor], expected: Optional[str] = None) -> str:
    found = arch_signature(state_dict)
    known = {}
    for name in ARCH_CONFIGS:
        setting = InceptionNeXt.arch_settings[name]
        known[name] = dict(depths=tuple(setting['depths']), dims=tuple(setting['dims']),
                           band_kernel_size=setting['band_kernel_size'],
                           branch_channels=int(setting['dims'][0] * setting['branch_ratio']))
    matches = [name for name, signature in known.items() if signature == found]
    described = ', '.join(f'{k}={v}' for k, v in found.items())
    if not matches:
        raise CheckpointError(f'The weights ({described}) are none of the ImageNet archs: ' +
                              '; '.join(f'{name}: depths {s["depths"]}, dims {s["dims"]}' for name, s in known.items()))
    if expected is not None and expected != matches[0]:
        raise CheckpointError(f'--arch {expected} given, but the weights are InceptionNeXt-{matches[0]} ({described})')
    return matches[0]


def convert(src: str, dst: str, arch: Optional[str] = None) -> dict:
    """Write the classifier checkpoint of ``src`` to ``dst``; returns it."""
    if osp.abspath(src) == osp.abspath(dst):
        raise ValueError(f'The output would overwrite the input {src!r}')
    state_dict = read_state_dict(src)
    if any(k.startswith('backbone.') for k in state_dict):
        raise CheckpointError(f'{src!r} already is an mmengine classifier checkpoint (backbone.* keys)')
    arch = recognise_arch(state_dict, arch)

    cfg = Config.fromfile(osp.join(CONFIGS, ARCH_CONFIGS[arch]))  # its custom_imports register the classifier
    cfg.model.init_cfg = dict(type='Pretrained', checkpoint=src)
    model = build_model_from_config(cfg)
    model.init_weights()  # InceptionNeXtClassifier: strict, every backbone and head weight must fit

    from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
    if model.head.num_classes != len(IMAGENET_CATEGORIES):
        raise CheckpointError(f'The head has {model.head.num_classes} classes, ImageNet-1K has '
                              f'{len(IMAGENET_CATEGORIES)}')
    checkpoint = dict(
        meta=dict(dataset_meta=dict(classes=IMAGENET_CATEGORIES), arch=arch, converted_from=osp.basename(src),
                  mmincnext_version=mmincnext.__version__),
        state_dict=weights_to_cpu(get_state_dict(model)))
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    partial = osp.join(osp.dirname(osp.abspath(dst)), f'.{osp.basename(dst)}.partial')
    save_checkpoint(checkpoint, partial)
    os.replace(partial, dst)  # never a half-written file under the final name
    return checkpoint


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    checkpoint = convert(args.src, args.dst, args.arch)
    print(f"Wrote InceptionNeXt-{checkpoint['meta']['arch']} classifier ({len(checkpoint['state_dict'])} tensors, "
          f"ImageNet class names) to {args.dst}")
    return checkpoint


if __name__ == '__main__':
    main()
