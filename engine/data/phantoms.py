"""Built-in training data: procedural chest CT and MNI152-derived brain T1 phantoms.

Every phantom is drawn from ``numpy.random.default_rng(seed)``, so a seed always gives the same
volume. Anatomy is defined in millimetres in RAS world coordinates (x -> subject's right,
y -> anterior, z -> superior), so one seed renders the same subject at every size.

Chest CT: a body outline with skin, fat and muscle, a rib cage, spine and sternum, two lungs
with branching vessel and airway trees, the heart, aorta and great vessels, upper abdominal
organs under the diaphragm, and the scanner table, in Hounsfield units with correlated noise.
Shapes are written as approximate signed distances (mm, positive inside) and painted back to
front with soft, partial-volume edges.

Brain MRI: the MNI152 T1 template shipped inside nilearn, given a random tissue contrast (from
the package's grey/white-matter priors), a random smooth non-rigid deformation, a bias field and
Rician noise.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import cKDTree
from torch.utils.data import Dataset
from tqdm import tqdm

from ..card import CT_WINDOW
from ..enums import PhantomKind
from ..errors import ConfigError
from ..nifti import save_nifti
from ..volume import IntensityMapping, Volume, generated_affine
from .preprocess import PreprocessSettings

PHANTOM_KINDS = tuple(kind.value for kind in PhantomKind)
FOV_MM = {"chest-ct": 380.0, "brain-mri": 220.0}
MODALITY = {"chest-ct": "ct", "brain-mri": "mri"}
MRI_WINDOW = IntensityMapping(0.0, 1000.0, "")  # T1 arbitrary units; white matter sits near 600-760
# Foreground percentiles 0.5 and 99.5 of brain phantoms (a.u.; mean over seeds 0-15 at 128^3, std
# 11 and 98): a real T1 scan in other units is rescaled to match them before the window applies.
MRI_FOREGROUND_REFERENCE = (81.9, 756.8)
MNI_BRAIN_CENTRE_MM = (0.0, -18.0, 8.0)  # MNI world point placed at the volume centre
MIN_SIZE, MAX_SIZE = 32, 256
GENERATOR = "engine.data.phantoms"

Array = np.ndarray
SidedSdf = Callable[[Array, Array, Array, Array], Array]  # x, y, z (mm) and side (+1 right, -1 left)


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------


def phantom_intensity(kind: str) -> IntensityMapping:
    """The intensity mapping of a phantom kind (network [-1, 1] <-> physical units)."""
    return CT_WINDOW if _check_kind(kind) == "chest-ct" else MRI_WINDOW


def phantom_preprocessing(kind: str, size: int) -> PreprocessSettings:
    """What phantom training data amounts to as preprocessing: the kind's window, its fixed spacing."""
    mapping = phantom_intensity(kind)
    return PreprocessSettings(
        MODALITY[kind],
        window=(mapping.low, mapping.high),
        size=size,
        resample="spacing",
        spacing_mm=(phantom_spacing(kind, size),) * 3,
        reference=MRI_FOREGROUND_REFERENCE if kind == "brain-mri" else None,
    )


def phantom_spacing(kind: str, size: int) -> float:
    """Isotropic voxel size in mm: a fixed field of view over ``size`` voxels."""
    return FOV_MM[_check_kind(kind)] / _check_size(size)


def make_phantom(kind: str, size: int, seed: int) -> Volume:
    """One synthetic size^3 volume in physical units (HU for CT, a.u. for MRI), RAS, centred."""
    kind, size, seed = _check_kind(kind), _check_size(size), _check_seed(seed)
    spacing = phantom_spacing(kind, size)
    rng = np.random.default_rng(seed)
    array = _chest_ct(rng, size, spacing) if kind == "chest-ct" else _brain_mri(rng, size, spacing)
    provenance = {"phantom": kind, "seed": seed, "synthetic": True, "generator": GENERATOR}
    return Volume(array, generated_affine(size, (spacing,) * 3), phantom_intensity(kind), provenance)


