"""The training corpus on disk, and its reader. One layout for synthetic and imported data, so the
diffusion trainer, the CLUTCH model and fine-tuning read the same thing (docs/corpus.md):

    DIR/meta.json       format_version, kind, n, frames, fps, seed, source, splits, shards, ...
    DIR/shards/NNN.npz  transl (n,T,2,3) f32, global_orient (n,T,2,3) f32, hand_pose (n,T,2,45) f32,
                        betas (n,2,10) f32, joints (n,T,2,21,3) f16 (derived keypoints)
    DIR/index.jsonl     one clip per line, in id order: id, shard, row, split, texts (levels 1..5),
                        action, actions, events (summary), event_types, source

``Corpus(path)`` checks all three (shard headers only; no array is read until asked) and raises
``CorpusError`` naming the file and field on any defect.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
KIND = "hand-studio-corpus"
SPLITS = ("train", "val", "test")
SPLIT_SHARE = {"train": 0.8, "val": 0.1, "test": 0.1}
LEVELS = (1, 2, 3, 4, 5)
SHARD_SIZE = 2000
# shard array -> (shape after (n, T) or (n,), dtype); "T" dims follow meta["frames"]
SHARD_ARRAYS = {
    "transl": ((2, 3), np.float32, True),
    "global_orient": ((2, 3), np.float32, True),
    "hand_pose": ((2, 45), np.float32, True),
    "betas": ((2, 10), np.float32, False),
    "joints": ((2, 21, 3), np.float16, True),
}
META_FIELDS = {"format_version": int, "kind": str, "n": int, "frames": int, "fps": (int, float),
               "source": str, "splits": dict, "shards": list}
INDEX_FIELDS = {"id": str, "shard": int, "row": int, "split": str, "texts": list, "action": str,
                "actions": list, "events": dict, "event_types": list, "source": str}


class CorpusError(ValueError):
    """A malformed corpus: the message names the file and the field."""


def clip_id(i: int) -> str:
    return f"c{i:07d}"


def split_of(seed: int, i: int) -> str:
    """Split of item ``i`` (a clip, or a source file for imports): within each block of ten
    consecutive items a permutation seeded by (seed, block) picks 8 train, 1 val, 1 test, so the
    ratios are exact per block and an item's split never depends on how many items there are."""
    block, k = divmod(int(i), 10)
    perm = np.random.default_rng([int(seed or 0) & 0xFFFFFFFF, block, 0x5EED]).permutation(10)
    pos = int(np.flatnonzero(perm == k)[0])
    return "train" if pos < 8 else ("val" if pos == 8 else "test")


