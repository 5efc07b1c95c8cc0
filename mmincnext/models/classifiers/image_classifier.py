"""mmpretrain's ImageClassifier, with strict loading of a whole pretrained classifier (backbone and head)."""
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS

from ...checkpoint import CheckpointError, load_state_dict_strictly, read_state_dict, select_prefix


@MODELS.register_module()
class InceptionNeXtClassifier(ImageClassifier):
    """``ImageClassifier`` whose ``init_cfg=dict(type='Pretrained', checkpoint=...)`` loads backbone *and* head.

    mmengine's own ``Pretrained`` initializer loads non-strictly and keeps the file's key names, so a flat official
    or timm file (``stem.*``, ``stages.*``, ``head.*``) would leave the classifier (``backbone.stem.*``, ...)
    silently untouched. Here the checkpoint's layout is recognised and every weight must fit:

    - an official ``.pth`` or timm ``.safetensors`` (flat keys): ``head.*`` goes to the head, the rest to the
      backbone; another release's layout (the official ConvNeXt files of the paper's Table 10) is first mapped to
      this one by the backbone's ``convert_checkpoint``;
    - an mmengine checkpoint of this classifier (``backbone.*``, ``head.*``), e.g. ``epoch_300.pth``.

    A missing, unexpected or mis-shaped key raises :class:`mmincnext.checkpoint.CheckpointError`. To fine-tune on
    another number of classes, load the backbone alone (``backbone.init_cfg``) instead.
    """

    def init_weights(self):
        if not (isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained'):
            super().init_weights()
            return
        options = {k: v for k, v in self.init_cfg.items() if k != 'type'}
        unknown = set(options) - {'checkpoint', 'map_location'}
        if unknown or 'checkpoint' not in options:
            raise ValueError(f"{type(self).__name__}'s init_cfg Pretrained takes 'checkpoint' (required) and "
                             f"'map_location'; got {sorted(options)}")
        checkpoint, map_location = options['checkpoint'], options.get('map_location', 'cpu')
        params_elsewhere = sorted(k for k in self.state_dict() if not k.startswith(('backbone.', 'head.')))
        if params_elsewhere:
            raise CheckpointError(f'Pretrained classifier checkpoints hold a backbone and a head only; this model '
                                  f'has other weights, which nothing would load: {params_elsewhere[:5]}')
        # Read once; the backbone and the head each take their part.
        state_dict = read_state_dict(checkpoint, map_location)
        source = repr(checkpoint)
        if any(k.startswith('backbone.') for k in state_dict):
            load_state_dict_strictly(self.backbone, select_prefix(state_dict, 'backbone.', source),
                                     f"{source} (prefix 'backbone.')")
        else:
            convert = getattr(self.backbone, 'convert_checkpoint', None)
            if convert is not None:
                state_dict = convert(state_dict)
            load_state_dict_strictly(self.backbone, state_dict, source)
        load_state_dict_strictly(self.head, select_prefix(state_dict, 'head.', source), f"{source} (prefix 'head.')",
                                 ignore_prefixes=())
        self._is_init = True
