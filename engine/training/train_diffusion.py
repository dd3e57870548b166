"""Train the bimanual diffusion model. Read top to bottom; ``train_iter`` is a generator yielding
progress (the GUI training panel and the CLI share it), ``main`` is the command line.

    python -m engine.training.train_diffusion --data DIR --out runs/diffusion [--steps N] [--resume]

Losses (HandX §5.1 + the kinematic terms it lacks): x0 parameters in normalised space, and through
forward kinematics of the default hand the 21 keypoints' positions, velocities and accelerations.
Per-branch condition dropout (whole / left / right independently, and all at once) trains the null
path that classifier-free guidance needs. EMA weights are what ships. Resumable: the run folder
holds ``train_state/`` (weights, EMA, optimizer, step, RNG states; safetensors + JSON) and
``model/`` (EMA weights + config, what the pipeline loads).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.diffusion.checkpoint import (CheckpointError, load_tensors, save_model, save_tensors,  # noqa: E402
                                         write_folder_atomically)
from engine.diffusion.denoiser import BRANCHES, Denoiser, DenoiserConfig  # noqa: E402
from engine.diffusion.ema import EMA  # noqa: E402
from engine.diffusion.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS  # noqa: E402
from engine.diffusion.representation import (compute_stats, keypoints_from_rep,  # noqa: E402
                                             denormalize, normalize, params_to_tensor)
from engine.diffusion.schedulers import DDIMScheduler, SchedulerConfig  # noqa: E402

# Default config, batch 64, with the FK losses, on the 2-core CPU: idle machine 2 threads ~130
# samples/s vs 1 thread ~75; while other processes run (the usual case here) 1 thread 56-70 vs
# 2 threads 23-37 (OpenMP workers spin on the busy core). 1 is the robust default; --threads 2
# on an idle machine.
TRAIN_THREADS = 1


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 20_000
    batch: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: int = 500
    min_lr_ratio: float = 0.1
    ema_decay: float = 0.999
    p_drop_all: float = 0.10  # all three prompts dropped (the unconditional path)
    p_drop_branch: float = 0.15  # each of whole / left / right dropped independently
    w_param: float = 1.0
    w_joints: float = 1.0  # keypoint positions, in units of 2 cm
    w_vel: float = 1.0  # keypoint velocity, in units of 5 mm / frame
    w_acc: float = 0.5  # keypoint acceleration, in units of 3 mm / frame^2
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 1000
    device: str = "auto"
    threads: int = TRAIN_THREADS

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"train config has unknown fields {unknown}")
        return cls(**d)


# --- data ------------------------------------------------------------------------------------
class DiffusionDataset:
    """Training windows as arrays + captions. The representation and the text token table are
    computed once here; a batch is an index lookup.

    transl (N, T, 2, 3), global_orient (N, T, 2, 3), hand_pose (N, T, 2, 45), betas (N, 2, 10),
    texts: N entries, each a dict (or Prompt) with keys text / left / right (any may be empty), or
    a list of such candidates (e.g. captions at several levels) of which each batch draws one.
    """

    def __init__(self, transl, global_orient, hand_pose, betas, texts, text_encoder=None):
        tr, go, hp = (torch.as_tensor(np.asarray(a, np.float32)) for a in (transl, global_orient, hand_pose))
        N = tr.shape[0]
        for name, a, last in (("transl", tr, 3), ("global_orient", go, 3), ("hand_pose", hp, 45)):
            if a.dim() != 4 or a.shape[0] != N or a.shape[2:] != (2, last) or a.shape[1] != tr.shape[1]:
                raise ValueError(f"{name} must have shape (N, T, 2, {last}) with one N and T; got {tuple(a.shape)}")
            if not torch.isfinite(a).all():
                raise ValueError(f"{name} must be finite")
        self.betas = torch.as_tensor(np.asarray(betas, np.float32))
        if self.betas.shape != (N, 2, 10):
            raise ValueError(f"betas must have shape ({N}, 2, 10); got {tuple(self.betas.shape)}")
        if len(texts) != N:
            raise ValueError(f"texts must have one entry per window ({N}); got {len(texts)}")
        self.x = params_to_tensor(go, hp, tr)  # (N, T, 2, 99)
        cands = [list(t) if isinstance(t, (list, tuple)) else [t] for t in texts]
        if any(not c for c in cands):
            raise ValueError("every window needs at least one caption candidate")
        rows = [[[_field(t, b) for b in BRANCHES] for t in c] for c in cands]  # N x K_i x 3
        if text_encoder is None:
            from engine.diffusion.text_encoder import shared_text_encoder
            text_encoder = shared_text_encoder()
        vocab = sorted({s for r in rows for c in r for s in c if s})
        index = {s: i + 1 for i, s in enumerate(vocab)}  # 0 = empty text
        K = max(len(r) for r in rows)
        self.num_candidates = torch.tensor([len(r) for r in rows], dtype=torch.long)  # (N,)
        self.text_index = torch.tensor([[[index.get(s, 0) for s in r[min(k, len(r) - 1)]] for k in range(K)]
                                        for r in rows], dtype=torch.long)  # (N, K, 3)
        states, mask = [], []
        for i in range(0, len(vocab), 256):
            st, m = text_encoder.encode(vocab[i:i + 256])
            states += list(st)
            mask += list(m)
        L = max([1] + [int(m.sum()) for m in mask])
        self.tokens = torch.zeros(len(vocab) + 1, L, states[0].shape[-1] if states else 384)  # (U+1, L, 384)
        self.token_mask = torch.zeros(len(vocab) + 1, L, dtype=torch.bool)
        for i, (st, m) in enumerate(zip(states, mask)):
            n = int(m.sum())
            self.tokens[i + 1, :n], self.token_mask[i + 1, :n] = st[:n], True
        self.texts = rows
        self.keypoints: torch.Tensor | None = None  # (N, T, 2, 21, 3), see compute_keypoints

    @torch.no_grad()
    def compute_keypoints(self, hands, chunk: int = 64) -> None:
        """Ground-truth keypoints for the kinematic losses, once, with the hands training uses."""
        dev = hands.device
        self.keypoints = torch.cat([keypoints_from_rep(hands, self.x[i:i + chunk].to(dev), self.betas[i:i + chunk].to(dev))
                                    for i in range(0, len(self), chunk)]).to(self.x.device)

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def frames(self) -> int:
        return self.x.shape[1]

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        return compute_stats(self.x)

    def to(self, device) -> "DiffusionDataset":
        for k in ("x", "betas", "text_index", "num_candidates", "tokens", "token_mask", "keypoints"):
            if getattr(self, k) is not None:
                setattr(self, k, getattr(self, k).to(device))
        return self

    def batch(self, idx: torch.Tensor, gen: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Windows ``idx`` with one caption candidate each (drawn with ``gen``; the first without)."""
        k = torch.zeros(len(idx), dtype=torch.long)
        if gen is not None:
            k = (torch.rand(len(idx), generator=gen) * self.num_candidates[idx].cpu()).long()
        ti = self.text_index[idx, k.to(idx.device)]  # (B, 3)
        return {"x": self.x[idx], "betas": self.betas[idx], "keypoints": self.keypoints[idx],
                "tokens": self.tokens[ti], "token_mask": self.token_mask[ti]}


