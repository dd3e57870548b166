"""Turn the document's constraints into one engine generation request, and its answer into a take.
No Qt.

``plan_generation(document, options)`` reads the current take, keys, interval, locked hands and
wrist-path points and returns a :class:`GenerationPlan`: the arguments for
``Studio.generate_iter`` (prompt, frames, seed, steps, constraints) plus ``finish(clip)``, which
makes the new take's clip and its generated-frames mask. ``finish`` copies every pinned value
(locked hands, keys, frames outside the in-between interval, the take being extended) back
bit-for-bit from the source: the engine keeps them within 1e-5, the app keeps them exact, so
repeated regenerations never drift.

Modes (``GenerationOptions``), any combination except where noted:
- fresh: ``frames`` new frames from the prompt (keys kept when ``keep_keys``);
- ``inbetween``: regenerate only the document's interval, the rest of the take kept;
- locked hands (the document's): that hand kept, the other regenerated;
- ``pin_wrists``: a hand's wrist follows the current take over the interval (all frames when
  there is none), overridden by the document's pinned wrist-path points;
- ``extend``: continue the take by ``frames`` new frames from its last ``context_frames``
  (keys, interval, locks and pins belong to the existing frames, so they cannot combine).

Frame counts and numbers are the take's. The models make ``MODEL_FPS`` motion: a take at another
rate is resampled to it for the request, and ``finish`` resamples the result back to the take's
rate, same seconds, before copying the pinned values (still exact, from the take itself).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.api import Constraints as EngineConstraints
from engine.clutch.shift import DOWNSAMPLE
from engine.diffusion.pipeline import MAX_FRAMES
from engine.motion.clip import Clip, Prompt
from hand_studio.model.document import Document
from hand_studio.model.tracks import HANDS, TRACK_HAND, TRACKS, check_hand, hand_tracks, track_values

PARAMS = ("transl", "global_orient", "hand_pose")
MODEL_FPS = 30.0  # the rate both generation models make (tensor_to_clip's) and CLUTCH captions
CLUTCH_MIN_FRAMES = DOWNSAMPLE  # the clutch model's shortest motion: one token


class GenerationError(ValueError):
    """The document's constraints cannot make one request (names what to change)."""


@dataclass(frozen=True)
class GenerationOptions:
    """What the animator asked for, beside the document's own constraints."""

    prompt: Prompt = field(default_factory=Prompt)
    frames: int = 60  # fresh: clip length; extend: frames added
    seed: int = 0
    steps: int | None = None
    guidance: float | None = None
    model: str = "diffusion"
    keep_keys: bool = True
    inbetween: bool = False
    pin_wrists: tuple[str, ...] = ()
    extend: bool = False
    context_frames: int = 10
    close_pinches: bool = True  # diffusion: make the thumb-fingertip pinches the prompt names touch
    split_hands: bool = True  # diffusion: each hand from its own part when they act apart at once
    joint_limits: bool = True  # diffusion: ease finger joints past their anatomical limits back inside


