"""Import and export requests without Qt: what the dialogs collect, checked before anything
runs, and the generators the GUI puts on a worker thread (``hand_studio._qt.workers``).

Export writes into a hidden temporary folder beside the target and moves the files into place
only at the end, so a cancelled or failed export leaves nothing behind and never half-replaces
an existing file. Import never touches the document: the GUI turns the result into a take (or
a new document) when it arrives, so a failure changes nothing.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.motion.clip import Clip
from engine.threads import KINEMATICS_THREADS, torch_threads

# suffix -> what the user sees; the order is the dialog's
EXPORT_FORMATS: dict[str, str] = {
    ".fbx": "FBX 7.4 binary (skeletons + skinned meshes)",
    ".bvh": "BVH (skeletons, centimetres)",
    ".glb": "glTF binary .glb (skeletons + skinned meshes)",
    ".npz": "Hand Studio clip .npz (MANO parameters)",
}
BVH_LAYOUTS: dict[str, str] = {"per_hand": "one file per hand (NAME_left.bvh, NAME_right.bvh)",
                               "one_root": "both hands under one ROOT, one file"}
HAND_CHOICES = ("both", "left", "right")
MESH_SUFFIXES = (".fbx", ".glb")

IMPORT_SUFFIXES = (".npz", ".npy", ".json", ".bvh", ".fbx")
# engine.data.importers.FORMATS with what each means
IMPORT_FORMATS: dict[str, str] = {
    "auto": "detect from the file",
    "clip": "Hand Studio clip (.npz)",
    "mano": "MANO parameters (npz / npy / json)",
    "keypoints": "3D keypoints (T, 2, 21, 3) (npz / npy / json)",
    "bvh": "BVH skeleton",
    "fbx": "FBX skeleton (binary)",
}
IMPORT_UNITS: dict[str, str] = {"auto": "detect from the hand size", "m": "metres", "cm": "centimetres",
                                "mm": "millimetres"}
IMPORT_ORDERS: dict[str, str] = {"auto": "detect from bone proportions", "ours": "ours (MANO 16 + tips)",
                                 "openpose": "OpenPose", "mediapipe": "MediaPipe"}
FPS_RANGE = (1.0, 1000.0)


class ExchangeError(ValueError):
    """A request the dialogs must refuse; the message names the field or file and what was expected."""


# --- export --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportRequest:
    """One export: the target path (its extension is the format), an inclusive frame range in the
    current take's frames, the output fps (None = the take's; else resampled), which hands, and
    the format's own options."""

    path: Path
    first: int = 0
    last: int | None = None  # inclusive; None = the take's last frame
    fps: float | None = None
    hands: str = "both"
    bvh_layout: str = "per_hand"
    with_mesh: bool = True

    @property
    def suffix(self) -> str:
        return Path(self.path).suffix.lower()

    def frame_range(self, clip: Clip) -> tuple[int, int]:
        """(first, last) inclusive, with ``last`` None resolved."""
        last = clip.num_frames - 1 if self.last is None else int(self.last)
        return int(self.first), last

    def check(self, clip: Clip) -> "ExportRequest":
        """Refuse what the exporters would refuse, before any thread starts."""
        path = Path(self.path)
        if not path.name or path.name.startswith("."):
            raise ExchangeError(f"export path needs a file name; got {str(path)!r}")
        if self.suffix not in EXPORT_FORMATS:
            raise ExchangeError(f"{path}: cannot export {self.suffix or 'a file without an extension'}; "
                                f"expected one of {', '.join(EXPORT_FORMATS)}")
        if not path.parent.is_dir():
            raise ExchangeError(f"{path}: the folder {path.parent} does not exist")
        if path.is_dir():
            raise ExchangeError(f"{path}: is a folder; expected a file name")
        first, last = self.frame_range(clip)
        if not 0 <= first <= last < clip.num_frames:
            raise ExchangeError(f"frame range must satisfy 0 <= first <= last <= {clip.num_frames - 1}; "
                                f"got {first}..{last}")
        if self.fps is not None and not FPS_RANGE[0] <= float(self.fps) <= FPS_RANGE[1]:
            raise ExchangeError(f"fps must be in {FPS_RANGE[0]:g}..{FPS_RANGE[1]:g}; got {self.fps:g}")
        if self.hands not in HAND_CHOICES:
            raise ExchangeError(f"hands must be one of {HAND_CHOICES}; got {self.hands!r}")
        if self.suffix == ".npz" and self.hands != "both":
            raise ExchangeError(f"{path}: a .npz clip always holds both hands; choose both hands or another format")
        if self.bvh_layout not in BVH_LAYOUTS:
            raise ExchangeError(f"BVH layout must be one of {tuple(BVH_LAYOUTS)}; got {self.bvh_layout!r}")
        return self

    def options(self, clip: Clip):
        """The engine's ExportOptions (frame range as [start, stop))."""
        from engine.export import ExportOptions
        first, last = self.frame_range(clip)
        whole = first == 0 and last == clip.num_frames - 1
        fps = None if self.fps is None or abs(float(self.fps) - clip.fps) < 1e-9 else float(self.fps)
        hands = ("left", "right") if self.hands == "both" else (self.hands,)
        return ExportOptions(frame_range=None if whole else (first, last + 1), fps=fps, hands=hands)

    def output_files(self) -> list[Path]:
        """The files the export will write (BVH per hand with both hands writes two)."""
        path = Path(self.path)
        if self.suffix == ".bvh" and self.bvh_layout == "per_hand" and self.hands == "both":
            return [path.with_name(f"{path.stem}_{h}{path.suffix}") for h in ("left", "right")]
        return [path]

    def output_frames(self, clip: Clip) -> tuple[int, float]:
        """(frames, fps) of what will be written."""
        first, last = self.frame_range(clip)
        n = last - first + 1
        fps = clip.fps if self.fps is None else float(self.fps)
        if abs(fps - clip.fps) > 1e-9:
            n = int((n - 1) * fps / clip.fps + 1e-9) + 1
        return n, fps

    def describe(self, clip: Clip) -> str:
        """One line: files, frames, fps, hands."""
        n, fps = self.output_frames(clip)
        first, last = self.frame_range(clip)
        names = ", ".join(p.name for p in self.output_files())
        hands = "both hands" if self.hands == "both" else f"the {self.hands} hand"
        resampled = f", resampled from {clip.fps:g}" if abs(fps - clip.fps) > 1e-9 else ""
        return f"{names}: frames {first}-{last}, {n} frames at {fps:g} fps{resampled}, {hands}"


