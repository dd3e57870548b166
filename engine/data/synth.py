"""Procedural bimanual motion: compose 1-3 library actions into a clip that knows what it made.

``generate_clip(seed)`` samples a hand shape, rest pose and timeline, layers each action's
targets with minimum-jerk fades (holds, speed and amplitude variation, handedness swaps),
adds low-frequency micro-motion, clamps every joint into its anatomical range, then makes the
contacts exact: pinches come from a solved thumb-opposition table (``synth_kin.pinch_table``)
and hand-hand contacts (clap, steeple, tap, ...) are placed analytically by translating the
wrists after one batched FK pass. Deterministic per seed; numpy ``Generator`` only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.data.actions import ACTIONS, ActionOut, ActionSpec, Contact, Ctx, Track
from engine.data.synth_kin import (F32, MIRROR, PALM_HALF_THICKNESS, from6d, kin, mat_to_aa, minjerk, mirror_rot,
                                   orient, palm_frame, ramp, relaxed_shape, rot_axis, smooth_noise, to6d)
from engine.motion.clip import Clip
from engine.threads import torch_threads

SIDES = ("left", "right")
SIDE_SIGN = {"left": -1.0, "right": 1.0}  # palm_frame's cross-product sign


@dataclass(frozen=True)
class SynthConfig:
    """Noise and timing knobs (degrees, metres, seconds)."""

    finger_noise_deg: float = 2.5
    thumb_noise_deg: float = 2.0
    wrist_noise_deg: float = 2.5
    pos_noise_m: float = 0.004
    drift_m: float = 0.012
    fade_s: tuple = (0.22, 0.4)
    limit_margin_deg: float = 0.5
    right_handed: float = 0.6  # share of one-hand actions done by the right hand


CONFIG = SynthConfig()


@dataclass
class Plan:
    """One action instance on the clip timeline."""

    spec: ActionSpec
    params: dict
    side_a: str  # the hand that plays "a"
    start: int
    frames: int
    release: bool
    fade_in: float
    fade_out: float

    @property
    def end(self) -> int:
        return self.start + self.frames

    @property
    def sides(self) -> tuple:
        other = SIDES[1 - SIDES.index(self.side_a)]
        return (self.side_a,) if self.spec.hands == "one" else (self.side_a, other)


# --- scheduling -----------------------------------------------------------------------------
PROGRAMS = ("mixed", "concurrent")


def _schedule(rng: np.random.Generator, T: int, fps: float, n_actions: int | None,
              names: list[str] | None = None, program: str = "mixed") -> list[Plan]:
    """Pick actions, hands, durations and start frames; consecutive one-hand actions on different
    hands may overlap in time. ``program`` "concurrent": always two different one-hand actions, one
    per hand, at the same time (the second starts within the first quarter of its own length)."""
    if program not in PROGRAMS:
        raise ValueError(f"program must be one of {PROGRAMS}; got {program!r}")
    if program == "concurrent":
        return _schedule_concurrent(rng, T, fps)
    asked = n_actions is not None
    if n_actions is None:
        n_actions = int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25] if T >= 50 else [0.6, 0.4, 0.0]))
    if not 1 <= n_actions <= 3:
        raise ValueError(f"n_actions must be 1..3; got {n_actions}")
    pool = list(ACTIONS)
    chosen = names or [pool[int(rng.integers(len(pool)))] for _ in range(n_actions)]
    specs = [ACTIONS[n] for n in chosen]
    dur = np.array([rng.uniform(*s.seconds) * fps for s in specs])
    shortest = np.array([0.75 * s.seconds[0] * fps for s in specs])  # squeezing more would rush the motion
    sides = [("right" if rng.uniform() < CONFIG.right_handed else "left") for _ in specs]
    # concurrent pairs: a one-hand action right after another on the other hand
    concurrent = [k > 0 and specs[k].hands == specs[k - 1].hands == "one" and sides[k] != sides[k - 1]
                  and rng.uniform() < 0.5 for k in range(len(specs))]
    lead = int(rng.integers(0, max(2, int(0.12 * T))))
    gaps = rng.integers(0, max(1, int(0.1 * fps)), len(specs))
    avail = max(T - lead, 8)

    def sequential(d):
        return sum(x for x, c in zip(d, concurrent) if not c) + gaps[:len(d)].sum()

    while len(specs) > 1 and not (names or asked) and sequential(shortest) > avail:  # too many for this clip
        specs, dur, shortest, sides, concurrent = specs[:-1], dur[:-1], shortest[:-1], sides[:-1], concurrent[:-1]
    seq = sequential(dur)
    if seq > avail:
        dur = np.maximum(dur * avail / seq, np.minimum(shortest, avail / len(specs)))
    plans, t, prev_start = [], lead, lead
    for k, spec in enumerate(specs):
        n = max(int(round(dur[k])), min(8, T))
        start = prev_start + int(rng.integers(0, max(1, n // 4))) if concurrent[k] else t
        plans.append(_place(rng, spec, sides[k], start, n, T, fps))
        prev_start = plans[-1].start
        t = max(t, plans[-1].end + int(gaps[k]))
    return plans


def _place(rng: np.random.Generator, spec: ActionSpec, side: str, start: int, n: int, T: int, fps: float) -> Plan:
    """One action of ``n`` frames asked to start at ``start``, fitted inside the clip, with its
    fades, release and parameters drawn."""
    start = min(start, max(T - n, 0))
    n = min(n, T - start)
    fade_in = float(min(rng.uniform(*CONFIG.fade_s) * fps, n / 3))
    fade_out = float(min(rng.uniform(*CONFIG.fade_s) * fps, n / 3))
    release = bool(rng.uniform() < 0.45)
    return Plan(spec, spec.sample(rng), side, start, n, release, fade_in, fade_out)


def _schedule_concurrent(rng: np.random.Generator, T: int, fps: float) -> list[Plan]:
    """Two different one-hand actions, one on each hand, overlapping: what "the right hand waves
    while the left makes a fist" asks for. The mixed programs make such pairs only when two one-hand
    actions on different hands happen to follow each other (about one clip in ten)."""
    one = [n for n in ACTIONS if ACTIONS[n].hands == "one"]
    first = one[int(rng.integers(len(one)))]
    rest = [n for n in one if n != first]
    specs = [ACTIONS[first], ACTIONS[rest[int(rng.integers(len(rest)))]]]
    side = "right" if rng.uniform() < CONFIG.right_handed else "left"
    sides = [side, SIDES[1 - SIDES.index(side)]]
    lead = int(rng.integers(0, max(2, int(0.12 * T))))
    avail = max(T - lead, 8)
    plans = []
    for k, spec in enumerate(specs):
        n = int(round(rng.uniform(*spec.seconds) * fps))
        n = max(min(n, avail), min(8, T))
        start = lead if k == 0 else plans[0].start + int(rng.integers(0, max(1, n // 4)))
        plans.append(_place(rng, spec, sides[k], start, n, T, fps))
    return plans


# --- composition ----------------------------------------------------------------------------
def _rest(rng: np.random.Generator) -> dict:
    """One hand's right-canonical rest: relaxed shape, neutral wrist, rest position."""
    return {"ang": relaxed_shape(rng),
            "rot": orient(rng.uniform(5, 25), rng.uniform(-8, 12), rng.uniform(20, 55)),
            "pos": np.array([rng.uniform(0.11, 0.18), rng.uniform(-0.07, 0.02), rng.uniform(-0.32, -0.22)], F32)}