class PhantomDataset(Dataset):
    """Fresh phantoms as network tensors: item i is the phantom of seed base_seed + i."""

    def __init__(self, kind: str, size: int, length: int, base_seed: int = 0) -> None:
        self.kind, self.size = _check_kind(kind), _check_size(size)
        self.length, self.base_seed = _check_count(length), _check_seed(base_seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -self.length <= index < self.length:
            raise IndexError(f"phantom {index} out of range ({self.length})")
        volume = make_phantom(self.kind, self.size, self.base_seed + index % self.length)
        return volume.to_network()[0].clamp_(-1.0, 1.0), -1

    def summary(self) -> dict:
        """The training data description for a model card."""
        spacing = [phantom_spacing(self.kind, self.size)] * 3
        return {
            "kind": self.kind,
            "modality": MODALITY[self.kind],
            "count": self.length,
            "size": self.size,
            "base_seed": self.base_seed,
            "intensity": phantom_intensity(self.kind).to_dict(),
            "spacing": spacing,
            "spacing_mm": spacing,
            "orientation": "RAS",
            "synthetic": True,
            "generator": GENERATOR,
            "preprocessing": phantom_preprocessing(self.kind, self.size).to_dict(),
        }


def write_phantoms(
    kind: str, count: int, size: int, out_dir: str | Path, seed: int = 0, progress: bool = True
) -> list[Path]:
    """Write ``count`` phantoms (seeds seed..seed+count-1) as ``<kind>-<seed:05d>.nii.gz`` files."""
    kind, size, count, seed = _check_kind(kind), _check_size(size), _check_count(count), _check_seed(seed)
    out_dir = _check_out(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    seeds = range(seed, seed + count)
    for s in tqdm(seeds, desc=f"{kind} {size}^3", unit="vol", file=sys.stderr, disable=not progress):
        path = out_dir / f"{kind}-{s:05d}.nii.gz"
        paths.append(save_nifti(make_phantom(kind, size, s), path, f"PHANTOM {kind} seed {s}"))
    return paths


def register(commands) -> None:
    """Add the ``phantoms`` command to an argparse subparsers object."""
    parser = commands.add_parser(
        "phantoms",
        help="write synthetic training volumes (procedural chest CT or MNI152-based brain T1)",
        description="Write built-in phantoms as NIfTI files (RAS, physical units) with JSON sidecars.",
    )
    parser.add_argument("--kind", choices=PHANTOM_KINDS, required=True, help="which phantom")
    parser.add_argument("--count", type=int, default=8, help="how many volumes (default 8)")
    parser.add_argument("--size", type=int, default=128, help="edge length in voxels, a power of two 32..256")
    parser.add_argument("--out", help="output folder (created if missing); with --cache: links to the cached arrays")
    parser.add_argument("--seed", type=int, default=0, help="first seed; volume n uses seed + n (default 0)")
    parser.add_argument(
        "--cache", metavar="DIR", help="make them into a phantom cache (as train --phantom-cache DIR) instead"
    )
    parser.add_argument("--workers", type=int, default=1, help="with --cache: processes making phantoms (default 1)")
    parser.set_defaults(run=run_phantoms)


def run_phantoms(args: argparse.Namespace) -> int:
    """The ``phantoms`` command."""
    if args.cache:
        from .phantom_cache import PhantomCache

        cache, seeds = (
            PhantomCache(args.cache, args.kind, args.size),
            range(args.seed, args.seed + _check_count(args.count)),
        )
        made = cache.fill(seeds, max(1, args.workers))
        print(f"phantom cache {cache.folder}: {made} made, {len(seeds) - made} already there")
        if args.out:
            print(f"linked into {cache.link(seeds, _check_out(args.out))} (a real set for engine evaluate)")
        return 0
    if not args.out:
        raise ConfigError("phantoms needs --out FOLDER (NIfTI files) or --cache DIR")
    paths = write_phantoms(args.kind, args.count, args.size, args.out, seed=args.seed)
    print(f"wrote {len(paths)} {args.kind} phantoms ({args.size}^3) to {Path(args.out)}")
    return 0


def _check_kind(kind: str) -> str:
    """``kind`` if it is a phantom kind, else a ConfigError."""
    if kind not in PHANTOM_KINDS:
        raise ConfigError(f"unknown phantom kind '{kind}'; choose one of {', '.join(PHANTOM_KINDS)}")
    return kind


def _check_size(size: int) -> int:
    """``size`` if it is a power of two in MIN_SIZE..MAX_SIZE, else a ConfigError."""
    if not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE or size & (size - 1):
        raise ConfigError(f"phantom size must be a power of two from {MIN_SIZE} to {MAX_SIZE}, got {size}")
    return int(size)


def _check_count(count: int) -> int:
    """``count`` if it is a positive integer, else a ConfigError."""
    if not isinstance(count, (int, np.integer)) or count < 1:
        raise ConfigError(f"phantom count must be at least 1, got {count}")
    return int(count)


def _check_seed(seed: int) -> int:
    """``seed`` if it is a non-negative integer (numpy seeds are), else a ConfigError."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"phantom seed must be a non-negative integer, got {seed}")
    return int(seed)


def _check_out(out_dir: str | Path) -> Path:
    """``out_dir`` as a Path, unless it names an existing file."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file; phantoms are written into a folder")
    return out_dir


# ---------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------


def _axis(size: int, spacing: float) -> Array:
    """Voxel-centre coordinates (mm) along one axis of a volume centred on the origin."""
    return ((np.arange(size, dtype=np.float32) - (size - 1) / 2) * spacing).astype(np.float32)


def _soft(sdf: Array, spacing: float) -> Array:
    """Partial-volume coverage in [0, 1] of a signed distance (mm, positive inside)."""
    out = np.multiply(sdf, np.float32(1.0 / spacing), dtype=np.float32)
    out += np.float32(0.5)
    return np.clip(out, 0.0, 1.0, out=out)


def _paint(image: Array, coverage: Array, value: float | Array) -> None:
    """Blend ``value`` into ``image`` in place where ``coverage`` (0..1) says."""
    change = np.subtract(value, image, dtype=np.float32)
    change *= coverage
    image += change


def _smoothstep(t: Array) -> Array:
    """0 below 0, 1 above 1, a smooth S in between."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _smooth_field(rng: np.random.Generator, size: int, nodes: int) -> Array:
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


def _unit(v: Array) -> Array:
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


def _curve_segments(points: list[tuple[float, float, float]], radius: float) -> tuple[Array, Array, Array]:
    """Segments (start, end, radius) of a smooth tube through ``points``."""
    curve = _polyline(points)
    return curve[:-1], curve[1:], np.full(len(curve) - 1, radius)


def _join(*parts: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
    """Concatenate segment lists (start, end, radius)."""
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


@lru_cache(maxsize=16)
def _stencil(reach: int) -> Array:
    """Integer offsets of the cube [-reach, reach]^3, (M, 3)."""
    r = np.arange(-reach, reach + 1, dtype=np.int32)
    return np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)


def _stamp(size: int, spacing: float, segments: tuple[Array, Array, Array]) -> Array:
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


def _grow_tree(
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
    end = start + _unit(np.asarray(directions, dtype=np.float64)) * length
    sides = np.asarray(sides, dtype=np.float64)
    parts = [(start, end, np.full(len(start), radius))]
    for _ in range(generations):
        direction = _unit(end - start)
        length, radius = length * 0.8, radius * 0.78
        children, keep = _bifurcate(rng, end, direction, sides, length, inside, np.vstack([p[1] for p in parts]))
        start, end, sides = np.repeat(end, 2, axis=0)[keep], children[keep], np.repeat(sides, 2)[keep]
        if len(end) == 0:
            break
        parts.append((start, end, np.full(len(end), radius)))
    return _join(*parts)


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
    normal = _unit(normal)
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


# ---------------------------------------------------------------------------------------------
# chest CT
# ---------------------------------------------------------------------------------------------

HU = {
    "air": -1000.0,
    "fat": -100.0,
    "mediastinum": -75.0,
    "muscle": 50.0,
    "skin": 30.0,
    "blood": 40.0,
    "heart": 42.0,
    "liver": 60.0,
    "spleen": 48.0,
    "fluid": 12.0,
    "cord": 25.0,
    "disc": 85.0,
    "cartilage": 130.0,
    "cortical": 1100.0,
    "posterior_bone": 650.0,
    "trabecular": 260.0,
    "table": 250.0,
    "foam": -850.0,
}


@dataclass(frozen=True)
class _Chest:
    """Random anatomy of one chest phantom, in mm (x: right, y: anterior, z: superior)."""

    cx: float  # body centre
    cy: float
    a: float  # body half-width (left-right) and half-depth (antero-posterior)
    b: float
    taper: float  # relative widening per 190 mm upwards
    power: float  # superellipse exponent of the outline (2: ellipse, larger: boxier)
    shoulder: float  # extra lateral wall (shoulder girdle muscles) at the level of the apices
    neck_z: float  # where the torso narrows into the neck
    fat: float  # subcutaneous fat thickness
    fat_wave: float
    fat_phase: float
    muscle: float  # chest wall muscle thickness
    back_muscle: float  # extra postero-lateral muscle (latissimus, scapular muscles)
    y_back: float  # where the back rests on the table
    table_curv: float
    canal_y: float  # spinal canal centre
    r_canal: float
    vb_r: float  # vertebral body radius
    vb_y: float  # vertebral body centre
    pitch: float  # vertebra + disc height
    phase: float
    dome_r: float  # right and left hemidiaphragm tops
    dome_l: float
    dome_k: float  # dome curvature (mm drop per mm^2)
    apex: float  # lung apex height
    apex_k: float
    med_x: float  # mediastinum centre line and half-width
    med_w: float
    carina: float
    arch: float  # top of the aortic arch
    heart: tuple[float, float, float]  # centre
    heart_axes: tuple[tuple[float, float, float], ...]  # rows: long axis (to the apex), two short axes
    heart_semi: tuple[float, float, float]
    lung_hu: float
    lung_grad: float  # extra density of the dependent (posterior) lung
    rib_drop: float  # how much lower a rib's front end is than its head
    rib_rr: float  # rib half-thickness (radial) and half-height
    rib_rh: float
    noise_hu: float

    @property
    def front(self) -> float:
        """Inner surface of the front chest wall (y, mm)."""
        return self.cy + self.b - (2 + self.fat + 1.4 * self.muscle)

    @property
    def sternum_top(self) -> float:
        """Top of the manubrium (z, mm), level with the first ribs' front ends."""
        return self.apex - 8.0 - 0.55 * self.rib_drop

    @property
    def trachea(self) -> tuple[float, float]:
        """Trachea centre (x, y), in front of the oesophagus and the spine."""
        return self.med_x + 4.0, self.vb_y + self.vb_r + 30.0

    def table_y(self, x: Array) -> Array:
        """Top of the curved table under each x (mm)."""
        return self.y_back - 1.0 + self.table_curv * (x - self.cx) ** 2


def _draw_chest(rng: np.random.Generator) -> _Chest:
    """Random chest anatomy: sizes, shapes and positions that vary between subjects."""
    u = rng.uniform
    a, b, cy, fat = u(135, 170), u(98, 128), u(-5, 20), u(4, 30)
    fat_wave, fat_phase = u(0.0, 0.45), u(0, 2 * math.pi)
    back_fat = fat * (1 + fat_wave * math.cos(fat_phase - math.pi))  # as _wall has it behind the spine
    y_back = cy - 0.93 * b
    canal_y = y_back + 2 + back_fat + u(32, 44)
    r_canal, vb_r = u(7, 9), u(14, 18)
    vb_y = canal_y + r_canal + 4 + vb_r
    apex = u(100, 150)
    dome_r = apex - u(195, 245)
    dome_l = dome_r - u(8, 25)
    muscle = u(10, 16)
    heart_semi = (u(50, 62), u(38, 46), u(34, 42))
    long_axis = _unit(np.array([-1.0, u(0.5, 1.0), -u(0.3, 0.7)]))
    side = _unit(np.cross(long_axis, [0.0, 0.0, 1.0]))
    axes = tuple(tuple(float(v) for v in axis) for axis in (long_axis, side, np.cross(long_axis, side)))
    med_x = u(-6, 3)
    carina = apex - u(85, 110)
    front = cy + b - (2 + fat + 1.4 * muscle)
    return _Chest(
        cx=u(-8, 8),
        cy=cy,
        a=a,
        b=b,
        taper=u(-0.05, 0.04),
        power=u(2.0, 2.6),
        shoulder=u(35, 55),
        neck_z=apex + u(18, 45),
        fat=fat,
        fat_wave=fat_wave,
        fat_phase=fat_phase,
        muscle=muscle,
        back_muscle=u(6, 18),
        y_back=y_back,
        table_curv=u(3e-4, 8e-4),
        canal_y=canal_y,
        r_canal=r_canal,
        vb_r=vb_r,
        vb_y=vb_y,
        pitch=u(23, 27),
        phase=u(0, 27),
        dome_r=dome_r,
        dome_l=dome_l,
        dome_k=u(0.005, 0.008),
        apex=apex,
        apex_k=u(0.003, 0.006),
        med_x=med_x,
        med_w=u(9, 16),
        carina=carina,
        arch=carina + u(15, 30),
        heart=(med_x - u(12, 30), front - u(34, 46), dome_l + u(26, 38)),
        heart_axes=axes,
        heart_semi=heart_semi,
        lung_hu=u(-875, -800),
        lung_grad=u(30, 110),
        rib_drop=u(90, 130),
        rib_rr=u(4.0, 5.5),
        rib_rh=u(4.5, 6.0),
        noise_hu=u(8, 28),
    )


def _body_depth(c: _Chest, x: Array, y: Array, z: Array) -> Array:
    """Depth (mm) under a rounded torso outline narrowing into the neck (before the table flattens the back)."""
    s = _smoothstep((z - c.neck_z) / 40.0)
    half_w = c.a * (1 + c.taper * z / 190.0) * (1 - s) + 62.0 * s
    half_d = c.b * (1 - s) + 58.0 * s
    centre_y = c.cy * (1 - s) + (c.canal_y + 40.0) * s
    dx, dy = x - c.cx, y - centre_y
    rho = np.sqrt(dx * dx + dy * dy)
    shape = np.maximum(np.abs(dx / half_w) ** c.power + np.abs(dy / half_d) ** c.power, 1e-12)
    return rho / shape ** (1 / c.power) - rho


def _wall(c: _Chest, x: Array, y: Array, z: Array) -> tuple[Array, Array]:
    """Skin+fat and skin+fat+muscle thickness (mm): thick over the spine and round the shoulders."""
    theta = np.arctan2(y - c.cy, x - c.cx)
    fat = 2.0 + c.fat * (1 + c.fat_wave * np.cos(2 * theta + c.fat_phase))
    back = np.abs(np.angle(np.exp(1j * (theta + np.pi / 2))))  # 0 at the back, pi at the front
    muscle = c.muscle * (1 + 0.3 * np.sin(theta) ** 2) + c.back_muscle * np.exp(-(((back - 0.3 * np.pi) / 0.5) ** 2))
    gate = 1 / (1 + np.exp((y - c.vb_y) / 6.0))  # paraspinal muscles only behind the vertebral bodies
    paraspinal = (c.canal_y - c.y_back) * np.exp(-(((x - c.cx) / (c.vb_r + 22)) ** 4)) * gate
    girdle = c.shoulder * _smoothstep((z - c.apex + 170) / 170) * np.abs(np.cos(theta)) ** 0.7
    return fat + 0.4 * girdle, np.maximum(fat + muscle, paraspinal) + girdle  # axillary fat, shoulder muscles


def _domes(c: _Chest, x: Array, y: Array) -> tuple[Array, Array]:
    """Heights of the diaphragm and of the lung apices over (x, y), each side its own dome."""
    right = x > c.med_x
    side_x = c.cx + np.where(right, 1, -1) * 0.45 * (c.a - 30)
    r2 = (x - side_x) ** 2 + (y - (c.cy + 10)) ** 2
    dome = np.where(right, c.dome_r, c.dome_l) - c.dome_k * r2
    top = c.apex - c.apex_k * ((x - side_x) ** 2 + (y - (c.canal_y + 45)) ** 2)
    return dome.astype(np.float32), top.astype(np.float32)


def _heart_sdf(c: _Chest, x: Array, y: Array, z: Array, grow: float = 0.0) -> Array:
    """Signed distance (approx., mm) of the heart ellipsoid, grown by ``grow`` mm."""
    q = 0.0
    for axis, semi in zip(c.heart_axes, c.heart_semi):
        q = (
            q
            + (((x - c.heart[0]) * axis[0] + (y - c.heart[1]) * axis[1] + (z - c.heart[2]) * axis[2]) / (semi + grow))
            ** 2
        )
    return (1 - np.sqrt(q)) * (min(c.heart_semi) + grow)


def _lung_sdf(c: _Chest, x: Array, y: Array, z: Array, cavity: Array | None = None) -> Array:
    """Signed distance (approx., mm) of both lungs."""
    if cavity is None:
        cavity = _body_depth(c, x, y, z) - _wall(c, x, y, z)[1]
    dome, top = _domes(c, x, y)
    width = c.med_w * (1 + 0.9 * np.exp(-(((y - c.trachea[1] - 10) / 30) ** 2)))
    spine = np.sqrt(((x - c.cx) / 1.15) ** 2 + (y - c.vb_y) ** 2) - c.vb_r - 4
    sdf = np.minimum(np.minimum(cavity - 1.5, z - dome), top - z)
    sdf = np.minimum(sdf, np.minimum(np.abs(x - c.med_x) - width, spine))
    return np.minimum(sdf, -_heart_sdf(c, x, y, z, grow=4.0))


def _sided_lung(c: _Chest) -> SidedSdf:
    """Signed distance of the right (side +1) or left (side -1) lung at points."""
    return lambda x, y, z, side: np.minimum(_lung_sdf(c, x, y, z), side * (x - c.med_x) - c.med_w)


@dataclass
class _Scene:
    """The image being painted, its grid (mm, broadcastable) and fields shared by several organs."""

    image: Array
    spacing: float
    x: Array
    y: Array
    z: Array
    skin: Array  # depth under the skin (mm), the back flattened on the table
    depth: Array  # depth under the rounded outline that the rib cage follows
    fat: Array  # skin + fat thickness
    wall: Array  # skin + fat + muscle thickness: the cavity starts here
    around: Array  # angle round the torso: 0 at the back, pi at the front
    texture: Array  # smooth unit-variance field for tissue inhomogeneity

    @property
    def size(self) -> int:
        return self.image.shape[0]

    def paint(self, sdf: Array, value: float | Array) -> None:
        """Paint a shape given by its signed distance (mm) with partial-volume edges."""
        _paint(self.image, _soft(sdf, self.spacing), value)

    def paint_tubes(self, segments: tuple[Array, Array, Array], value: float) -> None:
        """Paint tubes given as segments (start mm, end mm, radius mm)."""
        _paint(self.image, _stamp(self.size, self.spacing, segments), value)

    def crop(self, low: tuple[float, float, float], high: tuple[float, float, float]) -> _Scene:
        """The part of the scene between two corners (mm); painting it paints the whole."""
        cut = []
        for axis, lo, hi in zip((self.x.ravel(), self.y.ravel(), self.z.ravel()), low, high):
            first, last = np.searchsorted(axis, [lo, hi])
            cut.append(slice(int(first), max(int(last), int(first) + 1)))

        def part(a: Array) -> Array:
            return a[tuple(c if n > 1 else slice(None) for c, n in zip(cut, a.shape))]

        return _Scene(self.image[tuple(cut)], self.spacing, *(part(a) for a in self._fields))

    def select(self, mask: Array) -> tuple[_Scene, Array]:
        """The voxels where ``mask`` holds, as a flat scene, and their flat indices (see ``put``)."""
        index = np.flatnonzero(mask)
        ijk = np.unravel_index(index, self.image.shape)

        def part(a: Array) -> Array:
            return a[tuple(i if n > 1 else 0 for i, n in zip(ijk, a.shape))]

        return _Scene(self.image.reshape(-1)[index], self.spacing, *(part(a) for a in self._fields)), index

    def put(self, part: _Scene, index: Array) -> None:
        """Write back a scene taken with ``select``."""
        self.image.reshape(-1)[index] = part.image

    @property
    def _fields(self) -> tuple[Array, ...]:
        return self.x, self.y, self.z, self.skin, self.depth, self.fat, self.wall, self.around, self.texture


def _chest_ct(rng: np.random.Generator, size: int, spacing: float) -> Array:
    """One chest CT in HU, (i, j, k) = (right, anterior, superior)."""
    c = _draw_chest(rng)
    ax = _axis(size, spacing)
    x, y, z = ax[:, None, None], ax[None, :, None], ax[None, None, :]
    fat, wall = _wall(c, x, y, z)
    theta = np.arctan2(y - c.cy, x - c.cx)
    around = np.abs(np.angle(np.exp(1j * (theta + np.pi / 2)))).astype(np.float32)
    image = np.full((size,) * 3, HU["air"], dtype=np.float32)
    texture = _smooth_field(rng, size, 10)
    depth = _body_depth(c, x, y, z)
    skin = np.minimum(depth, y - c.table_y(x) - 1.0)
    s = _Scene(image, spacing, x, y, z, skin, depth, fat, wall, around, texture)
    _table(s, c)
    s.paint(s.skin, HU["skin"])
    s.paint(s.skin - 2.0, HU["fat"] + 8 * s.texture)
    s.paint(np.minimum(s.skin - s.fat, s.depth - s.fat), HU["muscle"] + 6 * s.texture)
    cavity = s.depth - s.wall
    dome, _ = _domes(c, x, y)
    _cavity_fill(s, c, cavity, dome)
    _lungs(s, rng, c, _lung_sdf(c, x, y, z, cavity))
    _abdomen(s, rng, c)
    _heart(s, c)
    _mediastinum(s, rng, c)
    _spine(s, c)
    _ribs(s, c)
    _shoulder_bones(s, c)
    return _scanner(s, rng, c)


def _table(s: _Scene, c: _Chest) -> None:
    """The scanner couch: a curved carbon shell around a foam core, under the back."""
    s = s.crop((-500, -500, -500), (500, c.y_back + 40, 500))
    top = c.table_y(s.x)
    width = 215.0 - np.abs(s.x - c.cx)
    s.paint(np.minimum(width, np.minimum(top - s.y, s.y - top + 50.0)), HU["table"])
    s.paint(np.minimum(width - 7, np.minimum(top - 7.0 - s.y, s.y - top + 44.0)), HU["foam"])


def _cavity_fill(s: _Scene, c: _Chest, cavity: Array, dome: Array) -> None:
    """Inside the ribs: mediastinal fat, soft tissue of the neck, abdominal fat and bowel."""
    neck = _smoothstep((s.z - c.apex) / 30.0)
    belly = _smoothstep((dome - 5.0 - s.z) / 15.0)
    s.paint(cavity, HU["mediastinum"] * (1 - neck) + 35.0 * neck + 30.0 * belly + 10 * s.texture)


def _lungs(s: _Scene, rng: np.random.Generator, c: _Chest, lung: Array) -> None:
    """Parenchyma (denser where dependent) with pulmonary vessels and airways."""
    inside = _soft(lung, s.spacing)
    gravity = c.lung_grad * np.exp(-(s.y - c.canal_y) / 40.0)
    _paint(s.image, inside, c.lung_hu + gravity + 18 * s.texture)
    vessels = _stamp(s.size, s.spacing, _vessel_trees(rng, c))
    vessels *= np.clip(inside * 4, 0, 1)
    _paint(s.image, vessels, HU["blood"])
    start, end, radius = _airway_trees(rng, c)
    s.paint_tubes(_join((start, end, radius * 1.25 + 0.6), _central_airways(c, 1.25, 0.6)), HU["muscle"])
    s.paint_tubes(_join((start, end, radius), _central_airways(c)), HU["air"])


def _hila(c: _Chest, side: float) -> tuple[Array, Array]:
    """Where a lung's artery and vein trees start (mm)."""
    _, ty = c.trachea
    artery = np.array([c.med_x + side * (c.med_w + 16), ty + 2, c.carina - 18])
    vein = np.array([c.med_x + side * (c.med_w + 12), ty + 8, c.carina - 50])
    return artery, vein


def _vessel_trees(rng: np.random.Generator, c: _Chest) -> tuple[Array, Array, Array]:
    """Pulmonary artery and vein trees of both lungs, from the hila out to the pleura."""
    roots, directions, sides, trunks = [], [], [], []
    for side in (1.0, -1.0):
        artery, vein = _hila(c, side)
        lobes = np.array(
            [[0.4, 0.3, 1.0], [0.6, -0.4, 0.8], [1, 0.7, -0.2], [1, -0.5, 0.1], [0.7, -0.5, -1], [0.6, 0.4, -1]]
        )
        lobes[:, 0] *= side  # segmental directions: apical, posterior, anterior, lateral, basal
        roots += [artery] * 6 + [vein] * 4
        directions += [lobes, lobes[[0, 2, 4, 5]] * [1, 1, 0.6]]
        sides += [side] * 10
        trunks += [(artery[None] - [side * 20, 0, 0], artery[None], np.array([8.0]))]
        trunks += [(vein[None] - [side * 16, 0, 0], vein[None], np.array([6.0]))]
    tree = _grow_tree(rng, np.array(roots), np.vstack(directions), np.array(sides), 28.0, 5.5, 7, _sided_lung(c))
    return _join(*trunks, tree)


def _central_airways(c: _Chest, scale: float = 1.0, extra: float = 0.0) -> tuple[Array, Array, Array]:
    """Trachea and main bronchi (lumen radius * scale + extra)."""
    tx, ty = c.trachea
    carina = (tx, ty, c.carina)
    return _join(
        _curve_segments([(tx, ty + 4, 220.0), (tx, ty + 2, c.carina + 40), carina], 8.5 * scale + extra),
        _curve_segments([carina, (tx + 14, ty - 2, c.carina - 10), _bronchus_end(c, 1.0)], 6.5 * scale + extra),
        _curve_segments([carina, (tx - 18, ty - 3, c.carina - 8), _bronchus_end(c, -1.0)], 6.0 * scale + extra),
    )


def _bronchus_end(c: _Chest, side: float) -> tuple[float, float, float]:
    """Where a main bronchus enters its lung: the right one is shorter and steeper."""
    tx, ty = c.trachea
    return tx + side * (26 if side > 0 else 40), ty - 6, c.carina - (22 if side > 0 else 26)


def _airway_trees(rng: np.random.Generator, c: _Chest) -> tuple[Array, Array, Array]:
    """Lobar and segmental bronchi of both lungs (air lumen radii)."""
    roots, directions = [], []
    for side in (1.0, -1.0):
        roots += [_bronchus_end(c, side)] * 3
        directions += [[0.4 * side, 0.2, 1.0], [side, 0.5, -0.4], [0.5 * side, -0.3, -1.0]]
    sides = np.repeat([1.0, -1.0], 3)
    return _grow_tree(rng, np.array(roots), np.array(directions), sides, 22.0, 4.2, 4, _sided_lung(c))


def _heart(s: _Scene, c: _Chest) -> None:
    """Heart with epicardial fat, on the left hemidiaphragm."""
    reach = max(c.heart_semi) + 12
    s = s.crop(tuple(v - reach for v in c.heart), tuple(v + reach for v in c.heart))
    s.paint(_heart_sdf(c, s.x, s.y, s.z, grow=4.0), HU["fat"] + 10)
    s.paint(_heart_sdf(c, s.x, s.y, s.z), HU["heart"])


def _mediastinum(s: _Scene, rng: np.random.Generator, c: _Chest) -> None:
    """Aorta, pulmonary trunk, venae cavae, arch branches and oesophagus."""
    s.paint_tubes(_great_vessels(c), HU["blood"])
    _, ty = c.trachea
    gullet = [(c.med_x - 3, ty - 15, 220.0), (c.med_x - 4, ty - 15, c.carina), (c.med_x - 12, ty - 10, c.dome_l)]
    s.paint_tubes(_curve_segments(gullet, 7.0), HU["muscle"] - 10)
    if rng.random() < 0.5:  # a little swallowed air
        s.paint_tubes(_curve_segments(gullet[:2], 2.0), HU["air"])


def _great_vessels(c: _Chest) -> tuple[Array, Array, Array]:
    """Centre lines and radii of the great vessels, placed around the trachea and the heart."""
    tx, ty = c.trachea
    base = np.asarray(c.heart) - np.asarray(c.heart_axes[0]) * c.heart_semi[0] * 0.65
    dx, dy = c.cx - c.vb_r - 4, c.vb_y + 8  # descending aorta, left of the vertebral bodies
    aorta = [
        tuple(base + [8, 12, 4]), (tx + 26, ty + 32, c.arch - 25), (tx + 8, ty + 22, c.arch),
        (tx - 18, ty + 4, c.arch - 8), (dx, dy, c.arch - 35), (dx + 4, dy + 4, c.dome_l - 10),
        (c.cx - 6, c.vb_y + c.vb_r + 10, -220.0),
    ]  # fmt: skip
    fork = (tx - 12, ty + 26, c.carina - 12)
    artery_r, artery_l = _hila(c, 1.0)[0], _hila(c, -1.0)[0]
    return _join(
        _curve_segments(aorta, 13.0),
        _curve_segments([tuple(base + [-14, 30, 6]), fork], 13.0),
        _curve_segments([fork, (tx - 30, ty + 12, c.carina - 8), tuple(artery_l)], 9.5),
        _curve_segments([fork, (tx + 20, ty + 14, c.carina - 16), tuple(artery_r)], 9.5),
        _curve_segments([(tx + 30, ty + 18, 220.0), (tx + 28, ty + 20, c.arch), tuple(base + [30, 4, 0])], 9.0),
        _curve_segments([(tx + 8, ty + 22, c.arch), (tx + 18, ty + 16, c.arch + 40), (tx + 28, ty + 8, 220.0)], 6.5),
        _curve_segments([(tx - 6, ty + 18, c.arch), (tx - 14, ty + 14, 220.0)], 4.5),
        _curve_segments(
            [(tx - 14, ty + 8, c.arch - 4), (tx - 30, ty + 2, c.arch + 40), (tx - 70, ty, c.arch + 60)], 5.5
        ),
        _curve_segments([tuple(base + [25, -10, -30]), (c.cx + 22, c.vb_y + c.vb_r + 14, -220.0)], 11.0),
    )


def _abdomen(s: _Scene, rng: np.random.Generator, c: _Chest) -> None:
    """Liver, stomach (with an air-fluid level) and spleen under the diaphragm."""
    s = s.crop((-500, -500, -500), (500, 500, c.dome_r + 5))
    x, y, z = s.x, s.y, s.z
    below = np.minimum(s.depth - s.wall, _domes(c, x, y)[0] - 4.0 - z)
    reach = 25 + 55 * np.clip((y - c.cy) / c.b + 0.3, 0, 1)  # the left lobe reaches across in front
    s.paint(
        np.minimum(below, np.minimum(x - c.cx + reach, z - (c.dome_r - 175))),
        HU["liver"] + rng.uniform(-8, 8) + 5 * s.texture,
    )
    centre = (c.cx - 0.42 * c.a + 15, c.cy + 0.1 * c.b, c.dome_l - 45)
    stomach = np.minimum(below, _ellipsoid(x, y, z, centre, (42, 50, 55)))
    s.paint(stomach, HU["muscle"])
    s.paint(stomach - 3, HU["fluid"])
    s.paint(np.minimum(stomach - 3, y - centre[1] - rng.uniform(0, 35)), HU["air"])  # supine: gas rises to the front
    spleen = _ellipsoid(x, y, z, (c.cx - 0.62 * c.a, c.vb_y - 5, c.dome_l - 50), (26, 45, 50))
    s.paint(np.minimum(below, spleen), HU["spleen"])


def _ellipsoid(x: Array, y: Array, z: Array, centre: tuple[float, ...], semi: tuple[float, ...]) -> Array:
    """Signed distance (approx., mm) of an axis-aligned ellipsoid."""
    q = ((x - centre[0]) / semi[0]) ** 2 + ((y - centre[1]) / semi[1]) ** 2 + ((z - centre[2]) / semi[2]) ** 2
    return (1 - np.sqrt(q)) * min(semi)


def _spine(s: _Scene, c: _Chest) -> None:
    """Vertebral bodies with discs, neural arches, spinous and transverse processes, spinal canal."""
    s = s.crop((c.cx - c.vb_r - 40, c.canal_y - c.r_canal - 40, -500), (c.cx + c.vb_r + 40, c.vb_y + c.vb_r + 5, 500))
    fraction = np.mod((s.z - c.phase) / c.pitch, 1.0)
    disc = 0.2
    body = np.minimum(fraction - disc, 1 - fraction) * c.pitch  # (1, 1, S): distance to the discs
    radial = c.vb_r - np.sqrt(((s.x - c.cx) / 1.15) ** 2 + (s.y - c.vb_y) ** 2)  # (S, S, 1)
    s.paint(np.minimum(radial, (disc / 2 - np.abs(fraction - disc / 2)) * c.pitch), HU["disc"])
    s.paint(np.minimum(radial, body), HU["cortical"])
    s.paint(np.minimum(radial - 2.0, body - 1.5), HU["trabecular"])
    dx, dy = np.abs(s.x - c.cx), s.y - c.canal_y
    ring = np.sqrt(dx * dx + dy * dy)
    arch = np.minimum(ring - c.r_canal, c.r_canal + 6 - ring)
    spinous = np.minimum(4.5 - dx, np.minimum(-dy - c.r_canal + 2, dy + c.r_canal + 28))
    along, across = 0.9 * dx - 0.44 * dy, 0.44 * dx + 0.9 * dy  # transverse processes point back 26 degrees
    transverse = np.minimum(5.0 - np.abs(across), np.minimum(c.r_canal + 24 - along, along - 2))
    levels = np.minimum(fraction - 0.1, 0.9 - fraction) * c.pitch
    s.paint(np.minimum(np.maximum(np.maximum(arch, spinous), transverse), levels), HU["posterior_bone"])
    s.paint(c.r_canal - ring, HU["cord"])


def _ribs(s: _Scene, c: _Chest) -> None:
    """Twelve pairs of ribs sloping down to the front, costal cartilages and the sternum."""
    whole = s
    s, index = whole.select(np.abs(s.depth - (s.wall - c.rib_rr - 1.0)) < c.rib_rr + 1.5 * s.spacing + 6)
    ends = np.array([0.78, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.74, 0.7, 0.66, 0.45, 0.35]) * np.pi
    first = c.apex - 8.0
    u = (first - s.z - c.rib_drop * np.minimum(s.around, 0.78 * np.pi) / np.pi) / c.pitch  # rib number
    n = np.clip(np.rint(u), 0, 11).astype(np.int64)
    dz = (u - n) * c.pitch
    dr = s.depth - (s.wall - c.rib_rr - 1.0)
    section = (1 - np.sqrt((dr / c.rib_rr) ** 2 + (dz / c.rib_rh) ** 2)) * c.rib_rr
    section = np.minimum(section, np.minimum(u + 0.5, 11.5 - u) * c.pitch)
    end = ends[n]
    span = np.minimum(s.around - 0.13 * np.pi, end - s.around) * 120.0
    s.paint(np.minimum(section, span), HU["cortical"])
    s.paint(np.minimum(section - 1.8, span - 2.0), HU["trabecular"])
    cartilage = np.minimum(s.around - end, 0.96 * np.pi - s.around) * 120.0
    s.paint(np.minimum(cartilage, np.minimum(section, (9.5 - u) * c.pitch)), HU["cartilage"])
    top = c.sternum_top
    half = 14.0 + 10.0 * _smoothstep((s.z - top + 45) / 15.0)  # the manubrium is wider
    sternum = np.minimum(half - np.abs(s.x - c.cx), np.minimum(s.wall - s.depth, s.depth - s.wall + 11.0))
    sternum = np.minimum(np.minimum(sternum, top - s.z), s.z - (top - 165.0))
    sternum = np.minimum(sternum, s.y - c.cy)
    s.paint(sternum, HU["cortical"] - 300)
    s.paint(sternum - 2.0, HU["trabecular"])
    whole.put(s, index)


def _shoulder_bones(s: _Scene, c: _Chest) -> None:
    """Clavicles in front over the first ribs, and the scapulae behind the upper ribs."""
    top = c.sternum_top
    for side in (1.0, -1.0):
        points = [
            (c.cx + side * 22, c.front + 12, top + 4),
            (c.cx + side * 70, c.front + 4, top + 16),
            (c.cx + side * (c.a - 40), c.cy + 0.1 * c.b, top + 32),
        ]
        s.paint_tubes(_curve_segments(points, 6.5), HU["cortical"] - 200)
        s.paint_tubes(_curve_segments(points, 4.0), HU["trabecular"])
    height = (c.apex - 20 - s.z) / 150  # 0 at the top of the blade, 1 at its tip
    outer = (0.42 - 0.16 * np.clip(height, 0, 1)) * np.pi
    blade = np.minimum(s.around - 0.17 * np.pi, outer - s.around) * 100.0
    blade = np.minimum(blade, np.minimum(height, 1 - height) * 150)
    middle = s.wall - 2 * c.rib_rr - 10.0
    s.paint(np.minimum(blade, 3.0 - np.abs(s.depth - middle)), HU["cortical"] - 350)


def _scanner(s: _Scene, rng: np.random.Generator, c: _Chest) -> Array:
    """Reconstruction blur and correlated quantum noise (stronger in the thick middle of the body)."""
    sigma, truncate = 0.55, 3.0
    reach = int(truncate * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-reach, reach + 1) / sigma) ** 2)
    gain = float(np.sqrt(((taps / taps.sum()) ** 2).sum()) ** 3)  # noise std kept by the blur
    noise = rng.standard_normal(s.image.shape, dtype=np.float32)
    noise *= np.float32(c.noise_hu / gain) * (0.6 + 0.5 * _smoothstep(s.skin / 120.0))
    image = ndimage.gaussian_filter(s.image + noise, sigma, truncate=truncate)
    return np.clip(image, -1024.0, 3071.0, out=image)


