"""Export the InceptionNeXt backbone or a whole segmentor to ONNX and check it against onnxruntime.

    # a segmentor from its config: logits at the input size (EncoderDecoder.encode_decode), fixed input size
    python tools/export_onnx.py configs/upernet_incnext_t_ade20k.py --checkpoint work_dirs/iter_160000.pth \\
        --shape 512 512 --out work_dirs/upernet_incnext_t.onnx
    # the backbone alone (its four feature maps), from a config or a bare arch
    python tools/export_onnx.py configs/upernet_incnext_t_ade20k.py --backbone-only --out backbone.onnx
    python tools/export_onnx.py --arch tiny --checkpoint inceptionnext_tiny.pth --out backbone.onnx

The backbone is exported after ``switch_to_deploy()`` (BN and layer scales folded; ``--no-deploy`` keeps them);
onnxruntime's outputs are then compared with the unfolded PyTorch model on a random input, and the maximum
absolute and relative errors printed. The exit status is 1 when the relative error exceeds ``--rtol``.
"""
import argparse
import sys
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

import mmincnext  # noqa: F401  (registers InceptionNeXt and the safe checkpoint reader)
from mmincnext.checkpoint import load_pretrained
from mmincnext.compat import onnx_export_torchscript
from mmincnext.models import InceptionNeXt


class FixedSizeAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as slices and means, which ONNX can express for any sizes once they are fixed.

    The ONNX exporter maps adaptive pooling only when the output size divides the input size; UperNet's pooling
    pyramid (1, 2, 3, 6 bins over the stride-32 map) does not at 512x512 (16x16).
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = nn.modules.utils._pair(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = (int(size) for size in x.shape[2:])  # constants in the graph: this size is fixed
        out_h, out_w = (size or full for size, full in zip(self.output_size, (height, width)))
        # PyTorch's bins: [floor(i * in / out), ceil((i + 1) * in / out))
        rows = [(i * height // out_h, -(-(i + 1) * height // out_h)) for i in range(out_h)]
        cols = [(j * width // out_w, -(-(j + 1) * width // out_w)) for j in range(out_w)]
        return torch.cat([
            torch.cat([x[:, :, r0:r1, c0:c1].mean((2, 3), keepdim=True) for c0, c1 in cols], dim=3)
            for r0, r1 in rows
        ], dim=2)


def make_adaptive_pools_exportable(model: nn.Module):
    for name, module in model.named_children():
        if isinstance(module, nn.AdaptiveAvgPool2d):
            setattr(model, name, FixedSizeAdaptiveAvgPool2d(module.output_size))
        else:
            make_adaptive_pools_exportable(module)


class SegmentorLogits(nn.Module):
    """``EncoderDecoder.encode_decode`` for a fixed input size: per-class logits resized to the input."""

    def __init__(self, segmentor: nn.Module, height: int, width: int):
        super().__init__()
        self.segmentor = segmentor
        shape = (height, width)
        self.img_metas = [dict(img_shape=shape, pad_shape=shape, ori_shape=shape)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmentor.encode_decode(x, self.img_metas)


def parse_args(argv: Optional[Sequence[str]] = None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', help='a segmentor (or any model with a .backbone) config')
    parser.add_argument('--arch', help='export a bare InceptionNeXt backbone of this arch instead of a config')
    parser.add_argument('--checkpoint', help='weights: a segmentor checkpoint for a config, a backbone one for --arch')
    parser.add_argument('--backbone-only', action='store_true', help="export only the config's backbone")
    parser.add_argument('--shape', type=int, nargs='+', default=[512], help='input H [W] (default 512)')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--opset', type=int, default=18)
    parser.add_argument('--no-deploy', action='store_true', help='keep BN and layer scales unfolded')
    parser.add_argument('--rtol', type=float, default=1e-4, help='largest relative error accepted (default 1e-4)')
    args = parser.parse_args(argv)
    if (args.config is None) == (args.arch is None):
        parser.error('give either a config or --arch')
    if len(args.shape) > 2:
        parser.error('--shape takes H or H W')
    args.shape = (args.shape[0], args.shape[-1])
    return args


def build_model(args) -> nn.Module:
    """The model to export, in eval mode, weights loaded."""
    if args.arch:
        model = InceptionNeXt(args.arch)
        if args.checkpoint:
            load_pretrained(model, args.checkpoint, optional_prefixes=tuple(f'norm{i}.' for i in model.out_indices))
        return model.eval()
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

    from mmincnext.utils import build_model_from_config
    model = build_model_from_config(Config.fromfile(args.config)).eval()  # weights from --checkpoint, or random
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True)
    if args.backbone_only:
        return model.backbone
    return SegmentorLogits(model, *args.shape).eval()


def export(model: nn.Module, x: torch.Tensor, path: str, output_names: List[str], opset: int = 18):
    """TorchScript-based exporter: on torch 2.14 the default (dynamo) exporter needs onnxscript, which we do not
    install, and it gives the same graph for this fixed-size model."""
    onnx_export_torchscript(model, (x, ), path, input_names=['input'], output_names=output_names,
                            opset_version=opset)


def onnxruntime_outputs(path: str, x: torch.Tensor) -> List[np.ndarray]:
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    return session.run(None, {'input': x.numpy()})


def compare(reference: Sequence[torch.Tensor], outputs: Sequence[np.ndarray]) -> dict:
    """Largest absolute error and largest relative (Frobenius) error over the outputs."""
    if len(reference) != len(outputs):
        raise ValueError(f'{len(outputs)} ONNX outputs for {len(reference)} PyTorch outputs')
    max_abs = max_rel = 0.
    for ref, out in zip(reference, outputs):
        ref = ref.detach().float().numpy()
        if ref.shape != out.shape:
            raise ValueError(f'ONNX output shape {out.shape} != PyTorch {ref.shape}')
        max_abs = max(max_abs, float(np.abs(out - ref).max()))
        max_rel = max(max_rel, float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-12)))
    return dict(max_abs=max_abs, max_rel=max_rel)


def export_and_check(model: nn.Module, x: torch.Tensor, path: str, opset: int = 18, deploy: bool = True) -> dict:
    """Export ``model`` (eval mode) at ``x``'s size, with its InceptionNeXt folded if ``deploy``, and compare
    onnxruntime's outputs with the unfolded model's."""
    with torch.no_grad():
        reference = model(x)
    reference = list(reference) if isinstance(reference, (tuple, list)) else [reference]
    if deploy:
        for module in model.modules():
            if isinstance(module, InceptionNeXt):
                module.switch_to_deploy()
    make_adaptive_pools_exportable(model)
    names = ['output'] if len(reference) == 1 else [f'out{i}' for i in range(len(reference))]
    export(model, x, path, names, opset)
    return compare(reference, onnxruntime_outputs(path, x))


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    model = build_model(args)
    x = torch.randn(1, 3, *args.shape, generator=torch.Generator().manual_seed(0))
    errors = export_and_check(model, x, args.out, args.opset, deploy=not args.no_deploy)
    print(f'wrote {args.out} (input 1x3x{args.shape[0]}x{args.shape[1]}, opset {args.opset}); '
          f'onnxruntime vs PyTorch: max abs error {errors["max_abs"]:.2e}, max rel error {errors["max_rel"]:.2e}')
    if errors['max_rel'] > args.rtol:
        print(f'relative error above --rtol {args.rtol}', file=sys.stderr)
        sys.exit(1)
    return errors


if __name__ == '__main__':
    main()