def _field(t, key: str) -> str:
    v = t.get(key, "") if isinstance(t, dict) else getattr(t, key, "")
    if not isinstance(v, str):
        raise ValueError(f"text field {key!r} must be a string; got {type(v).__name__}")
    return v.strip()


def dataset_from_clips(clips, prompts=None, text_encoder=None) -> DiffusionDataset:
    """Clips of one length (+ a Prompt each; default each clip's own prompt) -> DiffusionDataset."""
    if not clips:
        raise ValueError("dataset_from_clips needs at least one clip")
    T = clips[0].num_frames
    bad = [i for i, c in enumerate(clips) if c.num_frames != T]
    if bad:
        raise ValueError(f"all clips must have {T} frames; clip {bad[0]} has {clips[bad[0]].num_frames}")
    prompts = prompts or [c.prompt for c in clips]
    stack = lambda k: np.stack([getattr(c, k) for c in clips])  # noqa: E731
    return DiffusionDataset(stack("transl"), stack("global_orient"), stack("hand_pose"), stack("betas"),
                            list(prompts), text_encoder)


# --- losses ----------------------------------------------------------------------------------
def losses(model: Denoiser, hands, x0_n: torch.Tensor, x0_pred_n: torch.Tensor, betas: torch.Tensor,
           j_gt: torch.Tensor, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """Parameter loss in normalised space + keypoint position / velocity / acceleration losses.
    j_gt (B, T, 2, 21, 3): ground-truth keypoints (precomputed by the dataset)."""
    out = {"param": (x0_pred_n - x0_n).pow(2).mean()}
    j_pr = keypoints_from_rep(hands, denormalize(x0_pred_n, model.x_mean, model.x_std), betas)
    out["joints"] = ((j_pr - j_gt) / 0.02).pow(2).sum(-1).mean()
    v_gt, v_pr = j_gt.diff(dim=1), j_pr.diff(dim=1)
    out["vel"] = ((v_pr - v_gt) / 0.005).pow(2).sum(-1).mean()
    out["acc"] = ((v_pr.diff(dim=1) - v_gt.diff(dim=1)) / 0.003).pow(2).sum(-1).mean()
    out["total"] = (cfg.w_param * out["param"] + cfg.w_joints * out["joints"]
                    + cfg.w_vel * out["vel"] + cfg.w_acc * out["acc"])
    return out


def drop_conditions(token_mask: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """(B, 3, L) -> same with whole branches masked out (masked = the learned null path)."""
    B = token_mask.shape[0]
    drop = torch.rand(B, 3, generator=gen) < cfg.p_drop_branch
    drop |= (torch.rand(B, 1, generator=gen) < cfg.p_drop_all)
    return token_mask & ~drop.to(token_mask.device)[..., None]


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


# --- checkpoints -----------------------------------------------------------------------------
def save_train_state(folder: Path, model, ema: EMA, opt, step: int, gen: torch.Generator,
                     model_cfg: DenoiserConfig, cfg: TrainConfig) -> Path:
    """Everything needed to continue bit for bit: weights, EMA, optimizer, step, RNG states."""
    opt_state = opt.state_dict()
    opt_tensors, opt_meta = {}, {"param_groups": opt_state["param_groups"], "state": {}}
    for pid, st in opt_state["state"].items():
        opt_meta["state"][str(pid)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                opt_tensors[f"{pid}.{k}"] = v
            else:
                opt_meta["state"][str(pid)][k] = v
    rng = {"data": gen.get_state(), "torch": torch.get_rng_state()}

    def write(tmp: Path):
        save_tensors(tmp / "model.safetensors", model.state_dict())
        save_tensors(tmp / "ema.safetensors", ema.state_dict())
        save_tensors(tmp / "optimizer.safetensors", opt_tensors)
        save_tensors(tmp / "rng.safetensors", rng)
        (tmp / "state.json").write_text(json.dumps({
            "step": step, "ema_updates": ema.num_updates, "model_config": model_cfg.to_dict(),
            "train_config": asdict(cfg), "optimizer": opt_meta}, indent=1))
    return write_folder_atomically(folder, write)


def load_train_state(folder: Path, model, ema: EMA, opt, gen: torch.Generator) -> int:
    """Restore a ``save_train_state`` folder into fresh objects; returns the step to continue from."""
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{folder / 'state.json'}: cannot read training state ({e})") from None
    model.load_state_dict(load_tensors(folder / "model.safetensors"))
    ema.load_state_dict(load_tensors(folder / "ema.safetensors"), state["ema_updates"])
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
    return int(state["step"])


# --- the loop --------------------------------------------------------------------------------
def train_iter(dataset: DiffusionDataset, out_dir: str | Path, model_cfg: DenoiserConfig = DenoiserConfig(),
               cfg: TrainConfig = TrainConfig(), resume: bool = True, hands=None,
               meta: dict | None = None) -> Iterator[dict]:
    """Train; yield ``{"step", "of", "loss": {name: float}, "lr", "samples_per_s"}`` each step
    (plus ``"checkpoint"`` when one was written). Close the generator to stop; resume later."""
    from engine.api import resolve_device
    from engine.hands import load_hands
    from engine.threads import torch_threads

    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    if dataset.frames != model_cfg.frames:
        raise ValueError(f"dataset windows have {dataset.frames} frames; the model config expects {model_cfg.frames}")
    if dataset.tokens.shape[1] > model_cfg.max_text_tokens:
        raise ValueError(f"captions have up to {dataset.tokens.shape[1]} tokens; the model takes {model_cfg.max_text_tokens}")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)  # data order, timesteps, noise, dropout masks
    model = Denoiser(model_cfg)
    mean, std = dataset.stats()
    model.x_mean.copy_(mean)
    model.x_std.copy_(std)
    model.to(device).train()
    dataset.to(device)
    hands = hands if hands is not None else load_hands("default", device=device)
    with torch_threads(cfg.threads if device.type == "cpu" else None):
        dataset.compute_keypoints(hands)
    ema = EMA(model, cfg.ema_decay)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and name not in ("pos", "cls", "null", "branch") else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.99))
    scheduler = DDIMScheduler(SchedulerConfig())
    step = 0
    state_dir = out_dir / "train_state"
    if resume and (state_dir / "state.json").is_file():
        step = load_train_state(state_dir, model, ema, opt, gen)

    def checkpoint() -> Path:
        save_train_state(state_dir, model, ema, opt, step, gen, model_cfg, cfg)
        shipped = Denoiser(model_cfg)
        ema.copy_to(shipped)
        info = {"steps": step, "train_config": asdict(cfg), "train_windows": len(dataset),
                "sampler_steps": DEFAULT_STEPS, "guidance": DEFAULT_GUIDANCE}
        info.update(meta or {})
        return save_model(out_dir / "model", shipped, info)

    with torch_threads(cfg.threads if device.type == "cpu" else None):
        t0, seen = time.perf_counter(), 0
        while step < cfg.steps:
            idx = torch.randint(0, len(dataset), (cfg.batch,), generator=gen).to(device)
            b = dataset.batch(idx, gen)
            x0 = normalize(b["x"], model.x_mean, model.x_std)  # (B, T, 2, 99)
            t = scheduler.sample_timesteps(cfg.batch, gen, device)
            noise = torch.randn(x0.shape, generator=gen).to(device)
            x_t = scheduler.add_noise(x0, noise, t)
            token_mask = drop_conditions(b["token_mask"], cfg, gen)
            memory, memory_mask = model.encode_condition(b["tokens"], token_mask)
            x0_pred = model(x_t, t, memory, memory_mask)
            loss = losses(model, hands, x0, x0_pred, b["betas"], b["keypoints"], cfg)

            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            opt.zero_grad(set_to_none=True)
            loss["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            ema.update(model)
            step += 1
            seen += cfg.batch

            item = {"step": step, "of": cfg.steps, "loss": {k: float(v.detach()) for k, v in loss.items()},
                    "lr": lr_at(step - 1, cfg), "samples_per_s": seen / (time.perf_counter() - t0)}
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                item["checkpoint"] = str(checkpoint())
            yield item


def corpus_captions(entry: dict, max_tokens: int, count_tokens) -> list[dict]:
    """Caption candidates of one corpus clip: every level and the action text whose branches all
    fit the text encoder's window (levels 1-2 mostly do; longer ones are for captioning models)."""
    cands = [{k: t.get(k, "") for k in BRANCHES} for t in entry.get("texts", [])]
    if entry.get("action"):
        cands.append({"text": entry["action"], "left": "", "right": ""})
    fits = [c for c in cands if all(count_tokens(c[k]) <= max_tokens for k in BRANCHES if c[k])]
    return fits or [{"text": "", "left": "", "right": ""}]


def load_corpus(data_dir: str | Path, split: str = "train", max_tokens: int = 32,
                text_encoder=None, limit: int | None = None) -> DiffusionDataset:
    """A corpus folder (docs/corpus.md) -> the windows of one split with their caption candidates."""
    from engine.data.corpus import Corpus
    if text_encoder is None:
        from engine.diffusion.text_encoder import shared_text_encoder
        text_encoder = shared_text_encoder()
    corpus = Corpus(data_dir)
    arrays = corpus.arrays(split)
    entries = [e for e in corpus.index if e["split"] == split]
    if limit is not None:
        arrays = {k: v[:limit] for k, v in arrays.items()}
        entries = entries[:limit]
    lengths: dict[str, int] = {}

    def count(text: str) -> int:
        if text not in lengths:
            lengths[text] = len(text_encoder.tokenizer(text)["input_ids"])
        return lengths[text]

    texts = [corpus_captions(e, max_tokens, count) for e in entries]
    return DiffusionDataset(arrays["transl"], arrays["global_orient"], arrays["hand_pose"], arrays["betas"],
                            texts, text_encoder)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="corpus folder (hand-studio data build; see docs/corpus.md)")
    p.add_argument("--limit", type=int, help="use only the first N training windows (quick runs)")
    p.add_argument("--out", required=True, help="run folder: train_state/ (resumable) and model/ (EMA weights)")
    p.add_argument("--config", help="JSON file with {'model': {...DenoiserConfig}, 'train': {...TrainConfig}}")
    p.add_argument("--steps", type=int, help="override train.steps")
    p.add_argument("--batch", type=int, help="override train.batch")
    p.add_argument("--device", help="override train.device (auto, cpu, cuda)")
    p.add_argument("--seed", type=int, help="override train.seed")
    p.add_argument("--threads", type=int, help="override train.threads (torch CPU threads)")
    p.add_argument("--no-resume", action="store_true", help="start over even if the run folder has a state")