def npy_header(zf: zipfile.ZipFile, name: str) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of one array in an npz without reading its data."""
    with zf.open(name) as f:
        major, _minor = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = read(f)
    return tuple(shape), np.dtype(dtype)


def shard_shapes(n: int, frames: int) -> dict[str, tuple]:
    return {k: (n, frames, *tail) if timed else (n, *tail) for k, (tail, _dt, timed) in SHARD_ARRAYS.items()}


class Corpus:
    """Read-only view of a corpus folder. ``len(c)``, ``c.meta``, ``c.index`` (list of dicts),
    ``c.split_ids(split)``, ``c.arrays(split)``, ``c.texts(split, level)``, ``c.clip(i)``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"corpus folder not found: {self.path}")
        self.meta = self._read_meta()
        self.index = self._read_index()
        self._shard_rows = self._check_shards()

    # --- validation ---------------------------------------------------------------------
    def _read_meta(self) -> dict:
        p = self.path / "meta.json"
        if not p.is_file():
            raise CorpusError(f"{p}: missing; a corpus folder needs meta.json, index.jsonl and shards/")
        try:
            meta = json.loads(p.read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CorpusError(f"{p}: not valid JSON ({e})") from None
        if not isinstance(meta, dict):
            raise CorpusError(f"{p}: must be a JSON object; got {type(meta).__name__}")
        for key, typ in META_FIELDS.items():
            if key not in meta:
                raise CorpusError(f"{p}: missing field {key!r}")
            if not isinstance(meta[key], typ) or isinstance(meta[key], bool):
                raise CorpusError(f"{p}: field {key!r} has the wrong type ({type(meta[key]).__name__})")
        if meta["format_version"] != FORMAT_VERSION:
            raise CorpusError(f"{p}: format_version must be {FORMAT_VERSION}; got {meta['format_version']}")
        if meta["kind"] != KIND:
            raise CorpusError(f"{p}: kind must be {KIND!r}; got {meta['kind']!r}")
        if set(meta["splits"]) != set(SPLITS) or sum(meta["splits"].values()) != meta["n"]:
            raise CorpusError(f"{p}: splits must give train/val/test counts summing to n={meta['n']}; "
                              f"got {meta['splits']}")
        if meta["frames"] < 1 or meta["n"] < 0:
            raise CorpusError(f"{p}: frames must be >= 1 and n >= 0; got {meta['frames']}, {meta['n']}")
        return meta

    def _read_index(self) -> list[dict]:
        p = self.path / "index.jsonl"
        if not p.is_file():
            raise CorpusError(f"{p}: missing")
        out = []
        with open(p, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise CorpusError(f"{p}:{line_no}: not valid JSON ({e})") from None
                for key, typ in INDEX_FIELDS.items():
                    if not isinstance(rec.get(key), typ):
                        raise CorpusError(f"{p}:{line_no}: field {key!r} missing or not a {typ.__name__}")
                if rec["id"] != clip_id(len(out)):
                    raise CorpusError(f"{p}:{line_no}: id must be {clip_id(len(out))} (id order); got {rec['id']!r}")
                if rec["split"] not in SPLITS:
                    raise CorpusError(f"{p}:{line_no}: split must be one of {SPLITS}; got {rec['split']!r}")
                if [t.get("level") for t in rec["texts"]] != list(LEVELS):
                    raise CorpusError(f"{p}:{line_no}: texts must hold levels {list(LEVELS)}")
                out.append(rec)
        if len(out) != self.meta["n"]:
            raise CorpusError(f"{p}: {len(out)} clips, but meta.json says n={self.meta['n']}")
        counts = {s: sum(r["split"] == s for r in out) for s in SPLITS}
        if counts != {s: self.meta["splits"][s] for s in SPLITS}:
            raise CorpusError(f"{p}: split counts {counts} differ from meta.json splits {self.meta['splits']}")
        return out

    def _check_shards(self) -> list[int]:
        rows = []
        T = self.meta["frames"]
        for k, rel in enumerate(self.meta["shards"]):
            p = self.path / rel
            if not p.is_file():
                raise CorpusError(f"{p}: shard {k} listed in meta.json is missing")
            try:
                with zipfile.ZipFile(p) as zf:
                    names = set(zf.namelist())
                    heads = {}
                    for key in SHARD_ARRAYS:
                        if f"{key}.npy" not in names:
                            raise CorpusError(f"{p}: missing array {key!r}; a shard needs {list(SHARD_ARRAYS)}")
                        heads[key] = npy_header(zf, f"{key}.npy")
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
                if isinstance(e, CorpusError):
                    raise
                raise CorpusError(f"{p}: not a readable .npz shard ({e})") from None
            n = heads["transl"][0][0] if heads["transl"][0] else -1
            for key, want in shard_shapes(n, T).items():
                shape, dtype = heads[key]
                if shape != want or dtype != SHARD_ARRAYS[key][1]:
                    raise CorpusError(f"{p}: {key} must be {SHARD_ARRAYS[key][1].__name__} {want}; "
                                      f"got {dtype} {shape}")
            rows.append(n)
        if sum(rows) != self.meta["n"]:
            raise CorpusError(f"{self.path / 'meta.json'}: shards hold {sum(rows)} clips, but n={self.meta['n']}")
        for line_no, rec in enumerate(self.index, 1):
            if not (0 <= rec["shard"] < len(rows) and 0 <= rec["row"] < rows[rec["shard"]]):
                raise CorpusError(f"{self.path / 'index.jsonl'}:{line_no}: shard/row {rec['shard']}/{rec['row']} "
                                  "out of range")
        return rows

    # --- access ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"Corpus({str(self.path)!r}, n={len(self)}, splits={self.meta['splits']})"

    def _check_split(self, split: str | None) -> None:
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None; got {split!r}")

    def split_ids(self, split: str) -> list[str]:
        self._check_split(split)
        return [r["id"] for r in self.index if r["split"] == split]

    def records(self, split: str | None = None) -> list[dict]:
        self._check_split(split)
        return [r for r in self.index if split is None or r["split"] == split]

    def rows_arrays(self, positions: list[int] | np.ndarray, keys=tuple(SHARD_ARRAYS)) -> dict[str, np.ndarray]:
        """Stacked arrays of the clips at these index positions (in that order); each shard is
        opened once and only the asked rows are copied out."""
        positions = np.asarray(positions, np.int64)
        T = self.meta["frames"]
        shapes = shard_shapes(len(positions), T)
        out = {k: np.empty(shapes[k], SHARD_ARRAYS[k][1]) for k in keys}
        shard = np.array([self.index[i]["shard"] for i in positions], np.int64)
        row = np.array([self.index[i]["row"] for i in positions], np.int64)
        for s in np.unique(shard):
            sel = np.flatnonzero(shard == s)
            p = self.path / self.meta["shards"][int(s)]
            with np.load(p, allow_pickle=False) as z:
                for k in keys:
                    try:
                        out[k][sel] = z[k][row[sel]]
                    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
                        raise CorpusError(f"{p}: corrupt array {k!r} ({e})") from None
        return out

    def arrays(self, split: str | None = None, keys=tuple(SHARD_ARRAYS)) -> dict[str, np.ndarray]:
        """The split's clips stacked: transl (n,T,2,3), global_orient (n,T,2,3), hand_pose
        (n,T,2,45), betas (n,2,10), joints (n,T,2,21,3) float16; rows in id order."""
        self._check_split(split)
        pos = [i for i, r in enumerate(self.index) if split is None or r["split"] == split]
        return self.rows_arrays(pos, keys)

    def texts(self, split: str | None = None, level: int | None = None) -> list:
        """Per clip: {"text", "left", "right"} at ``level``, or the list of all five levels."""
        self._check_split(split)
        if level is not None and level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS} or None; got {level!r}")
        recs = self.records(split)
        if level is None:
            return [r["texts"] for r in recs]
        return [r["texts"][level - 1] for r in recs]

    def clip(self, i: int):
        """Clip number ``i`` (index position) as a Clip, prompt = its level-1 texts."""
        from engine.motion.clip import Clip, Prompt
        a = self.rows_arrays([i], keys=("transl", "global_orient", "hand_pose", "betas"))
        t = self.index[i]["texts"][0]
        return Clip(a["transl"][0], a["global_orient"][0], a["hand_pose"][0], a["betas"][0], fps=self.meta["fps"],
                    prompt=Prompt(t.get("text", ""), t.get("left", ""), t.get("right", "")))


__all__ = ["Corpus", "CorpusError", "FORMAT_VERSION", "KIND", "SPLITS", "SHARD_ARRAYS", "SHARD_SIZE",
           "clip_id", "split_of"]
