"""Nothing lost and more than one process, on the real configs and tools: --resume on the demo config equals an
uninterrupted run, an undecodable image is named, and tools/dist_train.sh trains with 2 CPU processes."""
import os
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from helpers import (REPO, UPERNET_T_CONFIG, demo_child_config, load_tool, require, require_config, tiny_options,
                     write_ade20k)
from mmengine.registry import DefaultScope

from mmincnext.checkpoint import read_checkpoint


@pytest.mark.integration
def test_resume_on_demo_config_equals_uninterrupted_run(tmp_path):
    train = load_tool('train')
    train.main([demo_child_config(tmp_path, 'straight'), '--work-dir', str(tmp_path / 'straight')])
    with pytest.raises(KeyboardInterrupt):
        train.main([demo_child_config(tmp_path, 'interrupted', interrupt_after=2), '--work-dir',
                    str(tmp_path / 'resumed')])
    assert sorted(p.name for p in (tmp_path / 'resumed').glob('iter_*.pth')) == ['iter_2.pth']
    train.main([demo_child_config(tmp_path, 'resumed'), '--work-dir', str(tmp_path / 'resumed'), '--resume'])

    straight = read_checkpoint(tmp_path / 'straight' / 'iter_4.pth')['state_dict']
    resumed = read_checkpoint(tmp_path / 'resumed' / 'iter_4.pth')['state_dict']
    assert straight.keys() == resumed.keys()
    differing = [k for k in straight if not torch.equal(straight[k], resumed[k])]
    assert not differing, f'{len(differing)} tensors differ after resuming, e.g. {differing[:3]}'
    # and the run really learned something between the checkpoints
    at_2 = read_checkpoint(tmp_path / 'resumed' / 'iter_2.pth')['state_dict']
    assert not torch.equal(at_2['backbone.stem.0.weight'], resumed['backbone.stem.0.weight'])


def test_undecodable_image_is_named(tmp_path):
    """Documented choice: an image that cannot be decoded stops training with an error naming the file (mmcv's
    LoadImageFromFile), rather than being skipped, which would silently change the dataset."""
    DATASETS = require('mmseg.registry').DATASETS
    data_root = write_ade20k(tmp_path / 'ADEChallengeData2016', counts=(('training', 3), ('validation', 1)))
    broken = sorted((data_root / 'images' / 'training').glob('*.jpg'))[1]
    broken.write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    cfg = Config.fromfile(UPERNET_T_CONFIG)
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.data_root = str(data_root)
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset = DATASETS.build(dataset_cfg)
        with pytest.raises(Exception, match=f'failed to load image: .*{broken.name}'):
            for i in range(len(dataset)):
                dataset[i]


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_dist_train_two_cpu_processes(tmp_path):
    require_config(UPERNET_T_CONFIG)
    data_root = write_ade20k(tmp_path / 'ADEChallengeData2016')
    checkpoint = tmp_path / 'atto.pth'
    from mmincnext.models import InceptionNeXt
    torch.save({k: v for k, v in InceptionNeXt('atto').state_dict().items() if not k.startswith('norm')}, checkpoint)
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', UPERNET_T_CONFIG, '2', '--work-dir', str(tmp_path / 'work'), '--cfg-options',
         *tiny_options(data_root, checkpoint)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert 'Distributed launcher: pytorch' in log and 'Distributed training: True' in log
    assert "dist_cfg=dict(backend='gloo')" in log
    assert 'mIoU' in log and (tmp_path / 'work' / 'iter_2.pth').is_file()
