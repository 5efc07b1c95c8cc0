"""What is timed: each candidate builds a module and says how to run it (``forward``: its output; ``loss``: a
scalar to train on).

- Our backbone in the variants of :data:`OURS_VARIANTS` (name -> :class:`~mmincnext.models.InceptionNeXt` keyword
  arguments). Any variant's name with ``_deploy`` appended is that variant after ``switch_to_deploy()``, timed in
  inference only. A new switch is one line in the table; :data:`SWITCHES` (every variant but the per-device
  default) is what the GPU check times against that default.
- timm's models (:data:`TIMM_NAMES`), built with random weights.
- ``mlp_gemms`` (:data:`GEMM_LIMIT`): not a model but the limit of ours where its MLP GEMMs dominate, those GEMMs
  alone at its shapes (:class:`MLPGemms`, inference).
- Whole segmentors and detectors from configs (:data:`DENSE_CONFIGS`, ``--dense``).
- Any backbone from a config (``--config``): its ``model.backbone`` (or its ``model``, for a config whose model is
  a bare backbone), e.g. the paper's ablation and Table 10 variants.

Without ``classifier`` a backbone runs without its head (timm's ``forward_features``, the last stage of ours) and a
training step trains on ``features.mean()``; with it, ours runs under timm's head of the same arch (so that only the
backbones differ), and the loss is cross-entropy on random labels.
"""
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

# Our backbone's variants. 'ours' is the per-device default (fast_path='auto': on a CPU the oneDNN block in inference
# and the GEMM path in training; on CUDA timm's op sequence); the others are the switches a user can set.
OURS_VARIANTS: Dict[str, dict] = {
    'ours': dict(),
    'ours_gemm': dict(fast_path='gemm'),  # the GEMM path forced: channels-last F.linear, bias in the matmul
    'ours_fused_residual': dict(fast_path='fused_residual'),  # residual, layer scale and drop path in one op
    'ours_fused': dict(fused_mixer=True),  # the token mixer as one Triton kernel
}
DEPLOY_SUFFIX = '_deploy'
# The variants that change how ours runs, each timed against the default.
SWITCHES: Tuple[str, ...] = tuple(name for name in OURS_VARIANTS if name != 'ours')
# Keyword arguments whose true value makes a variant run a Triton kernel (skipped where Triton cannot run).
TRITON_SWITCHES = ('fused_mixer', )
# Not a model: our backbone's MLP GEMMs alone at its shapes (:class:`MLPGemms`), the limit of a model whose time
# they dominate; ``ours`` img/s over its img/s is the share of ours' time its MLP GEMMs would take.
GEMM_LIMIT = 'mlp_gemms'

REFERENCE = 'convnext'
TIMM_NAMES = dict(timm_incnext='inception_next_{arch}', convnext='convnext_{arch}', resnet50='resnet50',
                  swin_t='swin_tiny_patch4_window7_224')
DEFAULT_MODELS = ('ours', 'ours_deploy', 'timm_incnext', 'convnext', 'resnet50', 'swin_t')
# Whole models, ours against the upstream ConvNeXt-T config of the same recipe.
DENSE_CONFIGS = dict(
    seg=dict(ours='configs/upernet_incnext_t_ade20k.py',
             convnext='mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py'),
    det=dict(ours='configs/mask_rcnn_incnext_t_coco_3x_convnext_recipe.py',
             convnext='mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py'))


def ours_names() -> Tuple[str, ...]:
    return tuple(OURS_VARIANTS) + tuple(name + DEPLOY_SUFFIX for name in OURS_VARIANTS)


def known_models() -> Tuple[str, ...]:
    return ours_names() + tuple(TIMM_NAMES) + (GEMM_LIMIT, )


def ours_variant(name: str) -> Tuple[dict, bool]:
    """(InceptionNeXt keyword arguments, deployed) of an ours name."""
    deploy = name.endswith(DEPLOY_SUFFIX) and name[:-len(DEPLOY_SUFFIX)] in OURS_VARIANTS
    kwargs = OURS_VARIANTS[name[:-len(DEPLOY_SUFFIX)] if deploy else name]
    return kwargs, deploy


def needs_triton(name: str) -> bool:
    """Whether the named model runs a Triton kernel (an ours variant with a Triton switch on)."""
    if name not in ours_names():
        return False
    kwargs, _ = ours_variant(name)
    return any(kwargs.get(key) for key in TRITON_SWITCHES)


