# mmseg's ADE20K setting (512x512 crops from images resized to 2048x512 x [0.5, 2], flip, photometric distortion;
# single-scale test at 2048x512; --tta: scales 0.5-1.75 x flip), read through CheckedADE20KDataset, which names the
# missing path and the expected layout when the data is not at data_root (data/ade/ADEChallengeData2016).
_base_ = 'mmseg::_base_/datasets/ade20k.py'
train_dataloader = dict(dataset=dict(type='CheckedADE20KDataset'))
val_dataloader = dict(dataset=dict(type='CheckedADE20KDataset'))
test_dataloader = val_dataloader
