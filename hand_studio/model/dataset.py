"""A dataset being prepared from the user's own mocap. No Qt.

1. ``import_dataset_iter`` runs the ``hand-studio data import`` pipeline
   (``engine.data.corpus_build.import_corpus_iter``: import, resample, clean, caption from measured
   events) into a *staging* corpus, optionally re-captions each window with CLUTCH, and ends with a
   ``DatasetState``.
2. The user reviews it: ``DatasetState.set_accepted`` / ``set_caption`` (the panel writes these).
3. ``write_dataset_iter`` writes the accepted clips, with their captions, as a corpus in the layout
   the trainers read (docs/corpus.md), atomically: a temporary sibling folder renamed into place.

Captions: the table shows each window's level-1 text. A caption that differs from the pipeline's
(edited by the user, or written by CLUTCH) replaces the text of all five levels, per-hand texts
cleared, so the trainer learns exactly what the table showed; ``caption_source`` in the index
says which ("events", "clutch" or "edited"). Untouched captions keep all five event levels.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from engine.data.cleaning import CleaningConfig
from engine.paths import user_path
from hand_studio.model.events import EmitterGroup

# name -> (label, unit, minimum, maximum, step, decimals, tooltip)
_CLEANING_HINTS = {
    "max_speed": ("Max keypoint speed", "m/s", 0.1, 100.0, 0.5, 2,
                  "A keypoint moving faster than this between two frames marks the frame defective"),
    "savgol_window": ("Savitzky-Golay window", "frames", 0, 61, 2, 0, "Odd number of frames; 0 turns it off"),
    "savgol_order": ("Savitzky-Golay order", "", 0, 8, 1, 0, "Polynomial order; below the window"),
    "gauss_sigma": ("Gaussian sigma", "frames", 0.0, 10.0, 0.1, 2, "0 turns the Gaussian smoothing off"),
    "clip_length": ("Clip length", "frames", 8, 1800, 1, 0,
                    "Frames per training window (the shipped diffusion model trains on 60)"),
    "max_transl_accel": ("Max translation jitter", "m/s²", 0.0, 10000.0, 1.0, 1,
                         "Top-3 high-frequency wrist acceleration above this rejects a window"),
    "max_rot_accel": ("Max rotation jitter", "deg/s²", 0.0, 1e7, 1000.0, 0,
                      "Top-3 high-frequency joint rotation acceleration above this rejects a window"),
    "min_hand_intensity": ("Min hand intensity", "deg/s", 0.0, 1000.0, 1.0, 1,
                           "Each hand's weighted finger angular speed must reach this (HandX: 25)"),
    "min_avg_intensity": ("Min average intensity", "deg/s", 0.0, 1000.0, 1.0, 1,
                          "Both hands' mean finger angular speed must reach this (HandX: 30)"),
}


@dataclass(frozen=True)
class FieldSpec:
    """How one ``CleaningConfig`` threshold is edited: an int or float spin box."""

    name: str
    label: str
    unit: str
    is_int: bool
    default: float
    minimum: float
    maximum: float
    step: float
    decimals: int
    tooltip: str


def cleaning_fields() -> list[FieldSpec]:
    """One spec per ``CleaningConfig`` field, in the dataclass's order (a field added to the engine
    later gets a generic spin box)."""
    out = []
    for f in fields(CleaningConfig):
        default = f.default
        is_int = isinstance(default, int) and not isinstance(default, bool)
        generic = (f.name.replace("_", " ").capitalize(), "", 0, max(10.0 * abs(default), 1e6), 1, 0 if is_int else 3,
                   "")
        label, unit, lo, hi, step, dec, tip = _CLEANING_HINTS.get(f.name, generic)
        out.append(FieldSpec(f.name, label, unit, is_int, default, lo, hi, step, dec, tip))
    return out


def cleaning_config(values: dict) -> CleaningConfig:
    """Spin-box values -> a checked ``CleaningConfig`` (``CleaningConfig`` checks every range); a bad
    value raises ValueError led by the field's label, e.g. "Max keypoint speed: max_speed must be > 0 ..."."""
    unknown = sorted(set(values) - {f.name for f in fields(CleaningConfig)})
    if unknown:
        raise ValueError(f"unknown cleaning setting(s) {unknown}; known: {[f.name for f in fields(CleaningConfig)]}")
    try:
        return replace(CleaningConfig(), **values)
    except ValueError as e:
        name = str(e).split(" ", 1)[0]
        if name in _CLEANING_HINTS:
            raise ValueError(f"{_CLEANING_HINTS[name][0]}: {e}") from None
        raise


# --- the cleaning report ----------------------------------------------------------------------

@dataclass(frozen=True)
class StepRow:
    """One line of the per-step report: what a step removed and why."""

    step: str
    removed: int
    unit: str
    reasons: str


def step_rows(report: dict | None, config: dict, errors: dict | None = None) -> list[StepRow]:
    """A cleaning report (``meta["cleaning"]["total"]`` or one of its ``files``) -> report lines.
    ``errors`` (source -> message) are the sources that could not be imported at all."""
    r = dict(report or {})
    c = {**asdict(CleaningConfig()), **(config or {})}
    g = lambda k: int(r.get(k, 0))  # noqa: E731
    L = int(c["clip_length"])
    rows = []
    if errors is not None:
        reasons = "; ".join(f"{k}: {v}" for k, v in errors.items()) or "every file was read"
        rows.append(StepRow("Import", len(errors), "files", reasons))
    rows += [
        StepRow("Defective frames", g("defective_frames"), "frames",
                f"non-finite values, or a keypoint faster than {c['max_speed']:g} m/s between two frames "
                f"(of {g('frames_in')} frames read)"),
        StepRow("Smoothing", 0, "frames",
                f"Savitzky-Golay {c['savgol_window']} frames, order {c['savgol_order']}; Gaussian sigma "
                f"{c['gauss_sigma']:g} frames (changes motion, removes nothing)"),
        StepRow("Clip extraction", g("frames_outside_clips"), "frames",
                f"in valid stretches shorter than {L} frames or left over after cutting {L}-frame windows; "
                f"{g('clips_extracted')} windows cut"),
        StepRow("Jitter", g("rejected_jitter"), "windows",
                f"high-frequency acceleration above {c['max_transl_accel']:g} m/s² (wrists) or "
                f"{c['max_rot_accel']:g} deg/s² (rotations)"),
        StepRow("Intensity", g("rejected_intensity"), "windows",
                f"a hand below {c['min_hand_intensity']:g} deg/s or both below {c['min_avg_intensity']:g} deg/s "
                "on average (finger motion too slight)"),
        StepRow("Kept", g("kept"), "windows", "passed every step"),
    ]
    return rows


# --- the reviewed dataset ---------------------------------------------------------------------

@dataclass
class DatasetClip:
    """One window of the staging corpus, as the review table shows it."""

    position: int  # row in the staging corpus's index
    source: str  # the source file(s), relative to the imported folder
    window: int  # 0-based number of this window within its source
    split: str
    seconds: float
    auto_caption: str  # what the pipeline wrote (events, or CLUTCH)
    caption: str
    caption_source: str = "events"  # "events" | "clutch"
    accepted: bool = True

    @property
    def edited(self) -> bool:
        return self.caption != self.auto_caption

    @property
    def label(self) -> str:
        return f"{self.source} #{self.window + 1}"


class DatasetState:
    """The staging corpus plus the user's review (accepted flags, captions). Events:
    ``clips`` (the whole list changed), ``clip`` (one row changed; value = its row)."""

    def __init__(self, staging: str | Path, clips: list[DatasetClip], meta: dict, records: list[dict]):
        self.staging = Path(staging)
        self.clips = clips
        self.meta = meta
        self.records = records  # the staging index, aligned with positions
        self.events = EmitterGroup(self, "clips", "clip")

    @classmethod
    def from_corpus(cls, staging: str | Path) -> "DatasetState":
        from engine.data.corpus import Corpus
        corpus = Corpus(staging)
        seconds = corpus.meta["frames"] / float(corpus.meta["fps"])
        clips, seen = [], {}
        for i, rec in enumerate(corpus.index):
            k = seen.get(rec["source"], 0)
            seen[rec["source"]] = k + 1
            text = rec["texts"][0]["text"]
            clips.append(DatasetClip(i, rec["source"], k, rec["split"], seconds, text, text))
        return cls(staging, clips, corpus.meta, corpus.index)

    # --- report -------------------------------------------------------------------------------
    @property
    def cleaning(self) -> dict:
        return self.meta.get("cleaning") or {}

    @property
    def source_dir(self) -> Path | None:
        s = self.meta.get("source_dir")
        return Path(s) if s else None

    def report_scopes(self) -> list[str]:
        """'All files', then every source that was read, in order."""
        return ["All files"] + list(self.cleaning.get("files", {}))

    def step_rows(self, scope: str = "All files") -> list[StepRow]:
        cl = self.cleaning
        if scope == "All files":
            return step_rows(cl.get("total"), cl.get("config", {}), cl.get("errors", {}))
        return step_rows(cl.get("files", {}).get(scope), cl.get("config", {}))

    # --- review -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.clips)

    def set_accepted(self, row: int, accepted: bool) -> None:
        clip = self.clips[row]
        if clip.accepted != bool(accepted):
            clip.accepted = bool(accepted)
            self.events.clip.emit(row)

    def set_all_accepted(self, accepted: bool) -> None:
        for c in self.clips:
            c.accepted = bool(accepted)
        self.events.clips.emit(None)

    def set_caption(self, row: int, text: str) -> None:
        """The user's caption for one window; an empty one is refused (reject the clip instead)."""
        text = " ".join(str(text).split())
        if not text:
            raise ValueError("a caption cannot be empty; untick the clip to leave it out")
        clip = self.clips[row]
        if clip.caption != text:
            clip.caption = text
            self.events.clip.emit(row)

    def set_auto_caption(self, row: int, text: str, source: str) -> None:
        """A machine caption (CLUTCH) for one window; it also becomes the shown caption."""
        clip = self.clips[row]
        clip.auto_caption = clip.caption = text
        clip.caption_source = source
        self.events.clip.emit(row)

    @property
    def n_accepted(self) -> int:
        return sum(c.accepted for c in self.clips)

    @property
    def n_edited(self) -> int:
        return sum(c.edited for c in self.clips)

    def accepted_splits(self) -> dict[str, int]:
        out = {"train": 0, "val": 0, "test": 0}
        for c in self.clips:
            if c.accepted:
                out[c.split] += 1
        return out

    def summary(self) -> str:
        s = self.accepted_splits()
        return (f"{self.n_accepted} of {len(self)} clips accepted (train {s['train']}, val {s['val']}, "
                f"test {s['test']}); {self.n_edited} caption(s) edited")

    def snapshot(self) -> list[tuple[int, dict]]:
        """(staging position, index record to write) of every accepted clip, captions applied.
        Taken on the caller's thread, so later edits do not reach a save in progress."""
        out = []
        for c in self.clips:
            if not c.accepted:
                continue
            rec = {k: v for k, v in self.records[c.position].items() if k not in ("id", "shard", "row")}
            rec = {"id": "", "shard": 0, "row": 0, **rec}
            if c.edited:
                source = "edited"
            else:
                source = c.caption_source
            if source != "events":
                rec["texts"] = caption_texts(c.caption)
            rec["caption_source"] = source
            out.append((c.position, rec))
        return out


def caption_texts(caption: str) -> list[dict]:
    """One caption as the five levels of a corpus record (per-hand texts empty)."""
    from engine.data.corpus import LEVELS
    return [{"level": lv, "text": caption, "left": "", "right": ""} for lv in LEVELS]


# --- pipeline ---------------------------------------------------------------------------------

def clutch_captioner_available() -> bool:
    """Whether a CLUTCH model is installed to caption motion (cheap: looks for its files)."""
    import torch

    from engine.api import Studio
    return "clutch" in Studio(torch.device("cpu")).models


def import_dataset_iter(src: str | Path, staging: str | Path, cfg: CleaningConfig, fps: float | None = None,
                        units: str = "auto", seed: int = 0, clutch_studio=None):
    """``hand-studio data import`` into ``staging``, then (with ``clutch_studio``, a Studio whose CLUTCH
    model is installed) CLUTCH captions. Yields ``{"stage", "done", "of", "clips", "errors"}``
    (``errors``: every failed source so far, so no message is lost when progress is coalesced),
    last ``{"stage": "done", "state": DatasetState}``. Closing it cancels (nothing is left in
    ``staging``)."""
    from contextlib import closing

    from engine.data.corpus_build import import_corpus_iter
    errors: list[str] = []
    item = {}
    with closing(import_corpus_iter(src, staging, fps=fps, units=units, seed=seed, cfg=cfg,
                                    frames=cfg.clip_length)) as it:  # a cancel removes its temporary folder
        for item in it:
            if "error" in item:
                errors.append(item["error"])
            yield {"stage": "import", "done": item["done"], "of": item["of"], "clips": item.get("clips", 0),
                   "file": item.get("file", ""), "errors": list(errors)}
    state = DatasetState.from_corpus(staging)
    if clutch_studio is not None:
        from engine.data.corpus import Corpus
        corpus = Corpus(staging)
        for row, clip in enumerate(state.clips):
            state.set_auto_caption(row, clutch_studio.caption(corpus.clip(clip.position)), "clutch")
            yield {"stage": "caption", "done": row + 1, "of": len(state), "clips": len(state), "errors": list(errors)}
    yield {"stage": "done", "done": item.get("of", 0), "of": item.get("of", 0), "clips": len(state),
           "errors": list(errors), "state": state, "seconds": item.get("seconds")}


def check_output(out: str | Path, state: DatasetState) -> Path:
    """The output folder, refused where replacing it would delete the data it is made from."""
    out = user_path(out).absolute()
    for what, p in (("the imported folder", state.source_dir), ("the staging corpus", state.staging)):
        if p is None:
            continue
        p = p.absolute()
        if out == p or out in p.parents:
            raise ValueError(f"{out}: saving there would replace {what} ({p}); choose another folder")
    return out


def output_is_occupied(out: str | Path) -> bool:
    out = Path(out)
    return out.exists() and (not out.is_dir() or any(out.iterdir()))


def write_dataset_iter(state: DatasetState, out: str | Path, force: bool = False,
                       snapshot: list[tuple[int, dict]] | None = None, chunk: int = 256):
    """Write the accepted clips (``snapshot``, default ``state.snapshot()``) as a corpus at ``out``.
    Yields ``{"done", "of"}``, last with ``"path"`` and ``"splits"``. The corpus is built in a
    temporary sibling folder and renamed into place (an existing non-empty ``out`` only with
    ``force``, and replaced only once the new one is complete); closing the generator cancels."""
    # The engine's own corpus writer (the one `data build` / `data import` write with).
    from contextlib import closing

    from engine.data.corpus import Corpus
    from engine.data.corpus_build import write_corpus_iter

    out = check_output(out, state)
    snap = state.snapshot() if snapshot is None else snapshot
    if not snap:
        raise ValueError("no clip is accepted; tick at least one clip to save a dataset")
    corpus = Corpus(state.staging)
    meta = {k: v for k, v in corpus.meta.items() if k not in ("format_version", "kind", "n", "splits", "shards")}
    meta["review"] = {"imported": len(state), "accepted": len(snap), "rejected": len(state) - len(snap),
                      "captions": {k: sum(r["caption_source"] == k for _, r in snap)
                                   for k in ("events", "clutch", "edited")}}

    def batches():  # read from the staging corpus chunk by chunk, as the writer asks
        for s in range(0, len(snap), chunk):
            part = snap[s:s + chunk]
            yield corpus.rows_arrays([p for p, _ in part]), [dict(rec) for _, rec in part]

    with closing(write_corpus_iter(out, batches(), meta, force, total=len(snap))) as it:  # a cancel cleans up now
        for item in it:
            if "path" in item:
                yield {"done": len(snap), "of": len(snap), "path": item["path"], "splits": item["splits"]}
            else:
                yield {"done": item["done"], "of": len(snap)}


__all__ = ["CleaningConfig", "DatasetClip", "DatasetState", "FieldSpec", "StepRow", "caption_texts",
           "check_output", "cleaning_config", "cleaning_fields", "clutch_captioner_available",
           "import_dataset_iter", "output_is_occupied", "step_rows", "write_dataset_iter"]