def _weights(plan: Plan, T: int) -> np.ndarray:
    """(T,) how strongly a plan drives its hands: min-jerk fade in, hold, optional fade out."""
    w = ramp(T, plan.start, plan.fade_in)
    if plan.release:
        w = w * (1 - ramp(T, plan.end - plan.fade_out, plan.fade_out))
    return w


def _extend(x: np.ndarray | None, plan: Plan, T: int) -> np.ndarray | None:
    """A track's (n, ...) values on the whole clip: first frame before, last frame after."""
    if x is None:
        return None
    return x[np.clip(np.arange(T) - plan.start, 0, plan.frames - 1)]


def _compose(rng: np.random.Generator, plans: list[Plan], outs: list[ActionOut], rest: dict, T: int):
    """Layer the plans' tracks per hand. Returns right-canonical ang (T,2,15,3), rot (T,2,3,3),
    pos (T,2,3), hold (T,2), and per plan its effective weight per hand (dict side -> (T,))."""
    ang = np.stack([np.broadcast_to(rest[s]["ang"], (T, 15, 3)) for s in SIDES], 1).astype(F32)
    r6 = np.stack([np.broadcast_to(to6d(rest[s]["rot"]), (T, 3, 2)) for s in SIDES], 1).astype(F32)
    pos = np.stack([np.broadcast_to(rest[s]["pos"], (T, 3)) for s in SIDES], 1).astype(F32)
    hold = np.zeros((T, 2), F32)
    eff = [dict() for _ in plans]
    order = sorted(range(len(plans)), key=lambda k: plans[k].start)
    for k in order:
        plan, out = plans[k], outs[k]
        w = _weights(plan, T)
        for role, side in zip("ab", plan.sides):
            h = SIDES.index(side)
            tr: Track = out.tracks[role]
            for j in range(k):  # earlier layers on this hand are overridden where this one drives
                if side in eff[j]:
                    eff[j][side] = eff[j][side] * (1 - w)
            eff[k][side] = w.copy()
            wc = w[:, None]
            if tr.ang is not None:
                ang[:, h] += (_extend(tr.ang, plan, T) - ang[:, h]) * wc[..., None]
            if tr.rot is not None:
                r6[:, h] += (to6d(_extend(tr.rot, plan, T)) - r6[:, h]) * wc[..., None]
                r6[:, h] = to6d(from6d(r6[:, h]))
            if tr.pos is not None:
                pos[:, h] += (_extend(tr.pos, plan, T) - pos[:, h]) * wc
            target_hold = _extend(tr.hold, plan, T) if tr.hold is not None else np.zeros(T, F32)
            hold[:, h] += (target_hold - hold[:, h]) * w
    return ang, from6d(r6), pos, hold, eff


