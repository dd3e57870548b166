"""Projects (``.handproj``), autosave and crash recovery. No Qt.

A project is a folder::

    walk.handproj/
      project.json     manifest, written last: format, takes (+ file checksums), keys,
                       constraints, prompt, generation settings, playhead
      take_0.npz ...   one clip file per take (engine.motion.clip)

Saving writes a complete sibling folder ``.walk.handproj.<random>.saving`` (project.json last),
then swaps it in with two renames (old -> ``.walk.handproj.old``, new -> ``walk.handproj``) and
deletes the old one. A crash before the swap leaves the old project untouched; a crash between
the two renames is repaired on the next load/save (the backup is renamed back). Loading checks
every field and every take's checksum and raises one ``ProjectError`` naming the field.

Autosave writes the same layout to ``walk.handproj.autosave/`` beside the project (or, for an
untitled document, ``<recovery dir>/untitled-<pid>-<n>.handproj``) through ``Autosaver``;
``find_recovery`` says whether an autosave is newer than the project it belongs to.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.motion.clip import Clip, ClipError, Prompt
from hand_studio.model.document import Constraints, Document, Take, check_path
from hand_studio.model.tracks import HANDS, TRACK_SIZE, TRACKS

SUFFIX = ".handproj"
PROJECT_FILE = "project.json"
FORMAT = "hand-studio-project"
FORMAT_VERSION = 1
AUTOSAVE_SUFFIX = ".autosave"


class ProjectError(ValueError):
    """A project is malformed or incomplete; the message names the file/field and what was expected."""


def is_project(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a project folder by its suffix (any case: "Walk.HANDPROJ" is one)."""
    return Path(path).suffix.lower() == SUFFIX


def project_name(path: str | os.PathLike) -> str:
    """A project's name without its suffix, whatever the suffix's case."""
    path = Path(path)
    return path.stem if is_project(path) else path.name


def project_path(path: str | os.PathLike) -> Path:
    """``path`` with the ``.handproj`` suffix added when missing."""
    path = Path(path)
    return path if is_project(path) else path.with_name(path.name + SUFFIX)


# --- save -------------------------------------------------------------------------------
def save_project(document: Document, path: str | os.PathLike) -> Path:
    """Save atomically to ``path`` (``.handproj`` added when missing); sets the document's
    ``project_path``. Returns the project folder."""
    path = project_path(path).absolute()
    write_project(document, path)
    document.project_path = path
    return path


def write_project(document: Document, path: Path, extra: dict | None = None) -> None:
    """Write the document's project folder at ``path`` through a temp folder + rename swap."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _repair_interrupted_swap(path)
    for stale in path.parent.glob(f".{path.name}.*.saving"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".saving", dir=path.parent))
    try:
        manifest = _manifest(document, extra)
        for i, take in enumerate(document.takes):
            file = tmp / f"take_{i}.npz"
            take.clip.save(file)
            manifest["takes"][i]["sha256"] = _sha256(file)
        data = json.dumps(manifest, indent=1).encode()
        from engine.motion.clip import atomic_write
        atomic_write(tmp / PROJECT_FILE, lambda f: f.write(data))  # last: marks the folder complete
        _fsync_dir(tmp)
        old = _backup_path(path)
        if old.exists():
            shutil.rmtree(old)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _manifest(doc: Document, extra: dict | None) -> dict:
    c = doc._constraints
    m = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "saved_at": time.time(),
        "takes": [{"name": t.name, "file": f"take_{i}.npz", "frames": t.clip.num_frames,
                   "generated": {tr: _runs(t.generated[:, k]) for k, tr in enumerate(TRACKS)}}
                  for i, t in enumerate(doc.takes)],
        "current_take": doc.current_take_index,
        "keys": {tr: [{"frame": f, "values": [float(v) for v in doc.key_values(tr, f)]}
                      for f in doc.key_frames(tr)] for tr in TRACKS},
        "constraints": {
            "interval": list(c.interval) if c.interval is not None else None,
            "locked_hands": sorted(c.locked_hands),
            "wrist_paths": {h: [[f, *xyz] for f, xyz in doc.wrist_path(h)] for h in HANDS if doc.wrist_path(h)},
        },
        "prompt": {"text": doc.prompt.text, "left": doc.prompt.left, "right": doc.prompt.right},
        "generation": doc.generation,
        "playhead": doc.frame,
        "source_clip": str(doc.path) if doc.path else None,
    }
    m.update(extra or {})
    return m


def _runs(mask: np.ndarray) -> list[list[int]]:
    """bool (T,) -> [[start, stop), ...] runs of True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2])]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _backup_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def _repair_interrupted_swap(path: Path) -> None:
    """A crash between the two renames of a save leaves only the backup: put it back."""
    old = _backup_path(path)
    if not path.exists() and (old / PROJECT_FILE).is_file():
        os.replace(old, path)