def export_iter(clip: Clip, request: ExportRequest):
    """Generator: ``{"step", "of", "text"}`` items; the last one also holds ``"files"`` (the paths
    written). Closing it before that item is delivered (cancel) writes nothing."""
    request.check(clip)
    target = Path(request.path)
    yield {"step": 0, "of": 2, "text": f"writing {target.name}…"}
    from engine.export import export_clip
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".hand-studio-export-", dir=target.parent))
    except OSError as e:
        raise OSError(f"{target}: cannot write in {target.parent} ({e.strerror or e})") from None
    try:
        staged = tmp / target.name
        try:
            with torch_threads(KINEMATICS_THREADS):
                written = export_clip(clip, staged, request.options(clip), bvh_layout=request.bvh_layout,
                                      with_mesh=request.with_mesh)
        except (ValueError, OSError) as e:  # name the user's file, not the staging folder
            raise type(e)(str(e).replace(str(staged), str(target)).replace(str(tmp), str(target.parent))) from None
        final = [target.parent / p.name for p in written]
        yield {"step": 1, "of": 2, "text": "moving into place", "files": final}  # the last cancel point
        for src, dst in zip(written, final):
            os.replace(src, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- import --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportRequest:
    """One import: the file(s) (several single-hand files merge into one clip) and the
    importer's options (``engine.data.importers.import_clip``)."""

    paths: tuple[Path, ...]
    format: str = "auto"
    units: str = "auto"
    order: str = "auto"
    fps: float | None = None  # for files that give none
    hands: str | None = None  # which hand single-hand MANO parameters are

    def __post_init__(self):
        paths = (self.paths,) if isinstance(self.paths, (str, os.PathLike)) else self.paths
        object.__setattr__(self, "paths", tuple(Path(p) for p in paths))

    def check(self) -> "ImportRequest":
        if not self.paths:
            raise ExchangeError("choose a file to import")
        for p in self.paths:
            if p.suffix.lower() not in IMPORT_SUFFIXES:
                raise ExchangeError(f"{p}: cannot import {p.suffix or 'a file without an extension'}; "
                                    f"expected one of {', '.join(IMPORT_SUFFIXES)}")
            if not p.is_file():
                raise ExchangeError(f"{p}: file not found")
        if self.format not in IMPORT_FORMATS:
            raise ExchangeError(f"format must be one of {tuple(IMPORT_FORMATS)}; got {self.format!r}")
        if self.units not in IMPORT_UNITS:
            raise ExchangeError(f"units must be one of {tuple(IMPORT_UNITS)}; got {self.units!r}")
        if self.order not in IMPORT_ORDERS:
            raise ExchangeError(f"keypoint order must be one of {tuple(IMPORT_ORDERS)}; got {self.order!r}")
        if self.fps is not None and not FPS_RANGE[0] <= float(self.fps) <= FPS_RANGE[1]:
            raise ExchangeError(f"fps must be in {FPS_RANGE[0]:g}..{FPS_RANGE[1]:g}; got {self.fps:g}")
        if self.hands not in (None, "left", "right"):
            raise ExchangeError(f"hands must be None, 'left' or 'right'; got {self.hands!r}")
        return self

    @property
    def name(self) -> str:
        """A take name: the file's stem (without _left/_right when single-hand files merge)."""
        stem = self.paths[0].stem if self.paths else "Import"
        if len(self.paths) > 1:
            for tag in ("_left", "_right", "_l", "_r"):
                if stem.lower().endswith(tag):
                    stem = stem[: -len(tag)]
                    break
        return stem or "Import"

    def kwargs(self) -> dict:
        return dict(format=self.format, units=self.units, order=self.order, fps=self.fps, hands=self.hands)


@dataclass
class ImportResult:
    """An imported clip with what the importer detected (``notes``)."""

    request: ImportRequest
    clip: Clip
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def hands(self) -> tuple[str, ...]:
        """The hands the file(s) held (a missing hand was set to the rest pose)."""
        missing = {h for h in ("left", "right") if any(f"no {h} hand" in n for n in self.notes)}
        return tuple(h for h in ("left", "right") if h not in missing)

    def summary(self) -> str:
        c = self.clip
        hands = " and ".join(self.hands) or "no"
        return f"{c.num_frames} frames at {c.fps:g} fps ({c.duration:.2f} s), {hands} hand" + \
            ("s" if len(self.hands) == 2 else "")


def import_iter(request: ImportRequest):
    """Generator: a progress item, then ``{"step": 1, "of": 1, "result": ImportResult}``. The
    importers run in one call: closing the generator (cancel) discards the result."""
    request.check()
    yield {"step": 0, "of": 1, "text": f"reading {', '.join(p.name for p in request.paths)}…"}
    from engine.data.importers import import_clips
    t = time.perf_counter()
    with torch_threads(KINEMATICS_THREADS):
        clip, notes = import_clips(list(request.paths), **request.kwargs())
    yield {"step": 1, "of": 1, "result": ImportResult(request, clip, list(notes), time.perf_counter() - t)}


__all__ = ["EXPORT_FORMATS", "BVH_LAYOUTS", "HAND_CHOICES", "MESH_SUFFIXES", "IMPORT_SUFFIXES", "IMPORT_FORMATS",
           "IMPORT_UNITS", "IMPORT_ORDERS", "ExchangeError", "ExportRequest", "export_iter", "ImportRequest",
           "ImportResult", "import_iter"]
