"""Train a model from a config of any OpenMMLab task (mmseg, mmdet, mmpretrain): the config's ``default_scope``
decides. Arguments follow mmseg's tools/train.py; runs unchanged on a CPU-only machine.

    python tools/train.py configs/upernet_incnext_t_ade20k.py [--work-dir DIR] [--resume [CKPT]] [--amp]
"""
import argparse

from mmincnext.utils import build_runner, enable_amp, load_tool_config, parse_tool_args


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
    return parse_tool_args(parser, argv)


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

    runner = build_runner(cfg)
    runner.train()
    return runner


if __name__ == '__main__':
    main()
