"""Writing corpora (layout: ``engine.data.corpus``): procedural (``build_corpus_iter``) and from a
folder of mocap (``import_corpus_iter``). Both are generators of progress dicts
``{"done", "of", "clips_per_s", ...}`` so the CLI and the GUI show progress and cancel by closing
them; a cancelled or failed build leaves nothing behind (it writes ``DIR.tmp-XXXX`` and renames).
Both write through ``write_corpus_iter``, the public writer for any other producer of clips
(the app's dataset panel saves reviewed imports with it).

Determinism: clip ``i`` of seed ``S`` uses the generator seed ``clip_seed(S, i)``; shards are
written with fixed zip timestamps, so the same arguments give the same bytes whatever the
number of workers (meta.json differs only in ``build_seconds``).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from engine.data.corpus import (FORMAT_VERSION, INDEX_FIELDS, KIND, LEVELS, META_FIELDS, SHARD_ARRAYS, SHARD_SIZE,
                                SPLITS, clip_id, shard_shapes, split_of)

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
IMPORT_SUFFIXES = (".npz", ".npy", ".json", ".bvh", ".fbx")
CHUNK = 50  # clips per worker task


def clip_seed(seed: int, i: int) -> int:
    """The generator seed of clip ``i`` in a corpus of seed ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(i)]).generate_state(1, np.uint32)[0])


# --- per clip ---------------------------------------------------------------------------------

def _json_safe(x):
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def contact_spans(contact: np.ndarray) -> list[list[int]]:
    """(T,) bool -> [[start, stop), ...] runs of True."""
    c = np.concatenate([[False], np.asarray(contact, bool), [False]])
    edges = np.flatnonzero(np.diff(c.astype(np.int8)))
    return [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2])]


def annotate(joints: np.ndarray, fps: float, caption_seed: int, actions: list) -> dict:
    """Keypoints (T, 2, 21, 3) -> the index fields derived from the motion: texts (levels 1..5),
    action text, events summary (+ ``contact_spans`` and per-hand ``intensity`` in deg/s, for the
    HandX Table 1 statistics) and the distinct event features."""
    from engine.data.captions import caption_levels
    from engine.data.cleaning import hand_intensity
    from engine.motion.events import events_to_json
    from engine.motion.features import features_from_joints

    f = features_from_joints(joints, fps)
    doc = events_to_json(f)
    caps = caption_levels(doc, seed=caption_seed, actions=actions or None)
    contact = ((f.tip_across_state == 0).any(axis=(1, 2)) | (f.tip_palm_state == 0).any(axis=(1, 2))
               | (f.palm_gap_state == 0) | (f.hand_gap_state == 0))  # the same test as events' contact_ratio
    summary = dict(doc["summary"])
    summary["contact_spans"] = contact_spans(contact)
    summary["intensity"] = [round(float(x), 3) for x in hand_intensity(joints, fps)]
    return {
        "texts": [{"level": lv, "text": c["text"], "left": c["left"], "right": c["right"]} for lv, c in zip(LEVELS, caps)],
        "action": next((c["action"] for c in caps if c.get("action")), ""),
        "events": _json_safe(summary),
        "event_types": sorted({e["feature"] for e in doc["events"]}),
    }


def _clip_arrays(clip) -> dict[str, np.ndarray]:
    return {"transl": clip.transl.astype(np.float32), "global_orient": clip.global_orient.astype(np.float32),
            "hand_pose": clip.hand_pose.astype(np.float32), "betas": clip.betas.astype(np.float32),
            "joints": clip.joints.astype(np.float16)}


def _stack(items: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.stack([a[k] for a in items]) for k in SHARD_ARRAYS}


