"""Event segmentation of the kinematic descriptors (HandX appendix B) into structured JSON.

Each per-frame state stream (one finger's flexion, one fingertip pair's contact, one wrist
axis, ...) is smoothed (runs shorter than ``min_run_s`` are absorbed by a neighbour, on top of
the hysteresis already in :func:`engine.motion.features.classify`), then cut into events:

- ``change``: the state goes from one value to another. Consecutive changes through runs shorter
  than ``hold_min_s`` merge (extended -> partially bent -> fully bent in one sweep is one change
  extended -> fully bent). The span grows from the state boundaries out to where the underlying
  value stops moving, so ``speed`` = ``magnitude`` / duration is the speed of the real motion.
- ``hold``: a state kept for at least ``hold_min_s`` between changes.
- ``constant``: one state for the whole clip. Not emitted for the "nothing" state of pairwise
  features (no_contact, far, apart) or for unknown finger spacing, so silence means absence.
- ``move``: the wrist travels along one or more world axes (runs of non-zero direction state
  covering at least ``min_move_m``); ``still`` is a constant/hold of the wrist.
- ``oscillation``: a back-and-forth of a wrist coordinate or of the hand's rotation.
- ``turn``: the hand rotates (palm frame angular speed above threshold) through ``min_turn_deg``
  or more, outside any rotation oscillation.

Events of the same kind, hand and states whose spans overlap by at least half of the shorter
one are grouped (fingers bending together are one event listing the fingers; wrist moves along
two axes at once are one move with two directions).

JSON schema (``events_to_json`` returns a dict; ``json.dumps`` it as is)::

    {
      "version": 1, "fps": float, "frames": int, "duration_s": float,
      "events": [                                  # sorted by start frame
        {
          "id": int,                               # position in this list
          "type": "change" | "hold" | "constant" | "move" | "oscillation" | "turn",
          "feature": "finger_flexion" | "finger_spacing" | "fingertip_contact"
                     | "fingertip_contact_across" | "fingertip_palm" | "palm_proximity"
                     | "palm_orientation" | "relative_position" | "hand_proximity"
                     | "wrist_motion" | "wrist_rotation" | "wrist_oscillation",
          "hand": "left" | "right" | "both",       # fingertip_palm: the hand whose fingertips
          "fingers": [str, ...],                   # finger_flexion, fingertip_palm (thumb..pinky order)
          "pairs": [[str, str], ...],              # finger_spacing / fingertip_contact: fingers of
                                                   # `hand`; fingertip_contact_across: [left, right]
          "target": "left_palm" | "right_palm",    # fingertip_palm only
          "axis": "x" | "y" | "z",                 # relative_position, wrist_oscillation, wrist_rotation
                                                   # (turn: the dominant world axis of the net rotation)
          "from": str, "to": str,                  # change only (state names, see below)
          "state": str,                            # hold / constant
          "directions": [str, ...],                # move (right/left/up/down/forward/backward);
                                                   # constant/hold of wrist_motion: ["still"]
          "start": int, "end": int,                # frames, inclusive
          "start_s": float, "end_s": float,        # seconds (frame / fps), 3 decimals
          "value_from": float, "value_to": float,  # change: descriptor at start / end (group mean)
          "value": float,                          # hold / constant: mean descriptor value
          "magnitude": float,                      # change: |value_to - value_from|; move:
                                                   # displacement (m); oscillation: mean swing;
                                                   # turn: net rotation angle (deg)
          "unit": "deg" | "m" | "Hz",
          "speed": float,                          # unit per second (move: mean speed m/s; turn:
                                                   # mean angular speed deg/s; oscillation: Hz)
          "peak_speed": float,                     # move only, m/s
          "pace": "slow" | "moderate" | "fast",    # change / move / turn / oscillation
          "kind": "translation" | "rotation",      # wrist_oscillation
          "swings": int, "frequency": float        # wrist_oscillation (half-cycles, Hz)
        }, ...
      ],
      "summary": {
        "event_counts": {feature: int},
        "contact_ratio": float,                   # share of frames with any inter-hand contact
        "left": {"moves": bool, "fingers_move": bool},
        "right": {"moves": bool, "fingers_move": bool}
      }
    }

States: finger_flexion hyperextended/extended/partially_bent/fully_bent; finger_spacing
closed/open; fingertip_contact(_across) contact/no_contact; fingertip_palm contact/near/far;
palm_proximity contact/near/apart; palm_orientation parallel/angled/perpendicular/facing/
back_to_back/opposite; hand_proximity contact/close/apart; relative_position (right hand
relative to the left) x: crossed/level/apart, y: below/level/above, z: behind/level/ahead.
Keys that do not apply to an event are absent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from engine.hands.skeleton import FINGERS, HANDS
from engine.motion.features import (AXES, CONTACT_STATES, FLEXION_STATES, HAND_PROXIMITY_STATES,
                                    OFFSET_STATES, PALM_ORIENTATION_STATES, PALM_PROXIMITY_STATES,
                                    SPACING_PAIRS, SPACING_STATES, TIP_PAIRS, TIP_PALM_STATES,
                                    WRIST_DIRECTIONS, HandFeatures, _rotation_log, kinematic_features)

EVENTS_VERSION = 1


@dataclass(frozen=True)
class SegmentationConfig:
    """Timing of the segmentation, in seconds, and the pace boundaries (unit per second)."""

    min_run_s: float = 0.1  # shorter state runs are jitter
    hold_min_s: float = 0.25  # shorter runs between changes merge them; shorter holds are not events
    min_move_m: float = 0.02  # a wrist move must cover this distance along its axis
    min_turn_deg: float = 20.0  # a turn of the hand must rotate it this far
    # (slow below, fast from) per unit family
    pace_deg: tuple = (100.0, 300.0)
    pace_spacing: tuple = (40.0, 120.0)
    pace_m: tuple = (0.1, 0.3)
    pace_wrist: tuple = (0.15, 0.4)
    pace_osc_hz: tuple = (1.0, 2.5)
    pace_turn: tuple = (60.0, 180.0)
    # the value must move at least this fast (unit/s) for a change's span to extend over it
    moving_deg: float = 15.0
    moving_m: float = 0.02


DEFAULT_CONFIG = SegmentationConfig()


@dataclass
class _Stream:
    feature: str
    hand: str
    values: np.ndarray  # (T,)
    states: np.ndarray  # (T,) int
    names: tuple
    unit: str
    pace: tuple
    moving: float  # unit/s
    null: int | None = None  # state whose constant/hold is not an event
    ordinal: bool = True
    extra: dict | None = None  # fingers / pairs / target / axis


# --- run-length helpers -----------------------------------------------------------------------

def runs_of(states: np.ndarray) -> list[list[int]]:
    """(T,) ints -> [[state, start, end_inclusive], ...]."""
    s = np.asarray(states)
    cut = np.flatnonzero(s[1:] != s[:-1]) + 1
    starts = np.concatenate([[0], cut])
    ends = np.concatenate([cut - 1, [len(s) - 1]])
    return [[int(s[a]), int(a), int(b)] for a, b in zip(starts, ends)]


def smooth_runs(runs: list[list[int]], min_len: int, ordinal: bool = True) -> list[list[int]]:
    """Absorb runs shorter than ``min_len`` frames into a neighbour (the one closer in state for
    ordinal streams, else the longer one), shortest first, until none is left."""
    runs = [list(r) for r in runs]
    while len(runs) > 1:
        lengths = [r[2] - r[1] + 1 for r in runs]
        i = int(np.argmin(lengths))
        if lengths[i] >= min_len:
            break
        if i == 0:
            j = 1
        elif i == len(runs) - 1:
            j = i - 1
        else:
            a, b = runs[i - 1], runs[i + 1]
            if a[0] == b[0]:
                j = i - 1
            elif ordinal and a[0] >= 0 and b[0] >= 0 and abs(a[0] - runs[i][0]) != abs(b[0] - runs[i][0]):
                j = i - 1 if abs(a[0] - runs[i][0]) < abs(b[0] - runs[i][0]) else i + 1
            else:
                j = i - 1 if lengths[i - 1] >= lengths[i + 1] else i + 1
        runs[i][0] = runs[j][0]
        merged = []
        for r in runs:
            if merged and merged[-1][0] == r[0]:
                merged[-1][2] = r[2]
            else:
                merged.append(r)
        runs = merged
    return runs


def _pace(speed: float, bounds: tuple) -> str:
    return "slow" if speed < bounds[0] else ("fast" if speed >= bounds[1] else "moderate")


def _r(x: float, nd: int = 4) -> float:
    return float(round(float(x), nd))


# --- per-stream events -----------------------------------------------------------------------

def stream_events(st: _Stream, fps: float, cfg: SegmentationConfig) -> list[dict]:
    """Events of one state stream (before grouping)."""
    T = len(st.states)
    min_len = max(2, int(round(cfg.min_run_s * fps)))
    hold_len = max(min_len, int(round(cfg.hold_min_s * fps)))
    runs = runs_of(st.states)
    if len(runs) > 1:
        runs = smooth_runs(runs, min_len, st.ordinal)
    base = {"feature": st.feature, "hand": st.hand, **(st.extra or {})}
    v = st.values
    if len(runs) == 1:
        s = runs[0][0]
        if s < 0 or s == st.null:
            return []
        return [{**base, "type": "constant", "state": st.names[s], "start": 0, "end": T - 1,
                 "value": _r(np.nanmean(v)), "unit": st.unit}]

    # anchors: runs where the value rests for long enough (plus the first and last run); the rest
    # are passed through in transit
    step = st.moving / fps
    vs = np.nan_to_num(v, nan=0.0)
    if T >= 3:
        vs = gaussian_filter1d(vs, 1.0, mode="nearest")
    still = np.abs(np.diff(vs, append=vs[-1])) < step  # (T,)
    def turning(k):  # a local extreme of an ordinal stream (a tap reaching contact and leaving)
        a, b, c = runs[k - 1][0], runs[k][0], runs[k + 1][0]
        return st.ordinal and min(a, b, c) >= 0 and (b - a) * (b - c) > 0

    anchors = [k for k, r in enumerate(runs) if k in (0, len(runs) - 1)
               or still[r[1]:r[2] + 1].sum() >= 0.6 * hold_len or turning(k)]
    changes = []
    for a, b in zip(anchors[:-1], anchors[1:]):
        sa, sb = runs[a][0], runs[b][0]
        if st.ordinal and sa >= 0 and sb >= 0:
            mids = [runs[k][0] for k in range(a + 1, b)]
            path = [sa] + mids + [sb]
            monotone = all(x <= y for x, y in zip(path, path[1:])) or all(x >= y for x, y in zip(path, path[1:]))
            if not monotone:  # a quick there-and-back: one change per leg through the extreme
                k_ext = max(range(a + 1, b), key=lambda k: abs(runs[k][0] - sa))
                changes.append((a, k_ext))
                changes.append((k_ext, b))
                continue
        changes.append((a, b))

    out = []
    prev_end = 0
    for n, (a, b) in enumerate(changes):
        sa, sb = runs[a][0], runs[b][0]
        if sa == sb:
            continue
        start, end = runs[a][2], runs[b][1]  # last frame of the old state, first of the new
        lim_lo = max(prev_end, runs[a][1])
        lim_hi = runs[b][2] if n + 1 == len(changes) else max(runs[b][1], (runs[b][1] + runs[b][2]) // 2)
        d = np.sign(v[end] - v[start]) if np.isfinite(v[end] - v[start]) else 0.0
        if d != 0:
            while start > lim_lo and (v[start] - v[start - 1]) * d > step:
                start -= 1
            while end < lim_hi and (v[end + 1] - v[end]) * d > step:
                end += 1
        prev_end = end
        if sa < 0 or sb < 0:
            continue
        mag = abs(float(v[end] - v[start]))
        dur = max(end - start, 1) / fps
        out.append({**base, "type": "change", "from": st.names[sa], "to": st.names[sb], "start": int(start),
                    "end": int(end), "value_from": _r(v[start]), "value_to": _r(v[end]), "magnitude": _r(mag),
                    "unit": st.unit, "speed": _r(mag / dur), "pace": _pace(mag / dur, st.pace)})
    # holds: anchor runs, trimmed by the changes around them
    spans = [(e["start"], e["end"]) for e in out]
    for k in anchors:
        s, a, b = runs[k]
        if s < 0 or s == st.null:
            continue
        for cs, ce in spans:
            if ce >= a and cs <= a:
                a = ce + 1
            if cs <= b and ce >= b:
                b = cs - 1
        if b - a + 1 >= hold_len:
            out.append({**base, "type": "hold", "state": st.names[s], "start": int(a), "end": int(b),
                        "value": _r(np.nanmean(v[a:b + 1])), "unit": st.unit})
    return out


def _wrist_events(f: HandFeatures, h: int, cfg: SegmentationConfig) -> list[dict]:
    """Wrist moves per axis (runs of non-zero direction covering ``min_move_m``) and stillness."""
    fps = f.fps
    T = f.num_frames
    min_len = max(2, int(round(cfg.min_run_s * fps)))
    hold_len = max(min_len, int(round(cfg.hold_min_s * fps)))
    hand = HANDS[h]
    moving = np.zeros(T, bool)
    out = []
    for a, axis in enumerate(AXES):
        runs = smooth_runs(runs_of(f.wrist_direction[:, h, a]), min_len, ordinal=True)
        for s, i, j in runs:
            if s == 0:
                continue
            disp = float(f.wrist[j, h, a] - f.wrist[i, h, a])
            if abs(disp) < cfg.min_move_m or np.sign(disp) != s:
                continue
            moving[i:j + 1] = True
            out.append({"feature": "wrist_motion", "hand": hand, "type": "move",
                        "directions": [WRIST_DIRECTIONS[axis][s + 1]], "start": i, "end": j})
    still = runs_of(~moving)
    for s, i, j in still:
        if not s:
            continue
        if i == 0 and j == T - 1:
            out.append({"feature": "wrist_motion", "hand": hand, "type": "constant", "state": "still",
                        "directions": ["still"], "start": 0, "end": T - 1,
                        "value": _r(f.wrist_speed[:, h].mean()), "unit": "m/s"})
        elif j - i + 1 >= hold_len:
            out.append({"feature": "wrist_motion", "hand": hand, "type": "hold", "state": "still",
                        "directions": ["still"], "start": i, "end": j,
                        "value": _r(f.wrist_speed[i:j + 1, h].mean()), "unit": "m/s"})
    return out


def _turn_events(f: HandFeatures, h: int, cfg: SegmentationConfig) -> list[dict]:
    """Turns of the hand (runs of turning through at least ``min_turn_deg``) that are not part of
    an oscillation."""
    fps = f.fps
    min_len = max(2, int(round(cfg.min_run_s * fps)))
    out = []
    osc = [o for o in f.oscillations if o.hand == h and o.kind == "rotation"]
    for s, i, j in smooth_runs(runs_of(f.turn_state[:, h]), min_len):
        if s != 1:
            continue
        if any(min(j, o.end) - max(i, o.start) + 1 >= 0.5 * (j - i + 1) for o in osc):
            continue
        rel = f.palm_axes[j, h] @ f.palm_axes[i, h].T
        vec = _rotation_log(rel[None])[0]
        ang = float(np.degrees(np.linalg.norm(vec)))
        if ang < cfg.min_turn_deg:
            continue
        speed = float(f.turn_speed[i:j + 1, h].mean())
        out.append({"feature": "wrist_rotation", "hand": HANDS[h], "type": "turn", "axis": AXES[int(np.argmax(np.abs(vec)))],
                    "start": i, "end": j, "magnitude": _r(ang), "unit": "deg", "speed": _r(speed),
                    "pace": _pace(speed, cfg.pace_turn)})
    return out


def _finish_move(e: dict, f: HandFeatures, cfg: SegmentationConfig) -> dict:
    h, i, j = HANDS.index(e["hand"]), e["start"], e["end"]
    disp = f.wrist[j, h] - f.wrist[i, h]
    dur = max(j - i, 1) / f.fps
    speed = float(f.wrist_speed[i:j + 1, h].mean())
    e.update(magnitude=_r(np.linalg.norm(disp)), unit="m", speed=_r(speed),
             peak_speed=_r(f.wrist_speed[i:j + 1, h].max()), pace=_pace(speed, cfg.pace_wrist))
    order = ["right", "left", "up", "down", "forward", "backward"]
    e["directions"] = sorted(e["directions"], key=order.index)
    _ = dur
    return e


# --- grouping ----------------------------------------------------------------------------------

_GROUP_LIST = ("fingers", "pairs", "directions")


def _group_key(e: dict) -> tuple:
    return (e["feature"], e["hand"], e["type"], e.get("from"), e.get("to"), e.get("state"),
            e.get("target"), e.get("axis"), e.get("kind"))


def _overlaps(a: dict, b: dict) -> bool:
    inter = min(a["end"], b["end"]) - max(a["start"], b["start"]) + 1
    shorter = min(a["end"] - a["start"], b["end"] - b["start"]) + 1
    return inter >= 0.5 * shorter


def group_events(events: list[dict]) -> list[dict]:
    """Merge same-kind events with overlapping spans; list fields are united, values averaged."""
    buckets: dict[tuple, list[list[dict]]] = {}
    for e in sorted(events, key=lambda e: (e["start"], e["end"])):
        groups = buckets.setdefault(_group_key(e), [])
        for g in groups:
            if any(_overlaps(e, x) for x in g):
                g.append(e)
                break
        else:
            groups.append([e])
    out = []
    for groups in buckets.values():
        for g in groups:
            e = dict(g[0])
            if len(g) > 1:
                e["start"] = min(x["start"] for x in g)
                e["end"] = max(x["end"] for x in g)
                for k in _GROUP_LIST:
                    if k in e:
                        items = []
                        for x in g:
                            items += [i for i in x[k] if i not in items]
                        e[k] = items
                for k in ("value_from", "value_to", "value", "magnitude", "speed"):
                    if k in e:
                        e[k] = _r(np.mean([x[k] for x in g]))
            out.append(e)
    return out


def _sort_lists(e: dict) -> dict:
    if "fingers" in e:
        e["fingers"] = sorted(e["fingers"], key=FINGERS.index)
    if "pairs" in e:
        e["pairs"] = sorted(e["pairs"], key=lambda p: (FINGERS.index(p[0]), FINGERS.index(p[1])))
    return e


# --- the whole clip ------------------------------------------------------------------------------

def _streams(f: HandFeatures) -> list[_Stream]:
    cfg = DEFAULT_CONFIG
    out = []
    for h, hand in enumerate(HANDS):
        for k, finger in enumerate(FINGERS):
            out.append(_Stream("finger_flexion", hand, f.flexion[:, h, k], f.flexion_state[:, h, k],
                               FLEXION_STATES, "deg", cfg.pace_deg, cfg.moving_deg, extra={"fingers": [finger]}))
        for k, pair in enumerate(SPACING_PAIRS):
            out.append(_Stream("finger_spacing", hand, f.spacing[:, h, k], f.spacing_state[:, h, k],
                               SPACING_STATES, "deg", cfg.pace_spacing, cfg.moving_deg,
                               extra={"pairs": [list(pair)]}))
        for k, pair in enumerate(TIP_PAIRS):
            if pair[0] != "thumb":
                continue
            out.append(_Stream("fingertip_contact", hand, f.tip_within[:, h, k], f.tip_within_state[:, h, k],
                               CONTACT_STATES, "m", cfg.pace_m, cfg.moving_m, null=1, extra={"pairs": [list(pair)]}))
        for k, finger in enumerate(FINGERS):
            out.append(_Stream("fingertip_palm", hand, f.tip_palm[:, h, k], f.tip_palm_state[:, h, k],
                               TIP_PALM_STATES, "m", cfg.pace_m, cfg.moving_m, null=2,
                               extra={"fingers": [finger], "target": f"{HANDS[1 - h]}_palm"}))
    for i, fl in enumerate(FINGERS):
        for j, fr in enumerate(FINGERS):
            out.append(_Stream("fingertip_contact_across", "both", f.tip_across[:, i, j], f.tip_across_state[:, i, j],
                               CONTACT_STATES, "m", cfg.pace_m, cfg.moving_m, null=1, extra={"pairs": [[fl, fr]]}))
    out.append(_Stream("palm_proximity", "both", f.palm_gap, f.palm_gap_state, PALM_PROXIMITY_STATES, "m",
                       cfg.pace_m, cfg.moving_m, null=2))
    out.append(_Stream("palm_orientation", "both", f.palm_angle, f.palm_orientation, PALM_ORIENTATION_STATES,
                       "deg", cfg.pace_deg, cfg.moving_deg, ordinal=False))
    out.append(_Stream("hand_proximity", "both", f.hand_gap, f.hand_gap_state, HAND_PROXIMITY_STATES, "m",
                       cfg.pace_m, cfg.moving_m, null=2))
    for a, axis in enumerate(AXES):
        out.append(_Stream("relative_position", "both", f.palm_offset[:, a], f.palm_offset_state[:, a],
                           OFFSET_STATES[axis], "m", cfg.pace_m, cfg.moving_m, extra={"axis": axis}))
    return out


def segment_events(f: HandFeatures, cfg: SegmentationConfig = DEFAULT_CONFIG) -> list[dict]:
    """Descriptors -> grouped events (dicts of the JSON schema, without id/seconds), sorted by start."""
    events = []
    for st in _streams(f):
        events += stream_events(st, f.fps, cfg)
    for h in range(2):
        events += _wrist_events(f, h, cfg)
        events += _turn_events(f, h, cfg)
    events = group_events(events)
    events = [_finish_move(e, f, cfg) if e["type"] == "move" else e for e in events]
    for o in f.oscillations:
        ev = {"feature": "wrist_oscillation", "hand": HANDS[o.hand], "type": "oscillation", "kind": o.kind,
              "axis": o.axis, "start": o.start, "end": o.end, "swings": o.swings,
              "magnitude": _r(o.amplitude), "unit": "m" if o.kind == "translation" else "deg",
              "frequency": _r(o.frequency, 3), "speed": _r(o.frequency, 3),
              "pace": _pace(o.frequency, cfg.pace_osc_hz)}
        events.append(ev)
    order = {k: i for i, k in enumerate(("wrist_oscillation", "wrist_motion", "wrist_rotation", "palm_proximity", "palm_orientation",
                                          "fingertip_contact_across", "fingertip_palm", "hand_proximity",
                                          "fingertip_contact", "finger_flexion", "finger_spacing",
                                          "relative_position"))}
    events = [_sort_lists(e) for e in events]
    events.sort(key=lambda e: (e["start"], order[e["feature"]], e["hand"], e["end"]))
    return events


def events_to_json(clip_or_features, cfg: SegmentationConfig = DEFAULT_CONFIG) -> dict:
    """A Clip (or precomputed HandFeatures) -> the events document of the module docstring."""
    f = clip_or_features if isinstance(clip_or_features, HandFeatures) else kinematic_features(clip_or_features)
    events = segment_events(f, cfg)
    fps = f.fps
    for i, e in enumerate(events):
        e["id"] = i
        e["start_s"] = _r(e["start"] / fps, 3)
        e["end_s"] = _r(e["end"] / fps, 3)
    counts: dict[str, int] = {}
    for e in events:
        counts[e["feature"]] = counts.get(e["feature"], 0) + 1
    contact = ((f.tip_across_state == 0).any(axis=(1, 2)) | (f.tip_palm_state == 0).any(axis=(1, 2))
               | (f.palm_gap_state == 0) | (f.hand_gap_state == 0))
    summary = {"event_counts": counts, "contact_ratio": _r(contact.mean(), 3)}
    for hand in HANDS:
        summary[hand] = {
            "moves": any(e["hand"] == hand and e["type"] in ("move", "oscillation", "turn") for e in events),
            "fingers_move": any(e["hand"] == hand and e["type"] == "change" and e["feature"] in
                                ("finger_flexion", "finger_spacing", "fingertip_contact") for e in events)}
    return {"version": EVENTS_VERSION, "fps": fps, "frames": f.num_frames, "duration_s": _r(f.num_frames / fps, 3),
            "events": events, "summary": summary}
