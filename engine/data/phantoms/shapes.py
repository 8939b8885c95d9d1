"""The geometric toolkit the phantoms are painted with: grids, soft edges, smooth fields and tubes.

Shapes are approximate signed distances (mm, positive inside) turned into partial-volume coverage
and blended into an image; tubes (vessels, airways, bones) are unions of spheres along segments.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
from scipy.spatial import cKDTree

Array = np.ndarray
SidedSdf = Callable[[Array, Array, Array, Array], Array]  # x, y, z (mm) and side (+1 right, -1 left)


def voxel_axis(size: int, spacing: float) -> Array:
    """Voxel-centre coordinates (mm) along one axis of a volume centred on the origin."""
    return ((np.arange(size, dtype=np.float32) - (size - 1) / 2) * spacing).astype(np.float32)


def soft(sdf: Array, spacing: float) -> Array:
    """Partial-volume coverage in [0, 1] of a signed distance (mm, positive inside)."""
    out = np.multiply(sdf, np.float32(1.0 / spacing), dtype=np.float32)
    out += np.float32(0.5)
    return np.clip(out, 0.0, 1.0, out=out)


def blend(image: Array, coverage: Array, value: float | Array) -> None:
    """Blend ``value`` into ``image`` in place where ``coverage`` (0..1) says."""
    change = np.subtract(value, image, dtype=np.float32)
    change *= coverage
    image += change


def smoothstep(t: Array) -> Array:
    """0 below 0, 1 above 1, a smooth S in between."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def smooth_field(rng: np.random.Generator, size: int, nodes: int) -> Array:
    """A smooth random field of unit variance on a size^3 grid (tensor product of Gaussian bumps)."""
    t = np.linspace(-0.5, 0.5, size)
    centres = np.linspace(-0.6, 0.6, nodes)
    basis = np.exp(-0.5 * ((t[:, None] - centres[None]) / (centres[1] - centres[0])) ** 2)
    basis /= np.sqrt((basis**2).sum(axis=1, keepdims=True))
    coef = rng.standard_normal((nodes, nodes, nodes))
    field = np.tensordot(coef, basis, axes=(2, 1))  # (a, b, k)
    field = np.einsum("abk,jb->ajk", field, basis)
    # float64 sums rounded to float32: the same numbers whatever order the BLAS threads add in
    return np.tensordot(basis, field, axes=(1, 0)).astype(np.float32)  # (i, j, k)


def unit(v: Array) -> Array:
    """Vectors along the last axis scaled to length 1."""
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# tubes: vessels, airways, bones drawn as unions of spheres along segments
# ---------------------------------------------------------------------------------------------


