"""Pathfinder's snakes-and-markers image generator (Linsley, Kim et al. 2018; LRA's Pathfinder / Path-X), clean-room.

An image holds two target "snakes" (chains of short line segments, "paddles", separated by small gaps) that start
near each other, a number of distractor snakes, and two circular markers. The first marker sits on one target's
start; the second on the end of the same snake (label 1) or of the other target (label 0).

Geometry, for paddle length L, margin m, continuity c (coordinates are (y, x), direction of angle t is
(sin t, cos t)):

* a snake's seed paddle runs from its tail to head = ceil(tail + L dir); its pivot is m behind the tail;
* each extension puts a new pivot L + 2m ahead of the last one, takes the integer points on the circle of radius
  L + m around it (about one per pixel of arc, inside the image) as candidate heads, weights them by
  (1 - occupancy) * cos(min(|angle change| * c, pi/2))^2, draws one, and lays the paddle from it back toward the
  pivot, so consecutive paddles are about 2m apart;
* a paddle is accepted when its margin-dilated mask does not overlap the occupancy mask (sum < 1.8); the mask of
  a snake's previous paddle joins the occupancy only when its next paddle is accepted (neighbours may touch);
* paddles are drawn at `aa` times the resolution and Lanczos-downsampled; the final image is min-max rescaled
  to 0..255.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class PathfinderSpec:
    """Generator parameters (defaults: LRA's 32 px Pathfinder, hard = contour length 14)."""

    window_size: int = 32
    padding: int = 1
    antialias_scale: int = 2
    paddle_margin_list: tuple[int, ...] = (1,)
    seed_distance: float = 7.0
    marker_radius: float = 1.5
    contour_length: int = 14
    paddle_length: int = 2
    paddle_thickness: float = 0.5
    continuity: float = 1.0
    distractor_length: int = 4
    num_distractor_snakes: int = 5
    snake_contrast_list: tuple[float, ...] = (2.0,)
    paddle_contrast_list: tuple[float, ...] = (0.75,)
    max_target_contour_retrial: int = 4
    max_distractor_contour_retrial: int = 4
    max_paddle_retrial: int = 2
    max_image_attempts: int = 20000

    def __post_init__(self) -> None:
        t = self.paddle_thickness * self.antialias_scale
        if abs(t - round(t)) > 1e-9 or round(t) < 1:
            raise ValueError(f"paddle_thickness * antialias_scale must be a positive integer, got {t}")
        if self.contour_length < 1 or self.window_size < 8:
            raise ValueError(f"invalid Pathfinder spec {self}")


# Per-resolution settings from LRA's Pathfinder builders (distractor budget // distractor length snakes).
_RES = {
    32: dict(padding=1, paddle_margin_list=(1,), seed_distance=7, marker_radius=1.5, paddle_length=2,
             paddle_thickness=0.5, continuity=1.0, snake_contrast_list=(2.0,), paddle_contrast_list=(0.75,),
             budget=20),
    64: dict(padding=1, paddle_margin_list=(1,), seed_distance=12, marker_radius=2.5, paddle_length=5,
             paddle_thickness=1.0, continuity=1.8, snake_contrast_list=(0.8,), paddle_contrast_list=(1.0,),
             budget=22),
    128: dict(padding=1, paddle_margin_list=(2, 3), seed_distance=20, marker_radius=3, paddle_length=5,
              paddle_thickness=1.5, continuity=1.8, snake_contrast_list=(0.9,), paddle_contrast_list=(1.0,),
              budget=35),
    256: dict(padding=22, paddle_margin_list=(3,), seed_distance=27, marker_radius=5, paddle_length=5,
              paddle_thickness=2.0, continuity=1.8, snake_contrast_list=(1.0,), paddle_contrast_list=(1.0,),
              budget=30),
}
RESOLUTIONS = tuple(_RES)
_PATCHES: dict = {}  # (spec, margin, angle in 1/8 degree) -> (intensity, mask) patches, per process
CONTOUR_LENGTHS = (6, 9, 14)


def spec_for(resolution: int, contour_length: int = 14) -> PathfinderSpec:
    """LRA's parameters for a resolution (32, 64, 128, 256) and difficulty (contour length 6, 9 or 14)."""
    if resolution not in _RES:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution!r}")
    if contour_length not in CONTOUR_LENGTHS:
        raise ValueError(f"contour_length must be one of {CONTOUR_LENGTHS}, got {contour_length!r}")
    p = dict(_RES[resolution])
    budget = p.pop("budget")
    # The wrapper uses cl/3 (integer division) for distractor length; 6 -> 2, 9 -> 3, 14 -> 4.
    dl = contour_length // 3
    return PathfinderSpec(window_size=resolution, contour_length=contour_length, distractor_length=dl,
                          num_distractor_snakes=budget // dl, **p)


@dataclass
class Snake:
    """A chain of paddles. `tail`: seed start (origin tip); `head`: far end of the last paddle (terminal tip)."""

    tail: np.ndarray
    head: np.ndarray
    theta: float
    pivot: np.ndarray
    contrast: float
    pending: tuple | None = None  # mask patch of the last paddle, committed when the next one is accepted
    ends: list = field(default_factory=list)  # (start, end) of every paddle


class _Canvas:
    """Image and occupancy mask at the final resolution, with patch compositing."""

    def __init__(self, spec: PathfinderSpec, margin: int, rng: np.random.Generator) -> None:
        self.spec, self.m, self.rng = spec, margin, rng
        n = spec.window_size
        self.image = np.zeros((n, n), np.float32)
        self.mask = np.zeros((n, n), np.float32)
        p = spec.padding
        self.mask[:p], self.mask[-p:], self.mask[:, :p], self.mask[:, -p:] = 1, 1, 1, 1
        self.aa = spec.antialias_scale
        self.half = spec.paddle_length + math.ceil(spec.paddle_thickness) + margin + 1
        self.width = int(round(spec.paddle_thickness * self.aa))

    def paddle(self, start: np.ndarray, theta: float) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
        """Rasterise the paddle from `start` along `theta`. Returns (corner (y0, x0), intensity, dilated mask).

        Paddles start on integer pixels, so a patch depends on the angle alone: patches are cached per
        1/8 degree (an endpoint error below 0.01 px at these lengths).
        """
        h = self.half
        cy, cx = int(round(start[0])), int(round(start[1]))
        if abs(start[0] - cy) > 1e-6 or abs(start[1] - cx) > 1e-6:
            return (cy - h, cx - h), *self._patch(start[0] - cy, start[1] - cx, theta)
        key = (self.spec, self.m, int(round(math.degrees(theta) * 8)) % 2880)
        hit = _PATCHES.get(key)
        if hit is None:
            if len(_PATCHES) > 50_000:
                _PATCHES.clear()
            hit = _PATCHES[key] = self._patch(0.0, 0.0, math.radians(key[2] / 8))
        return (cy - h, cx - h), *hit

    def _patch(self, fy: float, fx: float, theta: float) -> tuple[np.ndarray, np.ndarray]:
        aa, h, L = self.aa, self.half, self.spec.paddle_length
        size = 2 * h + 1
        # start inside the patch, on the supersampled canvas (pixel centres at (k + 0.5) * aa)
        sy, sx = (h + fy + 0.5) * aa, (h + fx + 0.5) * aa
        ey, ex = sy + L * aa * math.sin(theta), sx + L * aa * math.cos(theta)
        line = Image.new("L", (size * aa, size * aa), 0)
        ImageDraw.Draw(line).line([(sx, sy), (ex, ey)], fill=255, width=self.width)
        dil = Image.new("L", (size * aa, size * aa), 0)
        d = ImageDraw.Draw(dil)
        r = self.width / 2 + self.m * aa  # the line dilated by a disk of radius m*aa: a capsule
        d.line([(sx, sy), (ex, ey)], fill=255, width=int(round(2 * r)))
        for (py, px) in ((sy, sx), (ey, ex)):
            d.ellipse([px - r, py - r, px + r, py + r], fill=255)
        down = (size, size)
        inten = np.asarray(line.resize(down, Image.LANCZOS), np.float32) / 255.0
        mask = np.asarray(dil.resize(down, Image.LANCZOS), np.float32) / 255.0
        inten.flags.writeable = False
        mask.flags.writeable = False
        return inten, mask

    def _region(self, corner: tuple[int, int], patch: np.ndarray):
        n = self.spec.window_size
        y0, x0 = corner
        y1, x1 = y0 + patch.shape[0], x0 + patch.shape[1]
        cy0, cx0, cy1, cx1 = max(y0, 0), max(x0, 0), min(y1, n), min(x1, n)
        if cy0 >= cy1 or cx0 >= cx1:
            return None
        return (slice(cy0, cy1), slice(cx0, cx1)), patch[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]

    def fits(self, corner, mask_patch, others: list) -> bool:
        """No overlap between the paddle's dilated mask and the occupancy (plus other snakes' pending paddles)."""
        r = self._region(corner, mask_patch)
        if r is None:
            return False
        sl, patch = r
        occ = self.mask[sl]
        for pend in others:
            if pend is not None:
                occ = np.maximum(occ, self._crop(pend, sl))
        return float((occ + patch).max()) < 1.8

    def _crop(self, pending, sl) -> np.ndarray:
        corner, patch = pending
        out = np.zeros((sl[0].stop - sl[0].start, sl[1].stop - sl[1].start), np.float32)
        r = self._region(corner, patch)
        if r is None:
            return out
        psl, p = r
        ys = slice(max(psl[0].start, sl[0].start), min(psl[0].stop, sl[0].stop))
        xs = slice(max(psl[1].start, sl[1].start), min(psl[1].stop, sl[1].stop))
        if ys.start >= ys.stop or xs.start >= xs.stop:
            return out
        src = p[ys.start - psl[0].start : ys.stop - psl[0].start, xs.start - psl[1].start : xs.stop - psl[1].start]
        out[ys.start - sl[0].start : ys.stop - sl[0].start, xs.start - sl[1].start : xs.stop - sl[1].start] = src
        return out

    def occupancy(self, others: list) -> np.ndarray:
        """The occupancy mask with other snakes' pending paddles added."""
        occ = self.mask
        for pend in others:
            if pend is not None:
                r = self._region(*pend)
                if r is not None:
                    occ = occ.copy() if occ is self.mask else occ
                    sl, patch = r
                    np.maximum(occ[sl], patch, out=occ[sl])
        return occ

    def commit_mask(self, pending) -> None:
        if pending is None:
            return
        r = self._region(*pending)
        if r is not None:
            sl, patch = r
            np.maximum(self.mask[sl], patch, out=self.mask[sl])

    def draw(self, corner, inten: np.ndarray, contrast: float, target: np.ndarray | None = None) -> None:
        r = self._region(corner, inten)
        if r is not None:
            sl, patch = r
            np.maximum(self.image[sl], patch * contrast, out=self.image[sl])
            if target is not None:
                np.maximum(target[sl], patch, out=target[sl])

    def inside(self, p: np.ndarray) -> bool:
        n = self.spec.window_size
        return 0 <= p[0] < n and 0 <= p[1] < n


def _dir(theta: float) -> np.ndarray:
    return np.array([math.sin(theta), math.cos(theta)])


def _seed(cv: _Canvas, border: int, contrast: float, tries: int = 200) -> Snake | None:
    """Seed paddle at a free tail (uniform among free pixels, by rejection) with a random integer-degree angle."""
    rng, spec, n = cv.rng, cv.spec, cv.spec.window_size
    L, m = spec.paddle_length, cv.m
    lo, hi = border, n - border
    if hi <= lo:
        return None
    theta = math.radians(int(rng.integers(-180, 180)))
    d = _dir(theta)
    steps = np.arange(0, L + m + 1)[:, None] * d  # the paddle's footprint, with its margin ahead
    for _ in range(tries):
        tail = rng.integers(lo, hi, size=2).astype(np.float64)
        pts = np.round(tail + steps).astype(int)
        if (pts < 0).any() or (pts >= n).any() or (cv.mask[pts[:, 0], pts[:, 1]] > 0.3).any():
            continue
        head = np.ceil(tail + L * d)
        pivot = head - (L + m) * d
        if not (cv.inside(head) and cv.inside(pivot)):
            continue
        return Snake(tail=tail, head=head, theta=theta, pivot=pivot, contrast=contrast)
    return None


def _place_seed(cv: _Canvas, s: Snake, others: list, target: np.ndarray | None) -> bool:
    corner, inten, mask = cv.paddle(s.tail, s.theta)
    if not cv.fits(corner, mask, others):
        return False
    cv.draw(corner, inten, s.contrast, target)
    s.pending = (corner, mask)
    s.ends.append((s.tail.copy(), s.head.copy()))
    return True


_CIRCLES: dict = {}


def _candidates(cv: _Canvas, centre: np.ndarray, radius: float) -> np.ndarray:
    ring = _CIRCLES.get(radius)
    if ring is None:  # about one point per pixel of arc
        n_pts = max(8, int(math.ceil(2 * math.pi * radius)))
        ang = np.arange(n_pts) * (2 * math.pi / n_pts)
        ring = _CIRCLES[radius] = radius * np.stack([np.sin(ang), np.cos(ang)], 1)
    pts = np.rint(centre + ring).astype(np.int64)
    # points along the circle are in order, so duplicates are neighbours (the last wraps to the first)
    dup = np.empty(len(pts), bool)
    dup[1:] = (pts[1:] == pts[:-1]).all(1)
    dup[0] = (pts[0] == pts[-1]).all()
    pts = pts[~dup]
    n = cv.spec.window_size
    keep = (pts >= 0).all(1) & (pts < n).all(1)
    return pts[keep]


def _clear(cv: _Canvas, occ: np.ndarray, starts: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """1.0 for each candidate paddle (start `starts` (K, 2), angle `theta` (K,)) whose footprint is free, else 0.

    A cheap look-ahead on the centre line and half a margin around it (occupancy < 0.8), so the draw avoids
    candidates that would certainly fail the exact overlap test; the exact test still decides.
    """
    L, m, n = cv.spec.paddle_length, cv.m, cv.spec.window_size
    d = np.stack([np.sin(theta), np.cos(theta)], 1)  # (K, 2)
    nrm = np.stack([-d[:, 1], d[:, 0]], 1)
    t, off = _probe_offsets(L, m)  # (P,) along and across the paddle
    pts = starts[:, None, :] + t[None, :, None] * d[:, None, :] + off[None, :, None] * nrm[:, None, :]
    pts = np.rint(pts).astype(np.int64)  # (K, P, 2)
    inside = ((pts >= 0) & (pts < n)).all(-1)
    np.clip(pts, 0, n - 1, out=pts)
    vals = occ[pts[..., 0], pts[..., 1]]
    return (inside & (vals < 0.8)).all(1).astype(np.float64)


_PROBES: dict = {}


def _probe_offsets(L: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    if (L, m) not in _PROBES:
        t = np.concatenate([[-m / 2], np.linspace(0, L, 2 * L + 1), [L + m / 2]])
        off = np.array([-m / 2, 0.0, m / 2])
        tt, oo = np.meshgrid(t, off, indexing="ij")
        _PROBES[(L, m)] = (tt.ravel(), oo.ravel())
    return _PROBES[(L, m)]


def _extend(cv: _Canvas, s: Snake, others: list, target: np.ndarray | None) -> bool:
    """Add one paddle to snake `s`; False when no candidate fits after the paddle retries."""
    spec, m, rng = cv.spec, cv.m, cv.rng
    L = spec.paddle_length
    pivot = s.pivot + (L + 2 * m) * _dir(s.theta)
    cands = _candidates(cv, pivot, L + m)
    if len(cands) == 0:
        return False
    rel = cands - pivot
    ang = np.arctan2(rel[:, 0], rel[:, 1])
    dtheta = np.abs((ang - s.theta + np.pi) % (2 * np.pi) - np.pi)
    w = np.cos(np.minimum(dtheta * spec.continuity, np.pi / 2)) ** 2
    cone = np.flatnonzero(w > 1e-12)  # only candidates within the turning cone can be drawn
    cands, ang, w = cands[cone], ang[cone], w[cone]
    if len(cands) == 0:
        return False
    occ = cv.occupancy(others)
    w = w * (1.0 - np.clip(occ[cands[:, 0], cands[:, 1]], 0, 1)) * _clear(cv, occ, cands, ang + np.pi)
    w = np.where(w > 1e-12, w, 0.0)
    for _ in range(spec.max_paddle_retrial + 1):
        cum = np.cumsum(w)
        total = cum[-1]
        if total <= 0:
            return False
        k = int(np.searchsorted(cum, rng.random() * total, side="right"))  # weighted draw; zero weights never
        head = cands[k].astype(np.float64)
        corner, inten, mask = cv.paddle(head, float(ang[k]) + math.pi)
        if cv.fits(corner, mask, others):
            cv.commit_mask(s.pending)  # the previous paddle becomes an obstacle only now
            cv.draw(corner, inten, s.contrast, target)
            s.pending = (corner, mask)
            end = head + L * _dir(float(ang[k]) + math.pi)
            s.ends.append((head.copy(), end))
            s.theta, s.pivot, s.head = float(ang[k]), pivot, head
            return True
        w[k] = 0.0
    return False


def _disk(cv: _Canvas, centre: np.ndarray, radius: float) -> tuple[tuple[int, int], np.ndarray]:
    aa = cv.aa
    h = int(math.ceil(radius)) + 2
    size = 2 * h + 1
    im = Image.new("L", (size * aa, size * aa), 0)
    cy, cx = int(round(centre[0])), int(round(centre[1]))
    py, px = (centre[0] - (cy - h) + 0.5) * aa, (centre[1] - (cx - h) + 0.5) * aa
    r = radius * aa
    ImageDraw.Draw(im).ellipse([px - r, py - r, px + r, py + r], fill=255)
    a = np.asarray(im.resize((size, size), Image.LANCZOS), np.float32)
    a = np.clip(a, 0, None)
    return (cy - h, cx - h), a / max(float(a.max()), 1e-6)


def render(spec: PathfinderSpec, seed: int | np.random.SeedSequence, with_info: bool = False):
    """Generate one image.

    Args:
        spec: parameters (see `spec_for`).
        seed: this image's seed (an int or a `SeedSequence`); the same seed gives the same image.
        with_info: also return geometry for checks.

    Returns:
        `(image uint8 (H, W), label)`, or with `with_info` `(image, label, info)` where info has `markers`
        (two (y, x) centres), `targets` (two float masks (H, W) of the target snakes' paddles), `marked`
        (index of the snake holding the first marker), `attempts` and `margin`.
    """
    rng = np.random.default_rng(seed)
    label = int(rng.integers(2))
    L = spec.paddle_length
    for attempt in range(1, spec.max_image_attempts + 1):
        margin = int(rng.choice(spec.paddle_margin_list))  # redrawn with every restart of the image
        cv = _Canvas(spec, margin, rng)
        contrasts = list(spec.snake_contrast_list) * 2
        rng.shuffle(contrasts)
        pc = float(rng.choice(spec.paddle_contrast_list))
        targets = [np.zeros_like(cv.image) for _ in range(2)] if with_info else [None, None]
        s1 = _seed(cv, int(2 * spec.seed_distance), contrasts[0] * pc, tries=1)
        if s1 is None:
            continue
        phi = math.radians(int(rng.integers(0, 360)))
        tail2 = np.round(s1.tail + spec.seed_distance * _dir(phi))
        theta2 = math.radians(int(rng.integers(-180, 180)))
        d2 = _dir(theta2)
        head2 = np.ceil(tail2 + L * d2)
        s2 = Snake(tail=tail2, head=head2, theta=theta2, pivot=head2 - (L + margin) * d2, contrast=contrasts[1] * pc)
        if not all(cv.inside(p) for p in (tail2, head2, s2.pivot)):
            continue
        if not _place_seed(cv, s1, [], targets[0]) or not _place_seed(cv, s2, [s1.pending], targets[1]):
            continue
        ok = True
        for _ in range(spec.contour_length - 1):
            if not (_extend(cv, s1, [s2.pending], targets[0]) and _extend(cv, s2, [s1.pending], targets[1])):
                ok = False
                break
        if ok:
            break
    else:
        raise RuntimeError(f"could not place two target snakes in {spec.max_image_attempts} attempts ({spec})")
    cv.commit_mask(s1.pending)
    cv.commit_mask(s2.pending)
    _distractors(cv)
    origin = int(rng.integers(2))
    first = (s1, s2)[origin]
    second = first if label == 1 else (s1, s2)[1 - origin]
    markers = [first.tail.copy(), second.head.copy()]
    for c in markers:
        corner, disk = _disk(cv, c, spec.marker_radius)
        cv.draw(corner, disk, 1.0)
    img = cv.image
    lo, hi = float(img.min()), float(img.max())
    out = np.zeros(img.shape, np.uint8) if hi <= lo else np.round((img - lo) / (hi - lo) * 255).astype(np.uint8)
    if not with_info:
        return out, label
    info = dict(markers=markers, targets=targets, marked=origin, attempts=attempt, margin=margin,
                snakes=[s1.ends, s2.ends])
    return out, label, info


def _distractors(cv: _Canvas) -> None:
    spec = cv.spec
    for _ in range(spec.num_distractor_snakes):
        if (cv.mask < 0.3).mean() < 0.01:  # less than 1% free: stop seeding
            return
        contrast = float(cv.rng.choice(spec.snake_contrast_list))
        for _ in range(spec.max_distractor_contour_retrial + 1):
            saved = (cv.image.copy(), cv.mask.copy())
            s = _seed(cv, spec.padding, contrast)
            if s is None or not _place_seed(cv, s, [], None):
                cv.image, cv.mask = saved
                continue
            if all(_extend(cv, s, [], None) for _ in range(spec.distractor_length - 1)):
                cv.commit_mask(s.pending)
                break
            cv.image, cv.mask = saved  # an incomplete snake is discarded and retried (then skipped)