# ---------------------------------------------------------------------------------------------
# brain MRI
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _mni() -> tuple[Array, Array, Array, Array]:
    """The 1 mm MNI152 T1 template and grey/white-matter priors that ship with nilearn, and their affine."""
    from nilearn import datasets  # slow to import; only brain phantoms need it

    loaders = (datasets.load_mni152_template, datasets.load_mni152_gm_template, datasets.load_mni152_wm_template)
    images = [load(resolution=1) for load in loaders]
    t1, gm, wm = (np.asarray(image.dataobj, dtype=np.float32) for image in images)
    return t1, gm, wm, np.asarray(images[0].affine, dtype=np.float64)


@lru_cache(maxsize=4)
def _mni_grid(spacing: float) -> tuple[Array, Array]:
    """Template and priors anti-aliased and resampled to ``spacing`` mm: maps (3, X, Y, Z), and origin (mm)."""
    t1, gm, wm, affine = _mni()
    step = max(spacing, 1.0)
    shape = tuple(int(np.ceil(n / step)) for n in t1.shape)
    maps = []
    for volume in (t1, gm, wm):
        if step > 1.0:
            volume = ndimage.gaussian_filter(volume, 0.42 * step, truncate=2.5)
        maps.append(ndimage.affine_transform(volume, [step] * 3, output_shape=shape, order=1))
    return np.stack(maps), affine[:3, 3].copy()


