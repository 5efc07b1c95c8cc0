# ConvNeXt's ImageNet-1K schedule (facebookresearch/ConvNeXt main.py and its TRAINING.md commands), point by point:
# AdamW lr 4e-3 at batch 4096 (4 nodes x 8 GPUs x 128), betas (0.9, 0.999), eps 1e-8, weight decay 0.05 (constant:
# --weight_decay_end unset); utils.cosine_scheduler, per iteration: a linear warm-up from 0 over --warmup_epochs
# (here 50, the isotropic models' setting; main.py's default is 20), then a cosine down to --min_lr 1e-6 over the rest
# of the 300 epochs (--epochs; no cool-down). The model EMA (--model_ema true --model_ema_eval true, decay 0.9999)
# is the classifier configs' (a hook).
lr = 4e-3
warmup_epochs = 50
max_epochs = 300
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    # optim_factory.get_parameter_groups: no decay on 1-D parameters and biases (norms, biases, layer scales).
    paramwise_cfg=dict(flat_decay_mult=0.0),
)
param_scheduler = [
    # From 1e-6 x lr, not 0: mmengine's LinearLR divides by its start factor (lr 4e-9 on the first iteration).
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr is for a total batch of 4096 and scales linearly with the actual one (GPUs x batch_size), as in
# ./imagenet_adamw_300e.py.
auto_scale_lr = dict(base_batch_size=4096, enable=True)