class Candidate:

    def __init__(self, name: str, module: nn.Module, forward: Callable, loss: Callable,
                 modes: Sequence[str] = ('infer', 'train'), fullgraph: bool = False, limit: bool = False):
        self.name, self.module, self.forward, self.loss, self.modes = name, module, forward, loss, tuple(modes)
        self.fullgraph = fullgraph  # torch.compile(fullgraph=True) is expected to hold
        self.limit = limit  # a bound to compare with, not a model: neither compiled nor checked against float32


class MLPGemms(nn.Module):
    """Our backbone's MLP GEMMs alone, at the shapes one forward of ``arch`` on ``batch`` images of ``img_size``
    runs them: per block, fc1 (tokens x C by C x hidden) and fc2 (tokens x hidden by hidden x C) as bare
    ``torch.mm`` into preallocated outputs, in ``dtype``, autocast off. No bias, GELU, residual, mixer or allocation:
    the time a forward would take if nothing but its MLP GEMMs ran."""

    def __init__(self, arch: str, batch: int, img_size: Sequence[int], dtype: torch.dtype):
        from mmincnext.models import InceptionNeXt
        super().__init__()
        parsed = InceptionNeXt.parse_arch(arch)
        self.depths = tuple(parsed['depths'])
        height, width = img_size[0] // 4, img_size[1] // 4  # the stem's stride, then 2x2 stride-2 downsamples
        gen = torch.Generator().manual_seed(0)

        def buffer(name, *shape):
            self.register_buffer(name, (torch.randn(*shape, generator=gen) * 0.05).to(dtype), persistent=False)
        for i, (channels, ratio) in enumerate(zip(parsed['dims'], parsed['mlp_ratios'])):
            if i:
                height, width = height // 2, width // 2
            tokens, hidden = batch * height * width, int(ratio * channels)
            buffer(f'tokens{i}', tokens, channels)
            buffer(f'fc1_{i}', hidden, channels)
            buffer(f'hidden{i}', tokens, hidden)
            buffer(f'fc2_{i}', channels, hidden)
            buffer(f'out{i}', tokens, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            for i, depth in enumerate(self.depths):
                tokens, hidden, out = getattr(self, f'tokens{i}'), getattr(self, f'hidden{i}'), getattr(self, f'out{i}')
                for _ in range(depth):
                    torch.mm(tokens, getattr(self, f'fc1_{i}').t(), out=hidden)
                    torch.mm(hidden, getattr(self, f'fc2_{i}').t(), out=out)
        return out


def gemm_limit_candidate(settings) -> Candidate:
    """:class:`MLPGemms` of ``settings.arch`` at the inference batch, in the precision's dtype (float32 for fp32)."""
    from .timing import PRECISIONS
    module = MLPGemms(settings.arch, settings.batch_size, settings.img_size,
                      PRECISIONS[settings.precision] or torch.float32)

    def forward(m, x):
        return m(x)
    return Candidate(GEMM_LIMIT, module, forward, classifier_loss(forward, settings), modes=('infer', ), limit=True)


class OursClassifier(nn.Module):
    """Our backbone's last stage under timm's head of the same arch: the classifier the paper times, with exactly
    timm's head, so that only the backbones differ."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        return self.head(self.backbone(x)[-1])


def classifier_loss(forward: Callable, settings) -> Callable:
    """Cross-entropy on fixed random labels (``classifier``), else the mean of the output."""
    if settings.classifier:
        labels = torch.randint(1000, (settings.train_batch_size, ), generator=torch.Generator().manual_seed(0))
        labels = labels.to(settings.device)

        def loss(m, x):
            return nn.functional.cross_entropy(forward(m, x).float(), labels[:len(x)])
    else:

        def loss(m, x):
            return forward(m, x).float().mean()
    return loss


def backbone_candidate(name: str, settings) -> Candidate:
    import timm

    from mmincnext.models import InceptionNeXt
    if name == GEMM_LIMIT:
        return gemm_limit_candidate(settings)
    if name in ours_names():
        kwargs, deploy = ours_variant(name)
        model = InceptionNeXt(settings.arch, out_indices=(3, ), out_norms=False, **kwargs)
        if settings.classifier:
            model = OursClassifier(model, timm.create_model(f'inception_next_{settings.arch}').head)
        if deploy:
            (model.backbone if settings.classifier else model).eval().switch_to_deploy()

        def forward(m, x):
            return m(x) if settings.classifier else m(x)[-1]
        modes = ('infer', ) if deploy else ('infer', 'train')
        return Candidate(name, model, forward, classifier_loss(forward, settings), modes,
                         fullgraph=not settings.classifier)
    kwargs = dict(img_size=settings.img_size) if name == 'swin_t' else {}
    model = timm.create_model(TIMM_NAMES[name].format(arch=settings.arch), pretrained=False, **kwargs)

    def forward(m, x):
        return m(x) if settings.classifier else m.forward_features(x)
    return Candidate(name, model, forward, classifier_loss(forward, settings))


def config_name(path: str) -> str:
    """A config's name in the tables: its file name without ``.py``."""
    return Path(path.split('::')[-1]).stem


def load_config(path: str):
    """A config by path (``configs/...`` is also found in the installed package), or ``'pkg::path'`` from an
    OpenMMLab package."""
    from mmengine.config import Config
    from mmengine.hub import get_config
    if '::' in path:
        return get_config(path)
    if not Path(path).exists():
        package = Path(__file__).resolve().parents[1]
        for root in (package / '.mim', package.parent):  # installed (package data), then a source checkout
            if (root / path).exists():
                path = str(root / path)
                break
        else:
            raise FileNotFoundError(f'config {path!r} not found (relative to the working directory, the installed '
                                    'package or the source checkout)')
    return Config.fromfile(path)


def config_backbone_candidate(path: str, settings) -> Candidate:
    """The backbone of a config (``model.backbone``; ``model`` itself where it has none), with the constructors'
    random weights (nothing downloaded or read), run as a backbone: its last output."""
    import mmincnext  # noqa: F401  (registers our modules)
    from mmincnext.utils import build_model_from_config
    cfg = load_config(path)
    if 'model' not in cfg:
        raise ValueError(f'{path}: the config has no `model`')
    if 'backbone' in cfg.model:
        cfg.model = cfg.model.backbone
    model = build_model_from_config(cfg)

    def forward(m, x):
        out = m(x)
        return out[-1] if isinstance(out, (tuple, list)) else out
    return Candidate(config_name(path), model, forward, classifier_loss(forward, settings))


def dense_candidate(name: str, settings) -> Candidate:
    """A whole segmentor or detector of :data:`DENSE_CONFIGS` with random weights."""
    import mmpretrain.models  # noqa: F401  (the upstream ConvNeXt configs use mmpretrain.ConvNeXt)

    import mmincnext  # noqa: F401
    from mmincnext.utils import build_model_from_config
    model = build_model_from_config(load_config(DENSE_CONFIGS[settings.task][name]))
    return (segmentor_candidate if settings.task == 'seg' else detector_candidate)(name, model, settings)


def detector_candidate(name: str, model: nn.Module, settings) -> Candidate:
    """A Mask R-CNN: inference is ``predict`` (RPN, RoI heads, masks), training ``loss`` on mmdet's demo boxes and
    masks (3 objects an image)."""
    from mmdet.testing import demo_mm_inputs
    n = max(settings.batch_size, settings.train_batch_size)
    data = demo_mm_inputs(batch_size=n, image_shapes=(3, *settings.img_size), num_items=[3] * n, num_classes=80,
                          with_mask=True)
    samples = data['data_samples']
    for sample in samples:  # what mmdet's data preprocessor adds for a batch of one size
        sample.set_metainfo(dict(batch_input_shape=settings.img_size, pad_shape=settings.img_size))
    samples = [sample.to(settings.device) for sample in samples]

    def forward(m, x):
        return torch.stack([r.pred_instances.scores.sum() for r in m(x, samples[:len(x)], mode='predict')])

    def loss(m, x):
        parsed, _ = m.parse_losses(m(x, samples[:len(x)], mode='loss'))
        return parsed

    return Candidate(name, model, forward, loss)


def segmentor_candidate(name: str, model: nn.Module, settings) -> Candidate:
    """A UperNet: inference is the logits (``mode='tensor'``), training ``loss`` on random label maps."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    img_size, batch_size = settings.img_size, settings.train_batch_size
    num_classes = model.decode_head.num_classes
    gen = torch.Generator().manual_seed(0)

    def samples(n):
        meta = dict(img_shape=img_size, pad_shape=img_size, ori_shape=img_size)
        return [SegDataSample(metainfo=meta, gt_sem_seg=PixelData(
            data=torch.randint(num_classes, (1, *img_size), generator=gen))).to(settings.device) for _ in range(n)]

    train_samples = samples(batch_size)

    def forward(m, x):
        return m(x, mode='tensor')

    def loss(m, x):
        parsed, _ = m.parse_losses(m(x, train_samples[:len(x)], mode='loss'))
        return parsed

    return Candidate(name, model, forward, loss)


def build_candidate(name: str, settings, config: Optional[str] = None) -> Candidate:
    """The candidate named ``name`` (``config``: the backbone of that config file instead)."""
    if config is not None:
        return config_backbone_candidate(config, settings)
    if settings.dense:
        return dense_candidate(name, settings)
    return backbone_candidate(name, settings)
