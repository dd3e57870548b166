"""The user's trained models: ``models.json`` in the data folder ($HAND_STUDIO_DATA, else
$XDG_DATA_HOME/hand-studio, else ~/.local/share/hand-studio). Each entry: name, kind (diffusion or
clutch), path (the model folder), base model, data, date, metrics; plus the active model per kind,
which ``Studio.load`` generates with. Writes are atomic (temp file + rename) under a file lock.
Removing an entry never deletes the model folder.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.paths import user_path

FORMAT, VERSION = "hand-studio-models", 1
KINDS = ("diffusion", "clutch")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class RegistryError(ValueError):
    """A malformed models.json, an unknown name, or a folder that is not a model of that kind."""


def data_dir() -> Path:
    if os.environ.get("HAND_STUDIO_DATA"):
        return Path(os.environ["HAND_STUDIO_DATA"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "hand-studio"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    path: str
    base: str | None = None
    data: str | None = None
    date: str = ""
    metrics: dict = field(default_factory=dict)


def check_model_folder(kind: str, path: Path) -> None:
    """A diffusion model folder has config.json; a CLUTCH one has shift/ and lm/ model folders."""
    need = ["config.json"] if kind == "diffusion" else ["shift/config.json", "lm/config.json"]
    missing = [n for n in need if not (path / n).is_file()]
    if missing:
        raise RegistryError(f"{path} is not a {kind} model folder: {', '.join(missing)} not found")


class Registry:
    """models.json in ``root`` (default: ``data_dir()``)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else data_dir()
        self.path = self.root / "models.json"

    # --- file --------------------------------------------------------------------------------
    def _read(self) -> dict:
        if not self.path.is_file():
            return {"format": FORMAT, "version": VERSION, "models": {}, "active": {}}
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RegistryError(f"{self.path}: not readable JSON ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise RegistryError(f"{self.path}: expected format {FORMAT!r} version {VERSION}")
        if not isinstance(doc.get("models"), dict) or not isinstance(doc.get("active"), dict):
            raise RegistryError(f"{self.path}: 'models' and 'active' must be objects")
        for name, e in doc["models"].items():
            try:
                ModelEntry(**e)
            except TypeError as err:
                raise RegistryError(f"{self.path}: model {name!r}: {err}") from None
        return doc

    def _write(self, doc: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".models.", suffix=".json", dir=self.root)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _locked(self):
        """Read-modify-write under an exclusive lock (two app windows, a CLI and a training run)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".models.lock", "w") as lock:
            try:
                import fcntl
                fcntl.flock(lock, fcntl.LOCK_EX)
            except ImportError:  # not POSIX: no lock, the rename is still atomic
                pass
            doc = self._read()
            yield doc
            self._write(doc)

    # --- queries -----------------------------------------------------------------------------
    def list(self, kind: str | None = None) -> list[ModelEntry]:
        doc = self._read()
        return [ModelEntry(**e) for e in doc["models"].values() if kind is None or e["kind"] == kind]

    def get(self, name: str) -> ModelEntry:
        doc = self._read()
        if name not in doc["models"]:
            raise RegistryError(f"no registered model {name!r}; registered: {sorted(doc['models']) or 'none'}")
        return ModelEntry(**doc["models"][name])

    def active(self, kind: str) -> ModelEntry | None:
        """The model ``use`` chose for ``kind``, or None (= the shipped one)."""
        doc = self._read()
        name = doc["active"].get(kind)
        return ModelEntry(**doc["models"][name]) if name in doc["models"] else None

    # --- changes -----------------------------------------------------------------------------
    def register(self, name: str, kind: str, path: str | os.PathLike, base: str | None = None,
                 data: str | None = None, metrics: dict | None = None, replace: bool = False) -> ModelEntry:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise RegistryError(f"model name must be 1-64 letters, digits, '.', '_' or '-'; got {name!r}")
        if kind not in KINDS:
            raise RegistryError(f"model kind must be one of {KINDS}; got {kind!r}")
        folder = user_path(path).absolute()
        check_model_folder(kind, folder)
        entry = ModelEntry(name, kind, str(folder), base, None if data is None else str(data),
                           _dt.datetime.now().astimezone().isoformat(timespec="seconds"), dict(metrics or {}))
        json.dumps(entry.metrics)  # metrics must be plain JSON
        with self._locked() as doc:
            if name in doc["models"] and not replace:
                raise RegistryError(f"a model named {name!r} is already registered ({doc['models'][name]['path']})")
            doc["models"][name] = asdict(entry)
        return entry

    def use(self, name: str) -> ModelEntry:
        """Make ``name`` the active model of its kind."""
        with self._locked() as doc:
            if name not in doc["models"]:
                raise RegistryError(f"no registered model {name!r}; registered: {sorted(doc['models']) or 'none'}")
            entry = ModelEntry(**doc["models"][name])
            check_model_folder(entry.kind, Path(entry.path))
            doc["active"][entry.kind] = name
        return entry

    def use_shipped(self, kind: str) -> None:
        """Go back to the shipped model of ``kind``."""
        if kind not in KINDS:
            raise RegistryError(f"model kind must be one of {KINDS}; got {kind!r}")
        with self._locked() as doc:
            doc["active"].pop(kind, None)

    def relocate(self, moves: dict) -> list[str]:
        """Folders that moved (old -> new): entries whose path is one of them, or inside one, follow
        it (a training run that starts over moves its old model aside; a model the user chose to use
        keeps its weights rather than pointing at the new run's). -> the names that moved. Nothing
        is written when no models.json exists."""
        if not self.path.is_file():
            return []
        moves = {Path(o).absolute(): Path(n).absolute() for o, n in moves.items()}

        def moved_to(path: str) -> Path | None:
            p = Path(path)
            return next((new / p.relative_to(old) for old, new in moves.items() if p == old or old in p.parents), None)
        if not any(moved_to(e["path"]) for e in self._read()["models"].values()):
            return []  # the usual case: nothing to write
        moved = []
        with self._locked() as doc:
            for name, e in doc["models"].items():
                new = moved_to(e["path"])
                if new is not None:
                    e["path"] = str(new)
                    moved.append(name)
        return moved

    def remove(self, name: str) -> ModelEntry:
        """Forget ``name`` (its folder stays); if it was active, the shipped model is used again."""
        with self._locked() as doc:
            if name not in doc["models"]:
                raise RegistryError(f"no registered model {name!r}; registered: {sorted(doc['models']) or 'none'}")
            entry = ModelEntry(**doc["models"].pop(name))
            if doc["active"].get(entry.kind) == name:
                del doc["active"][entry.kind]
        return entry


def active_model_path(kind: str = "diffusion", root: str | os.PathLike | None = None) -> Path | None:
    """The folder of the active registered model of ``kind`` (None = use the shipped one). A
    registered folder that has gone missing is an error naming it, never a silent fallback."""
    entry = Registry(root).active(kind)
    if entry is None:
        return None
    path = Path(entry.path)
    try:
        check_model_folder(kind, path)
    except RegistryError as e:
        raise FileNotFoundError(f"the active {kind} model {entry.name!r}: {e} "
                                f"(`hand-studio models use-shipped {kind}` or `models remove {entry.name}`)") from None
    return path
