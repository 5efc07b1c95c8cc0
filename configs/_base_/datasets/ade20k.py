# mmseg's ADE20K setting (512x512 crops from images resized to 2048x512 x [0.5, 2], flip, photometric distortion;
# single-scale test at 2048x512), read through CheckedADE20KDataset, which names the missing path and the expected
# layout when the data is not at data_root (data/ade/ADEChallengeData2016).
_base_ = 'mmseg::_base_/datasets/ade20k.py'
train_dataloader = dict(dataset=dict(type='CheckedADE20KDataset'))
val_dataloader = dict(dataset=dict(type='CheckedADE20KDataset'))
test_dataloader = val_dataloader

# --tta: the paper's multi-scale protocol (Swin's and ConvNeXt's --aug-test in mmseg 0.x: MultiScaleFlipAug with
# img_scale=(2048, 512), img_ratios 0.5-1.75, flip): ratio r rescales the image, keeping its aspect ratio, to fit
# (2048r, 512r), so r=1.0 unflipped is the single-scale test view. (mmseg 1.x's own tta_pipeline scales the original
# image by r instead: the two agree only for images whose short side is 512.) The 12 views' softmax scores are
# averaged at the original resolution; one pass reports multi_scale/mIoU and, from the r=1.0 unflipped view,
# single_scale/mIoU (the number a plain single-scale test gives).
test_scale = (2048, 512)
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=(int(test_scale[0] * r), int(test_scale[1] * r)), keep_ratio=True)
             for r in img_ratios],
            [dict(type='RandomFlip', prob=0., direction='horizontal'),
             dict(type='RandomFlip', prob=1., direction='horizontal')],
            [dict(type='LoadAnnotations', reduce_zero_label=True)],
            [dict(type='PackSegInputs')],
        ])
]
# The tta_model (../default_runtime.py) keeps the prediction of view 4 (r=1.0 unflipped: TestTimeAug varies the flip
# fastest) for SingleScaleIoUMetric; tools/test.py --tta evaluates with tta_evaluator.
tta_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU'], prefix='multi_scale'),
    dict(type='SingleScaleIoUMetric', iou_metrics=['mIoU'], prefix='single_scale'),
]
