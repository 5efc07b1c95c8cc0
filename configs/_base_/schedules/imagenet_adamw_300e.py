# The paper's ImageNet-1K schedule, point by point the official train.py (timm 0.6.11's, with its defaults) and
# scripts/inceptionnext/train_inceptionnext_{tiny,small,base}.sh: AdamW lr 4e-3 at batch 4096, betas (0.9, 0.999),
# eps 1e-8, weight decay 0.05; timm's CosineLRScheduler stepped once per epoch (t_in_epochs): warm-up from 1e-6
# (--warmup-lr) over epochs 0-19 (--warmup-epochs 20) overriding a cosine over the whole t_initial=300 (--epochs;
# evaluated at the epoch itself, no warm-up prefix) down to 1e-5 (--min-lr), then 10 cool-down epochs at 1e-5
# (--cooldown-epochs 10, train.py's default): 310 epochs in all.
lr = 4e-3
warmup_epochs = 20
cosine_epochs = 300
cooldown_epochs = 10
max_epochs = cosine_epochs + cooldown_epochs
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    # timm's optimizer (filter_bias_and_bn) exempts every 1-D parameter from weight decay: norms, biases and the
    # layer scales (gamma).
    paramwise_cfg=dict(flat_decay_mult=0.0),
)
param_scheduler = [
    dict(type='TimmCosineLR', t_initial=cosine_epochs, lr_min=1e-5, warmup_t=warmup_epochs, warmup_lr_init=1e-6,
         by_epoch=True, end=max_epochs),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr is for a total batch of 4096 and scales linearly with the actual one (GPUs x batch_size): a choice, so that
# any number of GPUs runs the recipe (train.py takes --lr as given; its scripts reach 4096 with --grad-accum-steps).
# Gradient accumulation (optim_wrapper.accumulative_counts) is not counted: set the batch it reaches in
# base_batch_size's place, or lr yourself.
auto_scale_lr = dict(base_batch_size=4096, enable=True)