def _synth_chunk(task: tuple) -> tuple[dict, list[dict]]:
    """Worker: clips [start, stop) of a synthetic corpus -> (stacked arrays, index records)."""
    from engine.data.synth import generate_clip
    from engine.threads import torch_threads
    seed, start, stop, frames, fps, program = task
    arrays, recs = [], []
    with torch_threads(1), _blas_one_thread():
        for i in range(start, stop):
            s = clip_seed(seed, i)
            clip, labels = generate_clip(s, frames=frames, fps=fps, program=program)
            labels = _json_safe(labels)
            rec = {"id": clip_id(i), "shard": i // SHARD_SIZE, "row": i % SHARD_SIZE, "split": split_of(seed, i)}
            rec.update(annotate(clip.joints, clip.fps, s, labels))
            rec["actions"] = labels
            rec["source"] = "synthetic"
            arrays.append(_clip_arrays(clip))
            recs.append({k: rec[k] for k in ("id", "shard", "row", "split", "texts", "action", "actions", "events",
                                             "event_types", "source")})
    return _stack(arrays), recs


@contextmanager
def _blas_one_thread():
    """One BLAS thread in this process too (the workers=1 path runs here, where numpy was loaded
    with the default pool: its idle threads spin and tripled the CPU per clip, measured)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1):
        yield


def _worker_init() -> None:
    for k in THREAD_ENV:
        os.environ[k] = "1"
    import torch
    torch.set_num_threads(1)


@contextmanager
def _one_thread_env():
    """Children inherit the environment at spawn: BLAS/OpenMP read it before numpy/torch load."""
    old = {k: os.environ.get(k) for k in THREAD_ENV}
    os.environ.update({k: "1" for k in THREAD_ENV})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- writing ----------------------------------------------------------------------------------

def save_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` layout (loadable with allow_pickle=False) with fixed zip timestamps, so equal
    arrays give equal bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for k, a in arrays.items():
            info = zipfile.ZipInfo(f"{k}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(a), allow_pickle=False)


# meta.json fields the writer owns (computed from what was written); a caller's values are ignored
WRITER_META = ("format_version", "kind", "n", "splits", "shards")
_REQUIRED_META = {k: t for k, t in META_FIELDS.items() if k not in WRITER_META}  # frames, fps, source


def _check_meta(meta, frames: int | None) -> dict:
    if not isinstance(meta, dict):
        raise ValueError(f"corpus meta must be a dict; got {type(meta).__name__}")
    for key, typ in _REQUIRED_META.items():
        if key not in meta:
            raise ValueError(f"corpus meta needs field {key!r} ({', '.join(_REQUIRED_META)})")
        if not isinstance(meta[key], typ) or isinstance(meta[key], bool):
            raise ValueError(f"corpus meta field {key!r} has the wrong type ({type(meta[key]).__name__})")
    if meta["frames"] < 1:
        raise ValueError(f"corpus meta field 'frames' must be >= 1; got {meta['frames']}")
    if frames is not None and meta["frames"] != frames:
        raise ValueError(f"corpus meta says frames={meta['frames']}, but the clips have {frames} frames")
    return meta


class _Writer:
    """Collects clips into shards of ``shard_size`` and the index, inside the temporary folder.
    ``frames`` None: taken from the first batch."""

    def __init__(self, root: Path, frames: int | None, shard_size: int = SHARD_SIZE):
        if not isinstance(shard_size, int) or shard_size < 1:
            raise ValueError(f"shard_size must be an int >= 1; got {shard_size!r}")
        self.root, self.frames, self.shard_size = root, frames, shard_size
        (root / "shards").mkdir(parents=True)
        self.index = open(root / "index.jsonl", "w", encoding="utf-8")
        self.pending: list[dict] = []
        self.n_pending = 0
        self.shards: list[str] = []
        self.n = 0
        self.splits = {s: 0 for s in SPLITS}

    def _checked(self, arrays: dict, recs: list[dict]) -> dict:
        """The batch's arrays as the shard dtypes; ValueError naming the array or record at fault."""
        if not isinstance(arrays, dict):
            raise ValueError(f"a batch's arrays must be a dict of {list(SHARD_ARRAYS)}; got {type(arrays).__name__}")
        missing = [k for k in SHARD_ARRAYS if k not in arrays]
        if missing:
            raise ValueError(f"clip {self.n}: batch arrays lack {missing}; a corpus stores {list(SHARD_ARRAYS)}")
        if self.frames is None:
            t = np.shape(arrays["transl"])
            if len(t) != 4 or t[1] < 1:
                raise ValueError(f"clip {self.n}: transl must be (k, T, 2, 3); got {t}")
            self.frames = int(t[1])
        out = {}
        for k, want in shard_shapes(len(recs), self.frames).items():
            a = np.asarray(arrays[k])
            if a.shape != want or not np.issubdtype(a.dtype, np.floating):
                raise ValueError(f"clip {self.n}: {k} must be a float array {want} ({len(recs)} records, "
                                 f"{self.frames} frames); got {a.dtype} {a.shape}")
            out[k] = a.astype(SHARD_ARRAYS[k][1], copy=False)
        for j, rec in enumerate(recs):
            where = f"record {self.n + j}"
            if not isinstance(rec, dict):
                raise ValueError(f"{where}: must be a dict; got {type(rec).__name__}")
            for key, typ in INDEX_FIELDS.items():
                if key not in ("id", "shard", "row") and not isinstance(rec.get(key), typ):
                    raise ValueError(f"{where}: field {key!r} missing or not a {typ.__name__}")
            if rec["split"] not in SPLITS:
                raise ValueError(f"{where}: split must be one of {SPLITS}; got {rec['split']!r}")
            if [t.get("level") if isinstance(t, dict) else None for t in rec["texts"]] != list(LEVELS):
                raise ValueError(f"{where}: texts must hold levels {list(LEVELS)}, in order")
        return out

    def add(self, arrays: dict, recs: list[dict]) -> None:
        """Arrays (k, ...) for k records; records get their id/shard/row here, in arrival order."""
        arrays = self._checked(arrays, recs)
        for j, rec in enumerate(recs):
            i = self.n + j
            rec["id"], rec["shard"], rec["row"] = clip_id(i), i // self.shard_size, i % self.shard_size
            self.index.write(json.dumps(rec, ensure_ascii=False, sort_keys=False) + "\n")
            self.splits[rec["split"]] += 1
        self.n += len(recs)
        start = 0
        while start < len(recs):
            take = min(len(recs) - start, self.shard_size - self.n_pending)
            self.pending.append({k: v[start:start + take] for k, v in arrays.items()})
            self.n_pending += take
            start += take
            if self.n_pending == self.shard_size:
                self._flush()

    def _flush(self) -> None:
        if not self.n_pending:
            return
        rel = f"shards/{len(self.shards):03d}.npz"
        data = {k: np.concatenate([p[k] for p in self.pending]) for k in SHARD_ARRAYS}
        save_npz_deterministic(self.root / rel, data)
        self.shards.append(rel)
        self.pending, self.n_pending = [], 0

    def close(self, meta: dict) -> None:
        self._flush()
        self.index.close()
        full = {"format_version": FORMAT_VERSION, "kind": KIND, "n": self.n}
        full.update((k, v) for k, v in meta.items() if k not in WRITER_META)
        full.update(splits=self.splits, shards=self.shards)
        (self.root / "meta.json").write_text(json.dumps(_json_safe(full), indent=1) + "\n", encoding="utf-8")

    def abort(self) -> None:
        if not self.index.closed:
            self.index.close()


def _prepare_out(out: str | Path, force: bool) -> tuple[Path, Path]:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} exists and is not empty; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    tmp.rmdir()  # _Writer creates it
    return out, tmp


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename the finished temporary folder to ``out`` (replacing an old one only now)."""
    old = None
    if out.exists():
        old = out.with_name(f"{out.name}.old-{os.getpid()}-{int(time.time())}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_corpus_iter(out: str | Path, rows: Iterable, meta: dict | Callable[[], dict], force: bool = False, *,
                      total: int | None = None, shard_size: int = SHARD_SIZE) -> Iterator[dict]:
    """Write a corpus at ``out`` in the layout ``engine.data.corpus.Corpus`` (and so every trainer)
    reads; the writer under ``data build``, ``data import`` and the app's dataset panel.

    ``rows`` yields batches ``(arrays, records)`` or ``(arrays, records, extra)``: ``arrays`` a dict
    of the shard arrays (``transl`` (k, T, 2, 3), ``global_orient`` (k, T, 2, 3), ``hand_pose``
    (k, T, 2, 45), ``betas`` (k, 2, 10), ``joints`` (k, T, 2, 21, 3); cast to the stored dtypes),
    ``records`` k index records (``split``, ``texts`` with levels 1..5, ``action``, ``actions``,
    ``events``, ``event_types``, ``source``, and any extra keys; ``id``/``shard``/``row`` are set
    here, in arrival order). ``extra``, a dict, is merged into that batch's progress item (its keys
    win), so a builder can report in its own units; a batch may hold no clips (``arrays`` None,
    ``records`` empty) just to report.

    ``meta``: the meta.json fields (``frames``, ``fps``, ``source`` required; ``format_version``,
    ``kind``, ``n``, ``splits`` and ``shards`` are the writer's), or a callable returning them,
    called once every batch is written (for fields known only then: build time, cleaning totals;
    it may raise to abandon the corpus).

    Yields ``{"done": 0, "of": total}`` before the first batch, ``{"done": clips written, "of",
    **extra}`` after each, last ``{"done", "of", "path", "splits"}``. Atomic: everything goes to a
    temporary sibling ``OUT.tmp-XXXX`` that is renamed into place at the end (an existing
    non-empty ``out`` only with ``force``, and replaced only then); a failure, a bad batch
    (ValueError naming the array or record) or closing the generator leaves nothing behind, and
    closes ``rows`` if it has ``close`` (so a generator's own clean-up runs). No clips: ValueError.
    """
    if not callable(meta):
        _check_meta(meta, None)
    out, tmp = _prepare_out(out, force)
    writer = None
    try:
        writer = _Writer(tmp, meta["frames"] if isinstance(meta, dict) else None, shard_size)
        yield {"done": 0, "of": total}
        for batch in rows:
            if not isinstance(batch, tuple) or len(batch) not in (2, 3):
                raise ValueError(f"rows must yield (arrays, records) or (arrays, records, extra); got "
                                 f"{type(batch).__name__}")
            arrays, recs = batch[0], list(batch[1])
            if recs:
                writer.add(arrays, recs)
            yield {"done": writer.n, "of": total, **(batch[2] if len(batch) == 3 and batch[2] else {})}
        if writer.n == 0:
            raise ValueError(f"{out}: no clips to write")
        final = _check_meta(meta() if callable(meta) else meta, writer.frames)
        writer.close(final)
        splits = dict(writer.splits)
        _swap_in(tmp, out)
        yield {"done": writer.n, "of": writer.n if total is None else total, "path": str(out), "splits": splits}
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
        if writer is not None:
            writer.abort()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_corpus(out: str | Path, rows: Iterable, meta: dict | Callable[[], dict], force: bool = False,
                 **kwargs) -> Path:
    """``write_corpus_iter`` run to the end -> the corpus folder."""
    last = {}
    for last in write_corpus_iter(out, rows, meta, force, **kwargs):
        pass
    return Path(last["path"])


def _generator_info() -> dict:
    import engine
    from engine.data.synth import ACTIONS
    return {"name": "engine.data.synth", "version": engine.__version__, "actions": sorted(ACTIONS)}


# --- procedural corpus ------------------------------------------------------------------------

def build_corpus_iter(n: int, seed: int, out: str | Path, workers: int = 2, frames: int = 60, fps: float = 30.0,
                      force: bool = False, shard_size: int = SHARD_SIZE, program: str = "mixed"):
    """Generate ``n`` procedural clips into a corpus at ``out``; yields progress dicts, the last
    one with ``"path"``. ``workers`` > 1 uses a spawn-context process pool (one thread each).
    ``program``: what the clips do (``synth.PROGRAMS``): "mixed" is the default corpus, "concurrent"
    a supplement of two one-hand actions at once (meta.json records it)."""
    from engine.data.synth import PROGRAMS
    if program not in PROGRAMS:
        raise ValueError(f"program must be one of {PROGRAMS}; got {program!r}")
    if not 1 <= int(n) <= 10_000_000:
        raise ValueError(f"n must be 1..10000000; got {n}")
    if not 1 <= int(workers) <= 256:
        raise ValueError(f"workers must be 1..256; got {workers}")
    if not 8 <= int(frames) <= 108_000:
        raise ValueError(f"frames must be 8..108000; got {frames}")
    n, frames, fps, workers = int(n), int(frames), float(fps), int(workers)
    t0 = time.perf_counter()
    chunk = max(1, min(CHUNK, n // (8 * workers)))  # small corpora still report progress often
    tasks = [(int(seed), s, min(s + chunk, n), frames, fps, program) for s in range(0, n, chunk)]
    pools = []

    def batches():  # started by the writer once ``out`` is checked, so no worker starts for a refused build
        if workers == 1:
            results = map(_synth_chunk, tasks)
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor
            with _one_thread_env():  # workers start on the first submit: keep the env until then
                pools.append(ProcessPoolExecutor(min(workers, len(tasks)), mp_context=mp.get_context("spawn"),
                                                 initializer=_worker_init))  # a dead worker raises, never hangs
                results = pools[0].map(_synth_chunk, tasks)
        yield from results
        if pools:
            pools.pop().shutdown()

    def meta() -> dict:
        return {"frames": frames, "fps": fps, "seed": int(seed), "source": "synthetic",
                "build_seconds": round(time.perf_counter() - t0, 2), "generator": _generator_info(),
                "cleaning": None, "workers": workers, "program": program}

    rate = lambda k: round(k / max(time.perf_counter() - t0, 1e-9), 1)  # noqa: E731
    rows = batches()
    it = write_corpus_iter(out, rows, meta, force, total=n, shard_size=shard_size)
    try:
        for item in it:
            if "path" in item:
                yield {"done": n, "of": n, "clips_per_s": rate(n), "seconds": round(time.perf_counter() - t0, 2),
                       "path": item["path"]}
            else:
                yield {"done": item["done"], "of": n, "clips_per_s": rate(item["done"]) if item["done"] else 0.0}
    finally:
        it.close()  # removes the temporary folder, closes ``rows``
        rows.close()
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)


def build_corpus(n: int, seed: int, out: str | Path, **kwargs) -> Path:
    last = None
    for last in build_corpus_iter(n, seed, out, **kwargs):
        pass
    return Path(last["path"])


# --- corpus from mocap ------------------------------------------------------------------------

def find_sources(src: Path) -> list[list[Path]]:
    """Importable files under ``src`` (recursive), sorted; ``NAME_left.ext`` + ``NAME_right.ext``
    pairs (per-hand BVH exports) form one source; JSON sidecars of same-stem .npz clips are skipped."""
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMPORT_SUFFIXES)
    stems = {(p.parent, p.stem) for p in files if p.suffix.lower() == ".npz"}
    files = [p for p in files if not (p.suffix.lower() == ".json" and (p.parent, p.stem) in stems)]
    groups: dict[tuple, list[Path]] = {}
    for p in files:
        stem, suf = p.stem, p.suffix.lower()
        for side in ("_left", "_right"):
            if stem.endswith(side):
                key = (p.parent, stem[: -len(side)], suf, "pair")
                break
        else:
            key = (p.parent, stem, suf, "one")
        groups.setdefault(key, []).append(p)
    out = []
    for key, ps in sorted(groups.items(), key=lambda kv: str(kv[1][0])):
        out.append(sorted(ps, key=lambda p: p.stem.endswith("_right")))  # left first
    return out


def import_corpus_iter(src: str | Path, out: str | Path, fps: float | None = None, units: str = "auto",
                       seed: int = 0, cfg=None, force: bool = False, frames: int = 60, corpus_fps: float = 30.0):
    """Every importable file under ``src`` -> cleaned 60-frame windows, auto-captioned (no action
    labels), written as a corpus with ``source="import"``. All windows of one source file share a
    split. Per-file errors are yielded as ``{"error": "path: message"}`` and skipped."""
    from dataclasses import asdict, replace

    from engine.data.cleaning import CleaningConfig, CleaningReport, clean_sequence
    from engine.data.importers import import_clips
    from engine.export.rig import resample
    from engine.threads import torch_threads

    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"source folder not found: {src}")
    cfg = replace(cfg or CleaningConfig(), clip_length=int(frames))
    sources = find_sources(src)
    if not sources:
        raise ValueError(f"{src}: no importable files (accepted: {', '.join(IMPORT_SUFFIXES)}, searched recursively)")
    t0 = time.perf_counter()
    total = CleaningReport()
    per_file, errors = {}, {}
    written = 0
    rate = lambda: round(written / max(time.perf_counter() - t0, 1e-9), 1)  # noqa: E731

    def batches():
        nonlocal total, written
        for k, group in enumerate(sources):
            name = " + ".join(str(p.relative_to(src)) for p in group)
            try:
                with torch_threads(1):
                    clip, _notes = import_clips(group, units=units, fps=fps)
                    if abs(clip.fps - corpus_fps) > 1e-6:
                        clip = resample(clip, corpus_fps)
                    windows, rep = clean_sequence(clip, cfg)
                    split = split_of(seed, k)
                    arrays, recs = [], []
                    for w in windows:
                        rec = {"id": "", "shard": 0, "row": 0, "split": split}
                        rec.update(annotate(w.joints, w.fps, clip_seed(seed, written + len(recs)), []))
                        rec["actions"], rec["source"] = [], name
                        recs.append({kk: rec[kk] for kk in ("id", "shard", "row", "split", "texts", "action", "actions",
                                                            "events", "event_types", "source")})
                        arrays.append(_clip_arrays(w))
            except Exception as e:  # one bad file must not stop an import; it is reported and skipped
                errors[name] = f"{type(e).__name__}: {e}"
                yield None, [], {"done": k + 1, "of": len(sources), "clips": written, "error": f"{name}: {e}",
                                 "clips_per_s": rate()}
                continue
            written += len(recs)
            total = total.merge(rep)
            d = rep.to_dict()
            per_file[name] = {kk: v for kk, v in d.items() if not isinstance(v, list)}
            yield (_stack(arrays) if recs else None), recs, {
                "done": k + 1, "of": len(sources), "clips": written, "file": name, "kept": rep.kept,
                "clips_per_s": rate()}
        if written == 0:
            raise ValueError(f"{src}: no clip survived import and cleaning ({len(errors)} file(s) failed, "
                             f"{len(per_file)} gave no {frames}-frame window that passed the filters)")

    def meta() -> dict:
        d = total.to_dict()
        cleaning = {"total": {kk: v for kk, v in d.items() if not isinstance(v, list)}, "files": per_file,
                    "errors": errors, "config": asdict(cfg)}
        return {"frames": int(frames), "fps": float(corpus_fps), "seed": int(seed), "source": "import",
                "source_dir": str(src.resolve()), "build_seconds": round(time.perf_counter() - t0, 2),
                "generator": None, "cleaning": cleaning}

    rows = batches()
    it = write_corpus_iter(out, rows, meta, force, total=len(sources))
    try:
        for item in it:
            if "path" in item:
                yield {"done": len(sources), "of": len(sources), "clips": written, "path": item["path"],
                       "errors": len(errors), "seconds": round(time.perf_counter() - t0, 2), "clips_per_s": rate()}
            elif "clips" not in item:  # the writer's opening item
                yield {"done": 0, "of": len(sources), "clips_per_s": 0.0, "clips": 0}
            else:
                yield item
    finally:
        it.close()
        rows.close()


# --- sample -------------------------------------------------------------------------------------

def sample_corpus(corpus, n: int, out: str | Path, split: str | None = "test", seed: int = 0) -> list[Path]:
    """``n`` clips of a split (seeded choice, in id order) as clip npz files + JSON sidecars."""
    from engine.data.corpus import Corpus
    c = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    pos = [i for i, r in enumerate(c.index) if split is None or r["split"] == split]
    if not pos:
        raise ValueError(f"{c.path}: split {split!r} is empty")
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    pick = sorted(np.random.default_rng(int(seed)).choice(pos, size=min(n, len(pos)), replace=False).tolist())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i in pick:
        rec = c.index[i]
        path = c.clip(i).save(out / f"{rec['id']}.npz")
        side = {k: rec[k] for k in ("id", "split", "texts", "action", "actions", "events", "event_types", "source")}
        side["corpus"] = str(c.path)
        from engine.motion.clip import atomic_write
        atomic_write(out / f"{rec['id']}.json",
                     lambda f, s=side: f.write((json.dumps(s, indent=1, ensure_ascii=False) + "\n").encode("utf-8")))
        written.append(path)
    return written
