# Semantic FPN schedule of the paper (PVT's / PoolFormer's): 40k iterations, AdamW lr 2e-4, wd 1e-4, poly decay
# (power 0.9) to 0. Validation and checkpoints every 4k iterations (mmseg's schedule_40k).
_base_ = 'mmseg::_base_/schedules/schedule_40k.py'
optimizer = dict(_delete_=True, type='AdamW', lr=2e-4, weight_decay=1e-4)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer)
param_scheduler = [dict(type='PolyLR', eta_min=0., power=0.9, by_epoch=False, begin=0, end=40000)]