def _polyline(points: list[tuple[float, float, float]], steps: int = 6) -> Array:
    """A smooth curve (Catmull-Rom) through the given points, as a dense point list."""
    p = np.asarray(points, dtype=np.float64)
    p = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    t = np.linspace(0, 1, steps, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(
            0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
        )
    out.append(p[-2][None])
    return np.vstack(out)


def curve_segments(points: list[tuple[float, float, float]], radius: float) -> tuple[Array, Array, Array]:
    """Segments (start, end, radius) of a smooth tube through ``points``."""
    curve = _polyline(points)
    return curve[:-1], curve[1:], np.full(len(curve) - 1, radius)


def join_segments(*parts: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
    """Concatenate segment lists (start, end, radius)."""
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


@lru_cache(maxsize=16)
def _stencil(reach: int) -> Array:
    """Integer offsets of the cube [-reach, reach]^3, (M, 3)."""
    r = np.arange(-reach, reach + 1, dtype=np.int32)
    return np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)


def stamp(size: int, spacing: float, segments: tuple[Array, Array, Array]) -> Array:
    """Partial-volume coverage (0..1) of tubes given as segments (start mm, end mm, radius mm)."""
    start, end, radius = (np.asarray(a, dtype=np.float64) for a in segments)
    out = np.zeros(size**3, dtype=np.float32)
    step = np.maximum(0.6 * spacing, 0.4 * radius)
    count = np.ceil(np.linalg.norm(end - start, axis=1) / step).astype(np.int64) + 1
    owner = np.repeat(np.arange(len(radius)), count)
    t = (np.arange(owner.size) - (np.cumsum(count) - count)[owner]) / np.maximum(count[owner] - 1, 1)
    centres = ((start[owner] + t[:, None] * (end - start)[owner]) / spacing + (size - 1) / 2).astype(np.float32)
    r = (radius[owner] / spacing).astype(np.float32)  # voxels
    peak = np.minimum(1.0, (2 * r) ** 2)  # thin tubes: a voxel-wide profile, fainter with less area
    r = np.maximum(r, 0.5)
    reach = np.ceil(r + 0.5).astype(np.int32)
    for value in np.unique(reach):
        pick = reach == value
        base = np.rint(centres[pick]).astype(np.int32)
        cells = base[:, None, :] + _stencil(int(value))[None]
        offset = cells - centres[pick][:, None, :]
        distance = np.sqrt(np.einsum("nmk,nmk->nm", offset, offset))
        cover = np.clip(r[pick][:, None] - distance + 0.5, 0.0, 1.0) * peak[pick][:, None]
        keep = (cover > 0) & ((cells >= 0) & (cells < size)).all(axis=2)
        flat = (cells[..., 0] * size + cells[..., 1]) * size + cells[..., 2]
        np.maximum.at(out, flat[keep], cover[keep])
    return out.reshape((size,) * 3)


def grow_tree(
    rng: np.random.Generator,
    roots: Array,
    directions: Array,
    sides: Array,
    length: float,
    radius: float,
    generations: int,
    inside: SidedSdf,
) -> tuple[Array, Array, Array]:
    """A branching tree grown from ``roots``, each branch splitting in two per generation.

    Children are chosen among random bifurcation planes so both stay inside the organ
    (``inside(x, y, z, side)``: signed distance, mm) and away from the branches grown so far.
    """
    start = np.asarray(roots, dtype=np.float64)
    end = start + unit(np.asarray(directions, dtype=np.float64)) * length
    sides = np.asarray(sides, dtype=np.float64)
    parts = [(start, end, np.full(len(start), radius))]
    for _ in range(generations):
        direction = unit(end - start)
        length, radius = length * 0.8, radius * 0.78
        children, keep = _bifurcate(rng, end, direction, sides, length, inside, np.vstack([p[1] for p in parts]))
        start, end, sides = np.repeat(end, 2, axis=0)[keep], children[keep], np.repeat(sides, 2)[keep]
        if len(end) == 0:
            break
        parts.append((start, end, np.full(len(end), radius)))
    return join_segments(*parts)


def _bifurcate(
    rng: np.random.Generator,
    start: Array,
    direction: Array,
    sides: Array,
    length: float,
    inside: SidedSdf,
    grown: Array,
    tries: int = 6,
) -> tuple[Array, Array]:
    """Two children per branch end (interleaved), and which of them stay inside the organ."""
    n = len(start)
    normal = rng.standard_normal((n, tries, 3))
    normal -= (normal * direction[:, None]).sum(-1, keepdims=True) * direction[:, None]
    normal = unit(normal)
    angles = np.radians(rng.uniform(22, 42, (2, n, tries, 1)))
    dirs = np.stack(
        [np.cos(angles[0]) * direction[:, None] + np.sin(angles[0]) * normal,
         np.cos(angles[1]) * direction[:, None] - np.sin(angles[1]) * normal]
    )  # fmt: skip
    lengths = length * rng.uniform(0.75, 1.25, (2, n, tries, 1))
    ends = start[None, :, None] + dirs * lengths  # (2, n, tries, 3)
    probes = np.stack([ends, start[None, :, None] + dirs * lengths * 0.5])  # ends and midpoints
    depth = inside(*probes.transpose(4, 0, 1, 2, 3), sides[None, None, :, None]).min(axis=0)
    room = cKDTree(grown).query(ends.reshape(-1, 3))[0].reshape(depth.shape)
    score = np.minimum(depth, 4.0).min(axis=0) + 0.4 * np.minimum(room, 3 * length).min(axis=0)
    score += rng.uniform(0, 2.0, score.shape)
    best = np.argmax(score, axis=1)
    pick = np.arange(n)
    chosen = ends[:, pick, best].transpose(1, 0, 2).reshape(-1, 3)
    keep = depth[:, pick, best].T.reshape(-1) > 0.5
    # A child that would leave the organ gets a second chance at half its length.
    origin = np.repeat(start, 2, axis=0)
    short = (origin + chosen) / 2
    retry = ~keep & (inside(*short.T, np.repeat(sides, 2)) > 0.5)
    chosen[retry] = short[retry]
    return chosen, keep | retry