def _add_noise(rng, ang, rot, pos, hold, fps):
    """Idle micro-motion everywhere: low-frequency noise on fingers, wrist and position (less on
    fingers that hold a contact)."""
    T = ang.shape[0]
    c = CONFIG
    n_ang = smooth_noise(rng, T, (2, 15, 3), fps, (0.3, 1.5))
    amp = np.zeros((15, 3), F32)
    amp[:12, 2], amp[:12, 1], amp[12:, :] = c.finger_noise_deg, c.finger_noise_deg * 0.4, c.thumb_noise_deg
    amp[12:, 0] *= 0.5
    ang = ang + np.radians(amp) * n_ang * (1 - 0.9 * hold)[:, :, None, None]
    wr = smooth_noise(rng, T, (2, 3), fps, (0.2, 1.0)) * np.radians(c.wrist_noise_deg)
    ang_norm = np.linalg.norm(wr, axis=-1)
    rot = rot_axis(np.where(ang_norm[..., None] > 1e-9, wr, [1, 0, 0]), ang_norm) @ rot
    pos = pos + smooth_noise(rng, T, (2, 3), fps, (0.3, 1.2)) * c.pos_noise_m \
        + smooth_noise(rng, T, (2, 3), fps, (0.05, 0.3), k=2) * c.drift_m
    return ang.astype(F32), rot.astype(F32), pos.astype(F32)


def _clamp(ang: np.ndarray) -> np.ndarray:
    K = kin()
    m = np.radians(CONFIG.limit_margin_deg)
    return np.clip(ang, K.lo + m, K.hi - m).astype(F32)


def _to_world(ang, rot, pos):
    """Right-canonical per-hand state -> MANO parameters (left hand mirrored)."""
    K = kin()
    hp = K.hand_pose(ang)  # (T, 2, 45) right-hand axis-angles
    hp[:, 0] = (hp[:, 0].reshape(-1, 15, 3) * np.array([1, -1, -1], F32)).reshape(-1, 45)
    rot = rot.copy()
    rot[:, 0] = mirror_rot(rot[:, 0])
    pos = pos.copy()
    pos[:, 0] = pos[:, 0] * MIRROR
    go = mat_to_aa(rot)
    transl = (pos - K.J0[None]).astype(F32)
    return go, hp.astype(F32), transl


