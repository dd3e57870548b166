"""The action library of the procedural generator: one frozen spec per action.

Each action is written for a *right-canonical* hand "a" (and, for two-hand actions, a second
right-canonical hand "b" that the compositor mirrors to the other side), so every one-hand
action can be performed by either hand. A builder returns per-frame targets (anatomical
angles, wrist rotation, wrist position; ``None`` = keep what the hand is doing) and the
contacts the compositor must make exact. Params are plain JSON values (they go into labels).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from engine.data.synth_kin import (F32, FINGERS4, PALM_HALF_THICKNESS, PINCH_GAP, THUMB, TIP, deg,
                                   hand_shape, jitter_shape, minjerk, orient, oscillation, pinch_shape,
                                   pulse, pulses, ramp, rot_axis, set_finger, set_thumb)

PALM = (0, 1, 4, 7, 10)


@dataclass
class Track:
    """Targets for one hand over an action's n frames (right-canonical); None = not driven."""

    ang: np.ndarray | None = None  # (n, 15, 3) radians
    rot: np.ndarray | None = None  # (n, 3, 3)
    pos: np.ndarray | None = None  # (n, 3) wrist, metres
    hold: np.ndarray | None = None  # (n,) 1 where an intra-hand contact must not be disturbed by noise


@dataclass
class Contact:
    """A contact between hands a and b that the compositor makes exact (translations only).

    kind "palms": palm skins ``sep`` (n,) apart, b's palm slid by ``slide`` (n,) along a's fingers;
    kind "points": mean(a[a_idx] - b[b_idx]) = ``offset`` (n, 3) in a's canonical frame;
    kind "tap": mean(a[a_idx]) sits ``sep`` (n,) above b's palm skin along b's palm normal.
    ``share`` is how much of the correction hand a takes (1 = only a moves).
    """

    kind: str
    weight: np.ndarray  # (n,) where the contact is enforced
    sep: np.ndarray | None = None
    slide: np.ndarray | None = None
    offset: np.ndarray | None = None
    a_idx: tuple = ()
    b_idx: tuple = ()
    share: float = 0.5


@dataclass
class ActionOut:
    tracks: dict  # "a"/"b" -> Track
    contacts: list = field(default_factory=list)
    touch: list = field(default_factory=list)  # [start, end) local frames of intended contact


@dataclass(frozen=True)
class ActionSpec:
    """A named, parameterised action. ``sample(rng) -> params``; ``build(params, n, ctx, rng) -> ActionOut``."""

    name: str
    hands: str  # "one" or "two"
    seconds: tuple[float, float]  # natural duration range at any fps
    sample: Callable
    build: Callable
    doc: str
    contact: str = ""  # what touches, if anything (for tests and docs)


@dataclass
class Ctx:
    """What the hands are doing around the action (right-canonical per hand "a"/"b")."""

    fps: float
    ang0: dict  # "a"/"b" -> (15, 3) the hand's relaxed shape
    rot0: dict  # -> (3, 3) its neutral wrist rotation
    pos0: dict  # -> (3,) its rest wrist position


ACTIONS: dict[str, ActionSpec] = {}


def action(name: str, hands: str, seconds: tuple, doc: str, contact: str = ""):
    """Register ``sample``/``build`` pairs: decorate a function returning (sample, build)."""
    def deco(fn):
        sample, build = fn()
        ACTIONS[name] = ActionSpec(name, hands, seconds, sample, build, doc, contact)
        return fn
    return deco


# --- helpers -----------------------------------------------------------------------------------
def const(x: np.ndarray, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(x, F32), (n,) + np.shape(x)).copy()


def lerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Blend per frame: a, b (n, ...) or (...), w (n,)."""
    w = np.asarray(w, F32).reshape(-1, *([1] * (max(np.ndim(a), np.ndim(b)) - (1 if np.ndim(w) else 0))))
    return (a + (b - a) * w).astype(F32)


def spans(on: np.ndarray) -> list:
    """[start, end) runs of True in a (n,) bool array."""
    d = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    return [[int(a), int(b)] for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1))]


def u(rng, lo, hi) -> float:
    return float(rng.uniform(lo, hi))


def choice(rng, options):
    return options[int(rng.integers(len(options)))]


def reach(ctx: Ctx, h: str, dx=0.0, dy=0.0, dz=0.0) -> np.ndarray:
    return (ctx.pos0[h] + np.array([dx, dy, dz], F32)).astype(F32)


def hand_orient(p: dict) -> np.ndarray:
    return orient(p["yaw"], p["pitch"], p["roll"])


def sample_orient(rng, yaw=(0, 25), pitch=(-5, 20), roll=(15, 60)) -> dict:
    return {"yaw": u(rng, *yaw), "pitch": u(rng, *pitch), "roll": u(rng, *roll)}


def fist_shape(tight: float = 1.0) -> np.ndarray:
    ang = hand_shape({f: tight for f in FINGERS4}, thumb="wrap")
    for f in FINGERS4:  # a real fist: MCPs ~85-90, PIPs ~100, DIPs ~60
        set_finger(ang, f, mcp=88 * tight, pip=98 * tight, dip=62 * tight)
    return ang


def count_shape(k: int, spread: float = 6.0) -> np.ndarray:
    """Fingers 1..k extended (index first, thumb fifth), the rest curled."""
    up = ("index", "middle", "ring", "pinky")[:min(k, 4)]
    ang = hand_shape({f: (0.0 if f in up else 0.95) for f in FINGERS4}, spread=spread,
                     thumb="out" if k >= 5 else "tuck")
    return ang


# --- one-hand: static shapes ----------------------------------------------------------------
def _shape_action(name, doc, make_shape, sample_extra=None, seconds=(0.8, 2.0), wrist=None, contact=""):
    """A shape reached by a min-jerk transition (the compositor's fade), optionally pulsed ``reps`` times."""
    def fn():
        def sample(rng):
            p = {"reps": int(rng.choice([1, 1, 2, 3])), "variant": int(rng.integers(1 << 30))}
            p.update(sample_extra(rng) if sample_extra else {})
            if wrist:
                p.update(wrist(rng))
            return p

        def build(p, n, ctx, rng):
            srng = np.random.default_rng(p["variant"])
            shape = make_shape(p, srng)
            if p["reps"] > 1:  # close-open cycles against the relaxed hand, ending closed
                w = pulses(n, p["reps"] - 1, rng, duty=0.55, stop=n * 0.7)
                w = np.maximum(w, ramp(n, n * 0.72, max(n * 0.12, 3)))
                ang = lerp(const(ctx.ang0["a"], n), const(shape, n), w)
            else:
                ang = const(shape, n)
            tr = Track(ang=ang)
            if wrist:
                tr.rot = const(hand_orient(p), n)
            touch = []
            if contact:  # the shape holds the contact where it is fully reached
                tr.hold = (w if p["reps"] > 1 else np.ones(n, F32)).astype(F32)
                touch = spans(tr.hold >= 0.97)
            return ActionOut({"a": tr}, touch=touch)
        return sample, build
    return action(name, "one", seconds, doc, contact)(fn)


_shape_action("fist", "make a fist: all four fingers curled into the palm, thumb wrapped over them",
              lambda p, r: jitter_shape(fist_shape(p["tight"]), r, 3), lambda r: {"tight": u(r, 0.9, 1.0)})
_shape_action("open_hand", "open the hand flat, fingers straight and together",
              lambda p, r: jitter_shape(hand_shape(u(r, -0.03, 0.05), spread=u(r, 0, 4), thumb="along"), r, 3))
_shape_action("spread_fingers", "spread all five fingers wide apart",
              lambda p, r: jitter_shape(hand_shape(u(r, -0.08, 0.03), spread=p["spread"], thumb="out"), r, 3),
              lambda r: {"spread": u(r, 14, 20)})
_shape_action("point", "point with the index finger, other fingers curled",
              lambda p, r: jitter_shape(hand_shape({"index": u(r, -0.03, 0.05), "middle": 0.92, "ring": 0.95,
                                                    "pinky": 0.97}, thumb="side"), r, 3),
              wrist=lambda r: sample_orient(r, yaw=(-10, 35), pitch=(-10, 35), roll=(10, 80)))
_shape_action("thumbs_up", "thumbs up: a fist with the thumb pointing up",
              lambda p, r: set_thumb(fist_shape(0.95), -5, -12, -10, 0, u(r, -5, 5)),
              wrist=lambda r: sample_orient(r, yaw=(-5, 20), pitch=(-5, 20), roll=(78, 100)))
_shape_action("peace_sign", "victory sign: index and middle fingers up in a V",
              lambda p, r: set_finger(set_finger(count_shape(2), "index", 0, 3, spread=p["spread"]), "middle", 0, 3,
                                      spread=p["spread"] * 3),
              lambda r: {"spread": u(r, 10, 16)},
              wrist=lambda r: sample_orient(r, yaw=(-10, 10), pitch=(55, 85), roll=(-15, 15)))
for _f in FINGERS4:
    _shape_action(f"pinch_{_f}", f"pinch: the thumb tip touches the {_f} fingertip",
                  (lambda f: lambda p, r: pinch_shape(f, r, {g: (0.15 if f == "index" else 0.45) for g in FINGERS4}))(_f),
                  wrist=lambda r: sample_orient(r, yaw=(0, 30), pitch=(0, 40), roll=(40, 95)), contact=f"thumb-{_f}")
_shape_action("ok_sign", "OK sign: thumb and index fingertips form a ring, other fingers extended",
              lambda p, r: pinch_shape("index", r, {"middle": 0.03, "ring": 0.06, "pinky": 0.08}),
              wrist=lambda r: sample_orient(r, yaw=(-10, 15), pitch=(40, 80), roll=(-10, 30)), contact="thumb-index")


# --- one-hand: counting, signs with sequence ------------------------------------------------
@action("count", "one", (1.2, 2.5), "count on the fingers: raise index, middle, ring, pinky, thumb one by one")
def _count():
    def sample(rng):
        return {"n": int(rng.integers(1, 6)), **sample_orient(rng, yaw=(-10, 15), pitch=(55, 85), roll=choice(rng, [(-15, 15), (165, 195)]))}

    def build(p, n, ctx, rng):
        order = ("index", "middle", "ring", "pinky", "thumb")
        fist = count_shape(0)
        ang = const(fist, n)
        step = n * 0.8 / (p["n"] + 0.5)
        for k in range(p["n"]):
            w = ramp(n, n * 0.12 + k * step, max(step * 0.6, 3))
            target = count_shape(k + 1)
            rows = (12, 13, 14) if order[k] == "thumb" else {"index": (0, 1, 2), "middle": (3, 4, 5), "ring": (9, 10, 11), "pinky": (6, 7, 8)}[order[k]]
            for j in rows:
                ang[:, j] = lerp(ang[:, j], const(target[j], n), w)
            ang[:, :, 1] = lerp(ang[:, :, 1], const(target[:, 1], n), w)
        return ActionOut({"a": Track(ang=ang, rot=const(hand_orient(p), n), pos=const(reach(ctx, "a", 0, 0.08, -0.03), n))})
    return sample, build


@action("thumb_touch", "one", (1.3, 2.5), "touch the thumb to each fingertip in turn", contact="thumb-each finger")
def _thumb_touch():
    def sample(rng):
        seq = list(FINGERS4) if rng.uniform() < 0.6 else list(FINGERS4)[::-1]
        if rng.uniform() < 0.3:
            seq = seq + seq[-2::-1]
        return {"sequence": seq, "variant": int(rng.integers(1 << 30)), **sample_orient(rng, pitch=(20, 60), roll=(40, 95))}

    def build(p, n, ctx, rng):
        srng = np.random.default_rng(p["variant"])
        seq = p["sequence"]
        open_ = hand_shape(0.15, spread=4, thumb="relaxed")
        ang, hold = const(open_, n), np.zeros(n, F32)
        seg = n / (len(seq) + 0.3)
        touch = []
        for k, f in enumerate(seq):
            s = k * seg + 0.15 * seg
            w = pulse(n, s, seg * 0.35, seg * 0.3, seg * 0.3)
            ang = lerp(ang, const(pinch_shape(f, srng, {g: 0.2 for g in FINGERS4}), n), w)
            hold = np.maximum(hold, w)
            touch.append([int(s + seg * 0.35), int(s + seg * 0.65)])
        return ActionOut({"a": Track(ang=ang, rot=const(hand_orient(p), n), hold=hold)}, touch=touch)
    return sample, build


@action("flick", "one", (0.8, 1.5), "flick a finger: the thumb holds the fingertip back, then the finger snaps out")
def _flick():
    def sample(rng):
        return {"finger": choice(rng, ["index", "middle"]), "variant": int(rng.integers(1 << 30)), **sample_orient(rng, pitch=(0, 30), roll=(20, 70))}

    def build(p, n, ctx, rng):
        srng = np.random.default_rng(p["variant"])
        loaded = pinch_shape(p["finger"], srng, {g: 0.5 for g in FINGERS4})
        out = loaded.copy()
        set_finger(out, p["finger"], -5, 0)
        out[12:15] = hand_shape(0, thumb="relaxed")[12:15]
        t_snap = n * u(rng, 0.45, 0.6)
        ang = lerp(const(loaded, n), const(out, n), ramp(n, t_snap, max(2.0, 2 * ctx.fps / 30)))
        hold = 1 - ramp(n, t_snap, 1)
        return ActionOut({"a": Track(ang=ang, rot=const(hand_orient(p), n), hold=hold)}, touch=[[0, int(t_snap)]])
    return sample, build


@action("writing", "one", (1.2, 2.5), "write with an imaginary pen held between thumb and index finger", contact="thumb-index")
def _writing():
    def sample(rng):
        return {"strokes": int(rng.integers(3, 8)), "variant": int(rng.integers(1 << 30)), **sample_orient(rng, yaw=(10, 35), pitch=(-15, 5), roll=(15, 40))}

    def build(p, n, ctx, rng):
        srng = np.random.default_rng(p["variant"])
        grip = pinch_shape("index", srng, {"middle": 0.45, "ring": 0.6, "pinky": 0.7})
        t = np.arange(n, dtype=F32)
        path = np.stack([0.012 * np.sin(2 * np.pi * p["strokes"] * t / n) + 0.03 * t / n,
                         0.004 * np.sin(2 * np.pi * p["strokes"] * 2 * t / n),
                         0.008 * np.cos(2 * np.pi * p["strokes"] * t / n + 0.7)], -1)
        pos = reach(ctx, "a", -0.04, -0.06, -0.02) + path
        return ActionOut({"a": Track(ang=const(grip, n), rot=const(hand_orient(p), n), pos=pos.astype(F32),
                                     hold=np.ones(n, F32))}, touch=[[0, n]])
    return sample, build


# --- one-hand: rhythmic finger actions ----------------------------------------------------------
def _palm_down(rng):
    return sample_orient(rng, yaw=(0, 20), pitch=(-12, 0), roll=(0, 25))


def _presses(n, fingers_seq, times, width, depth, base, rng):
    """Finger presses: each (finger, time) bends that finger's MCP (+PIP) by ``depth`` degrees."""
    ang = const(base, n)
    for f, t0 in zip(fingers_seq, times):
        w = pulse(n, t0, width * 0.4, width * 0.2, width * 0.4)
        rows = {"index": (0, 1), "middle": (3, 4), "ring": (9, 10), "pinky": (6, 7), "thumb": (12, 13)}[f]
        d = depth * u(rng, 0.8, 1.2)
        ang[:, rows[0], 2] += deg(d) * w
        ang[:, rows[1], 2] += deg(d * 0.4) * w
    return ang


@action("finger_tap", "one", (1.0, 2.0), "tap a finger repeatedly on a surface")
def _finger_tap():
    def sample(rng):
        return {"finger": choice(rng, ["index", "index", "middle", "all"]), "taps": int(rng.integers(2, 6)), **_palm_down(rng)}

    def build(p, n, ctx, rng):
        base = hand_shape(u(rng, 0.2, 0.3), thumb="relaxed")
        fingers = list(FINGERS4) if p["finger"] == "all" else [p["finger"]]
        w = pulses(n, p["taps"], rng, duty=0.45)
        ang = const(base, n)
        for f in fingers:
            a = {"index": 0, "middle": 3, "ring": 9, "pinky": 6}[f]
            ang[:, a, 2] += deg(-28) * (1 - w) + deg(8) * w  # lift, then strike
        return ActionOut({"a": Track(ang=ang, rot=const(hand_orient(p), n),
                                     pos=const(reach(ctx, "a", 0, -0.04, -0.02), n))})
    return sample, build


@action("piano", "one", (1.2, 2.5), "play piano: fingers press keys one after another as the hand moves sideways")
def _piano():
    def sample(rng):
        return {"notes": int(rng.integers(4, 11)), "shift": u(rng, -0.06, 0.06), **_palm_down(rng)}

    def build(p, n, ctx, rng):
        base = hand_shape(u(rng, 0.3, 0.4), spread=6, thumb="relaxed")
        seq = [choice(rng, ["thumb", "index", "middle", "ring", "pinky"]) for _ in range(p["notes"])]
        times = np.sort(rng.uniform(0.05, 0.85, p["notes"])) * n
        ang = _presses(n, seq, times, max(5.0, 6 * ctx.fps / 30), 30, base, rng)
        pos = lerp(const(reach(ctx, "a", 0, -0.04, -0.02), n), const(reach(ctx, "a", p["shift"], -0.04, -0.02), n), minjerk(np.linspace(0, 1, n)))
        return ActionOut({"a": Track(ang=ang, rot=const(hand_orient(p), n), pos=pos)})
    return sample, build


@action("drumming", "one", (1.0, 2.0), "drum the fingers on a surface from the little finger to the index")
def _drumming():
    def sample(rng):
        return {"rolls": int(rng.integers(2, 4)), **_palm_down(rng)}

    def build(p, n, ctx, rng):
        base = hand_shape(0.3, thumb="relaxed")
        roll = n / p["rolls"]
        seq, times = [], []
        for r in range(p["rolls"]):
            for k, f in enumerate(("pinky", "ring", "middle", "index")):
                seq.append(f)
                times.append(r * roll + k * roll * 0.16)
        ang = _presses(n, seq, times, max(4.0, 5 * ctx.fps / 30), 32, base, rng)
        for f in FINGERS4:  # fingers lift before each strike
            ang[:, {"index": 0, "middle": 3, "ring": 9, "pinky": 6}[f], 2] -= deg(15)
        return ActionOut({"a": Track(ang=ang, rot=const(hand_orient(p), n),
                                     pos=const(reach(ctx, "a", 0, -0.04, -0.02), n))})
    return sample, build


@action("scratch", "one", (1.0, 2.0), "scratch with the fingertips: clawed fingers rake back and forth")
def _scratch():
    def sample(rng):
        return {"strokes": int(rng.integers(3, 7)), **sample_orient(rng, yaw=(0, 20), pitch=(-20, 0), roll=(0, 40))}

    def build(p, n, ctx, rng):
        claw = hand_shape(0.0, spread=5, thumb="relaxed")
        osc = oscillation(n, p["strokes"], 0, rng)
        for f in FINGERS4:
            set_finger(claw, f, 20, 60)
        ang = const(claw, n)
        for f in FINGERS4:
            a = {"index": 0, "middle": 3, "ring": 9, "pinky": 6}[f]
            ang[:, a + 1, 2] += deg(22) * osc
            ang[:, a + 2, 2] += deg(15) * osc
            ang[:, a, 2] += deg(8) * osc
        pos = reach(ctx, "a", 0, -0.03, 0) + np.outer(osc, [0, 0, 0.01]).astype(F32)
        return ActionOut({"a": Track(ang=ang, rot=const(hand_orient(p), n), pos=pos)})
    return sample, build


@action("finger_wiggle", "one", (1.0, 2.0), "wiggle all the fingers independently")
def _wiggle():
    def sample(rng):
        return {"speed_hz": u(rng, 2.0, 4.0), **sample_orient(rng, pitch=(10, 60), roll=(20, 90))}

    def build(p, n, ctx, rng):
        base = hand_shape(0.25, spread=6)
        ang = const(base, n)
        t = np.arange(n, dtype=F32) / ctx.fps
        for k, f in enumerate(FINGERS4):
            a = {"index": 0, "middle": 3, "ring": 9, "pinky": 6}[f]
            s = np.sin(2 * np.pi * p["speed_hz"] * u(rng, 0.85, 1.15) * t + k * 1.3 + u(rng, 0, 1))
            ang[:, a, 2] += deg(22) * s
            ang[:, a + 1, 2] += deg(18) * (s + 1)
        ang[:, 13, 2] += deg(12) * (np.sin(2 * np.pi * p["speed_hz"] * t) + 1)
        return ActionOut({"a": Track(ang=ang, rot=const(hand_orient(p), n))})
    return sample, build


@action("beckon", "one", (1.0, 2.0), "beckon: palm up, the fingers curl toward the palm again and again")
def _beckon():
    def sample(rng):
        return {"fingers": choice(rng, ["index", "all"]), "times": int(rng.integers(2, 5)),
                **sample_orient(rng, yaw=(0, 20), pitch=(5, 30), roll=(165, 190))}

    def build(p, n, ctx, rng):
        if p["fingers"] == "index":
            straight = hand_shape({"index": 0.0, "middle": 0.9, "ring": 0.95, "pinky": 0.97}, thumb="side")
        else:
            straight = hand_shape(0.05, spread=3, thumb="relaxed")
        curled = straight.copy()
        for f in (["index"] if p["fingers"] == "index" else FINGERS4):
            set_finger(curled, f, 60, 85)
        w = pulses(n, p["times"], rng, duty=0.5)
        return ActionOut({"a": Track(ang=lerp(const(straight, n), const(curled, n), w), rot=const(hand_orient(p), n),
                                     pos=const(reach(ctx, "a", -0.02, 0.02, -0.06), n))})
    return sample, build


# --- one-hand: wrist actions ------------------------------------------------------------------
def _wrist_action(name, doc, axis_deg):
    def fn():
        def sample(rng):
            return {"amp_deg": u(rng, 22, 45) if axis_deg != "roll" else u(rng, 45, 80), "cycles": u(rng, 1.0, 2.5),
                    "shape": choice(rng, ["relaxed", "open", "fist"]), **sample_orient(rng, pitch=(-5, 15), roll=(20, 60))}

        def build(p, n, ctx, rng):
            shape = {"relaxed": ctx.ang0["a"], "open": hand_shape(0.02, thumb="along"), "fist": fist_shape()}[p["shape"]]
            s = oscillation(n, p["cycles"], 0, rng) * ramp(n, 0, n * 0.15) * p["amp_deg"]
            c = oscillation(n, p["cycles"], np.pi / 2, rng) * ramp(n, 0, n * 0.15) * p["amp_deg"]
            yaw, pitch, roll = p["yaw"], p["pitch"], p["roll"]
            if axis_deg == "pitch":
                rot = orient(yaw, pitch + s, roll)
            elif axis_deg == "roll":
                rot = orient(yaw, pitch, roll + s)
            else:  # circle
                rot = orient(yaw + c * 0.8, pitch + s * 0.8, roll)
            return ActionOut({"a": Track(ang=const(shape, n), rot=rot)})
        return sample, build
    return action(name, "one", (1.0, 2.2), doc)(fn)


_wrist_action("wrist_flex", "flex and extend the wrist up and down", "pitch")
_wrist_action("wrist_rotate", "rotate the forearm, turning the palm up and down", "roll")
_wrist_action("wrist_circle", "circle the hand around the wrist", "circle")


@action("wave", "one", (1.2, 2.4), "wave hello: hand raised, palm forward, swinging side to side")
def _wave():
    def sample(rng):
        return {"style": choice(rng, ["wrist", "wrist", "fingers"]), "cycles": u(rng, 2.0, 4.0), "amp_deg": u(rng, 15, 30),
                "yaw": u(rng, -10, 10), "pitch": u(rng, 70, 88), "roll": u(rng, -15, 15), "height": u(rng, 0.1, 0.2)}

    def build(p, n, ctx, rng):
        shape = hand_shape(u(rng, 0.0, 0.08), spread=u(rng, 3, 10), thumb="along")
        ang = const(shape, n)
        osc = oscillation(n, p["cycles"], 0, rng) * ramp(n, 0, n * 0.15)
        base = hand_orient(p)
        if p["style"] == "wrist":  # swing about the axis out of the palm
            rot = rot_axis([0, 0, 1], deg(p["amp_deg"]) * osc) @ base
        else:  # fingers flap together at the knuckles
            rot = const(base, n)
            for f in FINGERS4:
                a = {"index": 0, "middle": 3, "ring": 9, "pinky": 6}[f]
                ang[:, a, 2] += deg(35) * (osc + 1) / 2
                ang[:, a + 1, 2] += deg(20) * (osc + 1) / 2
        pos = const(reach(ctx, "a", 0.03, p["height"], 0.0), n)
        return ActionOut({"a": Track(ang=ang, rot=rot.astype(F32), pos=pos)})
    return sample, build


@action("stop_sign", "one", (0.8, 1.8), "hold up the palm facing forward: stop")
def _stop():
    def sample(rng):
        return {"push": u(rng, 0.04, 0.1), "pitch": u(rng, 75, 90), "roll": u(rng, -8, 8), "yaw": u(rng, -5, 10)}

    def build(p, n, ctx, rng):
        shape = hand_shape(u(rng, -0.05, 0.02), spread=u(rng, 0, 4), thumb="along")
        pos = lerp(const(reach(ctx, "a", 0, 0.1, 0), n), const(reach(ctx, "a", -0.02, 0.12, -p["push"]), n), ramp(n, n * 0.1, n * 0.4))
        return ActionOut({"a": Track(ang=const(shape, n), rot=const(hand_orient(p), n), pos=pos)})
    return sample, build


@action("shake_out", "one", (0.8, 1.5), "shake the hand out loosely")
def _shake():
    def sample(rng):
        return {"hz": u(rng, 3.5, 5.0), "amp_deg": u(rng, 10, 20), **sample_orient(rng, pitch=(-15, 5), roll=(30, 80))}

    def build(p, n, ctx, rng):
        t = np.arange(n, dtype=F32) / ctx.fps
        env = ramp(n, 0, n * 0.2) * (1 - ramp(n, n * 0.75, n * 0.25))
        s = np.sin(2 * np.pi * p["hz"] * t) * env
        lag = np.sin(2 * np.pi * p["hz"] * t - 1.2) * env
        ang = const(hand_shape(0.2, spread=4), n)
        for f in FINGERS4:  # fingers lag the palm (loose)
            ang[:, {"index": 0, "middle": 3, "ring": 9, "pinky": 6}[f], 2] += deg(14) * lag
        rot = orient(p["yaw"], p["pitch"] + p["amp_deg"] * s, p["roll"])
        pos = reach(ctx, "a", 0, 0, 0) + np.outer(lag, [0, 0.012, 0]).astype(F32)
        return ActionOut({"a": Track(ang=ang, rot=rot, pos=pos)})
    return sample, build


@action("pat", "one", (1.0, 2.0), "pat down: palm down, the hand bobs down and up")
def _pat():
    def sample(rng):
        return {"times": int(rng.integers(2, 5)), "depth": u(rng, 0.03, 0.06), **_palm_down(rng)}

    def build(p, n, ctx, rng):
        w = pulses(n, p["times"], rng, duty=0.5)
        pos = reach(ctx, "a", 0, 0, 0) - np.outer(w, [0, p["depth"], 0]).astype(F32)
        rot = orient(p["yaw"], p["pitch"] + 10 * w, p["roll"])
        return ActionOut({"a": Track(ang=const(hand_shape(0.08, spread=3, thumb="along"), n), rot=rot, pos=pos)})
    return sample, build


@action("swipe", "one", (0.8, 1.6), "swipe the hand sideways across the body")
def _swipe():
    def sample(rng):
        return {"direction": choice(rng, ["inward", "outward"]), "distance": u(rng, 0.15, 0.28), **sample_orient(rng, yaw=(0, 15), pitch=(20, 60), roll=(70, 100))}

    def build(p, n, ctx, rng):
        d = p["distance"] * (-1 if p["direction"] == "inward" else 1)
        start = reach(ctx, "a", -d / 2 + 0.02, 0.04, -0.03)
        end = reach(ctx, "a", d / 2 + 0.02, 0.05, -0.04)
        pos = lerp(const(start, n), const(end, n), minjerk((np.arange(n) - n * 0.2) / (n * 0.55)))
        return ActionOut({"a": Track(ang=const(hand_shape(0.05, thumb="along"), n), rot=const(hand_orient(p), n), pos=pos)})
    return sample, build


GRASP_SIZES = {"small": (0.02, 0.035), "medium": (0.05, 0.075), "large": (0.09, 0.12)}


def grasp_shape(diameter: float, wrap: str = "power") -> np.ndarray:
    """Fingers closed around an object of this diameter (m): smaller objects curl further."""
    c = float(np.clip(0.85 - 6.0 * diameter, 0.18, 0.72))
    ang = hand_shape({f: c + 0.03 * k for k, f in enumerate(FINGERS4)}, spread=4 if diameter > 0.07 else 0)
    set_thumb(ang, 30, 5 + 40 * diameter, 15 + 25 * c, 15 + 30 * c, 10 + 25 * c)
    return ang


@action("grasp", "one", (1.2, 2.5), "reach out and grasp an imaginary object, then lift it")
def _grasp():
    def sample(rng):
        size = choice(rng, list(GRASP_SIZES))
        return {"size": size, "diameter": u(rng, *GRASP_SIZES[size]), "lift": u(rng, 0.0, 0.08),
                "reach": u(rng, 0.03, 0.1), **sample_orient(rng, yaw=(0, 25), pitch=(-5, 15), roll=choice(rng, [(60, 90), (5, 25)]))}

    def build(p, n, ctx, rng):
        pre = hand_shape(0.05, spread=8, thumb="out")
        grip = grasp_shape(p["diameter"])
        t_close = n * u(rng, 0.35, 0.5)
        ang = lerp(const(pre, n), const(grip, n), ramp(n, t_close, max(n * 0.2, 4)))
        start, at = reach(ctx, "a", 0, 0, 0), reach(ctx, "a", -0.02, 0, -p["reach"])
        pos = lerp(const(start, n), const(at, n), ramp(n, 0, t_close + 2))
        pos = pos + np.outer(ramp(n, t_close + n * 0.2, n * 0.3), [0, p["lift"], 0]).astype(F32)
        return ActionOut({"a": Track(ang=ang, rot=const(hand_orient(p), n), pos=pos)})
    return sample, build


# --- two-hand actions -------------------------------------------------------------------------
def _centre(rng) -> dict:
    return {"height": u(rng, -0.05, 0.08), "depth": u(rng, -0.36, -0.26)}


def _at(p, x, dy=0.0, dz=0.0) -> np.ndarray:
    return np.array([x, p["height"] + dy, p["depth"] + dz], F32)


def _vertical_palms(rng, pitch=(15, 60)) -> dict:
    return {"yaw": u(rng, -5, 10), "pitch": u(rng, *pitch), "roll": u(rng, 82, 95)}


@action("clap", "two", (1.0, 2.4), "clap the hands: palms meet and part", contact="palm-palm")
def _clap():
    def sample(rng):
        return {"claps": int(rng.integers(1, 5)), "open_m": u(rng, 0.06, 0.18), **_vertical_palms(rng), **_centre(rng)}

    def build(p, n, ctx, rng):
        k = p["claps"]
        per = n * 0.62 / (k + 0.1)
        opened = np.ones(n, F32)
        touch = []
        for c in range(k):
            t0 = n * 0.36 + per * (c + 0.6)
            dwell = max(1.0, ctx.fps / 30)
            closing = max(per * 0.45, 3)
            w = pulse(n, t0 - closing, closing, dwell, per * 0.4)
            opened = np.minimum(opened, 1 - w)
            touch.append([int(np.ceil(t0)), int(np.floor(t0 + dwell)) + 1])
        sep = 0.001 + opened * p["open_m"]
        rot = const(hand_orient(p), n)
        tr = {h: Track(ang=const(hand_shape(u(rng, 0.0, 0.08), spread=u(rng, 0, 5), thumb="along"), n), rot=rot,
                       pos=const(_at(p, 0.09), n)) for h in "ab"}
        return ActionOut(tr, [Contact("palms", np.ones(n, F32), sep=sep, slide=np.zeros(n, F32))], touch)
    return sample, build


@action("rub_palms", "two", (1.0, 2.4), "rub the palms together", contact="palm-palm")
def _rub():
    def sample(rng):
        return {"strokes": u(rng, 1.5, 4.0), "amp_m": u(rng, 0.02, 0.045), **_vertical_palms(rng, (20, 55)), **_centre(rng)}

    def build(p, n, ctx, rng):
        slide = p["amp_m"] * oscillation(n, p["strokes"], 0, rng)
        rot = const(hand_orient(p), n)
        tr = {h: Track(ang=const(hand_shape(u(rng, 0.0, 0.06), spread=2, thumb="along"), n), rot=rot,
                       pos=const(_at(p, 0.09), n)) for h in "ab"}
        return ActionOut(tr, [Contact("palms", np.ones(n, F32), sep=np.full(n, 0.001, F32), slide=slide.astype(F32))],
                         [[0, n]])
    return sample, build


@action("steeple", "two", (1.0, 2.4), "steeple the fingers: fingertips of both hands press together", contact="fingertips-fingertips")
def _steeple():
    def sample(rng):
        return {"taps": int(rng.integers(0, 4)), "bend_deg": u(rng, 25, 45), "yaw": u(rng, -5, 5), "pitch": u(rng, 40, 75),
                "roll": u(rng, 86, 92), **_centre(rng)}

    def build(p, n, ctx, rng):
        shape = hand_shape(0.0, spread=u(rng, 4, 10), thumb="along")
        for f in FINGERS4:  # a tent: straight fingers leaning in at the knuckles, tips on one plane
            set_finger(shape, f, p["bend_deg"], 6, 4, spread=6)
        tips = (17, 18, 19, 20)
        apart = pulses(n, p["taps"], rng, duty=0.5, start=n * 0.35) if p["taps"] else np.zeros(n, F32)
        off = np.zeros((n, 3), F32)
        off[:, 0] = 0.008 + 0.03 * apart
        tr = {h: Track(ang=const(shape, n), rot=const(hand_orient(p), n), pos=const(_at(p, 0.1), n)) for h in "ab"}
        touch = [[int(n * 0.35), n]] if not p["taps"] else [[int(n * 0.3), int(n * 0.35)]]
        return ActionOut(tr, [Contact("points", np.ones(n, F32), offset=off, a_idx=tips, b_idx=tips)], touch)
    return sample, build


@action("touch_index_tips", "two", (1.0, 2.0), "touch the two index fingertips together", contact="index-index")
def _index_tips():
    def sample(rng):
        return {"taps": int(rng.integers(1, 4)), "yaw": u(rng, 55, 80), "pitch": u(rng, -5, 25), "roll": u(rng, 10, 50), **_centre(rng)}

    def build(p, n, ctx, rng):
        shape = hand_shape({"index": 0.05, "middle": 0.9, "ring": 0.95, "pinky": 0.97}, thumb="side")
        apart = 1 - pulses(n, p["taps"], rng, duty=0.5, start=n * 0.1)
        off = np.zeros((n, 3), F32)
        off[:, 0] = 0.008 + 0.06 * apart
        tr = {h: Track(ang=const(shape, n), rot=const(hand_orient(p), n), pos=const(_at(p, 0.14), n)) for h in "ab"}
        return ActionOut(tr, [Contact("points", np.ones(n, F32), offset=off, a_idx=(17,), b_idx=(17,))])
    return sample, build


@action("tap_palm", "two", (1.0, 2.2), "tap the other hand's palm with the fingertips", contact="fingertips-palm")
def _tap_palm():
    def sample(rng):
        return {"taps": int(rng.integers(2, 5)), "fingers": choice(rng, ["index", "index_middle", "four"]),
                "lift_m": u(rng, 0.025, 0.05), **_centre(rng)}

    def build(p, n, ctx, rng):
        fingers = {"index": ("index",), "index_middle": ("index", "middle"), "four": FINGERS4}[p["fingers"]]
        shape = hand_shape({f: (0.05 if f in fingers else 0.9) for f in FINGERS4}, thumb="side" if len(fingers) < 4 else "along")
        a = Track(ang=const(shape, n), rot=const(orient(u(rng, 20, 45), u(rng, -35, -15), u(rng, 0, 25)), n),
                  pos=const(_at(p, 0.1, 0.1, 0.03), n))
        b = Track(ang=const(hand_shape(0.08, spread=3, thumb="along"), n),
                  rot=const(orient(u(rng, 15, 35), u(rng, 0, 12), u(rng, 165, 185)), n), pos=const(_at(p, 0.12, -0.05), n))
        up = 1 - pulses(n, p["taps"], rng, duty=0.4, start=n * 0.1)
        sep = 0.006 + p["lift_m"] * up
        idx = tuple(TIP[f] for f in fingers)
        return ActionOut({"a": a, "b": b}, [Contact("tap", np.ones(n, F32), sep=sep.astype(F32), a_idx=idx, share=1.0)])
    return sample, build


@action("interlace_fingers", "two", (1.0, 2.2), "interlace the fingers of both hands", contact="palm-palm")
def _interlace():
    def sample(rng):
        return {"squeeze": choice(rng, [0, 1, 2]), **_centre(rng), "pitch": u(rng, 10, 40)}

    def build(p, n, ctx, rng):
        shape = hand_shape(0.0, spread=15, thumb="out")
        for f in FINGERS4:
            set_finger(shape, f, 70, 45, spread=15)
        rot = const(orient(u(rng, 30, 40), p["pitch"], 90), n)
        tr = {h: Track(ang=const(shape, n), rot=rot, pos=const(_at(p, 0.08), n)) for h in "ab"}
        sq = pulses(n, p["squeeze"], rng, start=n * 0.4) if p["squeeze"] else np.zeros(n, F32)
        for h in "ab":
            for f in FINGERS4:
                tr[h].ang[:, {"index": 0, "middle": 3, "ring": 9, "pinky": 6}[f], 2] += deg(12) * sq
        return ActionOut(tr, [Contact("palms", np.ones(n, F32), sep=np.full(n, 0.004, F32), slide=np.full(n, 0.0, F32))], [[0, n]])
    return sample, build


@action("hold_ball", "two", (1.0, 2.4), "hold an imaginary ball between the palms and move it", contact="")
def _hold_ball():
    def sample(rng):
        return {"diameter": u(rng, 0.1, 0.25), "move": choice(rng, ["up_down", "circle", "forward"]), "amp_m": u(rng, 0.03, 0.07), **_centre(rng)}

    def build(p, n, ctx, rng):
        shape = hand_shape(u(rng, 0.15, 0.3), spread=10, thumb="out")
        path = np.zeros((n, 3), F32)
        o = oscillation(n, u(rng, 0.8, 1.5), 0, rng) * ramp(n, 0, n * 0.2)
        if p["move"] == "up_down":
            path[:, 1] = p["amp_m"] * o
        elif p["move"] == "forward":
            path[:, 2] = -p["amp_m"] * o
        else:
            oc = oscillation(n, 1.0, np.pi / 2) * ramp(n, 0, n * 0.2)
            path[:, 1], path[:, 2] = p["amp_m"] * o, p["amp_m"] * oc
        rot = const(orient(u(rng, 0, 10), u(rng, 10, 35), u(rng, 75, 92)), n)
        tr = {h: Track(ang=const(shape, n), rot=rot, pos=const(_at(p, 0.05 + p["diameter"] / 2), n) + path * np.array([1, 1, 1], F32)) for h in "ab"}
        tr["b"].pos = tr["b"].pos.copy()
        return ActionOut(tr, [Contact("palms", np.ones(n, F32), sep=np.full(n, p["diameter"], F32), slide=np.zeros(n, F32))])
    return sample, build


@action("hand_over_hand", "two", (1.2, 2.4), "roll the hands over each other in circles")
def _hand_over_hand():
    def sample(rng):
        return {"cycles": u(rng, 1.0, 2.5), "radius_m": u(rng, 0.035, 0.06), "direction": choice(rng, ["forward", "backward"]),
                "shape": choice(rng, ["fist", "relaxed"]), **_centre(rng)}

    def build(p, n, ctx, rng):
        shape = fist_shape(0.9) if p["shape"] == "fist" else hand_shape(0.35, thumb="relaxed")
        sgn = 1 if p["direction"] == "forward" else -1
        t = np.arange(n, dtype=F32) / max(n - 1, 1)
        out = {}
        for h, ph in (("a", 0.0), ("b", np.pi)):
            th = sgn * 2 * np.pi * p["cycles"] * t + ph
            pos = np.stack([np.full(n, 0.05, F32), p["height"] + p["radius_m"] * np.sin(th),
                            p["depth"] + p["radius_m"] * np.cos(th)], -1).astype(F32)
            out[h] = Track(ang=const(shape, n), rot=const(orient(u(rng, 15, 30), u(rng, -5, 10), u(rng, 10, 35)), n), pos=pos)
        return ActionOut(out)
    return sample, build


@action("typing", "two", (1.2, 2.5), "type on an imaginary keyboard with both hands")
def _typing():
    def sample(rng):
        return {"keys_per_s": u(rng, 3.0, 7.0), **_centre(rng)}

    def build(p, n, ctx, rng):
        out = {}
        for h in "ab":
            base = hand_shape(u(rng, 0.3, 0.42), spread=5, thumb="relaxed")
            k = max(2, int(p["keys_per_s"] * n / ctx.fps / 2 * u(rng, 0.7, 1.3)))
            seq = [choice(rng, ["index", "index", "middle", "ring", "pinky", "thumb"]) for _ in range(k)]
            times = np.sort(rng.uniform(0.03, 0.9, k)) * n
            ang = _presses(n, seq, times, max(4.0, 5 * ctx.fps / 30), 25, base, rng)
            pos = const(_at(p, u(rng, 0.1, 0.13), -0.05), n) + np.outer(oscillation(n, u(rng, 0.3, 0.8), u(rng, 0, 6)), [0.015, 0, 0.01]).astype(F32)
            out[h] = Track(ang=ang, rot=const(orient(u(rng, 8, 20), u(rng, -10, 0), u(rng, 5, 20)), n), pos=pos)
        return ActionOut(out)
    return sample, build


@action("pass_object", "two", (1.6, 2.6), "pass an imaginary object from one hand to the other", contact="object between palms")
def _pass():
    def sample(rng):
        return {"diameter": u(rng, 0.05, 0.08), **_centre(rng)}

    def build(p, n, ctx, rng):
        d = p["diameter"]
        grip, pre = grasp_shape(d), hand_shape(0.05, spread=8, thumb="out")
        t1, t2, t3 = n * 0.3, n * 0.5, n * 0.65
        rot = const(orient(10, 15, 88), n)
        side = _at(p, 0.18)
        mid = _at(p, 0.02 + d / 2)
        a_pos = lerp(lerp(const(side, n), const(mid, n), ramp(n, 0, t1)), const(side, n), ramp(n, t3, n - t3))
        b_pos = lerp(lerp(const(side, n), const(mid, n), ramp(n, t1 * 0.6, t2 - t1 * 0.6)), const(side + np.array([0, 0.02, 0], F32), n), ramp(n, t3 + 2, n - t3 - 2))
        a_ang = lerp(const(grip, n), const(pre, n), ramp(n, t3 - 3, 6))
        b_ang = lerp(const(pre, n), const(grip, n), ramp(n, t2 - 6, 6))
        w = pulse(n, t1, t2 - t1, t3 - t2, 4)
        tr = {"a": Track(ang=a_ang, rot=rot, pos=a_pos), "b": Track(ang=b_ang, rot=rot, pos=b_pos)}
        return ActionOut(tr, [Contact("palms", w, sep=np.full(n, d * 0.8, F32), slide=np.zeros(n, F32))], [[int(t2), int(t3)]])
    return sample, build


# --- patterns over one-hand actions -----------------------------------------------------------
PATTERN_BASES = ("fist", "open_hand", "spread_fingers", "wave", "wrist_flex", "wrist_rotate", "finger_tap", "point",
                 "thumbs_up", "pinch_index", "grasp", "beckon", "count", "pat", "finger_wiggle", "ok_sign", "scratch")


def _pattern(name, doc, alternate: bool):
    def fn():
        def sample(rng):
            base = choice(rng, PATTERN_BASES)
            return {"base": base, "base_params": ACTIONS[base].sample(rng), "lag_frames": int(rng.integers(0, 3))}

        def build(p, n, ctx, rng):
            spec = ACTIONS[p["base"]]
            out_a = spec.build(p["base_params"], n, ctx, np.random.default_rng(rng.integers(1 << 30)))
            bctx = Ctx(ctx.fps, {"a": ctx.ang0["b"]}, {"a": ctx.rot0["b"]}, {"a": ctx.pos0["b"]})
            bparams = dict(p["base_params"])
            if alternate:
                bparams["reps"] = max(2, bparams.get("reps", 2))
            out_b = spec.build(bparams, n, bctx, np.random.default_rng(rng.integers(1 << 30)))
            ta, tb = out_a.tracks["a"], out_b.tracks["a"]
            shift = p["lag_frames"]
            if alternate:  # the second hand runs half a cycle (or half the action) behind
                shift = max(shift, int(n * 0.25))
            if shift:
                idx = np.clip(np.arange(n) - shift, 0, n - 1)
                tb = Track(*[None if x is None else x[idx] for x in (tb.ang, tb.rot, tb.pos, tb.hold)])
            return ActionOut({"a": ta, "b": tb}, touch=out_a.touch)
        return sample, build
    return action(name, "two", (1.2, 2.4), doc)(fn)


_pattern("mirror", "both hands perform the same action together, mirrored", False)
_pattern("alternate", "both hands perform the same action in turn, one after the other", True)


def names(hands: str | None = None) -> list[str]:
    """Registered action names (``hands``: "one", "two" or None for all)."""
    return [k for k, s in ACTIONS.items() if hands is None or s.hands == hands]
