"""Named pinches: when the prompt says the thumb meets a fingertip, make the generated clip do it;
when a caption says so, check it against the clip.

The diffusion model often heads for a named pinch and stops a centimetre or two short, or closes the
wrong finger (ring vs little; ``bench/pinch_probe.py``). An animator who typed "pinch the thumb and
ring finger" wants the tips to touch, the way a body tool locks a planted foot. After sampling,
``close_pinches`` finds the stretch where the model brings that thumb and fingertip closest and
bends the hand's finger chains, in their anatomical (twist, spread, bend) frames and inside the
joint limits, until the tips meet there, while every other fingertip stays on its side of HandX's
2 cm contact line as sampled; the wrists, the other hand and every kept (constrained) channel are
untouched. ``ground_pinches`` does the reverse for captions: a pinch the text names is checked
against the clip's own thumb contacts and its finger (or hand) corrected.

    named_pinches(prompt) -> [Pinch(hand, finger, both)]   # hand: 0 left, 1 right, None = unsaid
    close_pinches(x, betas, hands, pinches, keep) -> (x', [report per pinch])
    ground_pinches(caption, joints) -> (caption', [change])

``x`` is the raw representation (T, 2, 99). Pure functions; no Qt.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from engine.diffusion.representation import NUM_ROT_CHANNELS, ROT_DIM, tensor_to_params
from engine.hands.skeleton import FINGER_JOINTS, FINGERS, HANDS as HANDS_WORD
from engine.motion.rotations import axis_angle_to_rot6d

TOUCH_GAP = 0.008  # m between the thumb tip and the fingertip keypoints at a closed pinch (tips' pads touch)
CLOSED = 0.015  # a named pinch whose closest approach is already this near is left as it is
CONTACT = 0.02  # HandX's contact distance: the other fingertips stay on their side of it ...
SIDE_GAP = 0.025  # ... those apart at least this far (or as far as they were) ...
TOUCH_KEEP = 0.016  # ... those touching within this (or as near as they were)
EPISODE_BAND = 0.01  # frames within this much (m) of the closest approach form the pinch episode ...
RAMP = 6  # ... reached and left over this many frames
ITERS = 50  # Adam steps at most (about 3 ms each); it stops once the whole episode is within 2 mm of
# TOUCH_GAP and the other fingertips within 2 mm of their side of the contact line
_LIMIT_MARGIN = np.radians(2.0)

# a finger word counts when it names a finger ("ring finger", "index and middle fingertips", "pinky"),
# not a shape ("forms a ring") or a place ("in the middle")
_NAMED = r"(?=\s*(?:finger|fingertip|tip|and\b|or\b|,|/))"
_FINGER_WORDS = {"index": rf"\bindex\b{_NAMED}|\bfore-?finger|\bpointer finger",
                 "middle": rf"\bmiddle\b{_NAMED}",
                 "ring": rf"\bring\b{_NAMED}",
                 "pinky": rf"\blittle\b{_NAMED}|\bpink(?:y|ie)\b"}
_THUMB = re.compile(r"\bthumb(?!s\b)")  # one thumb; "thumbs up" and "the thumbs" are not a pinch
_NEGATION = re.compile(r"\b(?:without|not|never|no longer|apart from)\b|n't\b")
_CONTACT = re.compile(r"\b(?:pinch\w*|touch\w*|tap\w*|meet\w*|join\w*|press\w*|together|onto|against|"
                      r"release\w*|separat\w*|part\b|pull\w* .*away|keep\w*|hold\w*|(?:ring|circle|loop) with)")
# gestures that are a thumb-index contact by what they are: a flick (the thumb holds the fingertip
# back; 96 % of the corpus's flicks touch the index) and writing with a pen (the pen between thumb
# and index; 100 %)
_THUMB_INDEX_GESTURE = re.compile(r"\bflick(?:s|ing|ed)?\b|\bwrit(?:e|es|ing)\b.*\bpen\b|\bmimes? writing\b|"
                                  r"\bmiming writing\b")
_PINCH_ALONE = re.compile(r"\bpinch(?:es|ing|ed)?\b")
_OK = re.compile(r"\b(?:ok|okay)\b(?: sign| gesture)?")
_WINDOW = 6  # words after "thumb" that may name its fingertip
_CLAUSE = re.compile(r"[;.]| while | whilst | as | then | meanwhile | finally | after that | afterwards "
                     r"| and (?:then|finally|after that|afterwards)\b")
_HAND = re.compile(r"\b(left|right)\b|\b(both|each|either) hand|\bboth\b|\btwo hands\b")


@dataclass(frozen=True)
class Pinch:
    hand: int | None  # 0 left, 1 right; None: the prompt does not say which hand
    finger: int  # 1 index .. 4 little (skeleton.FINGERS order; 0 is the thumb)
    both: bool = False  # "with both hands": each hand pinches


def _fingers_in(clause: str) -> list[int]:
    return [i + 1 for i, name in enumerate(("index", "middle", "ring", "pinky")) if re.search(_FINGER_WORDS[name], clause)]


def _clause_pinches(clause: str) -> list[int]:
    """Fingers (1..4) whose tip the clause says the thumb touches; [] when it says none."""
    if _NEGATION.search(clause):
        return []
    if _OK.search(clause) or _THUMB_INDEX_GESTURE.search(clause):
        return [1]
    thumb = _THUMB.search(clause)
    if thumb and _CONTACT.search(clause):
        # the fingers said right after the thumb ("the thumb and ring fingertip together and touches
        # its index fingertip to ..." pinches the ring finger only); "to each fingertip in turn" is
        # left alone: in a 2 s take the thumb reaches only some of them
        near = " ".join(clause[thumb.end():].split()[:_WINDOW])
        return _fingers_in(near) or ([1] if _PINCH_ALONE.search(clause) else [])
    if _PINCH_ALONE.search(clause):
        return _fingers_in(clause) or [1]  # a bare "pinch" is thumb to index
    return []


def _hand_of(text: str) -> tuple[int | None, bool]:
    """The one hand a text names (0 / 1), or (None, True) for both hands, (None, False) for none."""
    sides, both = set(), False
    for m in _HAND.finditer(text):
        if m.group(1):
            sides.add(0 if m.group(1) == "left" else 1)
        else:
            both = True
    if both or len(sides) == 2:
        return None, True
    return (sides.pop(), False) if sides else (None, False)


def named_pinches(prompt) -> list[Pinch]:
    """The thumb-to-fingertip contacts a prompt asks for. ``prompt``: a Prompt (text, left, right) or
    a string. A contact said in the left/right text belongs to that hand. The whole-motion text is
    read when those say none: a contact there belongs to the hand its clause (else the whole text,
    if it names exactly one) names; "both hands" gives both; otherwise the hand is left open (None)
    and chosen by the motion."""
    if isinstance(prompt, str):
        prompt = _Fields(prompt, "", "")
    out = _pinches_in([("left", prompt.left), ("right", prompt.right)])
    return out or _pinches_in([("text", prompt.text)])


@dataclass(frozen=True)
class _Fields:
    text: str
    left: str
    right: str


def _pinches_in(fields: list[tuple[str, str]]) -> list[Pinch]:
    out: list[Pinch] = []
    for name, text in fields:
        text = (text or "").lower()
        if not text.strip():
            continue
        whole_hand, whole_both = _hand_of(text)
        for clause in _CLAUSE.split(text):
            fingers = _clause_pinches(clause)
            if not fingers:
                continue
            if name in ("left", "right"):
                hand, both = (0 if name == "left" else 1), False
            else:
                hand, both = _hand_of(clause)
                if hand is None and not both:
                    hand, both = whole_hand, whole_both
            for f in fingers:
                p = Pinch(hand, f, both)
                if p not in out:
                    out.append(p)
    return out


def _chain(finger: int) -> list[int]:
    """hand_pose joint indices (0..14) of a finger's three joints; FINGERS order (0 thumb)."""
    return [j - 1 for j in FINGER_JOINTS[FINGERS[finger]][:3]]