# --- load -------------------------------------------------------------------------------
def load_project(path: str | os.PathLike) -> Document:
    """Read and validate a project folder into a new Document (``project_path`` set)."""
    path = Path(path).absolute()
    _repair_interrupted_swap(path)
    m = read_manifest(path)
    doc = _document_from(m, path)
    doc.project_path = path
    return doc


def read_manifest(path: Path) -> dict:
    """project.json of a project folder, checked to be a JSON object of our format."""
    file = Path(path) / PROJECT_FILE
    if not Path(path).is_dir():
        raise FileNotFoundError(f"project not found (expected a {SUFFIX} folder): {path}")
    if not file.is_file():
        raise ProjectError(f"{path}: not a complete project ({PROJECT_FILE} is missing)")
    try:
        m = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProjectError(f"{file}: not valid JSON ({e})") from None
    f = _Fields(file)
    f.obj(m, "")
    if m.get("format") != FORMAT:
        raise ProjectError(f"{file}: format must be {FORMAT!r}; got {m.get('format')!r}")
    if m.get("format_version") != FORMAT_VERSION:
        raise ProjectError(f"{file}: format_version must be {FORMAT_VERSION}; got {m.get('format_version')!r}")
    return m


class _Fields:
    """Type checks that name the field: ``project.json: takes[1].name must be ...; got ...``."""

    def __init__(self, file: Path):
        self.file = file

    def fail(self, field: str, expected: str, value) -> None:
        shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
        raise ProjectError(f"{self.file}: {field or 'the top level'} must be {expected}; got {shown[:80]}")

    def obj(self, v, field):
        if not isinstance(v, dict):
            self.fail(field, "a JSON object", v)
        return v

    def list(self, v, field):
        if not isinstance(v, list):
            self.fail(field, "a list", v)
        return v

    def int(self, v, field, lo=None, hi=None):
        if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo) or (hi is not None and v > hi):
            rng = f" in {lo}..{hi}" if lo is not None and hi is not None else (f" >= {lo}" if lo is not None else "")
            self.fail(field, f"an integer{rng}", v)
        return v

    def num(self, v, field):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            self.fail(field, "a finite number", v)
        return float(v)

    def str(self, v, field, nonempty=False):
        if not isinstance(v, str) or (nonempty and not v.strip()):
            self.fail(field, "a non-empty string" if nonempty else "a string", v)
        return v

    def get(self, m: dict, key: str, field: str):
        if key not in m:
            raise ProjectError(f"{self.file}: {field} is missing")
        return m[key]


