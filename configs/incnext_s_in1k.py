# InceptionNeXt-S on ImageNet-1K, the paper's recipe with drop path 0.3. Paper: 49.37M params, 8.4G MACs, 83.5 top-1.
_base_ = './incnext_t_in1k.py'
model = dict(backbone=dict(arch='small', drop_path_rate=0.3))
