"""Fused Inception depthwise mixer (InceptionNeXt's token mixer) in Triton, with its autograd and eager reference.

The eager mixer splits the channels ``[identity C-3g | square s x s | band 1 x k | band k x 1]`` (g channels per conv
branch, depthwise, zero "same" padding, with bias), runs three small convolutions and concatenates: several launches
and two full activation copies (split views into the convs, cat). The op is memory-bound, so one pass that reads each
input tile once (its halo comes from L1/L2, not DRAM) and writes the whole output is the whole game:

* ``_inception_dwconv_kernel`` -- forward: identity channels copied, each conv branch computed with fp32
  accumulation; for training it also writes the conv branches' input channels in the conv dtype, the one thing the
  weight gradients need. With ``TRANSPOSED`` the same kernel computes ``grad_input`` (a stride-1 "same" conv's input
  gradient is the conv with the kernel flipped; the identity part is a copy of ``grad_output``).
* ``_inception_dwconv_wgrad_kernel`` -- per-tile fp32 partial sums of the weight and bias gradients, reduced over the
  tiles by one ``sum`` (deterministic: no atomics).

Tiling: program axis 0 walks (batch, row tile, column tile), axis 1 walks channel blocks, each block inside one branch,
so a program runs a single branch with a uniform (non-divergent) code path. Tiles are 3-D ``[BLOCK_C, BLOCK_H,
BLOCK_W]``; the layout is passed as strides and Triton specialises the unit stride, so the same kernel vectorises
along W for NCHW and along C for channels-last (see :func:`_tile_config` for the sizes and why). Element offsets are
formed in 64 bits from the channel, row and column indices (``c * stride_c`` passes 2^31 once one image's mixer input
has 2^31 elements, e.g. stage 1 of a 19k x 19k image), so any tensor that fits in memory is addressed correctly; only
the column offsets inside the tap loops stay 32-bit where one row spans fewer than 2^31 elements (registers).

Dtypes: each conv branch computes in its *conv dtype* -- the autocast dtype under ``torch.autocast``, else x's dtype.
As in the eager mixer, the convs' inputs, weights and results are rounded to it (fp32 sums in between; only their
order differs from cuDNN's), the identity channels keep x's dtype, and the output is what the eager ``cat`` gives,
``promote_types(x.dtype, conv dtype)``, or the ``out_dtype`` asked for (rounded once more, as ``.to(out_dtype)`` on the
eager output would). The gradients are rounded at the same places as the eager convs' gradients. Rounding is to
nearest even everywhere; Triton's CPU interpreter (``TRITON_INTERPRET=1``, the tests) converts float32 to bfloat16 by
truncation and flushes bfloat16 subnormals, so there the kernels convert bfloat16 by bit arithmetic that rounds as
the GPU's ``cvt.rn`` does.

Memory: backward keeps what the eager convs keep: the conv branches' input channels in the conv dtype (written by the
forward kernel as a side output where x has another dtype, so the float32 residual stream under AMP can be freed; x
itself where it already has the conv dtype) and nothing of x where no weight needs a gradient.

Public entry: :func:`inception_dwconv`; :func:`fused_inception_dwconv_available` says whether it runs the kernels and
:func:`fused_inception_dwconv_unavailable_reason` why not; :func:`inception_dwconv_reference` is the eager formula the
tests hold the kernels to.
"""
import os
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import compat

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs, macOS: the eager path only
    triton = None

__all__ = [
    'inception_dwconv', 'inception_dwconv_reference', 'fused_inception_dwconv_available',
    'fused_inception_dwconv_unavailable_reason'
]

# The kernels are a torch.library.triton_op (autograd, autocast, torch.compile), which needs torch >= 2.6.
_KERNELS = triton is not None and compat.TRITON_OP
# Triton decides at `@triton.jit` time (i.e. when this module is imported) whether a kernel is compiled for the GPU or
# run by its CPU interpreter (TRITON_INTERPRET=1, used by the tests). Record which, so availability answers for the
# kernels as they were built, not for an environment variable set later.
_INTERPRETED = _KERNELS and os.environ.get('TRITON_INTERPRET', '0') not in ('', '0')
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Kernel constexpr CONV: the conv branches' dtype (their operands and results are rounded to it).
_CONV_MODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


