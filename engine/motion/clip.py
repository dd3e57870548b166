"""The clip: one two-hand motion in MANO parameters, the type every part reads and writes.

Shapes (T frames, hand 0 = left, 1 = right): transl (T,2,3) metres, global_orient (T,2,3)
axis-angle, hand_pose (T,2,45) axis-angle (flat_hand_mean, no PCA), betas (2,10).
``joints`` (T,2,21,3) is derived from the default hand model, never trusted from a file.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
MAX_FRAMES = 108_000  # one hour at 30 fps
FPS_RANGE = (1.0, 1000.0)


class ClipError(ValueError):
    """A clip or clip file is malformed; the message names the file/field and what was expected."""


@dataclass(frozen=True)
class Prompt:
    """What the hands should do: whole motion, left hand, right hand. Any may be empty."""

    text: str = ""
    left: str = ""
    right: str = ""

    def to_json(self) -> str:
        return json.dumps({"text": self.text, "left": self.left, "right": self.right})

    @classmethod
    def from_json(cls, s: str) -> "Prompt":
        d = json.loads(s) if s else {}
        if not isinstance(d, dict):
            raise ClipError(f"text must be a JSON object with keys text/left/right; got {s[:80]!r}")
        vals = {k: d.get(k, "") or "" for k in ("text", "left", "right")}
        for k, v in vals.items():
            if not isinstance(v, str):
                raise ClipError(f"text.{k} must be a string; got {type(v).__name__}")
        return cls(**vals)

    def __bool__(self) -> bool:
        return bool(self.text or self.left or self.right)


def _check_array(name: str, a, shape: tuple, where: str = "") -> np.ndarray:
    """float32 array of the given shape (None = any length), finite; else ClipError naming it."""
    try:
        arr = np.asarray(a, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ClipError(f"{where}{name} must be a float array of shape {_fmt(shape)}; {e}") from None
    if arr.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, arr.shape)):
        raise ClipError(f"{where}{name} must have shape {_fmt(shape)}; got {arr.shape}")
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ClipError(f"{where}{name} must be finite; found {arr[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    return arr


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join("T" if s is None else str(s) for s in shape) + ")"


@dataclass
class Clip:
    """Two hands over T frames. Construct with arrays; everything is validated and copied."""

    transl: np.ndarray
    global_orient: np.ndarray
    hand_pose: np.ndarray
    betas: np.ndarray = field(default_factory=lambda: np.zeros((2, 10), np.float32))
    fps: float = 30.0
    prompt: Prompt = field(default_factory=Prompt)
    _joints: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        self.transl = _check_array("transl", self.transl, (None, 2, 3))
        T = self.transl.shape[0]
        if not 1 <= T <= MAX_FRAMES:
            raise ClipError(f"a clip must have 1..{MAX_FRAMES} frames; got {T}")
        self.global_orient = _check_array("global_orient", self.global_orient, (T, 2, 3))
        self.hand_pose = _check_array("hand_pose", self.hand_pose, (T, 2, 45))
        self.betas = _check_array("betas", self.betas, (2, 10))
        try:
            fps = float(self.fps)
        except (TypeError, ValueError):
            raise ClipError(f"fps must be a number; got {self.fps!r}") from None
        if not (FPS_RANGE[0] <= fps <= FPS_RANGE[1]):
            raise ClipError(f"fps must be in {FPS_RANGE[0]:g}..{FPS_RANGE[1]:g}; got {self.fps!r}")
        self.fps = fps
        if isinstance(self.prompt, str):
            self.prompt = Prompt(text=self.prompt)
        if not isinstance(self.prompt, Prompt):
            raise ClipError(f"prompt must be a Prompt or str; got {type(self.prompt).__name__}")
        self._joints = None

    # --- construction -------------------------------------------------------------------
    @classmethod
    def rest(cls, frames: int = 1, fps: float = 30.0, separation: float = 0.3) -> "Clip":
        """Both hands at the zero pose, side by side in front of the viewer (palms down)."""
        transl = np.zeros((frames, 2, 3), np.float32)
        transl[:, 0, 0], transl[:, 1, 0] = -separation / 2, separation / 2
        return cls(transl, np.zeros((frames, 2, 3)), np.zeros((frames, 2, 45)), fps=fps)

    @property
    def num_frames(self) -> int:
        return int(self.transl.shape[0])

    def __len__(self) -> int:
        return self.num_frames

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def copy(self, **changes) -> "Clip":
        """A deep copy, optionally with fields replaced (validated again)."""
        base = {k: np.array(getattr(self, k)) for k in ("transl", "global_orient", "hand_pose", "betas")}
        base.update(fps=self.fps, prompt=self.prompt)
        base.update(changes)
        return replace(self, **base)

    def slice(self, start: int, stop: int | None = None) -> "Clip":
        """Frames [start, stop) as a new clip."""
        T = self.num_frames
        stop = T if stop is None else stop
        if not (0 <= start < stop <= T):
            raise ClipError(f"frame range must satisfy 0 <= start < stop <= {T}; got {start}..{stop}")
        return self.copy(transl=self.transl[start:stop], global_orient=self.global_orient[start:stop],
                         hand_pose=self.hand_pose[start:stop])

    @property
    def joints(self) -> np.ndarray:
        """(T, 2, 21, 3) keypoints in metres from the default hand model (computed once)."""
        if self._joints is None:
            from engine.hands import two_hand_keypoints
            self._joints = two_hand_keypoints(self)
        return self._joints

    # --- files --------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "format_version": np.array(FORMAT_VERSION, np.int64),
            "fps": np.array(self.fps, np.float64),
            "transl": self.transl, "global_orient": self.global_orient,
            "hand_pose": self.hand_pose, "betas": self.betas,
            "joints": self.joints.astype(np.float32),
            "text": np.array(self.prompt.to_json()),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write by extension. ``.npz`` here; other formats through ``engine.io`` when present."""
        path = Path(path)
        if path.suffix.lower() != ".npz":
            from engine import io as clip_io
            return clip_io.save_clip(self, path)
        atomic_write(path, lambda f: np.savez_compressed(f, **self.to_arrays()))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Clip":
        """Read by extension; ``.npz`` is our clip file (never unpickled)."""
        path = Path(path)
        if path.suffix.lower() != ".npz":
            from engine import io as clip_io
            return clip_io.load_clip(path)
        return load_npz(path)


