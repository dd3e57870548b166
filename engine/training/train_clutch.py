"""Train CLUTCH, stage by stage. Read top to bottom; ``train_iter`` is a generator yielding progress
(the GUI and the CLI share it), ``main`` is the command line.

    python -m engine.training.train_clutch --data CORPUS --out runs/clutch --stage shift
    python -m engine.training.train_clutch --data CORPUS --out runs/clutch --stage pretrain
    python -m engine.training.train_clutch --data CORPUS --out runs/clutch --stage refine
    python -m engine.training.train_clutch --data CORPUS --out runs/clutch --stage instruct
    hand-studio train {shift,clutch-pt,clutch-gr,clutch-ift} --data CORPUS --out RUN [--from MODEL]

Stages (CLUTCH §4): ``shift`` trains the tokenizer (or, with ``--tokenizer pd|standard``, a Table 4
baseline); ``pretrain`` trains the T5 with cross-entropy on plain text->motion / motion->text pairs
and masked motion / masked text reconstruction; ``refine`` adds the Gumbel-Softmax reconstruction
loss through the frozen SHIFT decoders (L = alpha L_LM + lambda L_rec, masked samples alpha = 0);
``instruct`` fine-tunes on the multi-task instruction templates. Each LM stage starts from the
previous stage's model (``instruct`` from ``refine`` if present, else ``pretrain``; ``--from``
overrides, e.g. for the PT + IFT ablation or to fine-tune a saved model on new data). Run folder:

    OUT/<stage>/model/        what the pipeline loads (safetensors + JSON config; LM + vocabulary)
    OUT/<stage>/train_state/  weights, optimizer, step, RNG states: the run resumes from here
    OUT/<stage>/previous/     what starting the stage over (--no-resume) moved aside, by time
    OUT/model/                a CLUTCH model folder (shift/ + lm/, links to OUT/shift/model and the
                              last LM stage's model): what ``hand-studio models add`` registers

Runs behave like the diffusion one (engine.training.train_diffusion): ``--progress jsonl`` speaks
the runner's event protocol, SIGTERM checkpoints and exits 0 (pause), a non-finite loss or gradient
stops the run before the update, and the disk is checked before a run starts.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from engine.clutch.baselines import tokenizer_config  # noqa: E402
from engine.clutch.instructions import TASKS, make_instruction, template_texts  # noqa: E402
from engine.clutch.language_model import FORMAT as LM_FORMAT  # noqa: E402
from engine.clutch.language_model import LMConfig, MotionLM, load_lm, save_lm  # noqa: E402
from engine.clutch.refine import RefineConfig, freeze, keypoints_from_rep, refine_losses  # noqa: E402
from engine.clutch.shift import SHIFT_FORMAT, ShiftConfig, ShiftTokenizer, load_shift, save_shift  # noqa: E402
from engine.clutch.vocab import MotionVocab, build_vocab  # noqa: E402
from engine.diffusion.checkpoint import (CheckpointError, load_tensors, save_tensors,  # noqa: E402
                                         write_folder_atomically)
from engine.diffusion.representation import params_to_tensor  # noqa: E402
from engine.training.train_diffusion import (TrainingError, check_disk_space, config_diff,  # noqa: E402
                                             finish_set_aside, recover_interrupted_swap, run_reporting,
                                             set_aside_run)

STAGES = ("shift", "pretrain", "refine", "instruct")
LM_STAGES = STAGES[1:]
# `hand-studio train KIND` and engine.training.runner kinds -> stage (= engine.training.runner.CLUTCH_STAGES)
RUN_KINDS = {"shift": "shift", "clutch-pt": "pretrain", "clutch-gr": "refine", "clutch-ift": "instruct"}
# 1 thread: on the shared 2-core machine 2 threads were 5-25x slower whenever another process held
# a core (OpenMP spin); --threads 2 on an idle machine.
TRAIN_THREADS = 1


@dataclass(frozen=True)
class StageConfig:
    steps: int = 2000
    batch: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 500
    device: str = "auto"
    threads: int = TRAIN_THREADS
    vocab_margin: int = 200  # pretrain only: unused frequent words kept in the text vocabulary

    @classmethod
    def from_dict(cls, d: dict) -> "StageConfig":
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"stage config has unknown fields {unknown}")
        return cls(**d)


DEFAULTS = {
    "shift": StageConfig(steps=6000, batch=64, lr=2e-4, warmup=200, weight_decay=0.0),
    "pretrain": StageConfig(steps=4000, batch=32, lr=5e-4, warmup=200),
    "refine": StageConfig(steps=1000, batch=32, lr=1e-4, warmup=50),
    "instruct": StageConfig(steps=2000, batch=32, lr=2e-4, warmup=100),
}


# --- data ------------------------------------------------------------------------------------
class ClipData:
    """One corpus split as tensors: motion x (N, T, 2, 99) raw, betas (N, 2, 10), captions per clip
    (the non-empty whole-motion texts of all levels)."""

    def __init__(self, x: torch.Tensor, betas: torch.Tensor, captions: list[list[str]]):
        if x.dim() != 4 or x.shape[2:] != (2, 99):
            raise ValueError(f"x must be (N, T, 2, 99); got {tuple(x.shape)}")
        if len(captions) != x.shape[0] or betas.shape != (x.shape[0], 2, 10):
            raise ValueError("captions and betas need one entry per clip")
        self.x, self.betas, self.captions = x, betas, captions
        self.codes: dict[str, torch.Tensor] | None = None  # {stream: (N, steps)}, see encode_with

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def frames(self) -> int:
        return self.x.shape[1]

    @torch.no_grad()
    def encode_with(self, shift: ShiftTokenizer, chunk: int = 256) -> None:
        parts = [shift.encode(self.x[i:i + chunk]) for i in range(0, len(self), chunk)]
        self.codes = {s: torch.cat([p[s] for p in parts]) for s in shift.streams}

    def clip_codes(self, i: int) -> dict[str, torch.Tensor]:
        return {s: c[i] for s, c in self.codes.items()}


def load_split(data_dir: str | Path, split: str = "train", extra: list | tuple = ()) -> ClipData:
    """A corpus folder (engine.data.corpus layout) -> ClipData of one split. ``extra``: more corpus
    folders whose clips of the split follow (a ``data build --program concurrent`` supplement); all
    need the same frames per clip."""
    from engine.data.corpus import Corpus
    xs, betas, captions = [], [], []
    for folder in [data_dir, *extra]:
        corpus = Corpus(folder)
        a = corpus.arrays(split, keys=("transl", "global_orient", "hand_pose", "betas"))
        if a["transl"].shape[0] == 0:
            raise ValueError(f"{folder}: the {split!r} split is empty")
        if xs and a["transl"].shape[1] != xs[0].shape[1]:
            raise ValueError(f"{folder}: clips of {a['transl'].shape[1]} frames; {data_dir} has "
                             f"{xs[0].shape[1]}: every corpus of one run needs the same length")
        xs.append(params_to_tensor(*(torch.from_numpy(a[k]) for k in ("global_orient", "hand_pose", "transl"))))
        caps = [[t["text"].strip() for t in levels if t.get("text", "").strip()] for levels in corpus.texts(split)]
        empty = [i for i, c in enumerate(caps) if not c]
        if empty:
            raise ValueError(f"{folder}: clip {empty[0]} of split {split!r} has no caption text")
        betas.append(torch.from_numpy(a["betas"]))
        captions += caps
    return ClipData(torch.cat(xs), torch.cat(betas), captions)


# --- optimisation helpers ---------------------------------------------------------------------
def lr_at(step: int, cfg: StageConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


def make_optimizer(model: torch.nn.Module, cfg: StageConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.99))


def save_train_state(folder: Path, model, opt, step: int, gen: torch.Generator, extra: dict,
                     vocab: MotionVocab | None = None, py_rng: random.Random | None = None) -> Path:
    """Everything needed to continue bit for bit: weights, optimizer, step, RNG states (the data
    generator, torch's, and the sample builder's ``random.Random``) (+ the vocabulary)."""
    from engine.clutch.language_model import _dedupe
    state, aliases = _dedupe(model.state_dict())
    opt_state = opt.state_dict()
    opt_tensors, opt_meta = {}, {"param_groups": opt_state["param_groups"], "state": {}}
    for pid, st in opt_state["state"].items():
        opt_meta["state"][str(pid)] = {k: v for k, v in st.items() if not torch.is_tensor(v)}
        opt_tensors.update({f"{pid}.{k}": v for k, v in st.items() if torch.is_tensor(v)})
    doc = {"step": step, "aliases": aliases, "optimizer": opt_meta, **extra}
    if py_rng is not None:
        version, internal, gauss = py_rng.getstate()
        doc["py_rng"] = [version, list(internal), gauss]

    def write(tmp: Path):
        save_tensors(tmp / "model.safetensors", state)
        save_tensors(tmp / "optimizer.safetensors", opt_tensors)
        save_tensors(tmp / "rng.safetensors", {"data": gen.get_state(), "torch": torch.get_rng_state()})
        if vocab is not None:
            vocab.save(tmp)
        (tmp / "state.json").write_text(json.dumps(doc, indent=1))
    return write_folder_atomically(folder, write)


def read_state(folder: Path) -> dict:
    try:
        return json.loads((folder / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{folder / 'state.json'}: cannot read training state ({e})") from None


def load_train_state(folder: Path, model, opt, gen: torch.Generator, py_rng: random.Random | None = None) -> int:
    """Restore a ``save_train_state`` folder into fresh objects; returns the step to continue from.
    A state written before ``py_rng`` was saved reseeds ``py_rng`` from (seed, step) instead."""
    state = read_state(folder)
    weights = load_tensors(folder / "model.safetensors")
    for k, src in state.get("aliases", {}).items():
        weights[k] = weights[src]
    model.load_state_dict(weights)
    tensors = load_tensors(folder / "optimizer.safetensors")
    opt_state = {"param_groups": state["optimizer"]["param_groups"], "state": {}}
    for pid, extra in state["optimizer"]["state"].items():
        st = dict(extra)
        st.update({k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == pid})
        opt_state["state"][int(pid)] = st
    opt.load_state_dict(opt_state)
    rng = load_tensors(folder / "rng.safetensors")
    gen.set_state(rng["data"])
    torch.set_rng_state(rng["torch"])
    step = int(state["step"])
    if py_rng is not None:
        if "py_rng" in state:
            version, internal, gauss = state["py_rng"]
            py_rng.setstate((version, tuple(internal), gauss))
        else:
            py_rng.seed(f"{state.get('train_config', {}).get('seed', 0)}:{step}")
    return step


def close_step(item: dict, step: int, cfg: StageConfig, stop, checkpoint) -> bool:
    """End of a training step: checkpoint every ``ckpt_every`` steps, at the end, and when ``stop()``
    asks to pause (then ``item["paused"]``). Returns whether the run pauses here."""
    paused = bool(stop and stop()) and step < cfg.steps
    if step % cfg.ckpt_every == 0 or step == cfg.steps or paused:
        item["checkpoint"] = str(checkpoint())
    if paused:
        item["paused"] = True
    return paused


def _device_and_threads(cfg: StageConfig):
    from engine.api import resolve_device
    device = resolve_device(cfg.device)
    return device, (cfg.threads if device.type == "cpu" else None)


# --- run hygiene: finite numbers, fine-tuning sources -------------------------------------------
def check_losses(stage: str, step: int, losses: dict[str, torch.Tensor]) -> dict[str, float]:
    """The loss terms as floats; a non-finite one stops the run before the update (``step`` is the
    step being taken). Nothing is written, so the last checkpoint stays the last good state."""
    vals = {k: float(v.detach()) for k, v in losses.items()}
    bad = [k for k, v in vals.items() if not math.isfinite(v)]
    if bad:
        raise TrainingError(f"{stage} step {step}: loss {bad[0]} is {vals[bad[0]]} (terms {vals}); stopped before "
                            f"the update, the last checkpoint is untouched; lower the learning rate")
    return vals


def check_grad_norm(stage: str, step: int, grad_norm: torch.Tensor, total: float) -> None:
    """A non-finite gradient norm (from clip_grad_norm_) stops the run before ``opt.step()``."""
    if not torch.isfinite(grad_norm):
        raise TrainingError(f"{stage} step {step}: gradient norm is {grad_norm.item()} (loss total {total:.4g}); "
                            f"stopped before the update, the last checkpoint is untouched; lower the learning rate")


def check_weights(stage: str, step: int, model: torch.nn.Module) -> None:
    """Never checkpoint bad weights (parameters and buffers: codebooks, EMA counts, stats)."""
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise TrainingError(f"{stage} step {step}: non-finite weights ({bad[0]}); no checkpoint written")


def _is_clutch_folder(path: Path) -> bool:
    return all((path / sub / "config.json").is_file() for sub in ("shift", "lm"))


def resolve_from(stage: str, path: str | Path) -> tuple[Path, Path | None]:
    """``--from`` -> (the model folder the stage starts from, the SHIFT folder that belongs to it or
    None). It may be the stage's own kind of model folder (a SHIFT one for ``shift``, an LM one for
    the LM stages) or a CLUTCH model folder (shift/ + lm/: a registered model, or a run's OUT/model)."""
    path = Path(path)
    if _is_clutch_folder(path):
        return (path / "shift", None) if stage == "shift" else (path / "lm", path / "shift")
    want, fmt_want = ("SHIFT", SHIFT_FORMAT) if stage == "shift" else ("CLUTCH LM", LM_FORMAT)
    try:
        fmt = json.loads((path / "config.json").read_text()).get("format")
    except (OSError, json.JSONDecodeError, AttributeError):
        fmt = None
    if fmt != fmt_want:
        what = {SHIFT_FORMAT: "a SHIFT model folder", LM_FORMAT: "a CLUTCH LM model folder"}.get(
            fmt, "not a model folder")
        raise FileNotFoundError(f"--from {path}: {what}; the {stage} stage starts from a {want} model folder or a "
                                f"CLUTCH model folder (shift/ + lm/)")
    return path, None


def _digest(folder: Path) -> str:
    """A SHIFT model folder's identity: its config and its weights."""
    config = json.loads((folder / "config.json").read_text()).get("shift")
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    h.update((folder / "model.safetensors").read_bytes())
    return h.hexdigest()


def write_clutch_folder(out_dir: Path, stage: str) -> Path:
    """OUT/model = {shift -> ../shift/model, lm -> ../<stage>/model}: a CLUTCH model folder (what
    ``load_clutch`` and the model registry take) that follows the run. Relative links, so the run
    folder can move; copies where the filesystem has no symlinks."""
    def write(tmp: Path):
        for name, target in (("shift", Path("..") / "shift" / "model"), ("lm", Path("..") / stage / "model")):
            try:
                os.symlink(target, tmp / name, target_is_directory=True)
            except (OSError, NotImplementedError):
                shutil.copytree(out_dir / target.relative_to(".."), tmp / name)
    return write_folder_atomically(out_dir / "model", write)


# --- stage 1: SHIFT --------------------------------------------------------------------------
def shift_iter(data: ClipData, out_dir: str | Path, shift_cfg: ShiftConfig | None = ShiftConfig(),
               cfg: StageConfig = DEFAULTS["shift"], resume: bool = True, meta: dict | None = None,
               init_from: str | Path | None = None, stop=None, on_start=None) -> Iterator[dict]:
    """Train a tokenizer in ``out_dir`` (its model/ and train_state/); yield {"stage", "step", "of",
    "loss", "stats" (usage / perplexity / resets per codebook), "lr", "samples_per_s", "eta_s",
    "device"} per step (+ "checkpoint"; + "paused" on the last one when ``stop()`` turned true).

    ``init_from``: fine-tune a saved SHIFT (or a CLUTCH folder's shift/): its weights, codebooks,
    normalisation stats and config (``shift_cfg`` must be None or equal). ``on_start(info)`` is
    called once before the first step (the runner's ``start`` event). ``resume`` False starts over:
    the old train_state/ and model/ move to ``out_dir/previous/<time>/`` first (``previous_run``)."""
    from engine.threads import torch_threads
    out_dir = Path(out_dir)
    device, threads = _device_and_threads(cfg)
    state_dir = out_dir / "train_state"
    base = None
    if init_from is not None:
        init_from, _ = resolve_from("shift", init_from)
        base, _ = load_shift(init_from)
        if shift_cfg is not None and shift_cfg != base.config:
            raise TrainingError(f"{init_from}: fine-tuning keeps the checkpoint's SHIFT config, but a different one "
                                f"was given ({config_diff(base.config, shift_cfg)})")
        shift_cfg = base.config
    shift_cfg = shift_cfg if shift_cfg is not None else ShiftConfig()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = ShiftTokenizer(shift_cfg)
    if base is not None:
        model.load_state_dict(base.state_dict())  # weights, codebooks and the base's stats
    else:
        model.set_stats(data.x)
    check_disk_space(out_dir, model)
    finish_set_aside(out_dir)
    recover_interrupted_swap(state_dir)
    recover_interrupted_swap(out_dir / "model")
    previous = None if resume else set_aside_run(out_dir)  # start over: the old run to previous/<time>/
    model.to(device).train()
    x_all = data.x.to(device)
    opt = make_optimizer(model, cfg)
    step = 0
    if resume and (state_dir / "state.json").is_file():
        init_from = read_state(state_dir).get("init", None if init_from is None else str(init_from))
        step = load_train_state(state_dir, model, opt, gen)

    def checkpoint() -> Path:
        check_weights("shift", step, model)
        save_train_state(state_dir, model, opt, step, gen, {"shift_config": shift_cfg.to_dict(),
                                                             "train_config": asdict(cfg),
                                                             "init": None if init_from is None else str(init_from)})
        info = {"stage": "shift", "steps": step, "train_config": asdict(cfg), "train_clips": len(data)}
        if init_from is not None:
            info["base_model"] = str(init_from)
        return save_shift(out_dir / "model", model, {**info, **(meta or {})})

    if on_start is not None:
        on_start({"stage": "shift", "step": step, "of": cfg.steps, "device": str(device), "clips": len(data),
                  "frames": data.frames, "model_config": shift_cfg.to_dict(), "train_config": asdict(cfg),
                  "base_model": None if init_from is None else str(init_from), "model": str(out_dir / "model"),
                  "previous_run": None if previous is None else str(previous)})
    with torch_threads(threads):
        t0, seen = time.perf_counter(), 0
        while step < cfg.steps:
            idx = torch.randint(0, len(data), (cfg.batch,), generator=gen).to(device)
            out = model(x_all[idx])
            loss = check_losses("shift", step + 1, out["losses"])
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            opt.zero_grad(set_to_none=True)
            out["losses"]["total"].backward()
            check_grad_norm("shift", step + 1, torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip),
                            loss["total"])
            opt.step()
            step += 1
            seen += cfg.batch
            rate = seen / (time.perf_counter() - t0)
            item = {"stage": "shift", "step": step, "of": cfg.steps, "loss": loss, "stats": out["stats"],
                    "lr": lr_at(step - 1, cfg), "samples_per_s": rate,
                    "eta_s": (cfg.steps - step) * cfg.batch / rate, "device": str(device)}
            paused = close_step(item, step, cfg, stop, checkpoint)
            yield item
            if paused:
                return


