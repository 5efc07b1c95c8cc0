"""Mixed precision on a machine without a GPU: ``CPUBF16OptimWrapper``, what ``--amp`` becomes there."""
import functools
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUBF16OptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward (data preprocessing and loss) runs under CPU bfloat16 autocast.

    ``--amp`` on a machine without a GPU: mmengine's ``AmpOptimWrapper`` asserts one. bfloat16 keeps float32's
    exponent range, so no loss scaling is needed; gradients and the optimizer step stay in float32. While its
    forward and backward run, mmcv's nms and RoIAlign take float32 (:func:`mmcv_cpu_ops_in_float32`).
    """

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16), mmcv_cpu_ops_in_float32():
            yield

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        with mmcv_cpu_ops_in_float32():
            super().backward(loss, **kwargs)


def _in_float32(function):
    """``function(ctx, *args)`` of an autograd Function, run on float32 copies of its bfloat16/float16 CPU tensors
    (autocast off), its floating outputs cast back to their dtype."""

    @functools.wraps(function)
    def wrapped(ctx, *args):
        low = [a.dtype for a in args
               if torch.is_tensor(a) and a.device.type == 'cpu' and a.dtype in (torch.bfloat16, torch.float16)]
        if not low:
            return function(ctx, *args)
        with torch.autocast('cpu', enabled=False):
            out = function(ctx, *(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args))

        def back(t):
            return t.to(low[0]) if torch.is_tensor(t) and t.is_floating_point() else t

        return tuple(map(back, out)) if isinstance(out, tuple) else back(out)

    return staticmethod(wrapped)


@contextmanager
def mmcv_cpu_ops_in_float32():
    """Within: mmcv's ``NMSop`` and ``RoIAlignFunction`` (forward and backward) run in float32 on bfloat16/float16
    CPU inputs, their outputs cast back; float32 inputs are untouched. Restored on exit.

    mmcv's CPU kernels of nms and RoIAlign take float32 only, and under CPU bfloat16 autocast the detectors (RPN
    proposals, RoI feature extraction) hand them bfloat16: a Mask R-CNN or Cascade training step stops with
    "expected scalar type Float but found BFloat16". (Their CUDA kernels take float16, as AmpOptimWrapper needs.)
    """
    try:
        from mmcv.ops.nms import NMSop
        from mmcv.ops.roi_align import RoIAlignFunction
    except ImportError:  # mmcv without its compiled ops: no detector to run
        yield
        return
    originals = {(function, name): function.__dict__[name] for function in (NMSop, RoIAlignFunction)
                 for name in ('forward', 'backward') if name in function.__dict__}
    for (function, name), method in originals.items():
        setattr(function, name, _in_float32(method.__func__))
    try:
        yield
    finally:
        for (function, name), method in originals.items():
            setattr(function, name, method)