def _palm_skin(kp: np.ndarray, side: str):
    c, n, f = palm_frame(kp, SIDE_SIGN[side])
    return c + PALM_HALF_THICKNESS * n, n, f


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _solve_contacts(plans, outs, eff, kp_local, transl):
    """Translate the wrists so every contact holds where its plan drives the hands. Updates transl in place."""
    T = transl.shape[0]
    for plan, out, e in zip(plans, outs, eff):
        for con in out.contacts:
            a, b = plan.sides
            ha, hb = SIDES.index(a), SIDES.index(b)
            w = _extend(con.weight, plan, T) * np.minimum(e[a], e[b])
            if not w.any():
                continue
            ka, kb = kp_local[:, ha] + transl[:, ha, None], kp_local[:, hb] + transl[:, hb, None]
            if con.kind == "palms":
                sa, na, fa = _palm_skin(ka, a)
                sb, nb, _ = _palm_skin(kb, b)
                u = _unit(nb - na)  # from b's palm toward a's
                slide = _unit(fa - (fa * u).sum(-1, keepdims=True) * u)
                want = _extend(con.sep, plan, T)[:, None] * u + _extend(con.slide, plan, T)[:, None] * slide
                have = sa - sb
            elif con.kind == "points":
                off = _extend(con.offset, plan, T)
                want = off * MIRROR if a == "left" else off
                have = (ka[:, list(con.a_idx)] - kb[:, list(con.b_idx)]).mean(1)
            elif con.kind == "tap":
                sb, nb, _ = _palm_skin(kb, b)
                want = _extend(con.sep, plan, T)[:, None] * nb
                have = ka[:, list(con.a_idx)].mean(1) - sb
            else:
                raise ValueError(f"contact kind must be palms/points/tap; got {con.kind!r}")
            delta = (want - have) * w[:, None]
            transl[:, ha] += con.share * delta
            transl[:, hb] -= (1 - con.share) * delta


def _separate(kp_local, transl, contact_w, min_gap=0.02):
    """Push the hands apart along x where they come closer than ``min_gap`` without an intended contact."""
    kp = kp_local + transl[:, :, None]
    d = np.linalg.norm(kp[:, 0, :, None] - kp[:, 1, None], axis=-1).min((1, 2))  # (T,)
    push = np.clip(min_gap - d, 0, None) * (1 - contact_w)
    if push.any():  # widen and smooth the fix so it does not jerk
        k = np.exp(-0.5 * (np.arange(-6, 7) / 2.5) ** 2)
        push = np.convolve(np.pad(push, 6, mode="edge"), k / k.max(), mode="valid")[:len(push)].astype(F32)
        transl[:, 0, 0] -= push / 2
        transl[:, 1, 0] += push / 2


def _labels(plans: list[Plan], outs: list[ActionOut], eff: list[dict]) -> list[dict]:
    """Labels; contact frames are kept only where the action fully drives its hands (so they are true)."""
    labels = []
    for k in sorted(range(len(plans)), key=lambda k: plans[k].start):
        plan, out = plans[k], outs[k]
        w = np.minimum.reduce([eff[k][s] for s in plan.sides])
        hands = plan.side_a if plan.spec.hands == "one" else "both"
        lab = {"action": plan.spec.name, "hands": hands, "lead": plan.side_a,
               "start_frame": int(plan.start), "end_frame": int(plan.end),
               "params": {**plan.params, "release": plan.release}}
        spans = []
        for s, e in out.touch:
            on = [f for f in range(plan.start + s, min(plan.start + e, plan.end)) if w[f] > 0.97]
            if on:
                spans.append([on[0], on[-1] + 1])
        if spans:
            lab["contact_frames"] = spans
        labels.append(lab)
    return labels


def _betas(rng: np.random.Generator) -> np.ndarray:
    """One person: same size and finger length on both hands (the default hand maps betas[0:2])."""
    b = np.zeros((2, 10), F32)
    b[:, 0] = np.clip(rng.normal(0, 1.0), -2.5, 2.5)
    b[:, 1] = np.clip(rng.normal(0, 0.6), -1.5, 1.5)
    return b


def _frames_needed(tr: Track, k: int, role: str, ctx: Ctx, fps: float, turn_speed=2.5, move_speed=0.45,
                   tip_speed=1.0) -> float:
    """Frames a min-jerk move between the hand's rest and frame ``k`` of a track needs to stay at
    natural mean speeds (rad/s of the wrist, m/s of the wrist and of the fingertips)."""
    need = 0.0
    if tr.rot is not None:
        cos = (np.trace(ctx.rot0[role].T @ tr.rot[k]) - 1) / 2
        need = max(need, np.arccos(np.clip(cos, -1, 1)) / turn_speed)
    if tr.pos is not None:
        need = max(need, np.linalg.norm(tr.pos[k] - ctx.pos0[role]) / move_speed)
    if tr.ang is not None:
        need = max(need, np.abs(tr.ang[k] - ctx.ang0[role]).max() * 0.09 / tip_speed)
    return float(need * fps * 1.9)  # a min-jerk peak speed is 1.9x its mean


