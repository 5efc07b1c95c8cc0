"""Fused Inception depthwise mixer (InceptionNeXt's token mixer) in Triton, with its autograd and eager reference.

The eager mixer splits the channels ``[identity C-3g | square s x s | band 1 x k | band k x 1]`` (g channels per conv
branch, depthwise, zero "same" padding, with bias), runs three small convolutions and concatenates: several launches
and two full activation copies (split views into the convs, cat). The op is memory-bound, so one pass that reads each
input tile once (its halo comes from L1/L2, not DRAM) and writes the whole output is the whole game:

* ``_inception_dwconv_kernel`` -- forward: identity channels copied, each conv branch computed with fp32
  accumulation. With ``TRANSPOSED`` the same kernel computes ``grad_input`` (a stride-1 "same" conv's input gradient
  is the conv with the kernel flipped; the identity part is a copy of ``grad_output``).
* ``_inception_dwconv_wgrad_kernel`` -- per-tile fp32 partial sums of the weight and bias gradients, reduced over the
  tiles by one ``sum`` (deterministic: no atomics).

Tiling: program axis 0 walks (batch, row tile, column tile), axis 1 walks channel blocks, each block inside one branch,
so a program runs a single branch with a uniform (non-divergent) code path. Tiles are 3-D ``[BLOCK_C, BLOCK_H,
BLOCK_W]``; the layout is passed as strides and Triton specialises the unit stride, so the same kernel vectorises
along W for NCHW and along C for channels-last (see :func:`_tile_config` for the sizes and why).

Autocast: under ``torch.autocast`` the eager mixer's convs run in the autocast dtype (their inputs, weights and outputs
rounded to it) while the identity slice keeps its dtype and ``cat`` promotes. The op keeps those dtype boundaries (only
the order of the fp32 sums differs): an autocast rule passes ``compute_dtype``, the kernels round the conv operands
and results to it, the identity channels are copied untouched, the output dtype is
``promote_types(x.dtype, compute_dtype)``; the gradients are rounded at the same places.

Public entry: :func:`inception_dwconv`; :func:`fused_inception_dwconv_available` says whether it runs the kernels;
:func:`inception_dwconv_reference` is the eager formula the tests hold the kernels to.
"""
import os
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs, macOS: the eager path only
    triton = None

__all__ = ['inception_dwconv', 'inception_dwconv_reference', 'fused_inception_dwconv_available']

# Triton decides at `@triton.jit` time (i.e. when this module is imported) whether a kernel is compiled for the GPU or
# run by its CPU interpreter (TRITON_INTERPRET=1, used by the tests). Record which, so availability answers for the
# kernels as they were built, not for an environment variable set later.
_INTERPRETED = triton is not None and os.environ.get('TRITON_INTERPRET', '0') not in ('', '0')
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Kernel constexpr ROUND: which autocast dtype conv operands and results are rounded to (0: none).
_ROUND_MODES = {torch.float16: 1, torch.bfloat16: 2}


