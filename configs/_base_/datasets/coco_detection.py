# COCO detection exactly as mmdet's base (1333x800 single scale, flip, bbox CocoMetric), read by a CocoDataset that
# names the expected files when they are missing.
_base_ = 'mmdet::_base_/datasets/coco_detection.py'

train_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader
