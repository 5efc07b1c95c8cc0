# The paper's ImageNet-1K schedule (official train.py defaults and README command): AdamW lr 4e-3 at batch 4096,
# betas (0.9, 0.999), eps 1e-8, weight decay 0.05; 20 warm-up epochs from 1e-6 (--warmup-lr), then cosine to 1e-5
# (--min-lr) at epoch 300.
lr = 4e-3
warmup_epochs = 20
max_epochs = 300
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    # timm's optimizer (filter_bias_and_bn) exempts every 1-D parameter from weight decay: norms, biases and the
    # layer scales (gamma).
    paramwise_cfg=dict(flat_decay_mult=0.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / lr, by_epoch=True, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr is for a total batch of 4096 and scales linearly with the actual one (GPUs x batch_size), the paper's rule.
# Gradient accumulation (optim_wrapper.accumulative_counts) is not counted: set the batch it reaches in
# base_batch_size's place, or lr yourself.
auto_scale_lr = dict(base_batch_size=4096, enable=True)