def inception_dwconv_reference(x: Tensor,
                               w_hw: Tensor,
                               b_hw: Optional[Tensor],
                               w_w: Tensor,
                               b_w: Optional[Tensor],
                               w_h: Tensor,
                               b_h: Optional[Tensor],
                               *,
                               out_dtype: Optional[torch.dtype] = None) -> Tensor:
    """The eager mixer: split ``[C-3g | g | g | g]``, depthwise ``s x s``, ``1 x k`` and ``k x 1`` convs, concat;
    then ``.to(out_dtype)`` where one is given."""
    g = w_hw.shape[0]
    x_id, x_hw, x_w, x_h = torch.split(x, (x.shape[1] - 3 * g, g, g, g), dim=1)
    y = torch.cat((x_id,
                   F.conv2d(x_hw, w_hw, b_hw, padding=(w_hw.shape[-2] // 2, w_hw.shape[-1] // 2), groups=g),
                   F.conv2d(x_w, w_w, b_w, padding=(0, w_w.shape[-1] // 2), groups=g),
                   F.conv2d(x_h, w_h, b_h, padding=(w_h.shape[-2] // 2, 0), groups=g)), dim=1)
    return y if out_dtype is None else y.to(out_dtype)


def fused_inception_dwconv_unavailable_reason(x: Optional[Tensor] = None) -> Optional[str]:
    """Why :func:`inception_dwconv` takes the eager path (for ``x``, where given), or None where it runs the Triton
    kernels: it needs torch >= 2.6 (``torch.library.triton_op``), Triton, a float32/float16/bfloat16 tensor, and a
    CUDA device -- or the kernels built by Triton's CPU interpreter (``TRITON_INTERPRET=1`` set before this module was
    imported; slow, for tests)."""
    if not compat.TRITON_OP:
        return compat.torch_requirement(*compat.TRITON_OP_TORCH, 'The fused Inception mixer (torch.library.triton_op)')
    if triton is None:
        return 'The fused Inception mixer needs Triton (pip install triton; PyTorch wheels for Linux bring it)'
    if x is None:
        return None
    if x.dtype not in _DTYPES:
        return f'The fused Inception mixer takes float32, float16 or bfloat16 inputs, not {x.dtype}'
    if not (x.is_cuda or _INTERPRETED):
        return (f'The fused Inception mixer runs on CUDA tensors, not on {x.device.type} (set TRITON_INTERPRET=1 '
                'before importing mmincnext to run its kernels in Triton\'s CPU interpreter)')
    return None


def fused_inception_dwconv_available(x: Tensor) -> bool:
    """True where :func:`inception_dwconv` runs the Triton kernels for ``x``; see
    :func:`fused_inception_dwconv_unavailable_reason` for what that takes."""
    return fused_inception_dwconv_unavailable_reason(x) is None


def inception_dwconv(x: Tensor,
                     w_hw: Tensor,
                     b_hw: Tensor,
                     w_w: Tensor,
                     b_w: Tensor,
                     w_h: Tensor,
                     b_h: Tensor,
                     *,
                     out_dtype: Optional[torch.dtype] = None) -> Tensor:
    """The Inception depthwise mixer on ``x`` (N, C, H, W): fused Triton kernels where available, else eager.

    ``w_hw`` (g, 1, s, s), ``w_w`` (g, 1, 1, k), ``w_h`` (g, 1, k, 1) with odd s and k, biases (g,). ``x`` in fp32,
    bf16 or fp16, NCHW or channels-last (the output keeps the layout), any batch and spatial size. Differentiable in
    every argument; follows ``torch.autocast`` as the eager mixer does.

    ``out_dtype``: the output's dtype, with the numerics of ``.to(out_dtype)`` on the eager output. Under autocast the
    eager output is float32 (the identity channels keep the residual stream's dtype); where the next layer is a
    matmul under autocast (fc1, once the norm is folded into it for inference), it casts that to the autocast dtype
    again. Asking for that dtype here writes it directly: the same values, half the output bytes, no separate cast.

    Falls back to :func:`inception_dwconv_reference` where the kernels are not available (see
    :func:`fused_inception_dwconv_unavailable_reason`), without biases, and in ONNX export.
    """
    _check_out_dtype(out_dtype)
    if (fused_inception_dwconv_available(x) and b_hw is not None and b_w is not None and b_h is not None
            and not torch.onnx.is_in_onnx_export()):
        # Whether backward will need the conv branches' input (only the weight gradients read it).
        for_backward = torch.is_grad_enabled() and any(t.requires_grad for t in (w_hw, b_hw, w_w, b_w, w_h, b_h))
        return torch.ops.mmincnext.inception_dwconv(x, w_hw, b_hw, w_w, b_w, w_h, b_h, None, out_dtype,
                                                    for_backward)[0]
    return inception_dwconv_reference(x, w_hw, b_hw, w_w, b_w, w_h, b_h, out_dtype=out_dtype)


def _check_args(x: Tensor, w_hw: Tensor, w_w: Tensor, w_h: Tensor) -> Tuple[int, int, int, int]:
    """Validates the shapes; returns (identity channels, g, s, k)."""
    if x.dim() != 4:
        raise ValueError(f'inception_dwconv expects x of shape (N, C, H, W), got {tuple(x.shape)}')
    g, s, k = w_hw.shape[0], w_hw.shape[-1], w_w.shape[-1]
    if (tuple(w_hw.shape) != (g, 1, s, s) or tuple(w_w.shape) != (g, 1, 1, k) or tuple(w_h.shape) != (g, 1, k, 1)
            or s % 2 == 0 or k % 2 == 0 or g < 1 or 3 * g > x.shape[1]):
        raise ValueError('inception_dwconv expects depthwise weights (g, 1, s, s), (g, 1, 1, k), (g, 1, k, 1) with odd '
                         f's, k and 1 <= 3g <= C={x.shape[1]}; got {tuple(w_hw.shape)}, {tuple(w_w.shape)}, '
                         f'{tuple(w_h.shape)}')
    return x.shape[1] - 3 * g, g, s, k


def _check_out_dtype(out_dtype: Optional[torch.dtype]) -> None:
    if out_dtype is not None and out_dtype not in _DTYPES:
        raise ValueError(f'inception_dwconv writes float32, float16 or bfloat16, not out_dtype={out_dtype}')


def _dense(t: Tensor) -> Tuple[Tensor, bool]:
    """``t`` as a dense NCHW or channels-last tensor (no copy if it is one); True for channels-last."""
    if t.is_contiguous():
        return t, False
    if t.is_contiguous(memory_format=torch.channels_last):
        return t, True
    return t.contiguous(), False


def _memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def _channels_inner(t: Tensor) -> bool:
    """True where channels are ``t``'s innermost axis (channels-last), for the tile shape."""
    return t.stride(1) < t.stride(3)


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _tile_config(channels_last: bool, h: int, w: int, g: int) -> Tuple[int, int, int, int]:
    """(BLOCK_C, BLOCK_H, BLOCK_W, num_warps) for a layout and size.

    1024 elements per program at 4 warps: 8 per thread (one 16-byte vector of bf16 along the unit-stride axis), each
    tap's load issued for all of them. Compiled for sm_90 (k=11, Triton 3.4 to 3.8) that is 128-150 registers with
    no spills, 3 programs per SM (168 registers at most); 2048 elements needed ~250 and spilled. The unit-stride
    axis gets the wide side of the tile so loads coalesce: W (up to 64) for NCHW, C (up to 64 channels) for
    channels-last. Tiles never exceed the tensor (late stages, odd sizes), and channel blocks are capped at the
    branch width g, so few lanes idle.
    """
    tile, cap_c = 1024, _next_pow2(g)
    if channels_last:
        block_c = min(cap_c, 64)
        block_w = min(_next_pow2(w), max(1, 256 // block_c))
        block_h = min(_next_pow2(h), max(1, tile // (block_c * block_w)))
    else:
        block_w = min(_next_pow2(w), 64)
        block_h = min(_next_pow2(h), max(1, 512 // block_w))
        block_c = min(cap_c, max(1, tile // (block_h * block_w)))
    return block_c, block_h, block_w, 4


def _launch(kernel, grid, *args, **meta) -> None:
    """Launches through ``wrap_triton`` so ``torch.compile`` sees the kernel. The CPU interpreter (tests) cannot run on
    the FakeTensors that Dynamo propagates shapes with: there the outputs' shapes come from the torch ops around the
    launch and the launch is skipped. AOTAutograd/Inductor would inline the launch into a graph the interpreter cannot
    run, so that is refused rather than silently dropped. Where ``wrap_triton`` rejects interpreted kernels (torch
    before 2.13), they are launched directly."""
    if _INTERPRETED:
        from torch._subclasses.fake_tensor import FakeTensor
        from torch._subclasses.functional_tensor import FunctionalTensor
        tensors = [a for a in args if isinstance(a, Tensor)]
        if any(isinstance(a, FunctionalTensor) for a in tensors):
            raise RuntimeError('The Triton interpreter (TRITON_INTERPRET=1) cannot run inside AOTAutograd/Inductor '
                               "graphs; compile with backend='eager' to trace through the op.")
        if any(isinstance(a, FakeTensor) for a in tensors):
            return
        if not compat.WRAP_TRITON_RUNS_INTERPRETED:
            kernel[grid](*args, **meta)
            return
    torch.library.wrap_triton(kernel)[grid](*args, **meta)


if _KERNELS:
    # bfloat16 conversions by bit arithmetic, where Triton's interpreter would truncate (see the module docstring);
    # compiled kernels use the hardware's round-to-nearest-even conversions.
    _BF16_BY_BITS = tl.constexpr(_INTERPRETED)

    @triton.jit
    def _bf16_bits(v):
        """fp32 ``v`` rounded to bfloat16, to nearest even, as the high half of a uint32 (NaNs stay quiet NaNs)."""
        bits = v.to(tl.uint32, bitcast=True)
        return tl.where(v != v, bits | 0x400000, bits + (0x7FFF + ((bits >> 16) & 1)))

    @triton.jit
    def _to_f32(v):
        """A loaded value as fp32 (exact)."""
        if _BF16_BY_BITS:
            if v.dtype == tl.bfloat16:
                v = (v.to(tl.uint16, bitcast=True).to(tl.uint32) << 16).to(tl.float32, bitcast=True)
        return v.to(tl.float32)

    @triton.jit
    def _round(v, CONV: tl.constexpr):
        """fp32 ``v`` rounded to the conv dtype (CONV 0: fp32, unchanged; 1: fp16; 2: bf16), kept as fp32."""
        if CONV == 1:
            v = v.to(tl.float16).to(tl.float32)
        elif CONV == 2:
            if _BF16_BY_BITS:
                v = (_bf16_bits(v) & 0xFFFF0000).to(tl.float32, bitcast=True)
            else:
                v = v.to(tl.bfloat16).to(tl.float32)
        return v

    @triton.jit
    def _cast(v, dtype: tl.constexpr):
        """``v`` converted to ``dtype`` for a store, rounding to nearest even."""
        if _BF16_BY_BITS:
            if v.dtype != dtype:
                v = _to_f32(v)
                if dtype == tl.bfloat16:
                    v = (_bf16_bits(v) >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
        return v.to(dtype)

    @triton.jit
    def _column_offsets(ww, stride_w, WIDE: tl.constexpr):
        """``ww * stride_w``, in 64 bits where WIDE."""
        if WIDE:
            ww = ww.to(tl.int64)
        return ww * stride_w

    @triton.jit
    def _locate(pid_sp, pid_c, C_ID, G, n_h_tiles, n_w_tiles, n_id_blocks, n_g_blocks, BLOCK_C: tl.constexpr,
                BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
        """The tile a program owns. Axis 0: (n, row tile, column tile), columns fastest, so programs that run
        together share their halo rows in L2. Axis 1: channel blocks, the identity channels' first (branch 0), then
        n_g_blocks each for the square (1), 1 x k (2) and k x 1 (3) branches. Returns the batch index (int64), the
        branch, the first channel of the branch and the end of its channels, and the tile's channel/row/column
        indices (1-D)."""
        tile_w = pid_sp % n_w_tiles
        tile_h = (pid_sp // n_w_tiles) % n_h_tiles
        n = pid_sp // (n_w_tiles * n_h_tiles)
        is_id = pid_c < n_id_blocks
        j = tl.where(is_id, 0, pid_c - n_id_blocks)
        branch = tl.where(is_id, 0, 1 + j // n_g_blocks)
        c_start = tl.where(is_id, 0, C_ID + (branch - 1) * G)
        c_end = tl.where(is_id, C_ID, c_start + G)
        c_block = tl.where(is_id, pid_c, j % n_g_blocks)
        offs_c = c_start + c_block * BLOCK_C + tl.arange(0, BLOCK_C)
        offs_h = tile_h * BLOCK_H + tl.arange(0, BLOCK_H)
        offs_w = tile_w * BLOCK_W + tl.arange(0, BLOCK_W)
        return n.to(tl.int64), branch, c_start, c_end, offs_c, offs_h, offs_w

    @triton.jit
    def _dw_conv(src, w_ptr, b_ptr, c_ok, h, w, H, W, stride_h, stride_w, KH: tl.constexpr, KW: tl.constexpr,
                 TRANSPOSED: tl.constexpr, CONV: tl.constexpr, ROUND_SRC: tl.constexpr, WIDE_COLUMNS: tl.constexpr,
                 BLOCK_C: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
        """One depthwise KH x KW conv (zero padding KH//2, KW//2) over the tile in the conv dtype (fp32 sums).
        ``src`` points at each channel's plane, ``w_ptr``/``b_ptr`` at each channel's taps/bias. The shifted loads
        re-read the tile's neighbourhood from L1/L2; DRAM sees each input element about once. ROUND_SRC rounds the
        loaded values to the conv dtype (x in another dtype). TRANSPOSED mirrors the taps and drops the bias: the
        input gradient of this conv. Offsets are 64-bit (indices widened before multiplying by a stride), but for
        each tap's column offset: 32-bit unless WIDE_COLUMNS (one row spans 2^31 elements), as 64 bits there cost
        ~30 registers on sm_90 with some Triton versions."""
        acc = tl.zeros((BLOCK_C, BLOCK_H, BLOCK_W), tl.float32)
        for i in tl.static_range(KH):
            if TRANSPOSED:
                hh = h + (KH // 2 - i)
            else:
                hh = h + (i - KH // 2)
            row = src + hh.to(tl.int64) * stride_h  # row offsets and masks once per kernel row, not per tap
            row_ok = c_ok & (hh >= 0) & (hh < H)
            for j in tl.static_range(KW):
                if TRANSPOSED:
                    ww = w + (KW // 2 - j)
                else:
                    ww = w + (j - KW // 2)
                v = _to_f32(tl.load(row + _column_offsets(ww, stride_w, WIDE_COLUMNS),
                                    mask=row_ok & (ww >= 0) & (ww < W), other=0.))
                if ROUND_SRC:
                    v = _round(v, CONV)
                tap = _round(_to_f32(tl.load(w_ptr + (i * KW + j), mask=c_ok, other=0.)), CONV)
                acc += v * tap
        if not TRANSPOSED:
            acc += _round(_to_f32(tl.load(b_ptr, mask=c_ok, other=0.)), CONV)
        return _round(acc, CONV)

    @triton.jit
    def _inception_dwconv_kernel(src_ptr, dst_ptr, save_ptr, w_hw_ptr, b_hw_ptr, w_w_ptr, b_w_ptr, w_h_ptr, b_h_ptr,
                                 H, W, C_ID, G, stride_n, stride_c, stride_h, stride_w, save_stride_n, save_stride_c,
                                 save_stride_h, save_stride_w, n_h_tiles, n_w_tiles, n_id_blocks, n_g_blocks,
                                 S: tl.constexpr, K: tl.constexpr, TRANSPOSED: tl.constexpr, CONV: tl.constexpr,
                                 ROUND_SRC: tl.constexpr, SAVE: tl.constexpr, WIDE_COLUMNS: tl.constexpr,
                                 BLOCK_C: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
        """Forward (src = x, dst = y) or, with TRANSPOSED, grad_input (src = grad_y, dst = grad_x). ``src`` and
        ``dst`` share the strides. With SAVE, the conv channels' inputs in the conv dtype go to ``save`` (channels
        C_ID.. of x as its channels 0.., its own strides)."""
        n, branch, c_start, c_end, offs_c, offs_h, offs_w = _locate(
            tl.program_id(0), tl.program_id(1), C_ID, G, n_h_tiles, n_w_tiles, n_id_blocks, n_g_blocks,
            BLOCK_C, BLOCK_H, BLOCK_W)
        c = offs_c[:, None, None]
        h = offs_h[None, :, None]
        w = offs_w[None, None, :]
        c_ok = c < c_end
        in_tile = c_ok & (h < H) & (w < W)
        plane = n * stride_n + c.to(tl.int64) * stride_c  # each channel's (H, W) plane
        tile = plane + h.to(tl.int64) * stride_h + w.to(tl.int64) * stride_w
        if branch == 0:
            # Identity channels: a copy (a cast too, where autocast promotes the output or out_dtype asks).
            v = tl.load(src_ptr + tile, mask=in_tile)
            tl.store(dst_ptr + tile, _cast(v, dst_ptr.dtype.element_ty), mask=in_tile)
        else:
            if SAVE:  # before the conv, while few registers are live (the conv re-reads the tile from L1)
                save = (save_ptr + n * save_stride_n + (c - C_ID).to(tl.int64) * save_stride_c +
                        h.to(tl.int64) * save_stride_h + w.to(tl.int64) * save_stride_w)
                tl.store(save, _cast(tl.load(src_ptr + tile, mask=in_tile), save_ptr.dtype.element_ty), mask=in_tile)
            cg = c - c_start  # channel index in the branch's weights
            if branch == 1:
                acc = _dw_conv(src_ptr + plane, w_hw_ptr + cg * (S * S), b_hw_ptr + cg, c_ok, h, w, H, W, stride_h,
                               stride_w, S, S, TRANSPOSED, CONV, ROUND_SRC, WIDE_COLUMNS, BLOCK_C, BLOCK_H, BLOCK_W)
            elif branch == 2:
                acc = _dw_conv(src_ptr + plane, w_w_ptr + cg * K, b_w_ptr + cg, c_ok, h, w, H, W, stride_h, stride_w,
                               1, K, TRANSPOSED, CONV, ROUND_SRC, WIDE_COLUMNS, BLOCK_C, BLOCK_H, BLOCK_W)
            else:
                acc = _dw_conv(src_ptr + plane, w_h_ptr + cg * K, b_h_ptr + cg, c_ok, h, w, H, W, stride_h, stride_w,
                               K, 1, TRANSPOSED, CONV, ROUND_SRC, WIDE_COLUMNS, BLOCK_C, BLOCK_H, BLOCK_W)
            tl.store(dst_ptr + tile, _cast(acc, dst_ptr.dtype.element_ty), mask=in_tile)

    @triton.jit
    def _wgrad_taps(x_plane, dy, part_ptr, G, c_ok, c1_ok, h, w, H, W, stride_h, stride_w, KH: tl.constexpr,
                    KW: tl.constexpr, CONV: tl.constexpr, ROUND_X: tl.constexpr, WIDE_COLUMNS: tl.constexpr):
        """grad_w[c, i, j] partial over the tile: sum of grad_y * x shifted by the tap; stored at part_ptr + tap*G."""
        for i in tl.static_range(KH):
            hh = h + (i - KH // 2)
            row = x_plane + hh.to(tl.int64) * stride_h
            row_ok = c_ok & (hh >= 0) & (hh < H)
            for j in tl.static_range(KW):
                ww = w + (j - KW // 2)
                v = _to_f32(tl.load(row + _column_offsets(ww, stride_w, WIDE_COLUMNS),
                                    mask=row_ok & (ww >= 0) & (ww < W), other=0.))
                if ROUND_X:
                    v = _round(v, CONV)
                tl.store(part_ptr + (i * KW + j) * G, tl.sum(tl.sum(dy * v, axis=2), axis=1), mask=c1_ok)

    @triton.jit
    def _inception_dwconv_wgrad_kernel(x_ptr, dy_ptr, part_hw_ptr, part_w_ptr, part_h_ptr, part_b_ptr, H, W, G,
                                       x_stride_n, x_stride_c, x_stride_h, x_stride_w, dy_stride_n, dy_stride_c,
                                       dy_stride_h, dy_stride_w, n_h_tiles, n_w_tiles, n_g_blocks, S: tl.constexpr,
                                       K: tl.constexpr, CONV: tl.constexpr, ROUND_X: tl.constexpr,
                                       ROUND_DY: tl.constexpr, WIDE_COLUMNS: tl.constexpr, BLOCK_C: tl.constexpr,
                                       BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
        """Weight and bias gradients of the conv branches, fp32 partial sums per spatial tile (program axis 0 = row
        of the partial buffers: part_hw (P, S*S, G), part_w/part_h (P, K, G), part_b (P, 3, G)). ``x`` and ``dy``
        hold the conv branches' 3G channels only, each with its own strides; ROUND_X/ROUND_DY round their values to
        the conv dtype where they are in another."""
        pid_sp = tl.program_id(0)
        n, branch, c_start, c_end, offs_c, offs_h, offs_w = _locate(
            pid_sp, tl.program_id(1), 0, G, n_h_tiles, n_w_tiles, 0, n_g_blocks, BLOCK_C, BLOCK_H, BLOCK_W)
        c = offs_c[:, None, None]
        h = offs_h[None, :, None]
        w = offs_w[None, None, :]
        c_ok = c < c_end
        c1_ok = offs_c < c_end
        cg1 = offs_c - c_start
        c64 = c.to(tl.int64)
        dy = tl.load(dy_ptr + n * dy_stride_n + c64 * dy_stride_c + h.to(tl.int64) * dy_stride_h +
                     w.to(tl.int64) * dy_stride_w, mask=c_ok & (h < H) & (w < W), other=0.)
        dy = _to_f32(dy)
        if ROUND_DY:
            dy = _round(dy, CONV)
        pid64 = pid_sp.to(tl.int64)
        tl.store(part_b_ptr + (pid64 * 3 + branch - 1) * G + cg1, tl.sum(tl.sum(dy, axis=2), axis=1), mask=c1_ok)
        x_plane = x_ptr + n * x_stride_n + c64 * x_stride_c
        if branch == 1:
            _wgrad_taps(x_plane, dy, part_hw_ptr + pid64 * (S * S) * G + cg1, G, c_ok, c1_ok, h, w, H, W,
                        x_stride_h, x_stride_w, S, S, CONV, ROUND_X, WIDE_COLUMNS)
        elif branch == 2:
            _wgrad_taps(x_plane, dy, part_w_ptr + pid64 * K * G + cg1, G, c_ok, c1_ok, h, w, H, W, x_stride_h,
                        x_stride_w, 1, K, CONV, ROUND_X, WIDE_COLUMNS)
        else:
            _wgrad_taps(x_plane, dy, part_h_ptr + pid64 * K * G + cg1, G, c_ok, c1_ok, h, w, H, W, x_stride_h,
                        x_stride_w, K, 1, CONV, ROUND_X, WIDE_COLUMNS)

    def _wide_columns(t: Tensor) -> bool:
        """Whether a column offset within one row of ``t`` can pass 2^31 (one row spanning 2^31 elements)."""
        return (t.shape[3] - 1) * t.stride(3) >= 2 ** 31

    def _grid_args(shape, c_id: int, g: int, block_c: int, block_h: int, block_w: int):
        n, _, h, w = shape
        n_h_tiles, n_w_tiles = triton.cdiv(h, block_h), triton.cdiv(w, block_w)
        n_id_blocks, n_g_blocks = triton.cdiv(c_id, block_c), triton.cdiv(g, block_c)
        return n * n_h_tiles * n_w_tiles, n_h_tiles, n_w_tiles, n_id_blocks, n_g_blocks

    def _launch_mixer(src: Tensor, dst: Tensor, save: Optional[Tensor], w_hw: Tensor, b_hw: Optional[Tensor],
                      w_w: Tensor, b_w: Optional[Tensor], w_h: Tensor, b_h: Optional[Tensor], conv_dtype: torch.dtype,
                      transposed: bool, config: Optional[Tuple[int, int, int, int]] = None) -> None:
        """Runs the forward (or, transposed, the grad_input) kernel from ``src`` into ``dst``, which share their
        shape and strides (any strides); with ``save``, (N, 3g, H, W) in the conv dtype, also the conv channels'
        inputs there."""
        c_id, g, s, k = _check_args(src, w_hw, w_w, w_h)
        if src.numel() == 0:
            return
        _, _, h, w = src.shape
        block_c, block_h, block_w, num_warps = config or _tile_config(_channels_inner(src), h, w, g)
        n_sp, n_h_tiles, n_w_tiles, n_id_blocks, n_g_blocks = _grid_args(src.shape, c_id, g, block_c, block_h,
                                                                         block_w)
        w_hw, w_w, w_h = w_hw.contiguous(), w_w.contiguous(), w_h.contiguous()
        if transposed:  # no bias; any pointer will do for the unused arguments
            b_hw = b_w = b_h = w_hw
        save_args = (save, *save.stride()) if save is not None else (dst, 0, 0, 0, 0)
        _launch(_inception_dwconv_kernel, (n_sp, n_id_blocks + 3 * n_g_blocks), src, dst, save_args[0], w_hw,
                b_hw.contiguous(), w_w, b_w.contiguous(), w_h, b_h.contiguous(), h, w, c_id, g, *src.stride(),
                *save_args[1:], n_h_tiles, n_w_tiles, n_id_blocks, n_g_blocks, S=s, K=k, TRANSPOSED=transposed,
                CONV=_CONV_MODES[conv_dtype], ROUND_SRC=src.dtype != conv_dtype, SAVE=save is not None,
                WIDE_COLUMNS=_wide_columns(src), BLOCK_C=block_c, BLOCK_H=block_h, BLOCK_W=block_w, num_warps=num_warps)

    def _launch_param_grads(x_conv: Tensor, dy_conv: Tensor, g: int, s: int, k: int, conv_dtype: torch.dtype,
                            config: Optional[Tuple[int, int, int, int]] = None) -> Tuple[Tensor, ...]:
        """fp32 (grad_w_hw (s*s, g), grad_w_w (k, g), grad_w_h (k, g), grad_b (3, g)) from the conv branches' input
        ``x_conv`` and output gradient ``dy_conv`` (N, 3g, H, W each, any strides)."""
        _, _, h, w = x_conv.shape
        block_c, block_h, block_w, num_warps = config or _tile_config(_channels_inner(dy_conv), h, w, g)
        n_sp, n_h_tiles, n_w_tiles, _, n_g_blocks = _grid_args(x_conv.shape, 0, g, block_c, block_h, block_w)
        part_hw = x_conv.new_empty((n_sp, s * s, g), dtype=torch.float32)
        part_w = x_conv.new_empty((n_sp, k, g), dtype=torch.float32)
        part_h = x_conv.new_empty((n_sp, k, g), dtype=torch.float32)
        part_b = x_conv.new_empty((n_sp, 3, g), dtype=torch.float32)
        if n_sp > 0:
            _launch(_inception_dwconv_wgrad_kernel, (n_sp, 3 * n_g_blocks), x_conv, dy_conv, part_hw, part_w, part_h,
                    part_b, h, w, g, *x_conv.stride(), *dy_conv.stride(), n_h_tiles, n_w_tiles, n_g_blocks, S=s, K=k,
                    CONV=_CONV_MODES[conv_dtype], ROUND_X=x_conv.dtype != conv_dtype,
                    ROUND_DY=dy_conv.dtype != conv_dtype, WIDE_COLUMNS=_wide_columns(x_conv), BLOCK_C=block_c,
                    BLOCK_H=block_h, BLOCK_W=block_w, num_warps=num_warps)
        return part_hw.sum(0), part_w.sum(0), part_h.sum(0), part_b.sum(0)

    def _to_param(grad32: Tensor, param: Tensor, conv_dtype: torch.dtype) -> Tensor:
        """An fp32 gradient in the parameter's shape and dtype, rounded through the conv dtype first as the eager
        conv's gradient is. Always a new tensor (an op's outputs must not alias each other)."""
        return grad32.to(conv_dtype).reshape(param.shape).to(param.dtype, memory_format=torch.contiguous_format,
                                                               copy=True)

    def _save_conv_input(x: Tensor, conv_dtype: torch.dtype, for_backward: bool) -> bool:
        """Whether the forward writes the conv channels' input in the conv dtype for backward: where x has another
        dtype (where it has that one, backward keeps x itself, as the eager convs keep their input views)."""
        return for_backward and x.dtype != conv_dtype

    @torch.library.triton_op('mmincnext::inception_dwconv', mutates_args=())
    def _inception_dwconv_op(x: Tensor,
                             w_hw: Tensor,
                             b_hw: Tensor,
                             w_w: Tensor,
                             b_w: Tensor,
                             w_h: Tensor,
                             b_h: Tensor,
                             compute_dtype: Optional[torch.dtype] = None,
                             out_dtype: Optional[torch.dtype] = None,
                             for_backward: bool = False) -> Tuple[Tensor, Tensor]:
        """The fused mixer: (output, saved). ``compute_dtype`` (set by the autocast rule) is the conv dtype (default:
        x's); the output is ``out_dtype``, by default ``promote_types(x.dtype, compute_dtype)`` as the eager ``cat``
        gives. ``saved``: with ``for_backward``, where x is not in the conv dtype, the conv channels' input (N, 3g, H,
        W) in the conv dtype, in x's layout; otherwise empty."""
        c_id, g, _, _ = _check_args(x, w_hw, w_w, w_h)
        _check_out_dtype(out_dtype)
        conv_dtype = compute_dtype or x.dtype
        out_dtype = out_dtype or torch.promote_types(x.dtype, conv_dtype)
        x, channels_last = _dense(x)
        y = torch.empty_like(x, dtype=out_dtype)  # same strides as x (dense)
        saved = x.new_empty(0, dtype=conv_dtype)
        if _save_conv_input(x, conv_dtype, for_backward):
            saved = x.new_empty((x.shape[0], 3 * g, *x.shape[2:]),
                                dtype=conv_dtype).contiguous(memory_format=_memory_format(channels_last))
        _launch_mixer(x, y, saved if saved.numel() else None, w_hw, b_hw, w_w, b_w, w_h, b_h, conv_dtype,
                      transposed=False)
        return y, saved

    @torch.library.triton_op('mmincnext::inception_dwconv_backward', mutates_args=())
    def _inception_dwconv_backward_op(
            grad: Tensor, x_conv: Tensor, w_hw: Tensor, b_hw: Tensor, w_w: Tensor, b_w: Tensor, w_h: Tensor,
            b_h: Tensor, conv_dtype: torch.dtype, x_dtype: torch.dtype, channels_last: bool, need_input: bool,
            need_params: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(grad_x, grad_w_hw, grad_b_hw, grad_w_w, grad_b_w, grad_w_h, grad_b_h); the parts not needed are empty.
        ``x_conv``: the conv channels' input (N, 3g, H, W), needed for the parameters' gradients only."""
        _, g, s, k = _check_args(grad, w_hw, w_w, w_h)
        # grad_y in x's layout, so one set of strides serves grad_y and grad_x.
        grad = grad.contiguous(memory_format=_memory_format(channels_last))
        grad_x = grad.new_empty(0, dtype=x_dtype)
        if need_input:
            grad_x = torch.empty_like(grad, dtype=x_dtype)
            _launch_mixer(grad, grad_x, None, w_hw, None, w_w, None, w_h, None, conv_dtype, transposed=True)
        if not need_params:  # (outputs of an op must not alias each other: one empty tensor each)
            return (grad_x, ) + tuple(grad.new_empty(0) for _ in range(6))
        gw_hw, gw_w, gw_h, gb = _launch_param_grads(x_conv, grad[:, grad.shape[1] - 3 * g:], g, s, k, conv_dtype)
        return (grad_x, _to_param(gw_hw.t(), w_hw, conv_dtype), _to_param(gb[0], b_hw, conv_dtype),
                _to_param(gw_w.t(), w_w, conv_dtype), _to_param(gb[1], b_w, conv_dtype),
                _to_param(gw_h.t(), w_h, conv_dtype), _to_param(gb[2], b_h, conv_dtype))

    def _setup_context(ctx, inputs, output):
        x, w_hw, b_hw, w_w, b_w, w_h, b_h, compute_dtype, _, _ = inputs
        y, saved = output
        ctx.mark_non_differentiable(saved)
        ctx.set_materialize_grads(False)  # no zero-filled gradient for `saved`
        ctx.conv_dtype = compute_dtype or x.dtype
        ctx.x_dtype = x.dtype
        ctx.channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        if saved.numel() or not any(ctx.needs_input_grad[1:7]):
            x_conv = saved  # (empty where no weight needs a gradient: backward then reads no input)
        else:  # x already in the conv dtype (or the caller did not say for_backward): x's own conv channels
            x_conv = x[:, x.shape[1] - 3 * w_hw.shape[0]:]
        ctx.save_for_backward(x_conv, w_hw, b_hw, w_w, b_w, w_h, b_h)

    def _backward(ctx, grad, _saved_grad):
        needs = ctx.needs_input_grad[:7]
        if grad is None:
            return (None, ) * 10
        need_params = any(needs[1:7])
        grads = torch.ops.mmincnext.inception_dwconv_backward(grad, *ctx.saved_tensors, ctx.conv_dtype, ctx.x_dtype,
                                                             ctx.channels_last, needs[0], need_params)
        return tuple(gr if need else None for gr, need in zip(grads, needs)) + (None, ) * 3

    _inception_dwconv_op.register_autograd(_backward, setup_context=_setup_context)

    # Autocast rule: the eager convs cast their floating inputs (but not fp64) to the autocast dtype; the identity
    # slice is not cast. Pass that dtype on and run the op with autocast off (the rule must not fire again).
    _autocast_lib = torch.library.Library('mmincnext', 'IMPL')

    def _autocast_rule(device_type: str):

        def rule(_keyset, x, w_hw, b_hw, w_w, b_w, w_h, b_h, compute_dtype=None, out_dtype=None, for_backward=False):
            if compute_dtype is None and x.dtype in _DTYPES and x.device.type == device_type:
                compute_dtype = compat.get_autocast_dtype(device_type)
            with torch.autocast(device_type, enabled=False):
                return torch.ops.mmincnext.inception_dwconv(x, w_hw, b_hw, w_w, b_w, w_h, b_h, compute_dtype,
                                                            out_dtype, for_backward)

        return rule

    for _device_type, _key in (('cuda', 'AutocastCUDA'), ('cpu', 'AutocastCPU')):
        _autocast_lib.impl('inception_dwconv', _autocast_rule(_device_type), _key, with_keyset=True)
