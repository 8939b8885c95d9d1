"""Exact, memory-lean replacements for "nearest upsample x2, then 3x3x3 convolution" and GroupNorm.

Per axis, nearest upsampling by 2 followed by a 3-tap convolution (padding 1) equals two 2-tap
convolutions on the low-resolution input, one per output parity:

- even output 2i reads inputs (i-1, i) with taps (w0, w1 + w2);
- odd output 2i+1 reads inputs (i, i+1) with taps (w0 + w1, w2).

Two ways to run that without ever building the upsampled input (27/8 fewer multiply-adds):

- one stride-2 transposed convolution with a 4-tap kernel per axis (``transposed_kernel``):
  oneDNN writes every output voxel in place, no interleaving; used wherever the output has
  several channels;
- 8 phase kernels of size 2x2x2 run as one convolution with 8 x out_channels outputs over the
  input padded by 1, the phases then interleaved (``upsample_conv3d``), in chunks of D rows with
  their one-row halo, so temporaries stay within a memory budget; used for G^H's last,
  one-channel layer, where a transposed convolution is slow.

G^H's GroupNorm only needs per-channel sums and sums of squares: they come from matrix products
(oneDNN/BLAS speed, where a strided reduction crawls), chunk by chunk; its scale, shift and ReLU
are applied while each chunk is copied for the last convolution (no pass of their own).

Tensors here are kept channels-last (``torch.channels_last_3d``): convolutions run near GEMM
speed on CPUs, and interleaving phases then copies contiguous runs of channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHANNELS_LAST = torch.channels_last_3d
# (parity, tap, source tap): even outputs read (w0, w1 + w2), odd outputs (w0 + w1, w2)
PHASE_TAPS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
# tap k of a stride-2, padding-1 transposed convolution from the 3 taps: output 2i reads input i
# with tap 1 and i - 1 with tap 3; output 2i + 1 reads i with tap 2 and i + 1 with tap 0
TRANSPOSED_TAPS = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
# GroupNorm statistics of bf16/fp16 tensors off the CPU: float32 chunks of 32 MB (fewer, larger products are faster)
STATISTICS_ELEMENTS = 1 << 23


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """(Cout, Cin, 3, 3, 3) -> (8 * Cout, Cin, 2, 2, 2), phases ordered (pd, ph, pw) = 000, 001, ..., 111.

    One contraction with the per-axis tap map, written straight into channels-last order (a chain
    of unbind/stack/cat per axis spent seconds copying G^A's large kernels).
    """
    cout, cin = weight.shape[:2]
    taps = PHASE_TAPS.to(weight.device, weight.dtype)
    phases = torch.einsum("pax,qby,rcz,oixyz->pqroabci", taps, taps, taps, weight)
    return phases.reshape(8 * cout, 2, 2, 2, cin).permute(0, 4, 1, 2, 3)  # channels-last, no copy


def transposed_kernel(weight: torch.Tensor) -> torch.Tensor:
    """(Cout, Cin, 3, 3, 3) -> (Cin, Cout, 4, 4, 4), the weight of ``upsample_conv3d_transposed``."""
    taps = TRANSPOSED_TAPS.to(weight.device, weight.dtype)
    return torch.einsum("ax,by,cz,oixyz->ioabc", taps, taps, taps, weight)


def upsample_conv3d_transposed(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """conv3d(upsample2(x), w, bias, padding=1) from ``kernel = transposed_kernel(w)``, channels-last."""
    return F.conv_transpose3d(x.contiguous(memory_format=CHANNELS_LAST), kernel, bias, stride=2, padding=1)


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


def padded_rows(
    x: torch.Tensor, start: int, stop: int, normalize: tuple[torch.Tensor, torch.Tensor] | None = None
) -> torch.Tensor:
    """Rows start-1 .. stop of x (zeros outside the volume), zero-padded by 1 in H and W; channels-last.

    Only the border and the rows outside the volume are zeroed: the copy fills the rest.
    ``normalize`` = (scale, shift) of ``group_norm_affine``: the copy is relu(x * scale + shift),
    so a GroupNorm's second pass costs no pass of its own.
    """
    n, c, depth, height, width = x.shape
    chunk = zero_faces_(channels_last_empty((n, c, stop - start + 2, height + 2, width + 2), x), depth=False)
    first, last = max(0, start - 1), min(depth, stop + 1)
    chunk[:, :, : first - start + 1], chunk[:, :, last - start + 1 :] = 0, 0
    inner = chunk[:, :, first - start + 1 : last - start + 1, 1:-1, 1:-1]
    if normalize is None:
        inner.copy_(x[:, :, first:last])
    else:
        scale, shift = normalize
        torch.addcmul(shift, x[:, :, first:last], scale, out=inner).relu_()
    return chunk


def upsample_conv3d(
    x: torch.Tensor,
    phases: torch.Tensor,
    bias: torch.Tensor | None,
    budget_bytes: int = 256 << 20,
    rows: int | None = None,
    normalize: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """conv3d(upsample2(x), w, bias, padding=1) from ``phases = phase_kernels(w)``.

    x: (N, Cin, D, H, W) -> (N, Cout, 2D, 2H, 2W) channels-last, computed in chunks of D rows.
    ``normalize``: (scale, shift) of a GroupNorm + ReLU applied to x on the way (see ``padded_rows``).
    """
    n, cin, depth, height, width = x.shape
    cout = phases.shape[0] // 8
    out = channels_last_empty((n, cout, 2 * depth, 2 * height, 2 * width), x)
    # out as (N, i, pd, j, ph, k, pw, C): output voxel (2i+pd, 2j+ph, 2k+pw)
    grid = out.permute(0, 2, 3, 4, 1).unflatten(3, (width, 2)).unflatten(2, (height, 2)).unflatten(1, (depth, 2))
    stacked_bias = None if bias is None else bias.repeat(8)
    row_bytes = (8 * cout + 2 * cin) * n * (height + 2) * (width + 2) * x.element_size()
    rows = rows or rows_for_budget(row_bytes, budget_bytes, depth)
    for start in range(0, depth, rows):
        stop = min(depth, start + rows)
        result = F.conv3d(padded_rows(x, start, stop, normalize), phases, stacked_bias)
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


def group_norm_affine(
    x: torch.Tensor, groups: int, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), each (N, C, 1, 1, 1) float32, with group_norm(x) = x * scale + shift; x channels-last.

    Per channel, sums and sums of squares come from matrix products over chunks of D rows
    (``ones @ X`` and the diagonal of ``X^T X`` for the chunk as a voxels x channels matrix),
    in float32 (bf16/fp16 chunks are widened first: their own products would round), and are
    accumulated in float64 (MPS has no float64: float32 there). Groups then sum their channels.
    bf16/fp16 on the CPU: torch's own GroupNorm kernel gives the float32 mean and 1/std faster
    (its normalised output, in x's dtype, is dropped).
    """
    n, channels, depth, height, width = x.shape
    per_group = channels // groups
    wide = torch.float32 if x.device.type == "mps" else torch.float64
    if x.dtype != torch.float32 and x.device.type == "cpu":
        unit = torch.ones(channels), torch.zeros(channels)  # float32 affine: float32 statistics
        _, mean, inv_std = torch.native_group_norm(x, *unit, n, channels, depth * height * width, groups, eps)
        return _scale_shift(mean.to(wide), inv_std.to(wide), weight, bias, per_group)
    plane = height * width * channels
    rows = depth if x.dtype == torch.float32 else max(1, STATISTICS_ELEMENTS // plane)
    last = x.permute(0, 2, 3, 4, 1)  # (N, D, H, W, C) view, contiguous when x is channels-last
    sums = torch.zeros(n, channels, dtype=wide, device=x.device)
    squares = torch.zeros_like(sums)
    for start in range(0, depth, rows):
        chunk = last[:, start : start + rows].reshape(n, -1, channels).float()
        ones = torch.ones(chunk.shape[1], dtype=chunk.dtype, device=x.device)
        for sample in range(n):
            matrix = chunk[sample]
            sums[sample] += (matrix.T @ ones).to(wide)
            squares[sample] += torch.linalg.diagonal(matrix.T @ matrix).to(wide)
    count = depth * height * width * per_group
    mean = sums.view(n, groups, per_group).sum(2) / count
    mean_square = squares.view(n, groups, per_group).sum(2) / count
    inv_std = torch.rsqrt((mean_square - mean.square()).clamp_min(0.0) + eps)
    return _scale_shift(mean, inv_std, weight, bias, per_group)


def _scale_shift(mean: torch.Tensor, inv_std: torch.Tensor, weight, bias, per_group: int):
    """Per-group (N, G) statistics and per-channel affine -> per-channel (scale, shift), (N, C, 1, 1, 1) float32."""
    wide, (n, channels) = mean.dtype, (mean.shape[0], mean.shape[1] * per_group)
    # per (sample, channel): y = x * scale + shift
    scale = inv_std.repeat_interleave(per_group, dim=1) * weight.detach().to(wide)
    shift = bias.detach().to(wide) - mean.repeat_interleave(per_group, dim=1) * scale
    return tuple(t.float().view(n, channels, 1, 1, 1) for t in (scale, shift))
