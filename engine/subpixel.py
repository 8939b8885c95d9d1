"""Exact, memory-lean replacements for "nearest upsample x2, then 3x3x3 convolution" and GroupNorm.

Per axis, nearest upsampling by 2 followed by a 3-tap convolution (padding 1) equals two 2-tap
convolutions on the low-resolution input, one per output parity:

- even output 2i reads inputs (i-1, i) with taps (w0, w1 + w2);
- odd output 2i+1 reads inputs (i, i+1) with taps (w0 + w1, w2).

In 3-D that gives 8 phase kernels of size 2x2x2. Running them as one convolution with
8 x out_channels outputs over the input padded by 1, and interleaving the phases, produces the
upsampled-and-convolved tensor without ever building the upsampled input: 27/8 fewer
multiply-adds, 8x smaller temporaries. Work goes in chunks of D rows (each with its one-row
halo), so temporaries stay within a memory budget. GroupNorm only needs per-group sums, so it
too runs chunk by chunk, in place.

Tensors here are kept channels-last (``torch.channels_last_3d``): convolutions run near GEMM
speed on CPUs, and interleaving phases then copies contiguous runs of channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHANNELS_LAST = torch.channels_last_3d
# (parity, tap, source tap): even outputs read (w0, w1 + w2), odd outputs (w0 + w1, w2)
PHASE_TAPS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """(Cout, Cin, 3, 3, 3) -> (8 * Cout, Cin, 2, 2, 2), phases ordered (pd, ph, pw) = 000, 001, ..., 111.

    One contraction with the per-axis tap map, written straight into channels-last order (a chain
    of unbind/stack/cat per axis spent seconds copying G^A's large kernels).
    """
    cout, cin = weight.shape[:2]
    taps = PHASE_TAPS.to(weight.device, weight.dtype)
    phases = torch.einsum("pax,qby,rcz,oixyz->pqroabci", taps, taps, taps, weight)
    return phases.reshape(8 * cout, 2, 2, 2, cin).permute(0, 4, 1, 2, 3)  # channels-last, no copy


def channels_last_empty(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """An uninitialised channels-last tensor (allocated in that layout: no copy)."""
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=CHANNELS_LAST)


def rows_for_budget(bytes_per_row: int, budget_bytes: int, total_rows: int) -> int:
    """How many D rows fit a chunk whose temporaries may use ``budget_bytes``."""
    return max(1, min(total_rows, budget_bytes // max(1, bytes_per_row)))


def zero_faces_(x: torch.Tensor, depth: bool = True) -> torch.Tensor:
    """Zero the one-voxel border of (N, C, D, H, W) in place (the D faces only if ``depth``), not the interior."""
    if depth:
        x[:, :, 0], x[:, :, -1] = 0, 0
    x[:, :, :, 0], x[:, :, :, -1], x[:, :, :, :, 0], x[:, :, :, :, -1] = 0, 0, 0, 0
    return x


def padded_rows(x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Rows start-1 .. stop of x (zeros outside the volume), zero-padded by 1 in H and W; channels-last.

    Only the border and the rows outside the volume are zeroed: the copy fills the rest.
    """
    n, c, depth, height, width = x.shape
    chunk = zero_faces_(channels_last_empty((n, c, stop - start + 2, height + 2, width + 2), x), depth=False)
    first, last = max(0, start - 1), min(depth, stop + 1)
    chunk[:, :, : first - start + 1], chunk[:, :, last - start + 1 :] = 0, 0
    chunk[:, :, first - start + 1 : last - start + 1, 1:-1, 1:-1] = x[:, :, first:last]
    return chunk


def upsample_conv3d(
    x: torch.Tensor,
    phases: torch.Tensor,
    bias: torch.Tensor | None,
    budget_bytes: int = 256 << 20,
    rows: int | None = None,
    input_bordered: bool = False,
    output_bordered: bool = False,
) -> torch.Tensor:
    """conv3d(upsample2(x), w, bias, padding=1) from ``phases = phase_kernels(w)``.

    x: (N, Cin, D, H, W) -> (N, Cout, 2D, 2H, 2W) channels-last, computed in chunks of D rows.
    ``input_bordered``: x already carries a one-voxel zero border (read in place, no copies).
    ``output_bordered``: give the result such a border, ready for the next convolution.
    """
    b_in = 1 if input_bordered else 0
    n, cin = x.shape[:2]
    depth, height, width = (size - 2 * b_in for size in x.shape[2:])
    cout = phases.shape[0] // 8
    b = 1 if output_bordered else 0
    shape = (n, cout, 2 * depth + 2 * b, 2 * height + 2 * b, 2 * width + 2 * b)
    out = channels_last_empty(shape, x)
    if output_bordered:
        zero_faces_(out)  # the interior is written below
    interior = out[:, :, b : b + 2 * depth, b : b + 2 * height, b : b + 2 * width]
    # the interior as (N, i, pd, j, ph, k, pw, C): output voxel (2i+pd, 2j+ph, 2k+pw)
    grid = interior.permute(0, 2, 3, 4, 1).unflatten(3, (width, 2)).unflatten(2, (height, 2)).unflatten(1, (depth, 2))
    stacked_bias = None if bias is None else bias.repeat(8)
    row_bytes = (8 * cout + 2 * cin) * n * (height + 2) * (width + 2) * x.element_size()
    rows = rows or rows_for_budget(row_bytes, budget_bytes, depth)
    for start in range(0, depth, rows):
        stop = min(depth, start + rows)
        source = x[:, :, start : stop + 2] if input_bordered else padded_rows(x, start, stop)
        result = F.conv3d(source, phases, stacked_bias)
        # (N, R+1, H+1, W+1, 8, C): phase p of output row i sits at conv row i + pd
        result = result.permute(0, 2, 3, 4, 1).unflatten(4, (8, cout))
        for index in range(8):
            pd, ph, pw = index >> 2, (index >> 1) & 1, index & 1
            grid[:, start:stop, pd, :, ph, :, pw] = result[
                :, pd : pd + stop - start, ph : ph + height, pw : pw + width, index
            ]
        del result
    return out


def conv3d_chunked(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    budget_bytes: int = 256 << 20,
    rows: int | None = None,
) -> torch.Tensor:
    """conv3d(x, w, bias, padding=1) for a 3x3x3 kernel, in chunks of D rows, channels-last."""
    n, cin, depth, height, width = x.shape
    cout = weight.shape[0]
    out = channels_last_empty((n, cout, depth, height, width), x)
    weight = weight.contiguous(memory_format=CHANNELS_LAST)
    row_bytes = 2 * n * (cin + cout) * (height + 2) * (width + 2) * x.element_size()
    rows = rows or rows_for_budget(row_bytes, budget_bytes, depth)
    for start in range(0, depth, rows):
        stop = min(depth, start + rows)
        out[:, :, start:stop] = F.conv3d(padded_rows(x, start, stop), weight, bias)
    return out


def group_norm_relu_(
    x: torch.Tensor,
    groups: int,
    weight: torch.Tensor,
    bias: torch.Tensor,
    eps: float,
    rows: int = 16,
    bordered: bool = False,
) -> torch.Tensor:
    """relu(group_norm(x)) in place on a channels-last x, statistics accumulated over chunks of D rows.

    ``bordered``: x carries a one-voxel zero border that is not part of the volume; it is left at
    zero. Each chunk's mean and variance come from one stable float32 pass (also for bf16/fp16 x); their sums are
    accumulated in float64, so the result matches one-shot GroupNorm to float32 precision
    (MPS has no float64: float32 there).
    """
    b = 1 if bordered else 0
    n, channels = x.shape[:2]
    depth, height, width = (size - 2 * b for size in x.shape[2:])
    per_group = channels // groups
    wide = torch.float32 if x.device.type == "mps" else torch.float64
    last = x.permute(0, 2, 3, 4, 1)  # (N, D, H, W, C) view, contiguous when x is channels-last
    total = torch.zeros(n, groups, dtype=wide, device=x.device)
    squares = torch.zeros_like(total)
    for start in range(b, depth + b, rows):
        # whole planes, border included: its zeros add nothing to the sums
        chunk = last[:, start : min(start + rows, depth + b)].reshape(n, -1, groups, per_group)
        # stable one-pass float32 (bf16/fp16 chunks are widened: their own sums would round)
        var, mean = torch.var_mean(chunk.float(), dim=(1, 3), correction=0)
        size = chunk.shape[1] * per_group
        total += mean.to(wide) * size
        squares += (var.to(wide) + mean.to(wide).square()) * size
        del chunk
    count = depth * height * width * per_group
    mean = total / count
    inv_std = torch.rsqrt((squares / count - mean.square()).clamp_min(0.0) + eps)
    # per (sample, channel): y = x * scale + shift
    scale = inv_std.repeat_interleave(per_group, dim=1) * weight.to(wide)
    shift = bias.to(wide) - mean.repeat_interleave(per_group, dim=1) * scale
    scale, shift = (t.to(x.dtype).view(n, 1, 1, 1, channels) for t in (scale, shift))
    for start in range(b, depth + b, rows):
        chunk = last[:, start : min(start + rows, depth + b)]
        if chunk.is_contiguous():
            torch.addcmul(shift, chunk, scale, out=chunk)
        else:
            chunk.mul_(scale).add_(shift)
        chunk.relu_()
        if bordered:  # the H and W faces of these planes are border: back to zero
            chunk[:, :, 0], chunk[:, :, -1], chunk[:, :, :, 0], chunk[:, :, :, -1] = 0, 0, 0, 0
    return x