def _set_fades(plan: Plan, out: ActionOut, ctx: Ctx, fps: float) -> None:
    """Lengthen the fades where the move into (or back out of) the action is large; both fit in the span."""
    roles = ("a", "b")[:len(plan.sides)]
    fin = max([plan.fade_in] + [_frames_needed(out.tracks[r], 0, r, ctx, fps) for r in roles])
    fout = max([plan.fade_out] + [_frames_needed(out.tracks[r], -1, r, ctx, fps) for r in roles]) if plan.release else 0.0
    scale = min(1.0, plan.frames * 0.8 / max(fin + fout, 1e-6))
    plan.fade_in, plan.fade_out = fin * scale, max(fout * scale, 1.0)


def _render(rng: np.random.Generator, plans: list[Plan], T: int, fps: float, betas: np.ndarray | None = None):
    rest = {s: _rest(rng) for s in SIDES}
    outs = []
    for plan in plans:
        other = SIDES[1 - SIDES.index(plan.side_a)]
        ctx = Ctx(fps, {"a": rest[plan.side_a]["ang"], "b": rest[other]["ang"]},
                  {"a": rest[plan.side_a]["rot"], "b": rest[other]["rot"]},
                  {"a": rest[plan.side_a]["pos"], "b": rest[other]["pos"]})
        out = plan.spec.build(plan.params, plan.frames, ctx, np.random.default_rng(rng.integers(1 << 62)))
        outs.append(out)
        _set_fades(plan, out, ctx, fps)
    ang, rot, pos, hold, eff = _compose(rng, plans, outs, rest, T)
    ang, rot, pos = _add_noise(rng, ang, rot, pos, hold, fps)
    ang = _clamp(ang)
    go, hp, transl = _to_world(ang, rot, pos)
    betas = _betas(rng) if betas is None else betas
    with torch_threads(1):
        kp_local = kin().keypoints(betas, go, hp)  # (T, 2, 21, 3) at zero transl
    _solve_contacts(plans, outs, eff, kp_local, transl)
    contact_w = np.zeros(T, F32)
    for plan, out, e in zip(plans, outs, eff):
        if out.contacts or plan.spec.contact:
            contact_w = np.maximum(contact_w, np.minimum(*(e[s] for s in plan.sides)) if len(plan.sides) == 2 else 0)
    _separate(kp_local, transl, contact_w)
    clip = Clip(transl, go, hp, betas, fps=fps)
    clip._joints = (kp_local + transl[:, :, None]).astype(F32)  # same default-hand FK as Clip.joints
    return clip, _labels(plans, outs, eff)


# --- public API -----------------------------------------------------------------------------
def _check(frames: int, fps: float) -> None:
    if not 8 <= int(frames) <= 108_000:
        raise ValueError(f"frames must be 8..108000; got {frames}")
    if not 1 <= float(fps) <= 1000:
        raise ValueError(f"fps must be 1..1000; got {fps}")


def generate_clip(seed: int, frames: int = 60, fps: float = 30.0, n_actions: int | None = None,
                  program: str = "mixed") -> tuple[Clip, list[dict]]:
    """One procedural clip and its action labels ({action, hands, lead, start_frame, end_frame, params}).
    ``program``: "mixed" (1-3 actions of any kind; the default corpus) or "concurrent" (see _schedule)."""
    _check(frames, fps)
    rng = np.random.default_rng(seed)
    plans = _schedule(rng, int(frames), float(fps), n_actions, program=program)
    return _render(rng, plans, int(frames), float(fps))


def make_action(name: str, hand: str = "right", frames: int = 60, fps: float = 30.0, seed: int = 0,
                params: dict | None = None, release: bool = False) -> tuple[Clip, list[dict]]:
    """One action alone, deterministic per seed (tests, the app's preset library).

    ``hand`` is the hand that performs a one-hand action (or leads a two-hand one).
    """
    if name not in ACTIONS:
        raise ValueError(f"action must be one of {sorted(ACTIONS)}; got {name!r}")
    if hand not in SIDES:
        raise ValueError(f"hand must be 'left' or 'right'; got {hand!r}")
    _check(frames, fps)
    rng = np.random.default_rng(seed)
    spec = ACTIONS[name]
    p = spec.sample(rng) if params is None else dict(params)
    start = min(int(0.1 * frames), 6)
    n = int(frames) - start
    fade = float(min(CONFIG.fade_s[0] * fps * 1.3, n / 3))
    plan = Plan(spec, p, hand, start, n, bool(release), fade, fade)
    return _render(rng, [plan], int(frames), float(fps))