# --- LM samples -------------------------------------------------------------------------------
def mask_ids(ids: list[int], keep, mask_id: int, ratio: float, rng: random.Random) -> list[int]:
    """``ratio`` of the positions whose id is not kept (``keep(id)`` False) -> ``mask_id``."""
    out = list(ids)
    cand = [i for i, t in enumerate(ids) if not keep(t)]
    for i in rng.sample(cand, max(1, int(round(ratio * len(cand))))) if cand else []:
        out[i] = mask_id
    return out


def pretrain_sample(vocab: MotionVocab, caption: str, codes: dict, rng: random.Random) -> tuple[list[int], list[int]]:
    """Plain pairs (no instruction): t2m, m2t, masked motion, masked text."""
    r = rng.random()
    motion = vocab.motion_ids(codes)
    if r < 0.35:
        return vocab.encode_text(caption), motion
    if r < 0.70:
        return motion, vocab.encode_text(caption, eos=True)
    if r < 0.85:
        return mask_ids(motion, lambda t: not vocab.is_motion(t), vocab.motion_mask_id, 0.3, rng), motion
    text = vocab.encode_text(caption)
    return mask_ids(text, lambda t: False, vocab.mask_id, 0.15, rng), text + [vocab.eos_id]


def collate(samples: list[tuple[list[int], list[int]]], pad_id: int, device) -> dict[str, torch.Tensor]:
    """-> input_ids (B, L), attention_mask (B, L), labels (B, M) padded with -100."""
    L = max(len(s[0]) for s in samples)
    M = max(len(s[1]) for s in samples)
    inp = torch.full((len(samples), L), pad_id, dtype=torch.long)
    lab = torch.full((len(samples), M), -100, dtype=torch.long)
    for i, (a, b) in enumerate(samples):
        inp[i, :len(a)] = torch.tensor(a)
        lab[i, :len(b)] = torch.tensor(b)
    return {"input_ids": inp.to(device), "attention_mask": (inp != pad_id).to(device), "labels": lab.to(device)}


