"""The procedural chest CT phantom, in Hounsfield units.

A body outline with skin, fat and muscle, a rib cage, spine and sternum, two lungs with branching
vessel and airway trees, the heart, aorta and great vessels, upper abdominal organs under the
diaphragm, and the scanner table, with correlated noise. Anatomy is defined in millimetres in RAS
world coordinates (x -> subject's right, y -> anterior, z -> superior). Shapes are written as
approximate signed distances (mm, positive inside) and painted back to front with soft,
partial-volume edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .shapes import (
    Array,
    SidedSdf,
    blend,
    curve_segments,
    grow_tree,
    join_segments,
    smooth_field,
    smoothstep,
    soft,
    stamp,
    unit,
    voxel_axis,
)

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
    long_axis = unit(np.array([-1.0, u(0.5, 1.0), -u(0.3, 0.7)]))
    side = unit(np.cross(long_axis, [0.0, 0.0, 1.0]))
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
    s = smoothstep((z - c.neck_z) / 40.0)
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
    girdle = c.shoulder * smoothstep((z - c.apex + 170) / 170) * np.abs(np.cos(theta)) ** 0.7
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
        blend(self.image, soft(sdf, self.spacing), value)

    def paint_tubes(self, segments: tuple[Array, Array, Array], value: float) -> None:
        """Paint tubes given as segments (start mm, end mm, radius mm)."""
        blend(self.image, stamp(self.size, self.spacing, segments), value)

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


def make_chest_ct(rng: np.random.Generator, size: int, spacing: float) -> Array:
    """One chest CT in HU, (i, j, k) = (right, anterior, superior)."""
    c = _draw_chest(rng)
    ax = voxel_axis(size, spacing)
    x, y, z = ax[:, None, None], ax[None, :, None], ax[None, None, :]
    fat, wall = _wall(c, x, y, z)
    theta = np.arctan2(y - c.cy, x - c.cx)
    around = np.abs(np.angle(np.exp(1j * (theta + np.pi / 2)))).astype(np.float32)
    image = np.full((size,) * 3, HU["air"], dtype=np.float32)
    texture = smooth_field(rng, size, 10)
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
    neck = smoothstep((s.z - c.apex) / 30.0)
    belly = smoothstep((dome - 5.0 - s.z) / 15.0)
    s.paint(cavity, HU["mediastinum"] * (1 - neck) + 35.0 * neck + 30.0 * belly + 10 * s.texture)


def _lungs(s: _Scene, rng: np.random.Generator, c: _Chest, lung: Array) -> None:
    """Parenchyma (denser where dependent) with pulmonary vessels and airways."""
    inside = soft(lung, s.spacing)
    gravity = c.lung_grad * np.exp(-(s.y - c.canal_y) / 40.0)
    blend(s.image, inside, c.lung_hu + gravity + 18 * s.texture)
    vessels = stamp(s.size, s.spacing, _vessel_trees(rng, c))
    vessels *= np.clip(inside * 4, 0, 1)
    blend(s.image, vessels, HU["blood"])
    start, end, radius = _airway_trees(rng, c)
    s.paint_tubes(join_segments((start, end, radius * 1.25 + 0.6), _central_airways(c, 1.25, 0.6)), HU["muscle"])
    s.paint_tubes(join_segments((start, end, radius), _central_airways(c)), HU["air"])


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
    tree = grow_tree(rng, np.array(roots), np.vstack(directions), np.array(sides), 28.0, 5.5, 7, _sided_lung(c))
    return join_segments(*trunks, tree)


def _central_airways(c: _Chest, scale: float = 1.0, extra: float = 0.0) -> tuple[Array, Array, Array]:
    """Trachea and main bronchi (lumen radius * scale + extra)."""
    tx, ty = c.trachea
    carina = (tx, ty, c.carina)
    return join_segments(
        curve_segments([(tx, ty + 4, 220.0), (tx, ty + 2, c.carina + 40), carina], 8.5 * scale + extra),
        curve_segments([carina, (tx + 14, ty - 2, c.carina - 10), _bronchus_end(c, 1.0)], 6.5 * scale + extra),
        curve_segments([carina, (tx - 18, ty - 3, c.carina - 8), _bronchus_end(c, -1.0)], 6.0 * scale + extra),
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
    return grow_tree(rng, np.array(roots), np.array(directions), sides, 22.0, 4.2, 4, _sided_lung(c))


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
    s.paint_tubes(curve_segments(gullet, 7.0), HU["muscle"] - 10)
    if rng.random() < 0.5:  # a little swallowed air
        s.paint_tubes(curve_segments(gullet[:2], 2.0), HU["air"])


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
    return join_segments(
        curve_segments(aorta, 13.0),
        curve_segments([tuple(base + [-14, 30, 6]), fork], 13.0),
        curve_segments([fork, (tx - 30, ty + 12, c.carina - 8), tuple(artery_l)], 9.5),
        curve_segments([fork, (tx + 20, ty + 14, c.carina - 16), tuple(artery_r)], 9.5),
        curve_segments([(tx + 30, ty + 18, 220.0), (tx + 28, ty + 20, c.arch), tuple(base + [30, 4, 0])], 9.0),
        curve_segments([(tx + 8, ty + 22, c.arch), (tx + 18, ty + 16, c.arch + 40), (tx + 28, ty + 8, 220.0)], 6.5),
        curve_segments([(tx - 6, ty + 18, c.arch), (tx - 14, ty + 14, 220.0)], 4.5),
        curve_segments(
            [(tx - 14, ty + 8, c.arch - 4), (tx - 30, ty + 2, c.arch + 40), (tx - 70, ty, c.arch + 60)], 5.5
        ),
        curve_segments([tuple(base + [25, -10, -30]), (c.cx + 22, c.vb_y + c.vb_r + 14, -220.0)], 11.0),
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
    half = 14.0 + 10.0 * smoothstep((s.z - top + 45) / 15.0)  # the manubrium is wider
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
        s.paint_tubes(curve_segments(points, 6.5), HU["cortical"] - 200)
        s.paint_tubes(curve_segments(points, 4.0), HU["trabecular"])
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
    noise *= np.float32(c.noise_hu / gain) * (0.6 + 0.5 * smoothstep(s.skin / 120.0))
    image = ndimage.gaussian_filter(s.image + noise, sigma, truncate=truncate)
    return np.clip(image, -1024.0, 3071.0, out=image)