def inception_dwconv_reference(x: Tensor, w_hw: Tensor, b_hw: Optional[Tensor], w_w: Tensor, b_w: Optional[Tensor],
                               w_h: Tensor, b_h: Optional[Tensor]) -> Tensor:
    """The eager mixer: split ``[C-3g | g | g | g]``, depthwise ``s x s``, ``1 x k`` and ``k x 1`` convs, concat."""
    g = w_hw.shape[0]
    x_id, x_hw, x_w, x_h = torch.split(x, (x.shape[1] - 3 * g, g, g, g), dim=1)
    return torch.cat((x_id,
                      F.conv2d(x_hw, w_hw, b_hw, padding=(w_hw.shape[-2] // 2, w_hw.shape[-1] // 2), groups=g),
                      F.conv2d(x_w, w_w, b_w, padding=(0, w_w.shape[-1] // 2), groups=g),
                      F.conv2d(x_h, w_h, b_h, padding=(w_h.shape[-2] // 2, 0), groups=g)), dim=1)


def fused_inception_dwconv_available(x: Tensor) -> bool:
    """True where :func:`inception_dwconv` runs the Triton kernels for ``x``: Triton imports and ``x`` is a CUDA
    tensor, or the kernels were built by Triton's CPU interpreter (``TRITON_INTERPRET=1`` set before this module was
    imported; slow, for tests)."""
    if triton is None:
        return False
    return _INTERPRETED or x.is_cuda


def inception_dwconv(x: Tensor, w_hw: Tensor, b_hw: Tensor, w_w: Tensor, b_w: Tensor, w_h: Tensor,
                     b_h: Tensor) -> Tensor:
    """The Inception depthwise mixer on ``x`` (N, C, H, W): fused Triton kernels where available, else eager.

    ``w_hw`` (g, 1, s, s), ``w_w`` (g, 1, 1, k), ``w_h`` (g, 1, k, 1) with odd s and k, biases (g,). ``x`` in fp32,
    bf16 or fp16, NCHW or channels-last (the output keeps the layout), any batch and spatial size. Differentiable in
    every argument; follows ``torch.autocast`` as the eager mixer does. Falls back to
    :func:`inception_dwconv_reference` where the kernels are not available, for other dtypes, and in ONNX export.
    """
    if (fused_inception_dwconv_available(x) and x.dtype in _DTYPES and b_hw is not None and b_w is not None
            and b_h is not None and not torch.onnx.is_in_onnx_export()):
        return torch.ops.mmincnext.inception_dwconv(x, w_hw, b_hw, w_w, b_w, w_h, b_h)
    return inception_dwconv_reference(x, w_hw, b_hw, w_w, b_w, w_h, b_h)


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


def _dense(t: Tensor) -> Tuple[Tensor, bool]:
    """``t`` as a dense NCHW or channels-last tensor (no copy if it is one); True for channels-last."""
    if t.is_contiguous():
        return t, False
    if t.is_contiguous(memory_format=torch.channels_last):
        return t, True
    return t.contiguous(), False


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _tile_config(channels_last: bool, h: int, w: int, g: int) -> Tuple[int, int, int, int]:
    """(BLOCK_C, BLOCK_H, BLOCK_W, num_warps) for a layout and size; not yet timed on a GPU.

    1024 elements per program at 4 warps: 8 per thread (one 16-byte vector of bf16 along the unit-stride axis), each
    tap's load issued for all of them. Compiled for sm_90 (Triton 3.8, bf16, k=11) that is ~140 registers with no
    spills, 3 programs per SM; 2048 elements needed ~250 and spilled, 512 ~80. The unit-stride axis gets the wide side
    of the tile so loads coalesce: W (up to 64) for NCHW, C (up to 64 channels) for channels-last. Tiles never exceed
    the tensor (late stages, odd sizes), and channel blocks are capped at the branch width g, so few lanes idle.
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
    run, so that is refused rather than silently dropped."""
    if _INTERPRETED:
        from torch._subclasses.fake_tensor import FakeTensor
        from torch._subclasses.functional_tensor import FunctionalTensor
        tensors = [a for a in args if isinstance(a, Tensor)]
        if any(isinstance(a, FunctionalTensor) for a in tensors):
            raise RuntimeError('The Triton interpreter (TRITON_INTERPRET=1) cannot run inside AOTAutograd/Inductor '
                               "graphs; compile with backend='eager' to trace through the op.")
        if any(isinstance(a, FakeTensor) for a in tensors):
            return
    torch.library.wrap_triton(kernel)[grid](*args, **meta)


if triton is not None:

    @triton.jit
    def _round(v, ROUND: tl.constexpr):
        """fp32 values rounded to the autocast dtype and back, as the eager conv's casts round them."""
        if ROUND == 1:
            v = v.to(tl.float16).to(tl.float32)
        elif ROUND == 2:
            v = v.to(tl.bfloat16).to(tl.float32)
        return v

    @triton.jit
    def _locate(pid_sp, pid_c, C_ID, G, n_h_tiles, n_w_tiles, n_id_blocks, n_g_blocks, BLOCK_C: tl.constexpr,
                BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
        """The tile a program owns. Axis 0: (n, row tile, column tile), columns fastest, so programs that run
        together share their halo rows in L2. Axis 1: channel blocks, the identity channels' first (branch 0), then
        n_g_blocks each for the square (1), 1 x k (2) and k x 1 (3) branches. Returns the batch index, the branch,
        the first channel of the branch's weights and the end of its channels, and the tile's channel/row/column
        offsets (1-D)."""
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
                 TRANSPOSED: tl.constexpr, ROUND: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_H: tl.constexpr,
                 BLOCK_W: tl.constexpr):
        """One depthwise KH x KW conv (zero padding KH//2, KW//2) over the tile, fp32 accumulation. ``src`` points at
        each channel's plane, ``w_ptr``/``b_ptr`` at each channel's taps/bias. The shifted loads re-read the tile's
        neighbourhood from L1/L2; DRAM sees each input element about once. TRANSPOSED mirrors the taps and drops the
        bias: the input gradient of this conv."""
        acc = tl.zeros((BLOCK_C, BLOCK_H, BLOCK_W), tl.float32)
        for i in tl.static_range(KH):
            if TRANSPOSED:
                hh = h + (KH // 2 - i)
            else:
                hh = h + (i - KH // 2)
            row = src + hh * stride_h  # row offsets and masks once per kernel row, not per tap
            row_ok = c_ok & (hh >= 0) & (hh < H)
            for j in tl.static_range(KW):
                if TRANSPOSED:
                    ww = w + (KW // 2 - j)
                else:
                    ww = w + (j - KW // 2)
                v = tl.load(row + ww * stride_w, mask=row_ok & (ww >= 0) & (ww < W), other=0.).to(tl.float32)
                tap = tl.load(w_ptr + (i * KW + j), mask=c_ok, other=0.).to(tl.float32)
                if ROUND != 0:
                    v = _round(v, ROUND)
                    tap = _round(tap, ROUND)
                acc += v * tap
        if not TRANSPOSED:
            bias = tl.load(b_ptr, mask=c_ok, other=0.).to(tl.float32)
            if ROUND != 0:
                bias = _round(bias, ROUND)
            acc += bias
        if ROUND != 0:
            acc = _round(acc, ROUND)
        return acc

    @triton.jit
    def _inception_dwconv_kernel(src_ptr, dst_ptr, w_hw_ptr, b_hw_ptr, w_w_ptr, b_w_ptr, w_h_ptr, b_h_ptr,
                                 H, W, C_ID, G, stride_n, stride_c, stride_h, stride_w,
                                 n_h_tiles, n_w_tiles, n_id_blocks, n_g_blocks,
                                 S: tl.constexpr, K: tl.constexpr, TRANSPOSED: tl.constexpr, ROUND: tl.constexpr,
                                 BLOCK_C: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
        """Forward (src = x, dst = y) or, with TRANSPOSED, grad_input (src = grad_y, dst = grad_x). ``src`` and
        ``dst`` share the strides."""
        n, branch, c_start, c_end, offs_c, offs_h, offs_w = _locate(
            tl.program_id(0), tl.program_id(1), C_ID, G, n_h_tiles, n_w_tiles, n_id_blocks, n_g_blocks,
            BLOCK_C, BLOCK_H, BLOCK_W)
        c = offs_c[:, None, None]
        h = offs_h[None, :, None]
        w = offs_w[None, None, :]
        c_ok = c < c_end
        in_tile = c_ok & (h < H) & (w < W)
        plane = n * stride_n + c * stride_c  # each channel's (H, W) plane
        dst = dst_ptr + plane + h * stride_h + w * stride_w
        if branch == 0:
            # Identity channels: a copy (a cast too, where autocast promotes the output).
            v = tl.load(src_ptr + plane + h * stride_h + w * stride_w, mask=in_tile)
            tl.store(dst, v.to(dst_ptr.dtype.element_ty), mask=in_tile)
        else:
            cg = c - c_start  # channel index in the branch's weights
            if branch == 1:
                acc = _dw_conv(src_ptr + plane, w_hw_ptr + cg * (S * S), b_hw_ptr + cg, c_ok, h, w, H, W, stride_h,
                               stride_w, S, S, TRANSPOSED, ROUND, BLOCK_C, BLOCK_H, BLOCK_W)
            elif branch == 2:
                acc = _dw_conv(src_ptr + plane, w_w_ptr + cg * K, b_w_ptr + cg, c_ok, h, w, H, W, stride_h,
                               stride_w, 1, K, TRANSPOSED, ROUND, BLOCK_C, BLOCK_H, BLOCK_W)
            else:
                acc = _dw_conv(src_ptr + plane, w_h_ptr + cg * K, b_h_ptr + cg, c_ok, h, w, H, W, stride_h,
                               stride_w, K, 1, TRANSPOSED, ROUND, BLOCK_C, BLOCK_H, BLOCK_W)
            tl.store(dst, acc.to(dst_ptr.dtype.element_ty), mask=in_tile)

    @triton.jit
    def _wgrad_taps(x_plane, dy, part_ptr, G, c_ok, c1_ok, h, w, H, W, stride_h, stride_w, KH: tl.constexpr,
                    KW: tl.constexpr, ROUND: tl.constexpr):
        """grad_w[c, i, j] partial over the tile: sum of grad_y * x shifted by the tap; stored at part_ptr + tap*G."""
        for i in tl.static_range(KH):
            hh = h + (i - KH // 2)
            row = x_plane + hh * stride_h
            row_ok = c_ok & (hh >= 0) & (hh < H)
            for j in tl.static_range(KW):
                ww = w + (j - KW // 2)
                v = tl.load(row + ww * stride_w, mask=row_ok & (ww >= 0) & (ww < W), other=0.).to(tl.float32)
                if ROUND != 0:
                    v = _round(v, ROUND)
                tl.store(part_ptr + (i * KW + j) * G, tl.sum(tl.sum(dy * v, axis=2), axis=1), mask=c1_ok)

    @triton.jit
    def _inception_dwconv_wgrad_kernel(x_ptr, dy_ptr, part_hw_ptr, part_w_ptr, part_h_ptr, part_b_ptr,
                                       H, W, C_ID, G, stride_n, stride_c, stride_h, stride_w,
                                       n_h_tiles, n_w_tiles, n_g_blocks,
                                       S: tl.constexpr, K: tl.constexpr, ROUND: tl.constexpr,
                                       BLOCK_C: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
        """Weight and bias gradients of the conv branches, fp32 partial sums per spatial tile (program axis 0 = row
        of the partial buffers: part_hw (P, S*S, G), part_w/part_h (P, K, G), part_b (P, 3, G)). Axis 1 covers only
        the conv channel blocks. x and grad_y share the strides."""
        pid_sp = tl.program_id(0)
        n, branch, c_start, c_end, offs_c, offs_h, offs_w = _locate(
            pid_sp, tl.program_id(1), C_ID, G, n_h_tiles, n_w_tiles, 0, n_g_blocks, BLOCK_C, BLOCK_H, BLOCK_W)
        c = offs_c[:, None, None]
        h = offs_h[None, :, None]
        w = offs_w[None, None, :]
        c_ok = c < c_end
        c1_ok = offs_c < c_end
        cg1 = offs_c - c_start
        plane = n * stride_n + c * stride_c
        dy = tl.load(dy_ptr + plane + h * stride_h + w * stride_w, mask=c_ok & (h < H) & (w < W), other=0.)
        dy = dy.to(tl.float32)
        if ROUND != 0:
            dy = _round(dy, ROUND)
        tl.store(part_b_ptr + (pid_sp * 3 + branch - 1) * G + cg1, tl.sum(tl.sum(dy, axis=2), axis=1), mask=c1_ok)
        pid64 = pid_sp.to(tl.int64)
        if branch == 1:
            _wgrad_taps(x_ptr + plane, dy, part_hw_ptr + pid64 * (S * S) * G + cg1, G, c_ok, c1_ok, h, w, H, W,
                        stride_h, stride_w, S, S, ROUND)
        elif branch == 2:
            _wgrad_taps(x_ptr + plane, dy, part_w_ptr + pid64 * K * G + cg1, G, c_ok, c1_ok, h, w, H, W,
                        stride_h, stride_w, 1, K, ROUND)
        else:
            _wgrad_taps(x_ptr + plane, dy, part_h_ptr + pid64 * K * G + cg1, G, c_ok, c1_ok, h, w, H, W,
                        stride_h, stride_w, K, 1, ROUND)

    def _grid_args(x: Tensor, c_id: int, g: int, block_c: int, block_h: int, block_w: int):
        n, _, h, w = x.shape
        n_h_tiles, n_w_tiles = triton.cdiv(h, block_h), triton.cdiv(w, block_w)
        n_id_blocks, n_g_blocks = triton.cdiv(c_id, block_c), triton.cdiv(g, block_c)
        return n * n_h_tiles * n_w_tiles, n_h_tiles, n_w_tiles, n_id_blocks, n_g_blocks

    def _mixer(src: Tensor, out_dtype: torch.dtype, w_hw: Tensor, b_hw: Optional[Tensor], w_w: Tensor,
               b_w: Optional[Tensor], w_h: Tensor, b_h: Optional[Tensor], compute_dtype: Optional[torch.dtype],
               transposed: bool, config: Optional[Tuple[int, int, int, int]] = None) -> Tensor:
        """Launches the forward (or, transposed, the grad_input) kernel; ``src`` dense NCHW or channels-last."""
        c_id, g, s, k = _check_args(src, w_hw, w_w, w_h)
        src, channels_last = _dense(src)
        dst = torch.empty_like(src, dtype=out_dtype)  # same strides as src (dense)
        if src.numel() == 0:
            return dst
        _, _, h, w = src.shape
        block_c, block_h, block_w, num_warps = config or _tile_config(channels_last, h, w, g)
        n_sp, n_h_tiles, n_w_tiles, n_id_blocks, n_g_blocks = _grid_args(src, c_id, g, block_c, block_h, block_w)
        w_hw, w_w, w_h = w_hw.contiguous(), w_w.contiguous(), w_h.contiguous()
        if transposed:  # no bias; any pointer will do for the unused arguments
            b_hw = b_w = b_h = w_hw
        _launch(_inception_dwconv_kernel, (n_sp, n_id_blocks + 3 * n_g_blocks), src, dst, w_hw, b_hw.contiguous(),
                w_w, b_w.contiguous(), w_h, b_h.contiguous(), h, w, c_id, g, *src.stride(), n_h_tiles, n_w_tiles,
                n_id_blocks, n_g_blocks, S=s, K=k, TRANSPOSED=transposed, ROUND=_ROUND_MODES.get(compute_dtype, 0),
                BLOCK_C=block_c, BLOCK_H=block_h, BLOCK_W=block_w, num_warps=num_warps)
        return dst

    def _param_grads(x: Tensor, dy: Tensor, g: int, s: int, k: int, compute_dtype: Optional[torch.dtype],
                     config: Optional[Tuple[int, int, int, int]] = None) -> Tuple[Tensor, ...]:
        """fp32 (grad_w_hw, grad_w_w, grad_w_h, grad_b (3, g)); x and dy dense with the same strides."""
        c_id = x.shape[1] - 3 * g
        _, _, h, w = x.shape
        block_c, block_h, block_w, num_warps = config or _tile_config(dy.stride(1) == 1, h, w, g)
        n_sp, n_h_tiles, n_w_tiles, _, n_g_blocks = _grid_args(x, c_id, g, block_c, block_h, block_w)
        part_hw = x.new_empty((n_sp, s * s, g), dtype=torch.float32)
        part_w = x.new_empty((n_sp, k, g), dtype=torch.float32)
        part_h = x.new_empty((n_sp, k, g), dtype=torch.float32)
        part_b = x.new_empty((n_sp, 3, g), dtype=torch.float32)
        if n_sp > 0:
            _launch(_inception_dwconv_wgrad_kernel, (n_sp, 3 * n_g_blocks), x, dy, part_hw, part_w, part_h, part_b,
                    h, w, c_id, g, *x.stride(), n_h_tiles, n_w_tiles, n_g_blocks, S=s, K=k,
                    ROUND=_ROUND_MODES.get(compute_dtype, 0), BLOCK_C=block_c, BLOCK_H=block_h, BLOCK_W=block_w,
                    num_warps=num_warps)
        return part_hw.sum(0), part_w.sum(0), part_h.sum(0), part_b.sum(0)

    def _to_param(grad32: Tensor, param: Tensor, compute_dtype: Optional[torch.dtype]) -> Tensor:
        """An fp32 gradient in the parameter's shape and dtype, rounded through the autocast dtype first as the eager
        conv's gradient is. Always a new tensor (an op's outputs must not alias each other)."""
        if compute_dtype is not None:
            grad32 = grad32.to(compute_dtype)
        return grad32.reshape(param.shape).to(param.dtype, memory_format=torch.contiguous_format, copy=True)

    @torch.library.triton_op('mmincnext::inception_dwconv', mutates_args=())
    def _inception_dwconv_op(x: Tensor, w_hw: Tensor, b_hw: Tensor, w_w: Tensor, b_w: Tensor, w_h: Tensor,
                             b_h: Tensor, compute_dtype: Optional[torch.dtype] = None) -> Tensor:
        """The fused mixer. ``compute_dtype`` (set by the autocast rule) rounds the conv branches as autocast rounds
        the eager convs; the output is then ``promote_types(x.dtype, compute_dtype)``, as the eager ``cat``."""
        out_dtype = x.dtype if compute_dtype is None else torch.promote_types(x.dtype, compute_dtype)
        return _mixer(x, out_dtype, w_hw, b_hw, w_w, b_w, w_h, b_h, compute_dtype, transposed=False)

    @torch.library.triton_op('mmincnext::inception_dwconv_backward', mutates_args=())
    def _inception_dwconv_backward_op(
            grad: Tensor, x: Tensor, w_hw: Tensor, b_hw: Tensor, w_w: Tensor, b_w: Tensor, w_h: Tensor, b_h: Tensor,
            compute_dtype: Optional[torch.dtype], need_input: bool,
            need_params: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(grad_x, grad_w_hw, grad_b_hw, grad_w_w, grad_b_w, grad_w_h, grad_b_h); the parts not needed are empty."""
        _, g, s, k = _check_args(x, w_hw, w_w, w_h)
        x, channels_last = _dense(x)
        # grad_y in x's layout, so one set of strides serves x, grad_y and grad_x.
        grad = grad.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        grad_x = (_mixer(grad, x.dtype, w_hw, None, w_w, None, w_h, None, compute_dtype, transposed=True)
                  if need_input else x.new_empty(0))
        if not need_params:  # (outputs of an op must not alias each other: one empty tensor each)
            return (grad_x, ) + tuple(x.new_empty(0) for _ in range(6))
        gw_hw, gw_w, gw_h, gb = _param_grads(x, grad, g, s, k, compute_dtype)
        return (grad_x, _to_param(gw_hw.t(), w_hw, compute_dtype), _to_param(gb[0], b_hw, compute_dtype),
                _to_param(gw_w.t(), w_w, compute_dtype), _to_param(gb[1], b_w, compute_dtype),
                _to_param(gw_h.t(), w_h, compute_dtype), _to_param(gb[2], b_h, compute_dtype))

    def _setup_context(ctx, inputs, output):
        x, w_hw, b_hw, w_w, b_w, w_h, b_h, compute_dtype = inputs
        ctx.save_for_backward(x, w_hw, b_hw, w_w, b_w, w_h, b_h)
        ctx.compute_dtype = compute_dtype

    def _backward(ctx, grad):
        need_input, need_params = ctx.needs_input_grad[0], any(ctx.needs_input_grad[1:7])
        grads = torch.ops.mmincnext.inception_dwconv_backward(grad, *ctx.saved_tensors, ctx.compute_dtype,
                                                             need_input, need_params)
        return tuple(gr if need else None for gr, need in zip(grads, ctx.needs_input_grad[:7])) + (None, )

    _inception_dwconv_op.register_autograd(_backward, setup_context=_setup_context)

    # Autocast rule: the eager convs cast their floating inputs (but not fp64) to the autocast dtype; the identity
    # slice is not cast. Pass that dtype on and run the op with autocast off (the rule must not fire again).
    _autocast_lib = torch.library.Library('mmincnext', 'IMPL')

    def _autocast_rule(device_type: str):

        def rule(_keyset, x, w_hw, b_hw, w_w, b_w, w_h, b_h, compute_dtype=None):
            if compute_dtype is None and x.dtype in _DTYPES and x.device.type == device_type:
                compute_dtype = torch.get_autocast_dtype(device_type)
            with torch.autocast(device_type, enabled=False):
                return torch.ops.mmincnext.inception_dwconv(x, w_hw, b_hw, w_w, b_w, w_h, b_h, compute_dtype)

        return rule

    for _device_type, _key in (('cuda', 'AutocastCUDA'), ('cpu', 'AutocastCPU')):
        _autocast_lib.impl('inception_dwconv', _autocast_rule(_device_type), _key, with_keyset=True)