def load_npz(path: Path) -> Clip:
    """Our clip file; every defect is a ClipError naming the file and what was expected."""
    where = f"{path}: "
    if not path.is_file():
        raise FileNotFoundError(f"clip file not found: {path}")
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise ClipError(f"{where}not a readable .npz clip ({e})") from None
    with z:
        required = ("transl", "global_orient", "hand_pose", "betas", "fps")
        missing = [k for k in required if k not in z.files]
        if missing:
            raise ClipError(f"{where}missing arrays {missing}; a clip needs {list(required)}")
        try:
            arrays = {k: z[k] for k in z.files if k != "joints"}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
            raise ClipError(f"{where}corrupt array data ({e})") from None
    version = int(arrays.get("format_version", FORMAT_VERSION))
    if version != FORMAT_VERSION:
        raise ClipError(f"{where}format_version must be {FORMAT_VERSION}; got {version}")
    text = arrays.get("text", np.array(""))
    if text.dtype.kind not in "US" or text.ndim != 0:
        raise ClipError(f"{where}text must be a JSON string; got array of {text.dtype} {text.shape}")
    fps = arrays["fps"]
    if fps.size != 1:
        raise ClipError(f"{where}fps must be a single number; got shape {fps.shape}")
    try:
        return Clip(arrays["transl"], arrays["global_orient"], arrays["hand_pose"], arrays["betas"],
                    fps=float(fps.reshape(())), prompt=Prompt.from_json(str(text)))
    except json.JSONDecodeError as e:
        raise ClipError(f"{where}text is not valid JSON ({e})") from None
    except ClipError as e:
        raise ClipError(f"{where}{e}") from None


def atomic_write(path: Path, write) -> None:
    """Write through a temp file in the same folder, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