@dataclass
class GenerationPlan:
    """One request for ``Studio.generate_iter`` and how its answer becomes a take."""

    prompt: Prompt
    frames: int  # the model's frames (at MODEL_FPS)
    seed: int
    steps: int | None
    guidance: float | None
    model: str
    constraints: EngineConstraints | None
    description: str
    source: Clip  # the current take's clip when planned
    source_generated: np.ndarray  # (T, 4) its generated mask
    keys: dict  # {track: {frame: values}} copied at planning time
    locked: tuple[int, ...] = ()
    kept_frames: np.ndarray | None = None  # (T,) bool: frames copied from the source (in-between)
    extend_from: int | None = None  # extend: source frames [0, extend_from) then the generated ones
    model_at: np.ndarray | None = None  # (N,) the result's fractional frame for each take frame made; None: same rate
    # Resampled takes: hand -> (take frames, wrist positions (N, 3)) of each pinned wrist path, put
    # back exactly after resampling.
    pins: dict = field(default_factory=dict)
    close_pinches: bool = True
    split_hands: bool = True
    joint_limits: bool = True

    def start(self, studio):
        """The engine's step generator for this request (loads the model on first use, so call it
        off the GUI thread). Guidance is not on ``Studio.generate_iter`` yet: when one is asked
        for, the studio's loaded pipeline takes it directly."""
        if self.model == "clutch":  # sampler steps, guidance and pinch closing are diffusion settings
            most = studio.pipeline("clutch").max_frames
            if self.frames > most:
                r = MODEL_FPS / self.source.fps
                raise GenerationError(f"the clutch model makes at most {_take_frames(most, r)} frames"
                                      + ("" if abs(r - 1) < 1e-9 else f" at {self.source.fps:g} fps")
                                      + f" ({most / MODEL_FPS:.1f} s) per generation; use the diffusion model "
                                      "for a longer take")
            return studio.generate_iter(self.prompt, frames=self.frames, seed=self.seed, model=self.model,
                                        constraints=self.constraints)
        pinch = {"close_pinches": self.close_pinches, "split_hands": self.split_hands,
                 "joint_limits": self.joint_limits}
        if self.guidance is None:
            return studio.generate_iter(self.prompt, frames=self.frames, seed=self.seed, model=self.model,
                                        constraints=self.constraints, steps=self.steps, **pinch)
        return studio.pipeline(self.model).generate_iter(self.prompt, self.frames, self.seed, self.constraints,
                                                         self.steps, guidance=self.guidance, **pinch)

    def preview_frame(self, frame: int, n: int) -> int | None:
        """The frame of a preview (the engine's clip so far, ``n`` model frames) at take ``frame``:
        the same moment, at the model's rate; None where the take is shown as it is (before an
        extension's context)."""
        if self.extend_from is not None:
            T = self.source.num_frames
            if frame < self.extend_from:
                return None
            if self.model_at is None:
                i = frame - self.extend_from
            else:  # the context's last model frame sits on the take's last frame
                r = MODEL_FPS / self.source.fps
                i = int(np.floor(self.model_at[0] - r - (T - 1 - frame) * r + 0.5))
        elif self.model_at is None:
            i = frame
        else:
            i = int(np.floor(self.model_at[min(frame, len(self.model_at) - 1)] + 0.5))
        return min(max(i, 0), n - 1)

    def finish(self, clip: Clip) -> tuple[Clip, np.ndarray]:
        """Engine result -> (the new take's clip, its generated mask (T, 4))."""
        if not isinstance(clip, Clip):
            raise TypeError(f"generation result must be a Clip; got {type(clip).__name__}")
        if clip.num_frames != self.frames:
            raise ValueError(f"generation result has {clip.num_frames} frames; expected {self.frames}")
        if abs(clip.fps - MODEL_FPS) > 1e-6:
            raise ValueError(f"generation result is at {clip.fps:g} fps; expected the model's {MODEL_FPS:g}")
        src = self.source
        if self.model_at is not None:  # the take's frames, at its rate: the pinned values are copied below
            from engine.export.rig import sample
            clip = sample(clip, self.model_at, src.fps)
        if self.extend_from is not None:  # the whole source (context bit-exact), then the new frames
            ctx = src.num_frames - self.extend_from if self.model_at is None else 0  # resampled: new frames only
            arrays = {k: np.concatenate([getattr(src, k), getattr(clip, k)[ctx:]]) for k in PARAMS}
            out = Clip(**arrays, betas=src.betas, fps=src.fps, prompt=clip.prompt)
            generated = np.concatenate([self.source_generated,
                                        np.ones((clip.num_frames - ctx, len(TRACKS)), bool)])
            return out, generated
        arrays = {k: np.array(getattr(clip, k)) for k in PARAMS}
        same_length = src.num_frames == clip.num_frames
        betas = src.betas if same_length and (self.locked or self.kept_frames is not None) else clip.betas
        self._pin_wrists(arrays["transl"], betas)
        regenerated = np.ones((clip.num_frames, len(TRACKS)), bool)
        keyed = np.zeros_like(regenerated)
        if same_length:
            for h in self.locked:  # bit-exact: the engine is within 1e-5 on kept channels
                for k in PARAMS:
                    arrays[k][:, h] = getattr(src, k)[:, h]
                regenerated[:, [i for i, t in enumerate(TRACKS) if TRACK_HAND[t] == h]] = False
            if self.kept_frames is not None:
                for k in PARAMS:
                    arrays[k][self.kept_frames] = getattr(src, k)[self.kept_frames]
                regenerated[self.kept_frames] = False
        for t, frames in self.keys.items():
            h = TRACK_HAND[t]
            if same_length and h in self.locked:
                continue  # the locked hand is the take's, bit for bit (keys checked to agree)
            for f, v in frames.items():
                if f >= clip.num_frames:
                    continue
                if t.endswith("_hand"):
                    arrays["hand_pose"][f, h] = v
                else:
                    arrays["transl"][f, h], arrays["global_orient"][f, h] = v[:3], v[3:]
                keyed[f, TRACKS.index(t)] = True
        out = Clip(**arrays, betas=betas, fps=src.fps if same_length else clip.fps, prompt=clip.prompt)
        generated = np.where(regenerated, True, self.source_generated) if same_length else regenerated
        return out, generated & ~keyed  # a keyed cell is the animator's, not the generator's

    def _pin_wrists(self, transl: np.ndarray, betas: np.ndarray) -> None:
        """A resampled take's pinned wrists exactly on their paths: the wrist is the translation plus
        the hand's rest wrist (the global rotation turns about it), so the translation at each pinned
        frame is the pin minus that rest wrist - whatever the resampling did between model frames."""
        if not self.pins:
            return
        z = np.zeros((1, 2, 3), np.float32)
        rest = Clip(transl=z, global_orient=z, hand_pose=np.zeros((1, 2, 45), np.float32), betas=betas)
        for h, (fs, xyz) in self.pins.items():
            transl[fs, h] = (xyz - rest.joints[0, h, 0]).astype(transl.dtype)