def fit_captions(captions: list[list[str]], vocab: MotionVocab, max_text_tokens: int) -> list[list[str]]:
    """Per clip, the captions whose tokens + [SEP] fit the LM's caption length (the corpus's detailed
    levels run to ~400 tokens: training on them padded every batch to ~400 positions, 10x the cost,
    and taught answers the decoder may not give). A clip with none that fits keeps its shortest."""
    out = []
    for cs in captions:
        fit = [c for c in cs if len(vocab.encode_text(c)) + 1 <= max_text_tokens]
        out.append(fit or [min(cs, key=len)])
    return out


def build_clutch_vocab(data: ClipData, shift: ShiftTokenizer, margin: int) -> MotionVocab:
    """The LM vocabulary: the corpus's text pieces + one id range per token stream of ``shift``."""
    texts = [c for cs in data.captions for c in cs] + template_texts()
    return MotionVocab(build_vocab(texts, margin), shift.config.codebook_size, shift.streams)


# --- stages 2-4: the language model ------------------------------------------------------------
def _lm_shift(out_dir: Path, shift_from: Path | None) -> tuple[Path, Path | None]:
    """(the SHIFT folder the LM stage tokenises with, the folder to copy it from or None). An LM's
    codes mean something only with its own SHIFT, so the run keeps that SHIFT as OUT/shift/model."""
    run_shift = out_dir / "shift" / "model"
    recover_interrupted_swap(run_shift)
    if shift_from is not None and Path(shift_from).absolute() != run_shift.absolute():
        shift_from = Path(shift_from)
        if not (shift_from / "config.json").is_file():
            raise FileNotFoundError(f"{shift_from}: not a SHIFT model folder (no config.json)")
        if not (run_shift / "config.json").is_file():
            return run_shift, shift_from
        if _digest(run_shift) != _digest(shift_from):
            raise TrainingError(f"{run_shift} holds another SHIFT tokenizer than {shift_from}, which the starting "
                                f"model's codes come from; use a new --out")
    elif not (run_shift / "config.json").is_file():
        raise FileNotFoundError(f"{run_shift}: no SHIFT tokenizer; LM stages tokenise the motion with the run's "
                                f"SHIFT: train the shift stage into {out_dir} first (hand-studio train shift), or "
                                f"start from a CLUTCH model folder (--from, shift/ + lm/), or give --shift FOLDER")
    return run_shift, None


