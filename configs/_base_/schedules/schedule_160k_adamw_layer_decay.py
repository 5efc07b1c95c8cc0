# UperNet schedule of mmseg's ConvNeXt configs (convnext-{tiny,small,base}_upernet_8xb2-amp-160k_ade20k-512x512.py):
# the paper's 160k iterations, 1500-iteration warm-up and poly 1.0 (./schedule_160k_adamw.py), with AdamW lr 1e-4,
# wd 0.05, stage-wise lr decay 0.9 and mixed precision (float16, dynamic loss scaling; bfloat16 autocast on a CPU).
_base_ = './schedule_160k_adamw.py'
optimizer = dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=optimizer,
    # ConvNeXt's rules on InceptionNeXt's names; no weight decay on 1-D parameters (norms, biases, layer scales).
    constructor='InceptionNeXtLearningRateDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=6))  # 6 for T, 12 for S and B