def _document_from(m: dict, path: Path) -> Document:
    F = _Fields(path / PROJECT_FILE)
    takes_json = F.list(F.get(m, "takes", "takes"), "takes")
    if not takes_json:
        F.fail("takes", "a non-empty list", takes_json)
    takes = []
    for i, t in enumerate(takes_json):
        where = f"takes[{i}]"
        F.obj(t, where)
        name = F.str(F.get(t, "name", f"{where}.name"), f"{where}.name", nonempty=True)
        file = F.str(F.get(t, "file", f"{where}.file"), f"{where}.file", nonempty=True)
        if Path(file).name != file or not file.endswith(".npz"):
            F.fail(f"{where}.file", "a .npz file name inside the project folder", file)
        frames = F.int(F.get(t, "frames", f"{where}.frames"), f"{where}.frames", lo=1)
        sha = F.str(F.get(t, "sha256", f"{where}.sha256"), f"{where}.sha256")
        clip_path = path / file
        if not clip_path.is_file():
            raise ProjectError(f"{path}: {where}.file {file!r} is missing from the project folder")
        if _sha256(clip_path) != sha:
            raise ProjectError(f"{clip_path}: {where}.file is incomplete or changed since the project "
                               "was saved (sha256 does not match project.json)")
        try:
            clip = Clip.load(clip_path)
        except ClipError as e:
            raise ProjectError(f"{where}.file: {e}") from None
        if clip.num_frames != frames:
            F.fail(f"{where}.frames", f"the clip's frame count {clip.num_frames}", frames)
        generated = np.zeros((frames, len(TRACKS)), bool)
        gen = F.obj(t.get("generated", {}), f"{where}.generated")
        for tr, runs in gen.items():
            if tr not in TRACKS:
                F.fail(f"{where}.generated", f"keyed by tracks {list(TRACKS)}", tr)
            for j, run in enumerate(F.list(runs, f"{where}.generated.{tr}")):
                rf = f"{where}.generated.{tr}[{j}]"
                if not (isinstance(run, list) and len(run) == 2):
                    F.fail(rf, "[start, stop]", run)
                a = F.int(run[0], rf + "[0]", 0, frames - 1)
                b = F.int(run[1], rf + "[1]", a + 1, frames)
                generated[a:b, TRACKS.index(tr)] = True
        if any(tk.name == name for tk in takes):
            F.fail(f"{where}.name", "unique among takes", name)
        takes.append(Take(name, clip, generated))
    current = F.int(m.get("current_take", 0), "current_take", 0, len(takes) - 1)
    T = takes[current].clip.num_frames

    doc = Document(takes[current].clip)
    doc._takes, doc._current = takes, current

    keys_json = F.obj(m.get("keys", {}), "keys")
    keys = {tr: {} for tr in TRACKS}
    for tr, items in keys_json.items():
        if tr not in TRACKS:
            F.fail("keys", f"keyed by tracks {list(TRACKS)}", tr)
        for j, k in enumerate(F.list(items, f"keys.{tr}")):
            kf = f"keys.{tr}[{j}]"
            F.obj(k, kf)
            frame = F.int(F.get(k, "frame", f"{kf}.frame"), f"{kf}.frame", 0, T - 1)
            values = F.list(F.get(k, "values", f"{kf}.values"), f"{kf}.values")
            if len(values) != TRACK_SIZE[tr]:
                F.fail(f"{kf}.values", f"a list of {TRACK_SIZE[tr]} numbers", f"{len(values)} values")
            if frame in keys[tr]:
                F.fail(f"{kf}.frame", "unique within its track", frame)
            keys[tr][frame] = np.array([F.num(v, f"{kf}.values[{n}]") for n, v in enumerate(values)], np.float32)
    doc._set_keys(keys)

    c = F.obj(m.get("constraints", {}), "constraints")
    interval = c.get("interval")
    if interval is not None:
        if not (isinstance(interval, list) and len(interval) == 2):
            F.fail("constraints.interval", "null or [first, last]", interval)
        a = F.int(interval[0], "constraints.interval[0]", 0, T - 1)
        b = F.int(interval[1], "constraints.interval[1]", a, T - 1)
        interval = (a, b)
    locked = F.list(c.get("locked_hands", []), "constraints.locked_hands")
    for j, h in enumerate(locked):
        if h not in HANDS:
            F.fail(f"constraints.locked_hands[{j}]", "'left' or 'right'", h)
    if len(set(locked)) == 2:
        F.fail("constraints.locked_hands", "at most one hand", locked)
    paths = {}
    for h, pts in F.obj(c.get("wrist_paths", {}), "constraints.wrist_paths").items():
        if h not in HANDS:
            F.fail("constraints.wrist_paths", "keyed by 'left' / 'right'", h)
        pts = F.list(pts, f"constraints.wrist_paths.{h}")
        for j, p in enumerate(pts):
            pf = f"constraints.wrist_paths.{h}[{j}]"
            if not (isinstance(p, list) and len(p) == 4):
                F.fail(pf, "[frame, x, y, z]", p)
            F.int(p[0], pf + "[0]", 0, T - 1)
            for n in (1, 2, 3):
                F.num(p[n], f"{pf}[{n}]")
        try:
            path_pts = check_path(h, [(p[0], p[1:]) for p in pts], T)
        except ValueError as e:
            raise ProjectError(f"{F.file}: constraints.wrist_paths.{h}: {e}") from None
        if path_pts:
            paths[h] = path_pts
    doc._set_constraints(Constraints(interval, frozenset(locked), paths))

    p = F.obj(m.get("prompt", {}), "prompt")
    doc._prompt = Prompt(**{k: F.str(p.get(k, ""), f"prompt.{k}") for k in ("text", "left", "right")})
    doc.generation = dict(F.obj(m.get("generation", {}), "generation"))
    doc._frame = F.int(m.get("playhead", 0), "playhead", 0, T - 1)
    src = m.get("source_clip")
    doc.path = Path(F.str(src, "source_clip")) if src is not None else None
    return doc


# --- autosave and recovery --------------------------------------------------------------
def autosave_path(project: str | os.PathLike) -> Path:
    """Where a project's autosave lives: ``<project>.autosave`` beside it."""
    project = Path(project)
    return project.with_name(project.name + AUTOSAVE_SUFFIX)


