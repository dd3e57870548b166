"""What the animator pins, as one keep-mask over (frame, hand, channel) plus target values.

``Constraints`` (named in DESIGN.md) is a lazy list of terms: each term knows how to write its
part of the mask once the generated length and the hands' rest wrists (from betas) are known.
``c1 & c2`` combines; ``build`` checks lengths, ranges and conflicts and returns
keep_mask (T, 2, 99) bool and target (T, 2, 99) float32 in the diffusion representation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from engine.diffusion.representation import CHANNELS, HAND_CHANNELS, clip_to_tensor
from engine.hands.skeleton import HANDS, hand_index
from engine.motion.clip import Clip

CONFLICT_TOL = 1e-5


@dataclass(frozen=True)
class _Term:
    name: str  # e.g. "keyframes"
    min_frames: int  # the generated clip must have at least this many frames
    write: Callable[[int, np.ndarray, np.ndarray, np.ndarray], None]  # (T, rest_wrists, keep, target)
    betas: np.ndarray | None = None  # (2, 10) from the clip the term was made from


def _check_clip(clip, field: str) -> Clip:
    if not isinstance(clip, Clip):
        raise TypeError(f"{field} must be a Clip; got {type(clip).__name__}")
    return clip


def _check_hands(hands, field: str = "hands") -> tuple[int, ...]:
    if isinstance(hands, (str, int)):
        hands = (hands,)
    try:
        idx = tuple(sorted({hand_index(h) for h in hands}))
    except (KeyError, ValueError, TypeError, IndexError):
        raise ValueError(f"{field} must name hands from {HANDS}; got {hands!r}") from None
    if not idx:
        raise ValueError(f"{field} must name at least one hand of {HANDS}")
    return idx


def _check_frames(frames, limit: int, field: str) -> np.ndarray:
    try:
        f = np.asarray(frames)
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be a list of frame indices; got {frames!r}") from None
    if f.ndim != 1 or f.size == 0 or f.dtype.kind not in "iu":
        raise ValueError(f"{field} must be a non-empty 1-D list of integer frame indices; got {frames!r}")
    if f.min() < 0 or f.max() >= limit:
        raise ValueError(f"{field} must lie in 0..{limit - 1}; got {int(f.min())}..{int(f.max())}")
    if len(np.unique(f)) != f.size:
        raise ValueError(f"{field} must not repeat a frame; got {frames!r}")
    return f.astype(np.int64)


def _rep(clip: Clip) -> np.ndarray:
    return clip_to_tensor(clip).numpy()  # (T, 2, 99)


class Constraints:
    """Keyframes, in-betweening, wrist paths, a locked hand, a context to continue; ``&`` combines."""

    def __init__(self, terms: tuple[_Term, ...] = ()):
        self.terms = tuple(terms)

    def __and__(self, other: "Constraints") -> "Constraints":
        if not isinstance(other, Constraints):
            return NotImplemented
        return Constraints(self.terms + other.terms)

    def __bool__(self) -> bool:
        return bool(self.terms)

    def __repr__(self) -> str:
        return "Constraints(" + " & ".join(t.name for t in self.terms) + ")"

    @property
    def min_frames(self) -> int:
        return max([1] + [t.min_frames for t in self.terms])

    # --- the kinds ------------------------------------------------------------------------
    @classmethod
    def keyframes(cls, clip: Clip, frames, hands=("left", "right")) -> "Constraints":
        """The clip's full pose at ``frames`` (same frame numbers in the result) for ``hands``."""
        clip = _check_clip(clip, "Constraints.keyframes clip")
        f = _check_frames(frames, clip.num_frames, "Constraints.keyframes frames")
        hs = _check_hands(hands, "Constraints.keyframes hands")
        rep = _rep(clip)

        def write(T, wrists, keep, target):
            for h in hs:
                keep[f, h], target[f, h] = True, rep[f, h]
        return cls((_Term("keyframes", int(f.max()) + 1, write, clip.betas),))

    @classmethod
    def inbetween(cls, start_clip: Clip, end_clip: Clip) -> "Constraints":
        """``start_clip``'s frames open the result and ``end_clip``'s close it; the middle is generated.
        One-frame clips pin a single start/end pose (HandX uses 5-frame ones)."""
        a = _rep(_check_clip(start_clip, "Constraints.inbetween start_clip"))
        b = _rep(_check_clip(end_clip, "Constraints.inbetween end_clip"))
        if np.abs(start_clip.betas - end_clip.betas).max() > CONFLICT_TOL:
            raise ValueError("Constraints.inbetween start_clip and end_clip must have the same betas (one performer)")

        def write(T, wrists, keep, target):
            keep[: len(a)], target[: len(a)] = True, a
            keep[T - len(b):], target[T - len(b):] = True, b
        return cls((_Term("inbetween", len(a) + len(b), write, start_clip.betas),))

    @classmethod
    def wrist_path(cls, hand: str = "right", path=None, frames=None) -> "Constraints":
        """The wrist joint of ``hand`` follows ``path`` (N, 3) metres at ``frames`` (default 0..N-1).

        MANO semantics: the posed wrist is J0_rest(betas) + transl, so the path sets transl."""
        h = _check_hands(hand, "Constraints.wrist_path hand")
        if len(h) != 1:
            raise ValueError(f"Constraints.wrist_path hand must be one hand; got {hand!r}")
        h = h[0]
        try:
            xyz = np.asarray(path, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("Constraints.wrist_path path must be an (N, 3) array of metres") from None
        if xyz.ndim != 2 or xyz.shape[1] != 3 or xyz.shape[0] == 0:
            raise ValueError(f"Constraints.wrist_path path must have shape (N, 3); got {xyz.shape}")
        if not np.isfinite(xyz).all():
            raise ValueError("Constraints.wrist_path path must be finite (found NaN or inf)")
        if frames is None:
            f = np.arange(len(xyz))
        else:
            f = _check_frames(frames, 10 ** 9, "Constraints.wrist_path frames")
            if len(f) != len(xyz):
                raise ValueError(f"Constraints.wrist_path frames has {len(f)} entries but path has {len(xyz)} rows")
        sl = CHANNELS["transl"]

        def write(T, wrists, keep, target):
            keep[f, h, sl], target[f, h, sl] = True, (xyz - wrists[h]).astype(np.float32)
        return cls((_Term("wrist_path", int(f.max()) + 1, write),))

    @classmethod
    def lock_hand(cls, clip: Clip, hand: str = "left") -> "Constraints":
        """Keep one hand exactly as in ``clip`` (frame for frame) and generate the other."""
        clip = _check_clip(clip, "Constraints.lock_hand clip")
        hs = _check_hands(hand, "Constraints.lock_hand hand")
        if len(hs) != 1:
            raise ValueError(f"Constraints.lock_hand hand must be one hand; got {hand!r}")
        rep, h = _rep(clip), hs[0]

        def write(T, wrists, keep, target):
            keep[: len(rep), h], target[: len(rep), h] = True, rep[:, h]
        return cls((_Term("lock_hand", len(rep), write, clip.betas),))

    @classmethod
    def continue_from(cls, clip: Clip, context_frames: int = 10) -> "Constraints":
        """The clip's last ``context_frames`` frames become the first frames of the result."""
        clip = _check_clip(clip, "Constraints.continue_from clip")
        if not isinstance(context_frames, (int, np.integer)) or not 1 <= context_frames <= clip.num_frames:
            raise ValueError(f"Constraints.continue_from context_frames must be 1..{clip.num_frames} "
                             f"(the clip's length); got {context_frames!r}")
        rep = _rep(clip)[-int(context_frames):]

        def write(T, wrists, keep, target):
            keep[: len(rep)], target[: len(rep)] = True, rep
        return cls((_Term("continue_from", len(rep), write, clip.betas),))

    # --- building -------------------------------------------------------------------------
    def betas(self) -> np.ndarray | None:
        """(2, 10) betas of the clips the constraints came from; None when no clip gives any."""
        found = [t for t in self.terms if t.betas is not None]
        for t in found[1:]:
            if np.abs(t.betas - found[0].betas).max() > CONFLICT_TOL:
                raise ValueError(f"constraints conflict: {found[0].name} and {t.name} come from clips with different betas")
        return None if not found else np.array(found[0].betas, np.float32)

    def build(self, frames: int, rest_wrists=None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> keep_mask (frames, 2, 99) bool, target (frames, 2, 99) float32.

        ``rest_wrists`` (2, 3): each hand's rest wrist J0 for the betas used (needed by wrist paths).
        """
        wrists = np.zeros((2, 3)) if rest_wrists is None else np.asarray(rest_wrists, np.float64).reshape(2, 3)
        keep = np.zeros((frames, 2, HAND_CHANNELS), bool)
        target = np.zeros((frames, 2, HAND_CHANNELS), np.float32)
        owner = np.full((frames, 2, HAND_CHANNELS), -1, np.int16)
        for i, term in enumerate(self.terms):
            if term.min_frames > frames:
                raise ValueError(f"Constraints.{term.name} needs {term.min_frames} frames but the clip to "
                                 f"generate has frames={frames}")
            k = np.zeros_like(keep)
            v = np.zeros_like(target)
            term.write(frames, wrists, k, v)
            both = k & keep
            if both.any():
                diff = np.abs(v - target) * both
                if diff.max() > CONFLICT_TOL:
                    f, h, c = np.unravel_index(int(diff.argmax()), diff.shape)
                    raise ValueError(f"constraints conflict: {self.terms[owner[f, h, c]].name} and {term.name} set "
                                     f"different values for the {HANDS[h]} hand channel {c} at frame {f}")
            target = np.where(k, v, target)
            owner = np.where(k, i, owner)
            keep |= k
        return torch.from_numpy(keep), torch.from_numpy(target)