def run(args: argparse.Namespace) -> int:
    model_cfg, cfg = DenoiserConfig(), TrainConfig()
    if args.config:
        d = json.loads(Path(args.config).read_text())
        model_cfg = DenoiserConfig.from_dict(d.get("model", {}))
        cfg = TrainConfig.from_dict(d.get("train", {}))
    overrides = {k: getattr(args, k) for k in ("steps", "batch", "device", "seed", "threads") if getattr(args, k) is not None}
    cfg = replace(cfg, **overrides)
    dataset = load_corpus(args.data, max_tokens=model_cfg.max_text_tokens, limit=args.limit)
    print(f"{len(dataset)} windows of {dataset.frames} frames; model {model_cfg}; train {cfg}", flush=True)
    t0 = time.time()
    for item in train_iter(dataset, args.out, model_cfg, cfg, resume=not args.no_resume,
                           meta={"data": str(args.data), "command": "hand-studio train diffusion"}):
        if item["step"] % cfg.log_every == 0 or "checkpoint" in item:
            losses_txt = " ".join(f"{k} {v:.4f}" for k, v in item["loss"].items())
            print(f"step {item['step']}/{item['of']} {losses_txt} lr {item['lr']:.2e} "
                  f"{item['samples_per_s']:.1f} samples/s {time.time() - t0:.0f}s"
                  + (f" -> {item['checkpoint']}" if "checkpoint" in item else ""), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="train_diffusion", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