def lm_iter(stage: str, data: ClipData, out_dir: str | Path, cfg: StageConfig | None = None,
            lm_cfg: LMConfig | None = None, refine_cfg: RefineConfig = RefineConfig(),
            init_from: str | Path | None = None, init_t5: str | Path | None = None, resume: bool = True,
            meta: dict | None = None, hands=None, shift_from: str | Path | None = None, stop=None,
            on_start=None) -> Iterator[dict]:
    """Train one LM stage in ``out_dir/<stage>``; yield {"stage", "step", "of", "loss", "lr",
    "samples_per_s", "eta_s", "device"} per step (+ "checkpoint"; + "paused" on the last one when
    ``stop()`` turned true). The SHIFT is ``out_dir/shift/model``; ``shift_from`` (or the SHIFT of a
    CLUTCH ``init_from`` folder) is copied there first when the run has none.

    ``init_from``: start from this LM model folder (or a CLUTCH folder's lm/) instead of the previous
    stage's; its config and vocabulary are kept (``lm_cfg`` must be None or equal). A train_state in
    ``out_dir/<stage>`` wins over ``init_from`` when resuming. ``lm_cfg`` None = LMConfig().
    ``resume`` False starts the stage over: its old train_state/ and model/ move to
    ``out_dir/<stage>/previous/<time>/`` first (``on_start``'s ``previous_run``)."""
    from engine.threads import torch_threads
    if stage not in LM_STAGES:
        raise ValueError(f"stage must be one of {LM_STAGES}; got {stage!r}")
    cfg = cfg or DEFAULTS[stage]
    out_dir = Path(out_dir)
    stage_dir, state_dir = out_dir / stage, out_dir / stage / "train_state"
    if (out_dir / "model" / "config.json").is_file():
        raise TrainingError(f"{out_dir / 'model'} holds another model (a diffusion run?); CLUTCH runs write a CLUTCH "
                            f"model folder there; use another --out")
    device, threads = _device_and_threads(cfg)
    finish_set_aside(stage_dir)
    recover_interrupted_swap(state_dir)
    recover_interrupted_swap(stage_dir / "model")
    resuming = resume and (state_dir / "state.json").is_file()
    state = read_state(state_dir) if resuming else None
    init_shift = None
    if init_from is not None:
        init_from, init_shift = resolve_from(stage, init_from)
    shift_dir, shift_copy = _lm_shift(out_dir, Path(shift_from) if shift_from is not None else init_shift)

    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    shift, _ = load_shift(shift_copy or shift_dir, device)
    freeze(shift)
    if shift.config.layout != "shift":
        raise ValueError(f"the LM needs a SHIFT tokenizer; {shift_copy or shift_dir} is a {shift.config.layout!r} one")

    if resuming:  # the state's own config and vocabulary: it wins over init_from
        lm = MotionLM(LMConfig.from_dict(state["lm_config"]), MotionVocab.load(state_dir))
        init_from = state.get("init", None if init_from is None else str(init_from))
    elif stage == "pretrain" and init_from is None:
        vocab = build_clutch_vocab(data, shift, cfg.vocab_margin)
        lm_cfg = lm_cfg if lm_cfg is not None else LMConfig()
        lm = (MotionLM.from_pretrained_t5(init_t5, vocab, max_input_tokens=lm_cfg.max_input_tokens,
                                          max_text_tokens=lm_cfg.max_text_tokens,
                                          max_motion_steps=lm_cfg.max_motion_steps)
              if init_t5 else MotionLM(lm_cfg, vocab))
    else:
        if init_from is None:
            prev = "pretrain" if stage == "refine" else ("refine" if (out_dir / "refine" / "model").is_dir() else "pretrain")
            init_from = out_dir / prev / "model"
            if not (init_from / "config.json").is_file():
                raise FileNotFoundError(f"{init_from}: no {prev} model to start the {stage} stage from; train the "
                                        f"{prev} stage into {out_dir} first, or give --from")
        lm, _ = load_lm(init_from)
        if lm_cfg is not None and lm_cfg != lm.config:
            raise TrainingError(f"{init_from}: fine-tuning keeps the checkpoint's LM config, but a different one was "
                                f"given ({config_diff(lm.config, lm_cfg)})")
    vocab = lm.vocab
    if vocab.codebook_size != shift.config.codebook_size:
        raise ValueError(f"LM motion vocabulary has {vocab.codebook_size} codes per stream; SHIFT has "
                         f"{shift.config.codebook_size}")
    if vocab.streams != shift.streams:
        raise ValueError(f"LM motion vocabulary has streams {list(vocab.streams)}; its SHIFT tokenizer has "
                         f"{list(shift.streams)} (an LM's tokens are tied to the SHIFT it was trained with)")
    captions = fit_captions(data.captions, vocab, lm.config.max_text_tokens)  # data stays as given
    check_disk_space(stage_dir, lm)
    previous = None if resume else set_aside_run(stage_dir)  # start over: the old stage to previous/<time>/
    if shift_copy is not None:
        write_folder_atomically(shift_dir, lambda tmp: shutil.copytree(shift_copy, tmp, dirs_exist_ok=True))
    with torch_threads(threads):
        data.encode_with(shift.cpu())
    shift.to(device)
    lm.to(device).train()
    opt = make_optimizer(lm, cfg)
    step = 0
    if resuming:
        step = load_train_state(state_dir, lm, opt, gen, rng)
    if stage == "refine" and hands is None:
        from engine.hands import load_hands
        hands = load_hands("default", device=device)

    def checkpoint() -> Path:
        check_weights(stage, step, lm)
        save_train_state(state_dir, lm, opt, step, gen, {"stage": stage, "lm_config": lm.config.to_dict(),
                                                         "train_config": asdict(cfg),
                                                         "init": None if init_from is None else str(init_from)},
                         vocab, rng)
        info = {"stage": stage, "prompt_style": "instruct" if stage == "instruct" else "plain", "steps": step,
                "train_config": asdict(cfg), "train_clips": len(data), "init": str(init_from) if init_from else None,
                "frames": data.frames, "shift": str(shift_dir)}
        if stage == "refine":
            info["refine_config"] = asdict(refine_cfg)
        path = save_lm(stage_dir / "model", lm, {**info, **(meta or {})})
        write_clutch_folder(out_dir, stage)
        return path

    if on_start is not None:
        on_start({"stage": stage, "step": step, "of": cfg.steps, "device": str(device), "clips": len(data),
                  "frames": data.frames, "model_config": lm.config.to_dict(), "train_config": asdict(cfg),
                  "base_model": None if init_from is None else str(init_from), "shift": str(shift_dir),
                  "model": str(out_dir / "model"), "stage_model": str(stage_dir / "model"),
                  "previous_run": None if previous is None else str(previous)})
    with torch_threads(threads):
        t0, seen = time.perf_counter(), 0
        while step < cfg.steps:
            idx = torch.randint(0, len(data), (cfg.batch,), generator=gen).tolist()
            caps = [rng.choice(captions[i]) for i in idx]
            if stage == "pretrain":
                samples = [pretrain_sample(vocab, c, data.clip_codes(i), rng) for i, c in zip(idx, caps)]
                b = collate(samples, vocab.pad_id, device)
                loss = {"lm": lm(**b).loss}
                loss["total"] = loss["lm"]
            elif stage == "instruct":
                samples = []
                for i, c in zip(idx, caps):
                    ins = make_instruction(vocab, rng.choice(TASKS), c, data.clip_codes(i), rng.randrange(1 << 30))
                    samples.append((ins.input_ids, ins.target_ids))
                b = collate(samples, vocab.pad_id, device)
                loss = {"lm": lm(**b).loss}
                loss["total"] = loss["lm"]
            else:  # refine: plain t2m; a share as masked prediction with alpha = 0
                samples, alpha = [], []
                for i, c in zip(idx, caps):
                    motion = vocab.motion_ids(data.clip_codes(i))
                    if rng.random() < refine_cfg.p_masked:
                        masked = mask_ids(motion, lambda t: not vocab.is_motion(t), vocab.motion_mask_id,
                                          refine_cfg.mask_ratio, rng)
                        samples.append((vocab.encode_text(c) + masked, motion))
                        alpha.append(0.0)
                    else:
                        samples.append((vocab.encode_text(c), motion))
                        alpha.append(refine_cfg.alpha)
                b = collate(samples, vocab.pad_id, device)
                ti = torch.tensor(idx)
                x_gt, betas = data.x[ti].to(device), data.betas[ti].to(device)
                with torch.no_grad():
                    j_gt = keypoints_from_rep(hands, x_gt, betas)
                loss = refine_losses(lm, shift, hands, b["input_ids"], b["attention_mask"], b["labels"], x_gt,
                                     betas, j_gt, torch.tensor(alpha, device=device), refine_cfg)
            values = check_losses(stage, step + 1, loss)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            opt.zero_grad(set_to_none=True)
            loss["total"].backward()
            check_grad_norm(stage, step + 1, torch.nn.utils.clip_grad_norm_(lm.parameters(), cfg.grad_clip),
                            values["total"])
            opt.step()
            step += 1
            seen += cfg.batch
            rate = seen / (time.perf_counter() - t0)
            item = {"stage": stage, "step": step, "of": cfg.steps, "loss": values, "lr": lr_at(step - 1, cfg),
                    "samples_per_s": rate, "eta_s": (cfg.steps - step) * cfg.batch / rate, "device": str(device)}
            paused = close_step(item, step, cfg, stop, checkpoint)
            yield item
            if paused:
                return


def train_iter(stage: str, data: ClipData, out_dir: str | Path, cfg: StageConfig | None = None,
               shift_cfg: ShiftConfig | None = None, lm_cfg: LMConfig | None = None,
               refine_cfg: RefineConfig = RefineConfig(), tokenizer: str = "shift", **kwargs) -> Iterator[dict]:
    """One stage's progress generator (keyword arguments: see ``shift_iter`` / ``lm_iter``).
    ``tokenizer`` (shift stage): 'shift', 'pd' or 'standard'; baselines go to
    ``out_dir/shift_<kind>`` so they never replace the SHIFT the LM uses. ``shift_cfg`` / ``lm_cfg``
    None: the defaults, or the ``init_from`` checkpoint's."""
    if stage == "shift":
        sub = "shift" if tokenizer == "shift" else f"shift_{tokenizer}"
        if kwargs.get("init_from") is None:
            shift_cfg = tokenizer_config(tokenizer, shift_cfg or ShiftConfig())
        else:
            if shift_cfg is not None:
                shift_cfg = tokenizer_config(tokenizer, shift_cfg)
            from_dir, _ = resolve_from("shift", kwargs["init_from"])
            layout = tokenizer_config(tokenizer).layout
            found = json.loads((from_dir / "config.json").read_text())["shift"].get("layout", "shift")
            if found != layout:
                raise TrainingError(f"--from {from_dir}: a {found!r} tokenizer; --tokenizer {tokenizer} trains "
                                    f"{layout!r} ones")
        return shift_iter(data, Path(out_dir) / sub, shift_cfg, cfg or DEFAULTS["shift"], **kwargs)
    return lm_iter(stage, data, out_dir, cfg, lm_cfg, refine_cfg, **kwargs)


