# InceptionNeXt-B on ImageNet-1K, the paper's recipe with drop path 0.4. Paper: 86.67M params, 14.9G MACs, 84.0 top-1.
_base_ = './incnext_t_in1k.py'
model = dict(backbone=dict(arch='base', drop_path_rate=0.4), head=dict(in_channels=1024))
