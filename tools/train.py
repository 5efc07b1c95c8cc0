"""Train a model from a config of any OpenMMLab task (mmseg, mmdet, mmpretrain): the config's ``default_scope``
decides. Arguments follow mmseg's tools/train.py; runs unchanged on a CPU-only machine.

    python tools/train.py configs/upernet_incnext_t_ade20k.py [--work-dir DIR] [--resume [CKPT]] [--amp]
"""
import argparse
import os

from mmengine.config import DictAction

from mmincnext.utils import adapt_to_machine, build_runner, enable_amp, init_cpu_distributed, load_tool_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model (segmentor, detector or classifier)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models (default: ./work_dirs/<config name>)')
    parser.add_argument(
        '--resume', nargs='?', const='auto', default=None, metavar='CHECKPOINT',
        help='resume from CHECKPOINT, or without a value from the latest checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true',
        help='automatic mixed precision: float16 on a GPU, bfloat16 autocast on a CPU')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help="scale the learning rate by the actual total batch size over the config's auto_scale_lr.base_batch_size")
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


def main(argv=None):
    args = parse_args(argv)
    cfg = load_tool_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError('--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=...) in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    adapt_to_machine(cfg, args.launcher)
    init_cpu_distributed(cfg, args.launcher)

    runner = build_runner(cfg)
    runner.train()
    return runner


if __name__ == '__main__':
    main()
