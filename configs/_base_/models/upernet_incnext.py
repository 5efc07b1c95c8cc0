# UperNet (UPerHead 512 ch, pool scales 1-6, auxiliary FCNHead on stage 2 with loss weight 0.4) on InceptionNeXt-T,
# for ADE20K's 150 classes. The authors' recipe: SyncBN in the backbone and a new SyncBN on each of the four outputs
# (out_norms); the classification MlpHead is dropped (the checkpoint's head.* keys are skipped when loading).
_base_ = 'mmseg::_base_/models/upernet_r50.py'
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    # mmseg's base names a ResNet checkpoint here, which EncoderDecoder would hand to the backbone.
    pretrained=None,
    data_preprocessor=dict(size=(512, 512)),  # pad training batches to the crop size
    backbone=dict(
        _delete_=True,
        type='InceptionNeXt',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2,
        norm_cfg=norm_cfg,
        out_norms=True),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))
