"""Test (and evaluate) a checkpoint with a config of any OpenMMLab task (mmseg, mmdet, mmpretrain): the config's
``default_scope`` decides. Arguments follow mmseg's tools/test.py; runs unchanged on a CPU-only machine.

    python tools/test.py configs/upernet_incnext_t_ade20k.py CHECKPOINT [--tta] [--show-dir DIR] [--out PATH]
"""
import argparse

from mmengine.config import Config

from mmincnext.utils import build_runner, load_tool_config, parse_tool_args


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir for logs and the metrics json (default: ./work_dirs/<config>)')
    parser.add_argument(
        '--out', help='save the predictions: a directory of label maps (segmentation) or a .pkl file (detection, '
        'classification)')
    parser.add_argument('--show', action='store_true', help='show prediction results in a window')
    parser.add_argument('--show-dir', help='save images painted with the predictions under this directory (every '
                        "default_hooks.visualization.interval-th image; mmseg's default is 50)")
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of --show (s)')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation with the config's tta_model and tta_pipeline, evaluated with "
                        'its tta_evaluator if it has one (ADE20K: the paper\'s multi-scale protocol, 6 scales x flip; '
                        'reports multi_scale/mIoU and, from the same pass, single_scale/mIoU)')
    return parse_tool_args(parser, argv)


def enable_visualization(cfg: Config, args, scope: str) -> None:
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise ValueError('--show/--show-dir need a visualization hook in the config: '
                         "default_hooks=dict(visualization=dict(type='SegVisualizationHook')) or the task's own")
    if scope == 'mmpretrain':
        hook.update(enable=True, show=args.show, wait_time=args.wait_time, out_dir=args.show_dir)
        return
    hook.draw = True
    if args.show:
        hook.update(show=True, wait_time=args.wait_time)
    if args.show_dir:
        if scope == 'mmdet':
            hook.test_out_dir = args.show_dir
        else:  # mmseg's hook saves through the visualizer's save_dir
            cfg.visualizer.save_dir = args.show_dir


def enable_tta(cfg: Config) -> None:
    missing = [key for key in ('tta_model', 'tta_pipeline') if key not in cfg]
    if missing:
        raise ValueError(f'--tta needs {" and ".join(missing)} in the config (see configs/_base_/datasets/ade20k.py)')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model
    if 'tta_evaluator' in cfg:  # e.g. multi-scale and single-scale metrics of one pass
        cfg.test_evaluator = cfg.tta_evaluator


def main(argv=None):
    args = parse_args(argv)
    cfg = load_tool_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    scope = cfg.get('default_scope', 'mmengine')
    if args.out is not None and scope != 'mmseg' and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl file for {scope} configs, got {args.out!r}')
    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        enable_visualization(cfg, args, scope)
    if args.tta:
        enable_tta(cfg)
    if args.out is not None and scope == 'mmseg':
        # the first metric's predictions (with --tta: the multi-scale ones)
        metric = cfg.test_evaluator[0] if isinstance(cfg.test_evaluator, list) else cfg.test_evaluator
        metric.update(output_dir=args.out, keep_results=True)

    runner = build_runner(cfg)
    if args.out is not None and scope != 'mmseg':
        if scope == 'mmdet':
            from mmdet.evaluation import DumpDetResults as DumpResults  # encodes masks as RLE
        else:
            from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    metrics = runner.test()
    return metrics


if __name__ == '__main__':
    main()