def key_clip(document: Document) -> Clip:
    """The current clip with every key's values written in at its frame."""
    clip = document.clip
    arrays = {k: np.array(getattr(clip, k)) for k in PARAMS}
    for t in TRACKS:
        h = TRACK_HAND[t]
        for f in document.key_frames(t):
            v = document.key_values(t, f)
            if t.endswith("_hand"):
                arrays["hand_pose"][f, h] = v
            else:
                arrays["transl"][f, h], arrays["global_orient"][f, h] = v[:3], v[3:]
    return clip.copy(**arrays)


def pinned_wrist_path(document: Document, hand: str) -> tuple[np.ndarray, np.ndarray]:
    """-> (frames (N,), wrist positions (N, 3) metres): the current take's wrist over the interval
    (every frame when none), with the document's pinned points replacing/adding theirs."""
    h = HANDS.index(check_hand(hand))
    T = document.num_frames
    a, b = document.interval if document.interval is not None else (0, T - 1)
    path = {f: document.clip.joints[f, h, 0].astype(np.float64) for f in range(a, b + 1)}
    for f, xyz in document.wrist_path(hand):
        path[f] = np.asarray(xyz, np.float64)
    frames = np.array(sorted(path), np.int64)
    return frames, np.stack([path[f] for f in frames])