@lru_cache(maxsize=1)
def _tissue_levels() -> tuple[float, float, float]:
    """Template intensity of pure CSF, grey and white matter, read off the priors."""
    t1, gm, wm, _ = _mni()
    brain = t1 > 0.05
    csf = brain & (gm < 0.1) & (wm < 0.1)
    return float(np.median(t1[csf])), float(np.median(t1[gm > 0.9])), float(np.median(t1[wm > 0.9]))


def _brain_mri(rng: np.random.Generator, size: int, spacing: float) -> Array:
    """One T1-weighted brain in arbitrary units, centred on the volume."""
    maps, origin = _mni_grid(spacing)
    step = max(spacing, 1.0)
    contrast = _t1_contrast(rng, maps)
    coords = _warp(rng, size, spacing, origin, step)
    image = ndimage.map_coordinates(contrast, coords, order=1, cval=0.0, prefilter=False)
    image *= np.exp(rng.uniform(0.06, 0.2) * _smooth_field(rng, size, 4))  # bias field
    sigma = np.float32(rng.uniform(0.008, 0.035) * 700.0)
    real = image + sigma * rng.standard_normal(image.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(image.shape, dtype=np.float32)
    image = np.sqrt(real * real + imag * imag)  # magnitude images carry Rician noise
    return np.clip(image, MRI_WINDOW.low, MRI_WINDOW.high, out=image)


def _t1_contrast(rng: np.random.Generator, maps: Array) -> Array:
    """A random T1 contrast: tissue means for CSF, grey and white matter, blended with the priors."""
    t1, gm, wm = maps
    csf_t, gm_t, wm_t = _tissue_levels()
    white = rng.uniform(600, 760)
    grey = white * rng.uniform(0.58, 0.74)
    csf = white * rng.uniform(0.12, 0.3)
    knots = [0.0, 0.6 * csf_t, csf_t, gm_t, wm_t, 1.0]
    means = [0.0, 0.5 * csf, csf, grey, white, white * rng.uniform(1.0, 1.08)]
    remapped = np.interp(t1, knots, means).astype(np.float32)
    csf_prior = np.clip(np.clip(t1 / csf_t, 0, 1) - gm - wm, 0, 1)
    priors = grey * gm + white * wm + csf * csf_prior
    weight = np.float32(rng.uniform(0.0, 0.35))
    return (1 - weight) * remapped + weight * priors


def _warp(rng: np.random.Generator, size: int, spacing: float, origin: Array, step: float) -> Array:
    """Template voxel coordinates (3, S, S, S) of each output voxel: random affine + smooth displacement."""
    angles = np.radians(rng.uniform(-6, 6, 3))
    rotation = _rotation(*angles)
    scale = rng.uniform(0.9, 1.1) * rng.uniform(0.96, 1.04, 3)
    matrix = rotation / scale[None, :]  # output mm -> template mm
    shift = np.asarray(MNI_BRAIN_CENTRE_MM) + rng.uniform(-4, 4, 3)
    ax = _axis(size, spacing)
    grid = (ax[:, None, None], ax[None, :, None], ax[None, None, :])
    amplitude = rng.uniform(2.0, 5.0)
    coords = np.empty((3, size, size, size), dtype=np.float32)
    for row in range(3):
        value = sum(np.float32(matrix[row, col] / step) * grid[col] for col in range(3))
        value = value + np.float32((shift[row] - origin[row]) / step)
        coords[row] = value + _smooth_field(rng, size, 5) * np.float32(amplitude / step)
    return coords


def _rotation(ax: float, ay: float, az: float) -> Array:
    """Rotation matrix: about x, then y, then z (radians)."""
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx
