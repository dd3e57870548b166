"""Captions from kinematic events: left-hand, right-hand and whole-motion texts at five levels of
detail (HandX), plus high-level action texts (CLUTCH) when action labels are given.

Every clause is rendered from one grouped event of ``engine.motion.events`` (or from a given
action label), so a caption never says more than the measured features: no contact unless a
contact event exists, no motion unless a change/move/oscillation event exists, "stays still"
only when the wrist is measured still and no finger changes. Wording is drawn from
``engine.data.phrases`` with ``random.Random(seed)``: deterministic per seed, varied across seeds.

Levels: 1 terse (the most salient claim per text); 2 the main 2-3 claims; 3 the main events in
order with speed; 4 more events with rough timing; 5 the events (up to 10 per hand, 14 for the
whole motion, by salience) with time spans in seconds, speed and size.

    caption_clip(clip, level=3, seed=0, actions=None) -> {"text", "left", "right", "action"}
    caption_levels(clip, seed=0, actions=None) -> [5 such dicts], levels 1..5
    caption_events(events_doc, level, seed, actions=None)   # from a stored events JSON

``actions``: labels as strings ("clap", "pinch_index", "count_3") or dicts with ``action`` (or
``label``), optional ``hands``/``hand`` ("left", "right", "both"), ``start_frame``/``end_frame``
(or ``start``/``end``) and ``params`` (the synthetic generator's label dicts work as they are).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Callable

from engine.data import phrases as P
from engine.hands.skeleton import FINGERS, HANDS

LEVELS = (1, 2, 3, 4, 5)
# how many items each text gets per level (hand texts; interaction; whole-motion hands)
_K_HAND = {1: 1, 2: 2, 3: 3, 4: 5, 5: 10}  # level 5 is capped so a text stays under ~250 words


# --- grammar helpers ---------------------------------------------------------------------------

_DOUBLE = {"tap", "drop", "flap", "clap", "grip", "rub", "slip", "snap", "stop", "swap", "dip", "tip", "shut",
           "set", "spin", "pat", "bob", "nod", "hug", "jab", "wag", "trim", "strum", "drum", "get", "let", "put"}
_IRREGULAR_3SG = {"do": "does", "go": "goes", "have": "has", "be": "is"}


def third_person(verb: str) -> str:
    """Base verb -> 3rd person singular present ("curl" -> "curls", "go" -> "goes")."""
    head, sep, last = verb.rpartition("-")
    w = last
    if w in _IRREGULAR_3SG:
        out = _IRREGULAR_3SG[w]
    elif re.search(r"(s|sh|ch|x|z|o)$", w):
        out = w + "es"
    elif re.search(r"[^aeiou]y$", w):
        out = w[:-1] + "ies"
    else:
        out = w + "s"
    return head + sep + out


def gerund(verb: str) -> str:
    """Base verb -> -ing form ("rise" -> "rising", "tap" -> "tapping", "lie" -> "lying")."""
    head, sep, w = verb.rpartition("-")
    if w.endswith("ie"):
        out = w[:-2] + "ying"
    elif w.endswith("e") and not w.endswith(("ee", "ye", "oe")) and w != "be":
        out = w[:-1] + "ing"
    elif w in _DOUBLE:
        out = w + w[-1] + "ing"
    else:
        out = w + "ing"
    return head + sep + out


def conjugate(vp: str, form: str) -> str:
    """A base-form verb phrase (verb first) -> form "3sg", "pl" (base) or "ing". Phrases joined
    with " && " are coordinated verbs, each conjugated ("stay still && keep ..." -> "stays still
    and keeps ...")."""
    if " && " in vp:
        return " and ".join(conjugate(part, form) for part in vp.split(" && "))
    verb, _, rest = vp.partition(" ")
    v = {"3sg": third_person, "ing": gerund, "pl": lambda x: x}[form](verb)
    return f"{v} {rest}".strip()


def join_and(items: list[str]) -> str:
    """["a"] -> "a"; ["a", "b"] -> "a and b"; ["a", "b", "c"] -> "a, b and c"."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def sentence(text: str) -> str:
    """Capitalise the first letter, tidy spaces and punctuation, end with one full stop."""
    t = re.sub(r"\s+", " ", text).strip()
    t = re.sub(r"\s+([,.])", r"\1", t)
    t = re.sub(r",\s*,", ",", t)
    if not t:
        return ""
    t = t[0].upper() + t[1:]
    return t if t.endswith((".", "!", "?")) else t + "."


_PLURALISE = [(r"\ba tight fist\b", "tight fists"), (r"\ba fist\b", "fists"), (r"\bthe fist\b", "their fists"),
              (r"\ba pointing shape\b", "pointing shapes"), (r"\ba pointing gesture\b", "pointing gestures"),
              (r"\ba flat hand\b", "flat hands"), (r"\ba flat, open hand\b", "flat, open hands"),
              (r"\bthe hand\b", "the hands"), (r"\bthe wrist\b", "the wrists"), (r"\bthe palm\b", "the palms"),
              (r"\bthe index finger\b", "the index fingers"), (r"\bthe thumb\b", "the thumbs"),
              (r"\bits\b", "their"), (r"\bthe pinch\b", "the pinches")]


def pluralise_owner(vp: str) -> str:
    """A hand-subject verb phrase -> the same for a "both hands" subject (its -> their, a fist -> fists)."""
    for pat, rep in _PLURALISE:
        vp = re.sub(pat, rep, vp)
    return vp


def finger_np(fingers: list[str], owner: str, rng: random.Random) -> str:
    """Fingers (thumb..pinky order) with an owner ("its", "their", "the") -> a noun phrase."""
    fs = [f for f in FINGERS if f in fingers]
    plural_owner = owner == "their"
    if len(fs) == 5:
        return rng.choice(P.ALL_FIVE).format(owner=owner)
    if fs == ["index", "middle", "ring", "pinky"]:
        return rng.choice(P.FOUR).format(owner=owner)
    if len(fs) == 1:
        noun = rng.choice(P.FINGER_NOUNS[fs[0]])
        return f"{owner} {noun}s" if plural_owner else f"{owner} {noun}"
    names = [P.FINGER_ADJ[f] for f in fs if f != "thumb"]
    tail = join_and(names) + (" fingers" if len(names) > 1 or plural_owner else " finger")
    if "thumb" in fs:
        thumb = "thumbs" if plural_owner else "thumb"
        if len(names) == 1 and not plural_owner:
            return f"{owner} thumb and {names[0]} finger"
        if len(names) > 1:
            return f"{owner} {thumb}, {join_and(names)} fingers"
        return f"{owner} {thumb} and {names[0]} fingers"
    return f"{owner} {tail}"


def tip_np(fingers: list[str], rng: random.Random, owner: str = "the") -> str:
    """Fingertips -> "the index fingertip" / "the index and middle fingertips" / "the thumb tip"."""
    fs = [f for f in FINGERS if f in fingers]
    if len(fs) == 5:
        return f"all five fingertips" if owner == "the" else f"all {owner} fingertips"
    if len(fs) == 1 and fs[0] == "thumb":
        return f"{owner} thumb tip" if rng.random() < 0.5 else f"the tip of {owner} thumb"
    if len(fs) == 1:
        return f"{owner} {P.FINGER_ADJ[fs[0]]} fingertip" if rng.random() < 0.6 else \
            f"the tip of {owner} {rng.choice(P.FINGER_NOUNS[fs[0]])}"
    return f"{owner} {join_and([P.FINGER_ADJ[f] for f in fs])} fingertips"


def _seconds(x: float) -> str:
    return f"{x:.1f}"


# --- items: one renderable claim per (group of) event(s) ----------------------------------------

@dataclass
class Item:
    """A claim about one hand (verb phrase, the hand is the subject) or about both (a clause)."""

    channel: str  # "left" | "right" | "both"
    start: int
    end: int
    salience: float
    kind: str  # what it says, for matching the two hands
    render: Callable  # (rng, owner) -> base-form VP (hand items) or clause (both items)
    pace: str | None = None
    hold: bool = False
    detail: Callable | None = None  # (rng) -> numbers for level 5 ("by about 80 degrees")
    events: list = field(default_factory=list)


class _Ctx:
    """What the renderers need to know about the clip beyond one event."""

    def __init__(self, doc: dict):
        self.doc = doc
        self.T = int(doc["frames"])
        self.fps = float(doc["fps"])
        self.events = doc["events"]
        self.flex = {h: self._flexion_states(h) for h in HANDS}

    def _flexion_states(self, hand: str) -> list[list[str | None]]:
        """Per frame, per finger (thumb..pinky) flexion state name, rebuilt from the events."""
        T = self.T
        st: list[list[str | None]] = [[None] * 5 for _ in range(T)]
        for e in self.events:
            if e["feature"] != "finger_flexion" or e["hand"] != hand:
                continue
            for f in e["fingers"]:
                k = FINGERS.index(f)
                if e["type"] in ("hold", "constant"):
                    for t in range(e["start"], e["end"] + 1):
                        st[t][k] = e["state"]
                else:
                    for t in range(e["start"], e["end"]):
                        st[t][k] = st[t][k] or e["from"]
                    st[e["end"]][k] = e["to"]
        for k in range(5):  # fill gaps from the nearest known state before (else after)
            last = None
            for t in range(T):
                last = st[t][k] = st[t][k] or last
            nxt = None
            for t in range(T - 1, -1, -1):
                nxt = st[t][k] = st[t][k] or nxt
        return st

    def shape_at(self, hand: str, frame: int) -> str | None:
        s = self.flex[hand][min(max(frame, 0), self.T - 1)]
        th, ix, mi, ri, pi = s
        bent = ("partially_bent", "fully_bent")
        if ix == mi == ri == pi == "fully_bent":
            return "fist"
        if all(x == "extended" for x in s):
            return "open"
        if ix == "extended" and mi in bent and ri in bent and pi in bent:
            return "point"
        if ix == mi == "extended" and ri in bent and pi in bent:
            return "two"
        return None

    def rel_time(self, frame: int, rng: random.Random) -> str:
        x = frame / max(self.T - 1, 1)
        for edge, words in P.TIME_BUCKETS:
            if x < edge:
                return rng.choice(words)
        return rng.choice(P.TIME_BUCKETS[-1][1])

    def span(self, it: Item, rng: random.Random) -> str:
        a, b = it.start / self.fps, it.end / self.fps
        if it.hold and it.start == 0 and it.end >= self.T - 1:
            return rng.choice(P.THROUGHOUT)
        if it.hold and it.end >= self.T - 1:
            return rng.choice(P.HOLD_FROM).format(a=_seconds(a)) + " " + rng.choice(P.UNTIL_END)
        if it.end - it.start <= 2:
            return rng.choice(P.AT_FRAMES).format(a=_seconds(a))
        if rng.random() < 0.25 and it.start > 0 and not it.hold:
            return rng.choice(P.AT_FRAMES).format(a=_seconds(a)) + ", " + \
                rng.choice(P.DURATION_FRAMES).format(d=_seconds(b - a))
        return rng.choice(P.SPAN_FRAMES).format(a=_seconds(a), b=_seconds(b))


def _overlap(a, b) -> bool:
    inter = min(a.end, b.end) - max(a.start, b.start) + 1
    return inter >= 0.5 * (min(a.end - a.start, b.end - b.start) + 1)


def _hand_items(ctx: _Ctx, hand: str) -> list[Item]:
    """Every claim about one hand, from its events."""
    evs = [e for e in ctx.events if e["hand"] == hand]
    items: list[Item] = []
    used: set[int] = set()
    flex_changes = [e for e in evs if e["feature"] == "finger_flexion" and e["type"] == "change"]
    turning = any(e["type"] in ("turn", "oscillation") for e in evs)

    # whole-hand shapes reached (or left) by flexion changes
    for e in flex_changes:
        if e["id"] in used:
            continue
        shape_to = ctx.shape_at(hand, e["end"])
        shape_from = ctx.shape_at(hand, e["start"])
        four = [f for f in e["fingers"] if f != "thumb"]
        if shape_to and shape_to != shape_from and (len(e["fingers"]) >= 2 or shape_to in ("point",)):
            group = [x for x in flex_changes if x["id"] not in used and abs(x["end"] - e["end"]) <= ctx.fps * 0.3]
            used.update(x["id"] for x in group)
            start, end = min(x["start"] for x in group), max(x["end"] for x in group)
            mag = max(x["magnitude"] for x in group)
            pace = max(group, key=lambda x: x["magnitude"])["pace"]
            items.append(Item(hand, start, end, 9.0 + mag / 60, f"shape:{shape_to}",
                              lambda rng, owner, s=shape_to: rng.choice(P.SHAPE_VPS[s]), pace,
                              events=[x["id"] for x in group]))
        elif shape_from == "fist" and shape_to != "fist" and len(four) >= 2:
            used.add(e["id"])
            items.append(Item(hand, e["start"], e["end"], 8.0, "unshape:fist",
                              lambda rng, owner: rng.choice(P.SHAPE_FROM_VPS["fist"]), e["pace"], events=[e["id"]]))

    for e in evs:
        if e["id"] in used:
            continue
        f, t = e["feature"], e["type"]
        if f == "finger_flexion" and t == "change":
            key = (e["from"], e["to"])
            if key not in P.FLEX_VPS:
                key = ("bent", e["to"]) if e["to"] == "hyperextended" else (e["from"], "bent")
            fingers = e["fingers"]
            deg = e["magnitude"]
            items.append(Item(hand, e["start"], e["end"], 5.0 + deg / 30 + 0.3 * len(fingers),
                              f"flex:{e['from']}>{e['to']}:{','.join(fingers)}",
                              lambda rng, owner, k=key, fs=fingers: rng.choice(P.FLEX_VPS[k]).format(
                                  fingers=finger_np(fs, owner, rng)), e["pace"],
                              detail=lambda rng, d=deg: rng.choice(["through about {x} degrees", "by roughly {x} degrees",
                                                                    "by about {x}°"]).format(x=int(round(d / 5) * 5)),
                              events=[e["id"]]))
        elif f == "finger_flexion" and t in ("hold", "constant"):
            fingers = e["fingers"]
            state = e["state"]
            if t == "constant" and len(fingers) == 5:
                continue  # folded into the stillness / fingers-unchanged claim below
            shape = ctx.shape_at(hand, (e["start"] + e["end"]) // 2) if len(fingers) >= 4 else None
            if shape in P.SHAPE_HOLD_VPS and len(fingers) >= 4:
                r = (lambda rng, owner, s=shape: rng.choice(P.SHAPE_HOLD_VPS[s]))
                kind = f"holdshape:{shape}"
            else:
                r = (lambda rng, owner, s=state, fs=fingers: rng.choice(P.FLEX_HOLD_VPS[s]).format(
                    fingers=finger_np(fs, owner, rng)))
                kind = f"holdflex:{state}:{','.join(fingers)}"
            items.append(Item(hand, e["start"], e["end"], 1.5 if t == "hold" else 0.8, kind, r, hold=True,
                              events=[e["id"]]))
        elif f == "finger_spacing" and t == "change":
            pairs = e["pairs"]
            opening = e["to"] == "open"
            overlapped = any(min(x["end"], e["end"]) >= max(x["start"], e["start"]) for x in flex_changes)

            def r(rng, owner, pairs=pairs, opening=opening):
                if len(pairs) >= 4:
                    return rng.choice(P.SPREAD_ALL_VPS if opening else P.CLOSE_ALL_VPS).replace("its", owner)
                if len(pairs) == 1:
                    return rng.choice(P.SPREAD_VPS if opening else P.CLOSE_VPS).format(
                        pairs=finger_np(pairs[0], owner, rng))
                gaps = " and between ".join(finger_np(p, owner, rng) for p in pairs)
                return f"{'open' if opening else 'close'} the gaps between {gaps}"
            items.append(Item(hand, e["start"], e["end"], 1.2 if overlapped else 3.0,
                              f"spacing:{e['to']}:{pairs}", r, e["pace"], events=[e["id"]]))
        elif f == "fingertip_contact":
            others = [p[1] for p in e["pairs"]]

            def fill(template, rng, owner, others=others):
                return template.format(thumb=f"{owner} thumb", tip=tip_np(others, rng, owner))
            if t == "change" and e["to"] == "contact":
                items.append(Item(hand, e["start"], e["end"], 9.5, f"pinch:{others}",
                                  lambda rng, owner, fill=fill: fill(rng.choice(P.PINCH_VPS), rng, owner), e["pace"],
                                  events=[e["id"]]))
            elif t == "change":
                items.append(Item(hand, e["start"], e["end"], 6.0, f"release:{others}",
                                  lambda rng, owner, fill=fill: fill(rng.choice(P.RELEASE_VPS), rng, owner), e["pace"],
                                  events=[e["id"]]))
            else:
                items.append(Item(hand, e["start"], e["end"], 6.5 if t == "constant" else 2.0, f"pinchhold:{others}",
                                  lambda rng, owner, fill=fill: fill(rng.choice(P.PINCH_HOLD_VPS), rng, owner),
                                  hold=True, events=[e["id"]]))
        elif f == "wrist_motion" and t == "move":
            dirs = e["directions"]
            axis_of = {"right": "x", "left": "x", "up": "y", "down": "y", "forward": "z", "backward": "z"}
            if any(o["feature"] == "wrist_oscillation" and o["kind"] == "translation" and
                   o["axis"] in {axis_of[d] for d in dirs} and o["start"] <= e["end"] and e["start"] <= o["end"]
                   for o in evs):
                continue
            dist = e["magnitude"]

            def r(rng, owner, dirs=dirs):
                if len(dirs) == 1:
                    return rng.choice(P.MOVE_VPS[dirs[0]])
                words = [P.DIRECTION_WORDS[d] for d in dirs]
                words.sort(key=lambda w: w.startswith("to "))  # "up and to the right"
                return rng.choice(P.MOVE_MULTI_VPS).format(dirs=join_and(words))
            items.append(Item(hand, e["start"], e["end"], 4.0 + 30 * dist, f"move:{','.join(dirs)}", r, e["pace"],
                              detail=lambda rng, d=dist, s=e["speed"]: rng.choice(
                                  ["about {cm} cm", "roughly {cm} cm", "about {cm} cm at {v} m/s",
                                   "some {cm} cm"]).format(cm=max(1, int(round(d * 100))), v=f"{s:.2f}"),
                              events=[e["id"]]))
        elif f == "wrist_oscillation":
            key = (e["kind"], e["axis"])
            swings = int(e["swings"])
            items.append(Item(hand, e["start"], e["end"], 9.0 + 0.2 * swings, f"osc:{key}",
                              lambda rng, owner, k=key: rng.choice(P.OSC_VPS[k]), e["pace"],
                              detail=lambda rng, n=swings, hz=e["frequency"]: (
                                  P.TIMES.get(n, f"{n} times") if rng.random() < 0.6
                                  else f"about {hz:.1f} times a second".replace("1.0 times", "once")),
                              events=[e["id"]]))
        elif f == "wrist_rotation" and t == "turn":
            deg = e["magnitude"]
            items.append(Item(hand, e["start"], e["end"], 4.0 + deg / 30, "turn",
                              lambda rng, owner: rng.choice(P.TURN_VPS).replace("its", owner), e["pace"],
                              detail=lambda rng, d=deg: rng.choice(["through about {x} degrees", "by roughly {x} degrees",
                                                                    "about {x}°"]).format(x=int(round(d / 5) * 5)),
                              events=[e["id"]]))
        elif f == "wrist_motion" and t == "hold" and not turning:
            items.append(Item(hand, e["start"], e["end"], 1.0, "still",
                              lambda rng, owner: rng.choice(P.STILL_VPS), hold=True, events=[e["id"]]))

    # a hand whose wrist is measured still all along
    still = [e for e in evs if e["feature"] == "wrist_motion" and e["type"] == "constant"]
    fingers_const = {e["state"] for e in evs if e["feature"] == "finger_flexion" and e["type"] == "constant"
                     and len(e["fingers"]) == 5}
    finger_changes = [e for e in evs if e["type"] == "change" and e["feature"] in
                      ("finger_flexion", "finger_spacing", "fingertip_contact")]
    if still:
        e = still[0]
        if not finger_changes and not turning:
            state = next(iter(fingers_const)) if len(fingers_const) == 1 else None

            def r(rng, owner, state=state):
                vp = rng.choice(P.STILL_VPS)
                if state in P.NO_FINGER_CHANGE and rng.random() < 0.7:
                    other = [x for x in P.NO_FINGER_CHANGE[state] if x.split()[0] != vp.split()[0]]
                    vp += " && " + rng.choice(other).replace("its", owner)
                return vp
            items.append(Item(hand, 0, ctx.T - 1, 2.0, "still", r, hold=True, events=[e["id"]]))
        else:
            items.append(Item(hand, 0, ctx.T - 1, 0.7, "wriststill",
                              lambda rng, owner: rng.choice(P.STILL_WRIST_VPS), hold=True, events=[e["id"]]))
    elif fingers_const and not finger_changes:
        state = next(iter(fingers_const))
        if state in P.NO_FINGER_CHANGE:
            items.append(Item(hand, 0, ctx.T - 1, 0.9, f"fingersconst:{state}",
                              lambda rng, owner, s=state: rng.choice(P.NO_FINGER_CHANGE[s]), hold=True))
    return items


def _count_phrase(n: int) -> str:
    return P.TIMES.get(n, f"{n} times")


def _both_items(ctx: _Ctx) -> list[Item]:
    """Claims about the two hands together (full clauses)."""
    evs = [e for e in ctx.events if e["hand"] == "both" or e["feature"] == "fingertip_palm"]
    items: list[Item] = []
    orient = [e for e in evs if e["feature"] == "palm_orientation"]

    def orient_at(frame):
        for e in orient:
            if e["start"] <= frame <= e["end"]:
                return e.get("state") or e.get("to")
        return None

    # repeated contacts of one kind are one item with a count
    def contact_item(feature, key_fn, touch, part, hold, base_sal, extra_filter=lambda e: True):
        es = [e for e in evs if e["feature"] == feature and extra_filter(e)]
        groups: dict = {}
        for e in es:
            groups.setdefault(key_fn(e), []).append(e)
        for key, g in groups.items():
            on = [e for e in g if e["type"] == "change" and e["to"] == "contact"]
            off = [e for e in g if e["type"] == "change" and e["from"] == "contact"]
            held = [e for e in g if e["type"] in ("hold", "constant") and e["state"] == "contact"]
            if on:
                episodes = []  # contacts of several pairs at about the same time are one episode
                for x in sorted(on, key=lambda x: x["end"]):
                    if episodes and x["end"] <= episodes[-1]["end"] + 0.25 * ctx.fps:
                        continue
                    episodes.append(x)
                on = episodes
                n = len(on)
                start, end = on[0]["start"], on[-1]["end"]
                items.append(Item("both", start, end, base_sal + 0.3 * n, f"{feature}:{key}",
                                  lambda rng, owner, g=g, n=n, on=on: touch(rng, g, n, on), on[0]["pace"],
                                  detail=(lambda rng, on=on: "at " + join_and([_seconds(x["end"] / ctx.fps) for x in on]) + " s")
                                  if n > 1 else None, events=[x["id"] for x in on + off]))
            elif off:
                items.append(Item("both", off[0]["start"], off[-1]["end"], base_sal - 2, f"{feature}:{key}:off",
                                  lambda rng, owner, g=g: part(rng, g), off[0]["pace"], events=[x["id"] for x in off]))
            for h in held:
                if on and h["type"] == "hold":
                    continue
                items.append(Item("both", h["start"], h["end"], base_sal - 3 if h["type"] == "hold" else base_sal - 1,
                                  f"{feature}:{key}:hold", lambda rng, owner, g=g: hold(rng, g), hold=True,
                                  events=[h["id"]]))

    def palm_touch(rng, g, n, on):
        facing = orient_at(on[0]["end"]) == "facing"
        if not facing:
            base = rng.choice(P.HANDS_TOUCH)
            return base + (" " + _count_phrase(n) if n > 1 else "")
        if n > 1:
            return rng.choice(P.PALM_CONTACT_REPEAT).format(times=_count_phrase(n))
        return rng.choice(P.PALM_CONTACT)

    contact_item("palm_proximity", lambda e: "palms", palm_touch,
                 lambda rng, g: rng.choice(P.PALM_SEPARATE), lambda rng, g: rng.choice(P.PALM_HOLD), 10.0)

    def across_np(rng, pairs):
        if len(pairs) >= 3 and all(a == b for a, b in pairs):
            return rng.choice(P.MATCHING_TIPS)
        if len(pairs) == 1:
            a, b = pairs[0]
            if a == b:
                return rng.choice([f"the two {P.FINGER_ADJ[a]} fingertips", f"both {P.FINGER_ADJ[a]} fingertips"]) \
                    if a != "thumb" else rng.choice(["the two thumb tips", "both thumb tips"])
            return f"the left {P.FINGER_ADJ[a]} fingertip and the right {P.FINGER_ADJ[b]} fingertip".replace(
                "thumb fingertip", "thumb tip")
        return rng.choice(["several fingertips of the two hands", f"{P.NUMBER_WORDS.get(len(pairs), len(pairs))} "
                                                                  f"pairs of fingertips"])

    n_palm = len(items)
    contact_item("fingertip_contact_across", lambda e: "tips",
                 lambda rng, g, n, on: rng.choice(P.TIPS_MEET).format(pairs=across_np(rng, on[0]["pairs"]))
                 + (" " + _count_phrase(n) if n > 1 else ""),
                 lambda rng, g: rng.choice(P.TIPS_PART).format(pairs=across_np(rng, g[0]["pairs"])),
                 lambda rng, g: rng.choice(P.TIPS_HOLD).format(pairs=across_np(rng, g[0]["pairs"])), 9.0)

    for it in items[n_palm:]:
        if any(_overlap(it, p) for p in items[:n_palm]):
            it.salience -= 5.0
    n_palm = len(items)

    def tips_palm_np(rng, e):
        hand, fs = e["hand"], e["fingers"]
        tips = tip_np(fs, rng, f"the {hand}") if len(fs) < 4 else rng.choice(
            [f"the {hand} fingertips", f"the fingertips of the {hand} hand"])
        other = e["target"].split("_")[0]
        palm = rng.choice([f"the {other} palm", f"the palm of the {other} hand"])
        return tips, palm

    def agree(template, tips, palm, singular):
        """"{tips} verb ..." with the verb agreeing with the fingertip subject."""
        head, _, rest = template.partition("{tips} ")
        return head + tips + " " + conjugate(rest, "3sg" if singular else "pl").format(palm=palm)

    def tp(template_list):
        def f(rng, g, *args):
            tips, palm = tips_palm_np(rng, g[0])
            return agree(rng.choice(template_list), tips, palm, len(g[0]["fingers"]) == 1)
        return f

    def tp_touch(rng, g, n, on):
        tips, palm = tips_palm_np(rng, on[0])
        return agree(rng.choice(P.TIP_PALM_TOUCH), tips, palm, len(on[0]["fingers"]) == 1) + \
            (" " + _count_phrase(n) if n > 1 else "")

    contact_item("fingertip_palm", lambda e: e["hand"], tp_touch, tp(P.TIP_PALM_LEAVE), tp(P.TIP_PALM_HOLD), 9.0)
    # the fingertips coming near the other palm without touching it
    for e in evs:
        if e["feature"] == "fingertip_palm" and e["type"] == "change" and e["to"] == "near" and e["from"] == "far":
            if not any(x["feature"] == "fingertip_palm" and x["hand"] == e["hand"] and x.get("to") == "contact"
                       for x in evs):
                items.append(Item("both", e["start"], e["end"], 3.0, f"tipnear:{e['hand']}",
                                  lambda rng, owner, e=e: agree(rng.choice(P.TIP_PALM_NEAR), *tips_palm_np(rng, e),
                                                                len(e["fingers"]) == 1), e["pace"],
                                  events=[e["id"]]))

    specific = [it for it in items]
    slack = int(0.2 * ctx.fps)
    contact_changes = [x for x in evs if x["type"] == "change" and x["feature"] in
                       ("palm_proximity", "fingertip_contact_across", "fingertip_palm")]
    for e in evs:
        f, t = e["feature"], e["type"]
        if f == "hand_proximity" and t == "change" and any(
                x["start"] - slack <= e["end"] and e["start"] <= x["end"] + slack for x in contact_changes):
            continue  # said better by the palm / fingertip contacts around it
        if f == "hand_proximity" and t == "change":
            if e["to"] == "contact":
                items.append(Item("both", e["start"], e["end"], 7.0, "handtouch",
                                  lambda rng, owner: rng.choice(P.HANDS_TOUCH), e["pace"], events=[e["id"]]))
            elif e["to"] == "close" and e["from"] == "apart":
                items.append(Item("both", e["start"], e["end"], 3.0, "handclose",
                                  lambda rng, owner: rng.choice(P.HANDS_CLOSE), e["pace"], events=[e["id"]]))
            elif e["to"] == "apart":
                items.append(Item("both", e["start"], e["end"], 2.5, "handapart",
                                  lambda rng, owner: rng.choice(P.HANDS_APART), e["pace"], events=[e["id"]]))
        elif f == "hand_proximity" and t in ("hold", "constant") and e["state"] == "contact":
            if not any(it.start <= e["end"] and it.end >= e["start"] for it in specific):
                items.append(Item("both", e["start"], e["end"], 5.0, "handhold",
                                  lambda rng, owner: rng.choice(P.HANDS_HOLD), hold=True, events=[e["id"]]))
        elif f == "palm_proximity" and t == "change" and e["from"] == "apart" and e["to"] == "near":
            items.append(Item("both", e["start"], e["end"], 3.0, "palmnear",
                              lambda rng, owner: rng.choice(P.PALM_NEAR), e["pace"], events=[e["id"]]))
        elif f == "palm_proximity" and t == "change" and e["from"] == "near" and e["to"] == "apart":
            items.append(Item("both", e["start"], e["end"], 2.0, "palmaway",
                              lambda rng, owner: rng.choice(P.PALM_AWAY), e["pace"], events=[e["id"]]))
        elif f == "palm_orientation" and t == "change":
            items.append(Item("both", e["start"], e["end"], 3.0, f"turn:{e['to']}",
                              lambda rng, owner, s=e["to"]: rng.choice(P.PALM_TURN).format(
                                  state=rng.choice(P.PALM_ORIENT[s])), e["pace"], events=[e["id"]]))
        elif f == "palm_orientation":
            sal = 2.0 if e["state"] == "facing" else 0.8
            items.append(Item("both", e["start"], e["end"], sal, f"orient:{e['state']}",
                              lambda rng, owner, s=e["state"]: rng.choice(P.PALM_ORIENT[s]), hold=True,
                              events=[e["id"]]))
        elif f == "relative_position" and t == "change":
            key = (e["axis"], e["from"], e["to"])
            if key in P.RELATIVE:
                items.append(Item("both", e["start"], e["end"], 3.5, f"rel:{key}",
                                  lambda rng, owner, k=key: rng.choice(P.RELATIVE[k]), e["pace"], events=[e["id"]]))
        elif f == "relative_position" and (e["axis"], e.get("state")) in P.RELATIVE_HOLD:
            key = (e["axis"], e["state"])
            items.append(Item("both", e["start"], e["end"], 1.5, f"relhold:{key}",
                              lambda rng, owner, k=key: rng.choice(P.RELATIVE_HOLD[k]), hold=True, events=[e["id"]]))
    return items


# --- realisation -----------------------------------------------------------------------------------

def _speed_words(it: Item, level: int, rng: random.Random) -> tuple[str, str]:
    """(before the verb, after the phrase) speed adverbs for this item at this level."""
    if level < 3 or it.pace is None or it.hold or it.kind.startswith(("turn:", "rel:")):
        return "", ""
    adv = rng.choice(P.SPEED_ADVERBS[it.pace])
    if it.kind.startswith("osc:"):
        adv = rng.choice([a for a in P.SPEED_ADVERBS[it.pace] if " " in a])
    if " " not in adv and rng.random() < 0.5 and adv != "fast":
        return adv, ""
    return "", adv


def _decorate(it: Item, vp: str, level: int, ctx: _Ctx, rng: random.Random, form: str) -> str:
    """A base VP -> conjugated, with speed (level >= 3), rough time (4) or span and size (5)."""
    pre, post = _speed_words(it, level, rng)
    out = conjugate(vp, form)
    if pre and form != "ing":
        out = f"{pre} {out}"
    elif pre:
        post = pre
    tail = []
    if level == 5 and it.detail is not None:
        tail.append(it.detail(rng))
    if post:
        tail.append(post)
    if level == 4 and not it.hold:
        tail.append(ctx.rel_time(it.start, rng))
    if level == 5:
        tail.append(ctx.span(it, rng))
    return " ".join([out] + [t for t in tail if t])


def _decorate_clause(it: Item, clause: str, level: int, ctx: _Ctx, rng: random.Random) -> str:
    pre, post = _speed_words(it, level, rng)
    tail = [it.detail(rng)] if level == 5 and it.detail is not None else []
    if pre or post:
        tail.append(pre or post)
    if level == 4 and not it.hold:
        tail.append(ctx.rel_time(it.start, rng))
    if level == 5:
        tail.append(ctx.span(it, rng))
    return " ".join([clause] + [t for t in tail if t])


def _select(items: list[Item], k: int) -> list[Item]:
    chosen = sorted(items, key=lambda it: (-it.salience, it.start, it.kind))[:k]
    return sorted(chosen, key=lambda it: (it.start, -it.salience, it.kind))


def _is_background(it: Item, ctx: _Ctx) -> bool:
    """A state held over the whole clip: said once, after the events, not in their sequence."""
    return it.hold and it.start == 0 and it.end >= ctx.T - 1


def _lower_subject(subj: str) -> str:
    return "the " + subj[4:] if subj.startswith("The ") else subj[0].lower() + subj[1:]


def _hand_text(hand: str, items: list[Item], level: int, ctx: _Ctx, rng: random.Random,
               subject: str | None = None, k: int | None = None) -> str:
    """Sentences about one hand from its most salient items: events in time order, then the
    states held all along."""
    chosen = _select(items, _K_HAND[level] if k is None else k)
    if not chosen:
        return ""
    full = subject or rng.choice(P.HAND_SUBJECTS[hand])
    fore = [it for it in chosen if not _is_background(it, ctx)]
    back = [it for it in chosen if _is_background(it, ctx)]
    per_sentence = 1 if level == 1 else 2
    sentences, i = [], 0
    while i < len(fore):
        group = fore[i:i + per_sentence]
        first = group[0]
        if i == 0:
            text = f"{full} "
        else:
            subj = rng.choice(P.HAND_PRONOUNS + [full, full])
            last = i + len(group) >= len(fore)
            if _overlap(first, fore[i - 1]):
                opener = rng.choice(P.MEANWHILE_SENTENCE)
            else:
                opener = rng.choice(P.FINALLY_SENTENCE if last and len(fore) > 2 else P.THEN_SENTENCE)
            text = f"{opener}, {_lower_subject(subj)} "
        text += _decorate(first, first.render(rng, "its"), level, ctx, rng, "3sg")
        for prev, it in zip(group, group[1:]):
            vp = it.render(rng, "its")
            if _overlap(it, prev):
                if rng.random() < 0.5:
                    text += f" while {_decorate(it, vp, level, ctx, rng, 'ing')}"
                else:
                    text += f", and at the same time it {_decorate(it, vp, level, ctx, rng, '3sg')}"
            else:
                c = rng.random()
                if c < 0.7:
                    text += f"{rng.choice(P.THEN)} {_decorate(it, vp, level, ctx, rng, '3sg')}"
                elif c < 0.85:
                    text += f" before {_decorate(it, vp, level, ctx, rng, 'ing')}"
                else:
                    text += f", after which it {_decorate(it, vp, level, ctx, rng, '3sg')}"
        sentences.append(sentence(text))
        i += len(group)
    if back:
        vps = [_decorate(it, it.render(rng, "its"), min(level, 4), ctx, rng, "3sg") for it in back]
        if fore:
            subj = rng.choice(P.HAND_PRONOUNS + [full])
            tail = rng.choice(P.THROUGHOUT) if level >= 3 else ""
            if rng.random() < 0.5 and tail:
                sentences.append(sentence(f"{tail}, {_lower_subject(subj)} {join_and(vps)}"))
            else:
                sentences.append(sentence(f"{subj} {join_and(vps)} {tail}"))
        else:
            tail = rng.choice(P.THROUGHOUT) if level >= 4 else ""
            sentences.append(sentence(f"{full} {join_and(vps)} {tail}"))
    return " ".join(sentences)


def _both_text(items: list[Item], level: int, ctx: _Ctx, rng: random.Random) -> list[str]:
    """Sentences about the hands together, in time order (states held all along last)."""
    fore = [it for it in items if not _is_background(it, ctx)]
    back = [it for it in items if _is_background(it, ctx)]
    out = []
    for n, it in enumerate(fore):
        clause = _decorate_clause(it, it.render(rng, "their"), level, ctx, rng)
        if n > 0 and rng.random() < 0.6:
            opener = rng.choice(P.MEANWHILE_SENTENCE if _overlap(it, fore[n - 1]) else P.THEN_SENTENCE)
            clause = f"{opener}, {clause}"
        out.append(sentence(clause))
    if back:
        clauses = [it.render(rng, "their") for it in back]
        tail = rng.choice(P.THROUGHOUT) if level >= 4 else ""
        out.append(sentence(f"{join_and(clauses)} {tail}"))
    return out


def _symmetric(left: list[Item], right: list[Item]) -> list[tuple[Item, Item]]:
    """Pairs (left item, right item) that say the same thing over overlapping time."""
    pairs, taken = [], set()
    for a in left:
        for j, b in enumerate(right):
            if j not in taken and a.kind == b.kind and _overlap(a, b):
                pairs.append((a, b))
                taken.add(j)
                break
    return pairs


_K_TEXT = {1: 1, 2: 3, 3: 5, 4: 8, 5: 14}


def _whole_text(left: list[Item], right: list[Item], both: list[Item], level: int, ctx: _Ctx,
                rng: random.Random) -> str:
    """The whole motion: the most salient claims of all three channels; what both hands do alike
    is said once for both."""
    pairs = _symmetric(left, right)
    paired = {id(a) for a, _ in pairs} | {id(b) for _, b in pairs}
    pool = [("both", it, None) for it in both] + [("sym", a, b) for a, b in pairs] + \
           [("left", it, None) for it in left if id(it) not in paired] + \
           [("right", it, None) for it in right if id(it) not in paired]
    pool.sort(key=lambda c: (-(c[1].salience + (0.5 if c[2] else 0.0)), c[1].start, c[1].kind))
    chosen = pool[:_K_TEXT[level]]
    if level == 1 and chosen and chosen[0][0] in ("left", "right"):
        other = "right" if chosen[0][0] == "left" else "left"
        best = next((c for c in pool if c[0] == other), None)
        if best is not None:
            a, b = (chosen[0][1], best[1]) if other == "right" else (best[1], chosen[0][1])
            sa = rng.choice(P.HAND_SUBJECTS["left"][:4])
            sb = _lower_subject(rng.choice(P.HAND_SUBJECTS["right"][:4]))
            joiner = rng.choice([" while", ", and", ", whereas"]) if _overlap(a, b) else \
                rng.choice([", and", ", then", ", after which"])
            return sentence(f"{sa} {_decorate(a, a.render(rng, 'its'), 1, ctx, rng, '3sg')}{joiner} "
                            f"{sb} {_decorate(b, b.render(rng, 'its'), 1, ctx, rng, '3sg')}")
    parts = _both_text(sorted([c[1] for c in chosen if c[0] == "both"], key=lambda it: it.start), level, ctx, rng)
    for _, a, b in sorted([c for c in chosen if c[0] == "sym"], key=lambda c: c[1].start):
        vp = pluralise_owner(a.render(rng, "their"))
        merged = Item("both", min(a.start, b.start), max(a.end, b.end), a.salience, a.kind, a.render, a.pace,
                      a.hold, a.detail)
        body = _decorate(merged, vp, level, ctx, rng, "pl")
        extra = f" {rng.choice(P.TOGETHER)}" if not a.hold and rng.random() < 0.5 else ""
        parts.append(sentence(f"{rng.choice(P.BOTH_SUBJECTS)} {body}{extra}"))
    for hand in HANDS:
        mine = [c[1] for c in chosen if c[0] == hand]
        if mine:
            parts.append(_hand_text(hand, mine, level, ctx, rng, k=len(mine)))
    contact_kinds = ("palm_proximity", "fingertip_contact_across", "fingertip_palm", "handtouch", "handhold")
    if level >= 3 and not any(it.kind.split(":")[0] in contact_kinds for it in both) \
            and ctx.doc.get("summary", {}).get("contact_ratio", 0) == 0:
        parts.append(rng.choice(P.INTERACTION_NONE))
    return " ".join(p for p in parts if p)


# --- action labels ---------------------------------------------------------------------------------

def normalise_actions(actions) -> list[dict]:
    """Labels (str or dict) -> [{"label", "param", "hand", "start", "end"}]; unknown keys are an error."""
    out = []
    for a in actions or []:
        if isinstance(a, str):
            a = {"action": a}
        if not isinstance(a, dict):
            raise ValueError(f"actions must be strings or dicts; got {type(a).__name__}")
        name = a.get("action", a.get("label"))
        if not isinstance(name, str) or not name:
            raise ValueError(f"each action needs a non-empty 'action' (or 'label') string; got {a!r}")
        hand = a.get("hands", a.get("hand"))
        if hand is not None and hand not in ("left", "right", "both"):
            raise ValueError(f"action hand must be 'left', 'right' or 'both'; got {hand!r}")
        params = a.get("params") or {}
        label, param = name.lower().strip(), None
        label = P.ACTION_ALIASES.get(label, label)
        m = re.fullmatch(r"(pinch|count|grasp)_(\w+)", label)
        if m and label not in P.ACTION_PHRASES:
            label, param = m.group(1), m.group(2)
        if label == "count" and param is None and "n" in params:
            param = str(params["n"])
        if label == "grasp" and param is None and "size" in params:
            param = str(params["size"])
        if label in ("mirror", "alternate") and isinstance(params.get("base"), str):
            param = params["base"]
        start = a.get("start_frame", a.get("start"))
        end = a.get("end_frame", a.get("end"))
        out.append({"label": label, "param": param, "hand": hand,
                    "start": None if start is None else int(start), "end": None if end is None else int(end)})
    return sorted(out, key=lambda x: (x["start"] if x["start"] is not None else 0))


def _action_vp(act: dict, rng: random.Random, person: bool, hand: str | None = None) -> str:
    spec = P.ACTION_PHRASES.get(act["label"])
    owner_hand = act["hand"] if act["hand"] in ("left", "right") else None
    if spec is None:  # unknown label: say it as given, nothing more
        words = act["label"].replace("_", " ")
        return rng.choice([f"perform a {words} motion", f"do a {words} gesture", f"make a {words} movement"])
    tpl = rng.choice(spec["person" if person else "hand"])
    param = act["param"]
    fill = {"the_hand": f"their {owner_hand} hand" if owner_hand else rng.choice(["one hand", "a hand"]),
            "finger": param if act["label"] == "pinch" and param in FINGERS else "index",
            "n": P.NUMBER_WORDS.get(int(param), param) if act["label"] == "count" and param and param.isdigit() else "five",
            "size": f"{param} " if act["label"] == "grasp" and param in ("small", "medium", "large") else "",
            "other": f"the {HANDS[1 - HANDS.index(hand)]} hand" if hand in HANDS else "the other hand"}
    if act["label"] == "pinch" and param == "pinky":
        fill["finger"] = "little"
    vp = tpl.format(**fill)
    if fill["n"] == "one":  # "hold up one finger", not "one fingers ... one by one"
        vp = vp.replace("one fingers", "one finger").replace(" one by one", "")
    if act["label"] in ("mirror", "alternate") and param in P.ACTION_PHRASES:
        base = rng.choice(P.ACTION_PHRASES[param]["hand"]).format(**{**fill, "other": "each other"})
        vp = (f"{pluralise_owner(base)} with both hands {'together, mirrored' if act['label'] == 'mirror' else 'in turn'}")
    return vp


def _action_count(act: dict, ctx: _Ctx) -> int:
    """Repetitions the events support for a label (palm contacts for a clap), else 0."""
    if act["label"] != "clap":
        return 0
    lo = act["start"] if act["start"] is not None else 0
    hi = act["end"] if act["end"] is not None else ctx.T - 1
    return sum(1 for e in ctx.events if e["feature"] == "palm_proximity" and e["type"] == "change"
               and e["to"] == "contact" and lo <= e["end"] <= hi)


def _action_span(act: dict, level: int, ctx: _Ctx, rng: random.Random) -> str:
    if act["start"] is None or act["end"] is None:
        return ""
    it = Item("both", act["start"], act["end"], 0, "", None)
    if level == 5:
        return " " + ctx.span(it, rng)
    if level == 4:
        return " " + ctx.rel_time(act["start"], rng)
    return ""


def concurrent(a: dict, b: dict) -> bool:
    """Two one-hand actions on different hands that run together: they overlap for at least half of
    the shorter one (the synthesiser's concurrent pairs start within a quarter of the first's
    duration; sequential actions meet at most in their fades)."""
    if a["hand"] not in HANDS or b["hand"] not in HANDS or a["hand"] == b["hand"]:
        return False
    if None in (a["start"], a["end"], b["start"], b["end"]):
        return False
    overlap = min(a["end"], b["end"]) - max(a["start"], b["start"])
    return overlap >= 0.5 * max(min(a["end"] - a["start"], b["end"] - b["start"]), 1)


def _action_groups(acts: list[dict]) -> list[list[dict]]:
    """Actions in start order -> groups said as one clause: a concurrent pair, or one action."""
    groups: list[list[dict]] = []
    for act in acts:
        if groups and len(groups[-1]) == 1 and concurrent(groups[-1][0], act):
            groups[-1].append(act)
        else:
            groups.append([act])
    return groups


def _pair_clause(a: dict, b: dict, vp_a: str, level: int, ctx: _Ctx, rng: random.Random) -> str:
    """A concurrent pair after a person subject: "plays ... with their right hand while tapping ...
    with their left hand" (``vp_a``: the first one's 3sg phrase with its span)."""
    vp_b = _action_vp(b, rng, person=True)
    span_b = _action_span(b, level, ctx, rng)
    style = rng.randrange(3)
    if style == 0:
        comma = "," if "," in vp_a else ""  # "a pinch ..., thumb to index finger, while ..."
        return f"{vp_a}{comma} {rng.choice(['while', 'all while'])} {conjugate(vp_b, 'ing')}{span_b}"
    if style == 1:
        return f"{vp_a}{rng.choice([', and at the same time', ' and at the same time', ', and meanwhile'])} " \
               f"{conjugate(vp_b, '3sg')}{span_b}"
    return f"{vp_a} as they {conjugate(vp_b, 'pl')}{span_b}"


def _hands_pair_sentence(a: dict, b: dict, level: int, ctx: _Ctx, rng: random.Random) -> str:
    """A concurrent pair with the hands as subjects, as a user types it: "The right hand waves while
    the left hand makes a fist." """
    parts = []
    for act in (a, b):
        subj = rng.choice(P.HAND_SUBJECTS[act["hand"]][:4])
        vp = conjugate(_action_vp(act, rng, person=False, hand=act["hand"]), "3sg")
        parts.append(f"{subj} {vp}{_action_span(act, level, ctx, rng)}")
    joiner = rng.choice([" while", ", while", " as", ", and at the same time", " whereas"])
    return sentence(f"{parts[0]}{joiner} {parts[1][:1].lower()}{parts[1][1:]}")


def action_texts(acts: list[dict], level: int, ctx: _Ctx, rng: random.Random) -> dict:
    """High-level texts: "action" (a person), and per hand the hand-subject version. Actions follow
    one another ("first ..., and then ..."), except a concurrent pair of one-hand actions, which is
    said as happening together ("... while ...")."""
    out = {"action": "", "left": "", "right": ""}
    if not acts:
        return out
    subject = rng.choice(P.PERSON_SUBJECTS)
    groups = _action_groups(acts)
    if any(len(g) == 2 for g in groups) and rng.random() < 0.5:  # either hand's may be said first
        groups = [g[::-1] if len(g) == 2 else g for g in groups]
    clauses = []
    for group in groups:
        act = group[0]
        vp = conjugate(_action_vp(act, rng, person=True), "3sg")
        n = _action_count(act, ctx)
        if n > 1:
            vp += " " + _count_phrase(n)
        vp += _action_span(act, level, ctx, rng)
        clauses.append(vp if len(group) == 1 else _pair_clause(act, group[1], vp, level, ctx, rng))
    if len(groups) == 1 and len(groups[0]) == 2 and rng.random() < 0.5:
        out["action"] = _hands_pair_sentence(*groups[0], level, ctx, rng)
    elif len(clauses) == 1:
        out["action"] = sentence(f"{subject} {clauses[0]}")
    else:
        body = clauses[0] + "".join(f"{rng.choice(P.THEN)} {v}" for v in clauses[1:-1]) + \
            f" and {rng.choice(['then', 'finally'])} {clauses[-1]}"
        out["action"] = sentence(f"{subject} first {body}")
    for hand in HANDS:
        mine = [a for a in acts if a["hand"] in (hand, "both") or
                (a["hand"] is None and P.ACTION_PHRASES.get(a["label"], {}).get("hands") == "two")]
        if not mine:
            continue
        subj = rng.choice(P.HAND_SUBJECTS[hand][:4])
        vps = [conjugate(_action_vp(a, rng, person=False, hand=hand), "3sg") + _action_span(a, level, ctx, rng)
               for a in mine]
        out[hand] = sentence(f"{subj} {join_and(vps) if len(vps) < 3 else ', then '.join(vps)}")
    return out


# --- public API ------------------------------------------------------------------------------------

def _prepare(doc: dict) -> tuple:
    for key in ("frames", "fps", "events"):
        if key not in doc:
            raise ValueError(f"events document is missing {key!r}")
    ctx = _Ctx(doc)
    return ctx, _hand_items(ctx, "left"), _hand_items(ctx, "right"), _both_items(ctx)


def _caption(prep: tuple, level: int, seed: int, acts: list[dict]) -> dict:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}; got {level!r}")
    ctx, left, right, both = prep
    rng = random.Random(int(seed) * 10007 + level)
    act = action_texts(acts, level, ctx, rng)
    texts = {"left": _hand_text("left", left, level, ctx, rng), "right": _hand_text("right", right, level, ctx, rng)}
    whole = _whole_text(left, right, both, level, ctx, rng)
    if level == 1:
        out = {"text": act["action"] or whole, "left": act["left"] or texts["left"],
               "right": act["right"] or texts["right"]}
    else:
        out = {"text": " ".join(t for t in (act["action"], whole) if t),
               "left": " ".join(t for t in (act["left"], texts["left"]) if t),
               "right": " ".join(t for t in (act["right"], texts["right"]) if t)}
    out["action"] = act["action"]
    return out


def caption_events(doc: dict, level: int = 3, seed: int = 0, actions=None) -> dict:
    """Events JSON (``engine.motion.events.events_to_json``) -> {"text", "left", "right", "action"}."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}; got {level!r}")
    return _caption(_prepare(doc), level, seed, normalise_actions(actions))


def caption_clip(clip, level: int = 3, seed: int = 0, actions=None) -> dict:
    """A Clip -> captions at one level (features and events are computed here)."""
    from engine.motion.events import events_to_json
    return caption_events(events_to_json(clip), level, seed, actions)


def caption_levels(clip_or_doc, seed: int = 0, actions=None) -> list[dict]:
    """Captions at all five levels (index 0 = level 1) for a Clip or an events document."""
    if isinstance(clip_or_doc, dict):
        doc = clip_or_doc
    else:
        from engine.motion.events import events_to_json
        doc = events_to_json(clip_or_doc)
    prep, acts = _prepare(doc), normalise_actions(actions)
    return [_caption(prep, lv, seed, acts) for lv in LEVELS]