def default_recovery_dir() -> Path:
    """Per-user folder for autosaves of untitled documents."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "hand-studio" / "recovery"


_autosaver_ids = itertools.count(1)


class Autosaver:
    """Saves the document to its autosave folder when it changed since the last (auto)save and
    ``interval_s`` passed. The Qt layer calls ``tick()`` from a QTimer; tests pass ``now``."""

    def __init__(self, document: Document, interval_s: float = 60.0,
                 recovery_dir: str | os.PathLike | None = None, clock=time.monotonic):
        if not interval_s > 0:
            raise ValueError(f"autosave interval must be > 0 seconds; got {interval_s}")
        self.document = document
        self.interval_s = float(interval_s)
        self.recovery_dir = Path(recovery_dir) if recovery_dir is not None else default_recovery_dir()
        self.clock = clock
        self._untitled_name = f"untitled-{os.getpid()}-{next(_autosaver_ids)}{SUFFIX}"
        self._saved_revision = document.revision
        self._last_time = clock()
        self._written: Path | None = None

    @property
    def target(self) -> Path:
        doc = self.document
        if doc.project_path is not None:
            return autosave_path(doc.project_path)
        return self.recovery_dir / self._untitled_name

    @property
    def pending(self) -> bool:
        """The document changed since it was last saved or autosaved."""
        return self.document.revision != self._saved_revision

    def tick(self, now: float | None = None) -> Path | None:
        """Autosave when pending and the interval passed; returns the folder written, if any."""
        now = self.clock() if now is None else now
        if not self.pending or now - self._last_time < self.interval_s:
            return None
        return self.save_now(now)

    def save_now(self, now: float | None = None) -> Path:
        target = self.target
        if self._written is not None and self._written != target:  # the project was renamed
            shutil.rmtree(self._written, ignore_errors=True)
        doc = self.document
        extra = {"autosave_of": str(doc.project_path) if doc.project_path else None, "pid": os.getpid()}
        write_project(doc, target, extra)
        self._written = target
        self._saved_revision = doc.revision
        self._last_time = self.clock() if now is None else now
        return target

    def saved(self) -> None:
        """The project was saved (or the changes discarded): nothing pending, no autosave left."""
        self._saved_revision = self.document.revision
        self._last_time = self.clock()
        self.discard()

    def discard(self) -> None:
        for p in {self._written, self.target} - {None}:
            shutil.rmtree(p, ignore_errors=True)
        self._written = None


def _saved_at(path: Path) -> float | None:
    try:
        t = json.loads((path / PROJECT_FILE).read_text(encoding="utf-8")).get("saved_at")
    except (OSError, ValueError, AttributeError):
        return None
    return float(t) if isinstance(t, (int, float)) else None


def find_recovery(project: str | os.PathLike) -> Path | None:
    """The autosave of ``project`` when it is newer than the project itself, else None."""
    auto = autosave_path(Path(project).absolute())
    auto_time = _saved_at(auto)
    if auto_time is None:
        return None
    project_time = _saved_at(Path(project).absolute())
    return auto if project_time is None or auto_time > project_time else None


def find_untitled_recoveries(recovery_dir: str | os.PathLike | None = None) -> list[Path]:
    """Autosaves of untitled documents whose app is no longer running, newest first."""
    d = Path(recovery_dir) if recovery_dir is not None else default_recovery_dir()
    found = []
    for p in d.glob(f"untitled-*{SUFFIX}"):
        t = _saved_at(p)
        if t is None:
            continue
        try:
            pid = int(json.loads((p / PROJECT_FILE).read_text()).get("pid", 0))
        except (OSError, ValueError, TypeError):
            pid = 0
        if pid and pid != os.getpid() and _alive(pid):
            continue
        found.append((t, p))
    return [p for _, p in sorted(found, reverse=True)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(autosave: str | os.PathLike) -> Document:
    """Load an autosave as an unsaved document that belongs to its original project (if any)."""
    autosave = Path(autosave)
    doc = load_project(autosave)
    of = read_manifest(autosave).get("autosave_of")
    doc.project_path = Path(of) if isinstance(of, str) else None
    doc._touch()
    return doc


__all__ = ["ProjectError", "save_project", "load_project", "write_project", "read_manifest",
           "project_path", "autosave_path", "Autosaver", "find_recovery", "find_untitled_recoveries",
           "recover", "default_recovery_dir", "SUFFIX", "is_project", "project_name"]
