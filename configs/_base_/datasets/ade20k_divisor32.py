# ADE20K as in ./ade20k.py, with test images resized to multiples of 32 after the 2048x512 resize, as the Semantic
# FPN evaluation of PVT and PoolFormer (which the paper follows for FPN) does: FPN adds its levels element-wise.
_base_ = './ade20k.py'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='ResizeToMultiple', size_divisor=32),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