def episode_weights(gap: np.ndarray, band: float = EPISODE_BAND, ramp: int = RAMP) -> np.ndarray:
    """(T,) thumb-fingertip gap -> (T,) weight in [0, 1]: 1 on the contiguous stretch around the
    closest approach where the gap is within ``band`` of its minimum, smoothly 0 ``ramp`` frames
    beyond it."""
    T = len(gap)
    t0 = int(np.argmin(gap))
    near = gap <= gap[t0] + band
    a = t0
    while a > 0 and near[a - 1]:
        a -= 1
    b = t0
    while b < T - 1 and near[b + 1]:
        b += 1
    t = np.arange(T)
    d = np.maximum(np.maximum(a - t, t - b), 0).astype(np.float64)  # frames outside [a, b]
    u = np.clip(1.0 - d / (ramp + 1), 0.0, 1.0)
    return u * u * (3 - 2 * u)  # smoothstep


def chain_tips(angles: torch.Tensor, frames: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """Fingertips in the wrist's frame from the chain joints alone (the gap between two tips of one
    hand does not depend on the wrist's rotation or position). angles (..., C, 3, 3): C chains x 3
    joints x anatomical (twist, spread, bend); frames (C, 3, 3, 3) their anatomical frames; rest
    (C, 4, 3): the chains' three rest joints and rest tip -> (..., C, 3). A rigid tip on the distal
    joint (the default hand skins its tips 98-100 % to it; ``close_pinches`` checks with full FK)."""
    from engine.motion.rotations import axis_angle_to_matrix
    R = axis_angle_to_matrix((frames @ angles[..., None])[..., 0])  # (..., C, 3, 3, 3)
    v = rest[:, 3] - rest[:, 2]
    for k in (2, 1, 0):
        v = (R[..., k, :, :] @ v[..., None])[..., 0]
        v = v + (rest[:, k] - rest[:, k - 1] if k else rest[:, 0])
    return v


def close_pinches(x: torch.Tensor, betas: np.ndarray, hands, pinches: list[Pinch],
                  keep: torch.Tensor | None = None, iters: int = ITERS) -> tuple[torch.Tensor, list[dict]]:
    """Make each named pinch close (see module doc). x (T, 2, 99) raw; betas (2, 10); hands: a
    TwoHands; keep (T, 2, 99) bool or None. Returns the new x (a copy; x itself is not changed) and
    one report per pinch and hand: {"hand", "finger", "gap_before_mm", "gap_after_mm", "action"};
    action: "closed", "nearer" (the joint limits stop the tips short), "already closed" or "kept"
    (every frame of those joints is constrained)."""
    from engine.hands.anatomy import anatomical_angles, frames_for, from_anatomical, limits_radians, rest_keypoints
    x = x.detach().clone()
    if not pinches:
        return x, []
    T = x.shape[0]
    dev = x.device
    go, hp, tr = (p.double().cpu() for p in tensor_to_params(x))
    lo, hi = (v.double() for v in limits_radians())
    reports = []

    def all_gaps(h: int) -> torch.Tensor:  # (T, 4): full FK of one hand, thumb tip to each fingertip
        model = hands.hand(h)
        cast = dict(dtype=model_dtype(model), device=hands.device)
        b = torch.as_tensor(np.asarray(betas[h], np.float32))[None].expand(T, -1)
        with torch.no_grad():
            kp = model.keypoints(b.to(**cast), go[:, h].to(**cast), hp[:, h].to(**cast), tr[:, h].to(**cast))
        tips = kp[:, 16:].double().cpu()
        return (tips[:, 1:] - tips[:, :1]).norm(dim=-1)

    gaps = {h: all_gaps(h) for h in (0, 1)}
    todo: list[tuple[int, int]] = []  # (hand, finger); an unsaid hand: the one already nearer that pinch
    for p in pinches:
        hs = [0, 1] if p.both else [p.hand] if p.hand is not None else \
            [min((0, 1), key=lambda h: float(gaps[h][:, p.finger - 1].min()))]
        todo += [(h, p.finger) for h in hs if (h, p.finger) not in todo]

    for h, f in todo:
        model = hands.hand(h)
        b = torch.as_tensor(np.asarray(betas[h], np.float32))
        frames = frames_for(model, b).double().cpu()  # (15, 3, 3)
        kp_rest = rest_keypoints(model, b).double().cpu()  # (21, 3)
        gap0 = gaps[h][:, f - 1].numpy()
        rep = {"hand": HANDS_WORD[h], "finger": FINGERS[f], "gap_before_mm": round(float(gap0.min() * 1000), 1)}
        # every chain may move: the thumb and the named finger to meet, the other three only as far as
        # they must to stay out of (or in) contact with the thumb as the sampler had them
        order = [0, f] + [c for c in (1, 2, 3, 4) if c != f]
        joints = [j for c in order for j in _chain(c)]  # hand_pose indices, 15, chain by chain
        free = torch.ones(T, 15, dtype=torch.bool)
        if keep is not None:
            k = keep.detach().cpu()[:, h, :NUM_ROT_CHANNELS].reshape(T, 16, ROT_DIM).any(-1)  # (T, 16) joints
            free = ~k[:, [j + 1 for j in joints]]
        if gap0.min() <= CLOSED or not free[:, :6].any():
            rep.update(gap_after_mm=rep["gap_before_mm"], action="already closed" if gap0.min() <= CLOSED else "kept")
            reports.append(rep)
            continue
        w = torch.as_tensor(episode_weights(gap0))
        desired = (1 - w) * torch.as_tensor(gap0) + w * TOUCH_GAP
        ang0 = anatomical_angles(hp[:, h], frames)  # (T, 15, 3)
        a0 = ang0[:, joints].reshape(T, 5, 3, 3)  # (T, chain, joint, angle)
        cf = frames[joints].reshape(5, 3, 3, 3)
        rest = torch.stack([kp_rest[[j + 1 for j in _chain(c)] + [16 + c]] for c in order])  # (5, 4, 3)
        # the full FK's gaps, thumb to the chains' tips in ``order``; the chain model's own at the start
        # is subtracted, so its rigid-tip error cancels
        g_all = gaps[h][:, [c - 1 for c in order[1:]]]  # (T, 4)
        with torch.no_grad():
            t0 = chain_tips(a0, cf, rest)
            bias = g_all - (t0[:, 1:] - t0[:, :1]).norm(dim=-1)
        others = g_all[:, 1:]  # (T, 3) the other fingertips, as sampled
        apart = others >= CONTACT  # keep these at least min(sampled, SIDE_GAP) away ...
        floor = torch.clamp(others, max=SIDE_GAP)
        ceil = torch.clamp(others, min=TOUCH_KEEP)  # ... and these touching
        lo_j = torch.minimum(lo[joints].reshape(5, 3, 3) + _LIMIT_MARGIN, a0)  # a joint already outside
        hi_j = torch.maximum(hi[joints].reshape(5, 3, 3) - _LIMIT_MARGIN, a0)  # its limits keeps its value
        fmask = free.reshape(T, 5, 3)[..., None].double()
        stiff = a0.new_tensor([0.35, 0.35, 0.12, 0.12, 0.12])[:, None, None]  # rad: how far a chain may go
        delta = torch.zeros_like(a0, requires_grad=True)
        opt = torch.optim.Adam([delta], lr=0.05)
        held = w >= 1
        for _ in range(iters):
            opt.zero_grad()
            d = delta * fmask
            a = a0 + d
            tips = chain_tips(a, cf, rest)
            g = (tips[:, 1:] - tips[:, :1]).norm(dim=-1) + bias  # (T, 4)
            gap, side = g[:, 0], g[:, 1:]
            near = torch.where(apart, (floor - side).clamp_min(0), (side - ceil).clamp_min(0))
            if float(gap.detach()[held].max()) <= TOUCH_GAP + 0.002 and float(near.detach().max()) < 0.002:
                break
            track = (((gap - desired) / 0.004) ** 2 * (0.2 + w)).mean()
            sides = (near / 0.003).pow(2).mean()
            # stay near the model's motion, move smoothly, and stay inside the joint limits
            size = (d / stiff).pow(2).mean()
            acc = (d[2:] - 2 * d[1:-1] + d[:-2]).div(0.03).pow(2).mean() if T > 2 else d.sum() * 0
            limit = ((a - hi_j).clamp_min(0) + (lo_j - a).clamp_min(0)).div(0.02).pow(2).mean()
            (track + sides + 0.5 * size + acc + 10 * limit).backward()
            opt.step()
        with torch.no_grad():
            a = torch.maximum(torch.minimum(a0 + delta * fmask, hi_j), lo_j)
            ang = ang0.clone()
            ang[:, joints] = a.reshape(T, 15, 3)
            hp[:, h] = from_anatomical(ang, frames)
        gaps[h] = all_gaps(h)
        rot = axis_angle_to_rot6d(hp[:, h].reshape(T, 15, 3)[:, joints])  # (T, 15, 6)
        moved = ((a - a0).abs().amax(dim=(0, 3)) > 1e-9).flatten()  # (15,) joints the step changed
        for k, j in enumerate(joints):
            if not moved[k]:
                continue  # bit-exact as sampled
            sl = slice(ROT_DIM * (j + 1), ROT_DIM * (j + 2))
            ok = free[:, k].to(dev)
            x[ok, h, sl] = rot[:, k].to(x.dtype).to(dev)[ok]
        after = float(gaps[h][:, f - 1].min())
        # "nearer": the joint limits (or kept frames) stop the tips before they meet
        rep.update(gap_after_mm=round(after * 1000, 1), action="closed" if after <= CLOSED else "nearer")
        reports.append(rep)
    return x, reports


def model_dtype(model) -> torch.dtype:
    for buf in model.buffers():
        if buf.is_floating_point():
            return buf.dtype
    return torch.float32


# --- captions: the pinching finger and hand said as measured -------------------------------------
_FINGER_NAME = {1: "index", 2: "middle", 3: "ring", 4: "little"}
_CLAUSE_KEEP = re.compile(f"({_CLAUSE.pattern})", re.IGNORECASE)


def ground_pinches(text: str, joints: np.ndarray, thr: float = CONTACT) -> tuple[str, list[dict]]:
    """A caption whose pinch names the wrong finger or hand, corrected by the clip's own contacts.

    For each clause that says one hand's thumb meets one named fingertip (``named_pinches``'s
    reading), the clip's thumb-fingertip gaps (``joints`` (T, 2, 21, 3), any frame within ``thr``)
    decide: a pinch the clip has stays; if that hand's thumb touches other fingertips instead, the
    finger word becomes the nearest of those; if only the other hand makes that pinch, "left" and
    "right" swap in the clause. Anything else (no contact at all, a pinch without a finger word) is
    left as the model said it. -> (text, [{"clause", "from", "to"}] per change)."""
    from engine.evaluation.metrics import thumb_gaps
    gaps = thumb_gaps(np.asarray(joints)).min(axis=0)  # (2, 4) closest approach per hand and finger
    touching = gaps < thr
    whole_hand, _ = _hand_of(text.lower())
    parts = _CLAUSE_KEEP.split(text)
    changes = []
    for i in range(0, len(parts), 2):  # even parts are clauses, odd ones the separators
        clause = parts[i]
        low = clause.lower()
        fingers = _clause_pinches(low)
        thumb = _THUMB.search(low)
        if len(fingers) != 1 or thumb is None:
            continue
        hand, both = _hand_of(low)
        hand = hand if hand is not None or both else whole_hand
        if hand is None:
            continue
        f = fingers[0]
        if touching[hand, f - 1]:
            continue
        word = re.search(_FINGER_WORDS[("index", "middle", "ring", "pinky")[f - 1]], low[thumb.end():])
        if touching[hand].any() and word is not None:
            new = 1 + int(np.argmin(np.where(touching[hand], gaps[hand], np.inf)))
            a, b = thumb.end() + word.start(), thumb.end() + word.end()
            fixed = clause[:a] + _FINGER_NAME[new] + clause[b:]
            changes.append({"clause": clause.strip(), "from": clause[a:b], "to": _FINGER_NAME[new]})
        elif touching[1 - hand, f - 1] and re.search(r"\b(left|right)\b", low):
            fixed = re.sub(r"\b(left|right)\b", lambda m: {"left": "right", "right": "left"}[m.group(1).lower()],
                           clause, flags=re.IGNORECASE)
            changes.append({"clause": clause.strip(), "from": HANDS_WORD[hand], "to": HANDS_WORD[1 - hand]})
        else:
            continue
        parts[i] = fixed
    return "".join(parts), changes
