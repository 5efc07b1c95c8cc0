"""Speed measurement of mmincnext's backbones next to timm's and OpenMMLab's models, as a library.

The command lines are thin layers over it: ``tools/benchmark.py`` (whole models), ``tools/benchmark_mixer.py`` (the
token mixer alone) and ``tools/gpu_check.py`` (the prepared GPU run). One module per concern:

- :mod:`.timing`: how a step is timed (CPU: interleaved rounds; CUDA: warm-up, then rounds of steps between device
  synchronisations), peak memory, the precision flags, the copy bandwidth.
- :mod:`.models`: what is timed. ``OURS_VARIANTS`` is the table of our backbone's variants (name -> keyword
  arguments of :class:`~mmincnext.models.InceptionNeXt`; a new switch is one line there), timm's models, the dense
  (segmentor, detector) configs, and any backbone built from a config (``--config``).
- :mod:`.runner`: runs the models, records each result as it is measured, and a model that fails as an error record
  (with ``keep_going``) instead of ending the run.
- :mod:`.records`: results appended to a JSONL file as they come, and handed to listeners.
- :mod:`.report`: the markdown tables (ratios to ConvNeXt-T and to timm's InceptionNeXt from each model's best
  layout) and the bar charts.
- :mod:`.mixer`: the token mixer alone, in the dtypes the network passes it, against its minimum bytes moved.
- :mod:`.profiles`: the profiler's kernel table for one block.
- :mod:`.cli`: the command lines' arguments and ``main`` functions.

Nothing here is imported by ``import mmincnext``.
"""
from .records import Recorder
from .report import best_per_model, mixer_table, model_table, plot_throughput, speedup

__all__ = ['Recorder', 'best_per_model', 'mixer_table', 'model_table', 'plot_throughput', 'speedup']