# --- command line -----------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser, stage: str | None = None) -> None:
    """The options of a run; ``stage`` fixes the stage (``hand-studio train clutch-pt`` etc.),
    otherwise ``--stage`` chooses it."""
    p.add_argument("--data", required=True, help="corpus folder (meta.json, index.jsonl, shards/)")
    p.add_argument("--extra-data", action="append", default=[], metavar="DIR",
                   help="another corpus whose train clips join --data's (repeatable), e.g. a `data build "
                        "--program concurrent` supplement")
    p.add_argument("--out", required=True, help="run folder; each stage writes OUT/<stage>/{model,train_state}, "
                                                "LM stages also OUT/model (a CLUTCH model folder)")
    if stage is None:
        p.add_argument("--stage", required=True, choices=STAGES + ("all",))
    else:
        p.set_defaults(stage=stage)
    if stage in (None, "shift"):
        p.add_argument("--tokenizer", default="shift", choices=("shift", "pd", "standard"),
                       help="shift stage: train SHIFT or a Table 4 baseline (written to OUT/shift_<kind>)")
    else:
        p.set_defaults(tokenizer="shift")
    p.add_argument("--config", help="JSON {'shift': {...ShiftConfig}, 'lm': {...LMConfig}, 'refine': {...}, "
                                    "'train': {'<stage>': {...StageConfig}}}")
    p.add_argument("--from", "--init", dest="init_from", metavar="MODEL",
                   help="fine-tune: start from this model folder (shift: a SHIFT one; LM stages: an LM one) or a "
                        "CLUTCH model folder (shift/ + lm/); its config is kept. LM stages otherwise start from the "
                        "previous stage's model (--init is the old spelling)")
    if stage != "shift":
        p.add_argument("--shift", dest="shift_from", metavar="FOLDER",
                       help="LM stages: the SHIFT model folder the codes come from, copied to OUT/shift/model when "
                            "the run has none (default: OUT/shift/model, or the --from CLUTCH folder's shift/)")
        p.add_argument("--init-t5", help="pretrain: start from a local (Flan-)T5 folder (no download)")
    for k in ("steps", "batch", "seed", "threads"):
        p.add_argument(f"--{k}", type=int, help=f"override the stage's {k}")
    p.add_argument("--ckpt-every", type=int, help="override the stage's ckpt_every")
    p.add_argument("--log-every", type=int, help="override the stage's log_every (text progress)")
    p.add_argument("--lr", type=float, help="override the stage's learning rate")
    p.add_argument("--device", help="auto, cpu or cuda")
    r = p.add_mutually_exclusive_group()
    r.add_argument("--resume", action="store_true", help="continue the stage's state in --out (an error if it has "
                                                         "none); without either flag a state there is continued")
    r.add_argument("--no-resume", action="store_true", help="start the stage over even if --out has a state; "
                                                            "its train_state/ and model/ move to "
                                                            "OUT/<stage>/previous/<time>/")
    p.add_argument("--progress", default="text", choices=("text", "jsonl"),
                   help="text lines (default) or one JSON event per line on stdout (engine.training.runner)")