def _int(value, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise GenerationError(f"{name} must be an integer in {lo}..{hi}; got {value!r}")
    return int(value)


def _cover(span: float) -> int:
    """Model frames 0..ceil(span): enough to reach model-frame position ``span`` (float-safe)."""
    return int(np.ceil(span - 1e-6)) + 1


def _take_frames(model_frames: int, r: float) -> int:
    """The most take frames that ``model_frames`` model frames span (``r``: model frames per take frame)."""
    return int(np.floor((model_frames - 1) / r + 1e-6)) + 1


def _least_take_frames(model_frames: int, r: float) -> int:
    """The fewest take frames whose span needs ``model_frames`` model frames."""
    return int(np.ceil((model_frames - 1) / r - 1e-6)) + 1


def _to_model(clip: Clip, at) -> Clip:
    """The take ``clip`` at take-frame positions ``at`` (N,) (clamped to its last frame): what the
    model sees, a MODEL_FPS clip."""
    from engine.export.rig import sample
    return sample(clip, np.minimum(at, clip.num_frames - 1), MODEL_FPS)


def _keys_at_model_rate(ref: Clip, mref: Clip, frames: list[int], h: int, r: float,
                        kept: set[int] = frozenset()) -> tuple[Clip, list[int]]:
    """Hand ``h``'s keys at take ``frames`` of ``ref`` -> (``mref`` with each key's pose on its nearest
    model frame, those frames); ``r``: model frames per take frame. Two keys on one model frame: the
    nearer guides it (``finish`` writes both exactly)."""
    near: dict[int, int] = {}
    for f in frames:
        m = int(np.floor(f * r + 0.5))
        if m in kept:  # a kept model frame already holds the take there (``finish`` writes the key)
            continue
        if m not in near or abs(f * r - m) < abs(near[m] * r - m):
            near[m] = f
    arrays = {k: np.array(getattr(mref, k)) for k in PARAMS}
    for m, f in near.items():
        for k in PARAMS:
            arrays[k][m, h] = getattr(ref, k)[f, h]
    return mref.copy(**arrays), sorted(near)


def _path_at_model_rate(frames: np.ndarray, xyz: np.ndarray, r: float, n: int,
                        kept: set[int] = frozenset()) -> tuple[np.ndarray, np.ndarray]:
    """A wrist path at take ``frames`` (N,) -> (model frames, positions (M, 3)) among the first ``n``
    but not ``kept`` (those hold the take already): linear between consecutive path frames; a lone
    point on its nearest model frame."""
    at = {int(f): p for f, p in zip(frames, xyz)}
    out = {}
    for m in range(n):
        x = m / r
        lo, hi = int(np.floor(x + 1e-6)), int(np.ceil(x - 1e-6))
        if m not in kept and lo in at and hi in at:
            u = min(max(x - lo, 0.0), 1.0)
            out[m] = (1 - u) * at[lo] + u * at[hi]
    for f, p in at.items():
        m = int(np.floor(f * r + 0.5))
        if m < n and m not in kept:
            out.setdefault(m, p)
    ms = np.array(sorted(out), np.int64)
    return ms, (np.stack([out[m] for m in ms]) if len(ms) else np.zeros((0, 3)))


def plan_generation(document: Document, options: GenerationOptions) -> GenerationPlan:
    """The request for ``options`` on ``document``; GenerationError names a bad combination.
    Engine-level problems (conflicting values, lengths) are left for the engine to report."""
    o = options
    src = document.clip
    T = src.num_frames
    locked = tuple(sorted(HANDS.index(h) for h in document.locked_hands))
    keys = {t: {f: document.key_values(t, f) for f in document.key_frames(t)} for t in TRACKS} if o.keep_keys else {}
    has_keys = any(keys.values())
    pins = tuple(check_hand(h) for h in o.pin_wrists)
    frames = _int(o.frames, "frames", 1, 1800)
    parts, what = [], []
    fps = src.fps
    same = abs(fps - MODEL_FPS) < 1e-6  # the model's rate: no resampling, the request as always
    r = 1.0 if same else MODEL_FPS / fps  # model frames per take frame
    at_fps = "" if same else f" at {fps:g} fps"
    limit = f"{MAX_FRAMES} frames" + ("" if same else f" at {MODEL_FPS:g} fps")
    rate = "" if same else f" ({fps:g} fps take; the model's {MODEL_FPS:g} fps motion resampled)"

    if o.model == "clutch":  # text only: say so now, not after Generate
        given = [name for name, on in (("extending the take", o.extend), ("in-between", o.inbetween),
                                       ("locked hands", locked), ("pinned wrist paths", pins),
                                       ("keys (Keep keys)", has_keys)) if on]
        if given:
            raise GenerationError(f"the clutch model takes no constraints ({', '.join(given)}): use the "
                                  "diffusion model for them, or turn them off")
        p = o.prompt
        if p.text.strip() and (p.left.strip() or p.right.strip()):
            raise GenerationError("the clutch model reads one text: the prompt (Left/Right only when it is "
                                  "empty); clear Left and Right, or use the diffusion model for them")
        least = _least_take_frames(CLUTCH_MIN_FRAMES, r)
        if frames < least:
            raise GenerationError(f"the clutch model makes at least {least} frames{at_fps} (one motion token); "
                                  f"got {frames}")

    if o.extend:
        clash = [name for name, on in (("in-between", o.inbetween), ("locked hands", locked),
                                       ("pinned wrist paths", pins)) if on]
        if clash:
            raise GenerationError(f"Extend take continues past the take's last frame, where there is nothing "
                                  f"to keep: turn off {', '.join(clash)} to extend")
        ctx = _int(o.context_frames, "context frames", 1, T)
        mc = int(np.floor((ctx - 1) * r + 1e-6)) + 1  # model frames in the context, the last on the take's last
        most = int(np.floor((MAX_FRAMES - mc + 1e-6) / r))  # the engine's limit counts the context too
        if frames > most:
            raise GenerationError(f"Extend by at most {max(most, 0)} frames{at_fps} with {ctx} context frames "
                                  f"(the model makes at most {limit} per generation); got {frames}")
        n = _cover(mc - 1 + frames * r)
        context, model_at = src, None
        if not same:  # the model's frames end on the take's last frame and go on at the model's rate
            context = _to_model(src, T - 1 - np.arange(mc - 1, -1, -1) / r)
            model_at = np.minimum(mc - 1 + np.arange(1, frames + 1) * r, n - 1)
        c = EngineConstraints.continue_from(context, mc)
        return GenerationPlan(o.prompt, n, o.seed, o.steps, o.guidance, o.model, c,
                              f"Extend by {frames} frames{rate}", src, document.current_take.generated, {},
                              extend_from=T - ctx, model_at=model_at, close_pinches=o.close_pinches,
                              split_hands=o.split_hands, joint_limits=o.joint_limits)

    regenerate = o.inbetween or bool(locked) or bool(pins)
    if regenerate:
        frames = T  # the same frames, regenerated
    n = _cover((frames - 1) * r)  # the model's frames
    if n > MAX_FRAMES:
        most = _take_frames(MAX_FRAMES, r)
        if regenerate:
            raise GenerationError(f"the take has {T} frames{at_fps}, too many to regenerate at once: the model makes "
                                  f"at most {limit} per generation" + ("" if same else f" ({most} at {fps:g} fps)"))
        raise GenerationError(f"Generate at most {most} frames{at_fps} (the model makes at most {limit} per "
                              f"generation); got {frames}")
    kept = None
    if o.inbetween:
        if document.interval is None:
            raise GenerationError("In-between needs an interval: Ctrl+drag on the timeline, or select keys "
                                  "and press I")
        a, b = document.interval
        kept = np.ones(T, bool)
        kept[a:b + 1] = False
        what.append(f"in-between frames {a}..{b}")
    outside = np.flatnonzero(kept).tolist() if kept is not None else []
    ref = key_clip(document) if has_keys else src
    pos = None if same else np.minimum(np.arange(_cover((T - 1) * r)) / r, T - 1)  # model frames, in take frames
    mref = ref if same else _to_model(ref, pos)  # what the model sees of the take
    model_kept = outside
    if outside and not same:
        # A model frame less than one model step (and one take frame) from a kept take frame is kept,
        # at the take's value there: across a seam the model's motion then starts from the take's own
        # and the take frames up to its first free frame are interpolated, not squeezed (keeping only
        # the model frames between two kept take frames, a 120 fps take jumped in one 1/120 s step).
        w = max(1.0 / r, 1.0)
        lo = np.maximum(np.ceil(pos - w + 1e-6).astype(int), 0)
        hi = np.minimum(np.floor(pos + w - 1e-6).astype(int), T - 1)
        near = np.concatenate([[0], np.cumsum(kept)])  # kept take frames before each index
        model_kept = np.flatnonzero(near[hi + 1] - near[lo] > 0).tolist()
    if model_kept:
        parts.append(EngineConstraints.keyframes(mref, model_kept))  # both hands, whole frames
    for h, hand in enumerate(HANDS):
        hand_keys = [(f, t, v) for t in hand_tracks(hand) for f, v in keys.get(t, {}).items()]
        if h in locked:  # the locked hand is kept as the take is; its keys must agree with it
            for f, t, v in sorted(hand_keys, key=lambda k: k[0]):
                if np.abs(v - track_values(src, t, f)).max() > 1e-6:
                    raise GenerationError(f"the {hand} hand is locked, but its key on frame {f} differs from "
                                          f"the take: unlock the {hand} hand or delete that key")
            continue
        fs = sorted({f for f, _, _ in hand_keys} - set(outside))
        if fs:
            if fs[-1] >= frames:
                raise GenerationError(f"a key on the {hand} hand is at frame {fs[-1]}, past the {frames} frames "
                                      "to generate: lengthen the duration or turn off Keep keys")
            if same:
                parts.append(EngineConstraints.keyframes(ref, fs, hands=(hand,)))
            else:
                mref_h, mfs = _keys_at_model_rate(ref, mref, fs, h, r, set(model_kept))
                if mfs:
                    parts.append(EngineConstraints.keyframes(mref_h, mfs, hands=(hand,)))
    for h in locked:
        parts.append(EngineConstraints.lock_hand(src if same else _to_model(src, pos), HANDS[h]))
        what.append(f"{HANDS[h]} hand locked")
    pin_fix = {}
    for hand in pins:
        if HANDS.index(hand) in locked:
            raise GenerationError(f"the {hand} hand is locked, so its wrist already follows the take: "
                                  f"unpin its wrist path or unlock it")
        fs, xyz = pinned_wrist_path(document, hand)
        what.append(f"{hand} wrist pinned ({len(fs)} frames)")
        if not same:
            pin_fix[HANDS.index(hand)] = (np.asarray(fs), np.asarray(xyz, np.float64))
            fs, xyz = _path_at_model_rate(fs, xyz, r, n, set(model_kept))
        if len(fs):
            parts.append(EngineConstraints.wrist_path(hand, xyz, frames=fs))
    constraints = None
    for p in parts:
        constraints = p if constraints is None else constraints & p
    if has_keys:
        what.append(f"{sum(len(v) for v in keys.values())} keys kept")
    desc = ("Regenerate" if regenerate else f"Generate {frames} frames") + (": " + ", ".join(what) if what else "")
    model_at = None if same else np.minimum(np.arange(frames) * r, n - 1)
    return GenerationPlan(o.prompt, n, o.seed, o.steps, o.guidance, o.model, constraints, desc + rate, src,
                          document.current_take.generated, keys if has_keys else {}, locked if regenerate else (),
                          kept, model_at=model_at, pins=pin_fix, close_pinches=o.close_pinches,
                          split_hands=o.split_hands, joint_limits=o.joint_limits)


CAPTION_FPS = MODEL_FPS  # the CLUTCH captioner reads 30 fps motion


def caption_request(document: Document) -> tuple[Clip, str]:
    """What "Describe take" captions: the interval when one is set, else the whole current take,
    resampled to 30 fps when the take has another rate. Returns (clip, what it is, for messages)."""
    clip = document.clip
    what = f"{document.current_take.name}"
    if document.interval is not None:
        a, b = document.interval
        clip = clip.slice(a, b + 1)
        what += f", frames {a}-{b}"
    if abs(clip.fps - CAPTION_FPS) > 1e-6:
        from engine.export.rig import resample
        least = _least_take_frames(CLUTCH_MIN_FRAMES, CAPTION_FPS / clip.fps)
        if clip.num_frames < least:  # in the take's frames, not the resampled clip's
            raise ValueError(f"{what} is too short to describe: {clip.num_frames} frames at {clip.fps:g} fps; "
                             f"at least {least} are needed")
        clip = resample(clip, CAPTION_FPS)
        what += f" (resampled to {CAPTION_FPS:g} fps)"
    return clip, what


def describe_clip(studio, clip: Clip, take_fps: float, what: str) -> str:
    """``studio.caption(clip)`` (``clip`` from ``caption_request``) with the captioner's length limit
    said in the take's frames at its own rate; call it off the GUI thread (it loads the model)."""
    most = studio.pipeline("clutch").max_frames
    if clip.num_frames > most:
        take = _take_frames(most, CAPTION_FPS / take_fps)
        raise ValueError(f"{what} is too long to describe: at most {take} frames at {take_fps:g} fps "
                         f"({most / CAPTION_FPS:.1f} s); set a shorter interval")
    return studio.caption(clip)


__all__ = ["caption_request", "describe_clip", "GenerationOptions", "GenerationPlan", "GenerationError", "plan_generation", "key_clip",
           "pinned_wrist_path"]
