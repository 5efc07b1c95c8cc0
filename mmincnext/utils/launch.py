"""What the tools share: loading the config, adapting it so that one config runs on 8 GPUs and on a CPU-only machine
unchanged, and building the runner (train.py, test.py) or the bare model (get_flops.py, export_onnx.py,
benchmark.py)."""
import argparse
import os
import os.path as osp
from typing import Any, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.device import get_device
from mmengine.logging import print_log
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import MODELS, RUNNERS, init_default_scope
from mmengine.runner import Runner

SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN')


def parse_tool_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse a tool's command line after adding the arguments every tool shares with mmseg's: ``--cfg-options``,
    ``--launcher`` and ``--local-rank`` (exported as ``LOCAL_RANK`` for mmengine unless already set)."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings: key=value pairs (e.g. train_dataloader.batch_size=4, list values as '
        'key="[a,b]" with no white space)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    # torch.distributed.launch passes --local-rank (PyTorch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_tool_config(config: str, cfg_options: Optional[dict], launcher: str, work_dir: Optional[str]) -> Config:
    """The config as tools/train.py and tools/test.py run it: ``--cfg-options`` merged, and the work dir from the
    command line, else the config, else ``./work_dirs/<config name>``."""
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


def build_runner(cfg: Config) -> Runner:
    """mmengine's Runner, or the class a config names in ``runner_type`` (as mmseg's and mmdet's tools do), for a
    config from :func:`load_tool_config`: first adapted to this machine (:func:`adapt_to_machine`), with the CPU
    process group started for a distributed run without CUDA (:func:`init_cpu_distributed`)."""
    adapt_to_machine(cfg, cfg.launcher)
    init_cpu_distributed(cfg, cfg.launcher)
    # mmseg's runtime names its visualizer 'visualizer', and mmengine keeps one instance per name per process: a
    # second runner in the same process (tests, notebooks) would get the first one's, saving into its folder.
    # Without a name the Runner names it after the experiment.
    if isinstance(cfg.get('visualizer'), dict):
        cfg.visualizer.pop('name', None)
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def build_model_from_config(cfg: Config) -> torch.nn.Module:
    """The config's model for the tools that only run it: built in the config's ``default_scope``, SyncBN reverted
    to BN. Its weights are the constructors' (random): ``init_weights``, where ``init_cfg`` and ``pretrained``
    would load a checkpoint, is not called, so nothing is downloaded or read."""
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    return revert_sync_batchnorm(MODELS.build(cfg.model))


def sync_bn_to_bn(node: Any) -> int:
    """Turn every ``SyncBN``/``MMSyncBN`` norm config under ``node`` into ``BN`` in place; returns how many."""
    count = 0
    if isinstance(node, dict):
        if node.get('type') in SYNC_BN_TYPES:
            node['type'] = 'BN'
            count += 1
        for value in node.values():
            count += sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += sync_bn_to_bn(value)
    return count


def adapt_to_machine(cfg: Config, launcher: str) -> None:
    """Make ``cfg`` run where it is launched.

    - SyncBN becomes BN unless the run is distributed on GPUs: in one process there is nothing to synchronise,
      and PyTorch's SyncBatchNorm refuses CPU tensors once a process group exists.
    - A distributed run without CUDA uses the ``gloo`` backend (configs say ``nccl``) and a DDP wrapper without
      ``device_ids`` (mmengine's default names the local GPU); see :func:`init_cpu_distributed`.
    - ``AmpOptimWrapper`` (a GPU-only wrapper) becomes :class:`~mmincnext.engine.CPUBF16OptimWrapper` on a CPU.
    """
    on_cpu = get_device() == 'cpu'
    if launcher == 'none' or on_cpu:
        converted = sum(sync_bn_to_bn(cfg.get(key)) for key in ('model', 'tta_model'))
        if converted:
            reason = 'a single process' if launcher == 'none' else 'no GPU'
            print_log(f'SyncBN -> BN in {converted} norm configs ({reason}).', logger='current')
    if launcher != 'none' and not torch.cuda.is_available():
        # (Config.setdefault returns the value given, not the stored copy: read back before changing it.)
        cfg.setdefault('env_cfg', dict(dist_cfg=dict()))
        cfg.env_cfg.setdefault('dist_cfg', dict())
        cfg.env_cfg.dist_cfg.backend = 'gloo'
        cfg.setdefault('model_wrapper_cfg', dict(
            type='MMDistributedDataParallel', broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False)))
        if cfg.model_wrapper_cfg.get('type') == 'MMDistributedDataParallel':
            cfg.model_wrapper_cfg.device_ids = None
    optim_wrapper = cfg.get('optim_wrapper')
    if on_cpu and optim_wrapper is not None and optim_wrapper.get('type') == 'AmpOptimWrapper':
        use_cpu_amp(optim_wrapper)


def init_cpu_distributed(cfg: Config, launcher: str) -> None:
    """Start the ``gloo`` process group of a ``--launcher pytorch`` run on a machine without CUDA.

    mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` whatever the backend; with the group already
    up, the Runner skips it. The slurm and mpi paths of mmengine need GPUs as well.
    """
    if launcher == 'none' or torch.cuda.is_available() or torch.distributed.is_initialized():
        return
    if launcher != 'pytorch':
        raise ValueError(f'--launcher {launcher} needs GPUs (mmengine assigns one per process); on a machine '
                         'without CUDA use --launcher pytorch (tools/dist_train.sh)')
    torch.distributed.init_process_group(backend=cfg.env_cfg.dist_cfg.get('backend', 'gloo'))


def use_cpu_amp(optim_wrapper: dict) -> None:
    for key in ('loss_scale', 'dtype', 'use_fsdp'):
        optim_wrapper.pop(key, None)
    optim_wrapper['type'] = 'CPUBF16OptimWrapper'
    print_log('No GPU: mixed precision runs as CPU bfloat16 autocast (CPUBF16OptimWrapper).', logger='current')


def enable_amp(cfg: Config) -> None:
    """``--amp``: float16 autocast with dynamic loss scaling (on a CPU, :func:`adapt_to_machine` then makes it
    bfloat16 autocast)."""
    optim_wrapper = cfg.optim_wrapper
    wrapper_type = optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type in ('AmpOptimWrapper', 'CPUBF16OptimWrapper'):
        print_log(f'--amp: the config already uses {wrapper_type}.', logger='current')
        return
    if wrapper_type != 'OptimWrapper':
        raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper, got {wrapper_type!r}: '
                         'set mixed precision in that wrapper yourself')
    optim_wrapper.update(type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