class _Progress:
    """Where a run reports: ``[stage]`` text lines, or the runner's JSON events, one per line."""

    def __init__(self, mode: str):
        self.jsonl, self.log_every, self.t0 = mode == "jsonl", StageConfig.log_every, time.time()

    def emit(self, event: str, **fields) -> None:
        if self.jsonl:
            print(json.dumps({"event": event, **fields}), flush=True)
            return
        tag = f"[{fields.get('stage', 'clutch')}]"
        if event == "step":
            if fields["step"] % self.log_every and "checkpoint" not in fields:
                return
            txt = " ".join(f"{k} {v:.4f}" for k, v in fields["loss"].items())
            if "stats" in fields:
                txt += " " + " ".join(f"{k} {v:.2f}" for k, v in fields["stats"].items() if not k.startswith("reset"))
            print(f"{tag} step {fields['step']}/{fields['of']} {txt} lr {fields['lr']:.2e} "
                  f"{fields['samples_per_s']:.1f} samples/s {time.time() - self.t0:.0f}s eta {fields['eta_s']:.0f}s"
                  + (f" -> {fields['checkpoint']}" if "checkpoint" in fields else ""), flush=True)
        elif event == "start":
            print(f"{tag} {fields['clips']} clips of {fields['frames']} frames on {fields['device']}; step "
                  f"{fields['step']}/{fields['train_config']['steps']}"
                  + (f"; from {fields['base_model']}" if fields.get("base_model") else "")
                  + f"; {fields['train_config']}", flush=True)
            if fields.get("previous_run"):
                print(f"{tag} started over: the stage's previous train_state/ and model/ are in "
                      f"{fields['previous_run']}", flush=True)
        elif event == "done":
            print(f"{tag} " + ("paused at" if fields.get("paused") else "done at") + f" step {fields['step']}: "
                  f"{fields['model']}", flush=True)
        elif event == "error":
            print(f"error: {fields['message']}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """The command line. SIGTERM asks for a checkpoint at the end of the current step, then exit 0."""
    progress = _Progress(getattr(args, "progress", "text"))
    return run_reporting(progress, lambda stop: _run(args, progress, stop))


CONFIG_SECTIONS = ("shift", "lm", "refine", "train") + LM_STAGES


def stage_config(d: dict, stage: str) -> StageConfig:
    """A stage's StageConfig from a --config document: DEFAULTS[stage] updated by ``train.<stage>``
    (top-level ``<stage>`` for the LM stages is the older spelling; top-level ``shift`` is the
    ShiftConfig)."""
    train = d.get("train", {})
    unknown = sorted(set(train) - set(STAGES))
    if unknown:
        raise ValueError(f"config 'train' has unknown stages {unknown}; expected some of {list(STAGES)}")
    fields = {**(d.get(stage, {}) if stage in LM_STAGES else {}), **train.get(stage, {})}
    return StageConfig.from_dict({**asdict(DEFAULTS[stage]), **fields})


def _run(args: argparse.Namespace, progress: _Progress, stop) -> int:
    d = json.loads(Path(args.config).read_text()) if args.config else {}
    unknown = sorted(set(d) - set(CONFIG_SECTIONS))
    if unknown:
        raise ValueError(f"{args.config}: unknown sections {unknown}; expected some of {list(CONFIG_SECTIONS)}")
    shift_cfg = ShiftConfig.from_dict(d["shift"]) if "shift" in d else None
    lm_cfg = LMConfig.from_dict(d["lm"]) if "lm" in d else None
    refine_cfg = RefineConfig(**d.get("refine", {}))
    stages = STAGES if args.stage == "all" else (args.stage,)
    init_from = getattr(args, "init_from", None)
    if init_from is not None and len(stages) > 1:
        raise ValueError("--from fine-tunes one stage; with --stage all each LM stage starts from the previous one")
    out = Path(args.out)

    def sub(stage: str) -> str:  # the stage's folder in OUT
        return stage if stage != "shift" or args.tokenizer == "shift" else f"shift_{args.tokenizer}"
    if getattr(args, "resume", False) and not any((out / sub(s) / "train_state" / "state.json").is_file()
                                                  for s in stages):
        raise TrainingError(f"--resume: {out / sub(stages[0]) / 'train_state'} holds no training state")
    data = load_split(args.data, "train", extra=args.extra_data)
    kind = getattr(args, "model", None)
    command = f"hand-studio train {kind}" if kind in RUN_KINDS else f"hand-studio train clutch --stage {args.stage}"
    for stage in stages:
        cfg = stage_config(d, stage)
        cfg = replace(cfg, **{k: getattr(args, k) for k in ("steps", "batch", "seed", "threads", "lr", "device",
                                                            "ckpt_every", "log_every")
                              if getattr(args, k, None) is not None})
        progress.log_every = cfg.log_every
        started: dict = {}

        def on_start(info: dict) -> None:
            started.update(info)
            progress.emit("start", world_size=1, windows=info["clips"], out=str(out), **info)

        meta = {"data": str(args.data), "command": command, **({"extra_data": [str(d) for d in args.extra_data]}
                                                                if args.extra_data else {})}
        kwargs = {"resume": not args.no_resume, "meta": meta,
                  "init_from": init_from, "stop": stop, "on_start": on_start}
        if stage != "shift":
            kwargs.update(init_t5=getattr(args, "init_t5", None) if stage == "pretrain" else None,
                          shift_from=getattr(args, "shift_from", None))
        last = None
        for item in train_iter(stage, data, out, cfg, shift_cfg, lm_cfg, refine_cfg, args.tokenizer, **kwargs):
            progress.emit("step", **{k: v for k, v in item.items() if k != "paused"})
            if "checkpoint" in item:
                progress.emit("checkpoint", stage=stage, step=item["step"], path=item["checkpoint"],
                              train_state=str(Path(item["checkpoint"]).parent / "train_state"))
            last = item
        paused = bool(last and last.get("paused"))
        # "model": what to register / load: the SHIFT folder, or for LM stages the CLUTCH folder OUT/model
        done = {"stage": stage, "step": last["step"] if last else started.get("step", 0), "of": cfg.steps,
                "paused": paused, "model": str(out / sub(stage) / "model") if stage == "shift" else str(out / "model")}
        if stage != "shift":
            done["stage_model"] = str(out / stage / "model")
        progress.emit("done", **done)
        if paused:
            break
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="train_clutch", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"train_clutch: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
