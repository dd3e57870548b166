"""The frozen ruler: a TMR-style text-motion contrastive evaluator (InfoNCE).

Both generation models (diffusion, CLUTCH) are judged by one evaluator trained once on the
corpus and shipped beside them. Motion side: a small transformer over both hands' keypoints
(centred on the first frame's wrists) and their velocities. Text side: the frozen MiniLM
sentence embeddings of the whole / left / right prompts (zeros for an empty one), concatenated
and projected. Embeddings are L2-normalised (unnormalised ones gave chance-level R-precision).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

TEXT_DIM = 384
BRANCHES = ("text", "left", "right")


@dataclass(frozen=True)
class EvaluatorConfig:
    frames: int = 60
    d_model: int = 192
    layers: int = 3
    heads: int = 4
    emb: int = 256
    temperature: float = 0.07

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EvaluatorConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown evaluator config keys {sorted(unknown)}; expected {sorted(names)}")
        return cls(**d)


def motion_features(joints: torch.Tensor) -> torch.Tensor:
    """(B, T, 2, 21, 3) metres -> (B, T, 252): positions centred on the first frame's mid-wrist
    (in cm) and per-frame velocities (cm/frame)."""
    B, T = joints.shape[:2]
    origin = joints[:, :1, :, 0].mean(2, keepdim=True)[:, :, :, None]  # (B, 1, 1, 1, 3)
    pos = (joints - origin) * 100
    vel = torch.cat([torch.zeros_like(pos[:, :1]), pos.diff(dim=1)], 1)
    return torch.cat([pos.reshape(B, T, -1), vel.reshape(B, T, -1)], -1)


class MotionEncoder(nn.Module):
    def __init__(self, cfg: EvaluatorConfig):
        super().__init__()
        self.inp = nn.Linear(252, cfg.d_model)
        self.pos = nn.Parameter(torch.randn(1, cfg.frames + 1, cfg.d_model) * 0.02)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.heads, 4 * cfg.d_model, dropout=0.1,
                                           batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(cfg.d_model), nn.Linear(cfg.d_model, cfg.emb))

    def forward(self, joints: torch.Tensor) -> torch.Tensor:
        """(B, T, 2, 21, 3) -> (B, emb), unit length."""
        x = self.inp(motion_features(joints))  # (B, T, d)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos[:, : x.shape[1] + 1]
        return nn.functional.normalize(self.out(self.body(x)[:, 0]), dim=-1)


class TextProjector(nn.Module):
    def __init__(self, cfg: EvaluatorConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3 * TEXT_DIM, 512), nn.GELU(), nn.Linear(512, cfg.emb))

    def forward(self, sent: torch.Tensor) -> torch.Tensor:
        """(B, 3, 384) frozen sentence embeddings -> (B, emb), unit length."""
        return nn.functional.normalize(self.net(sent.flatten(1)), dim=-1)


class Evaluator(nn.Module):
    """Motion and text into one space. ``embed_motion`` / ``embed_prompts`` are what metrics use."""

    def __init__(self, cfg: EvaluatorConfig = EvaluatorConfig()):
        super().__init__()
        self.config = cfg
        self.motion = MotionEncoder(cfg)
        self.text = TextProjector(cfg)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / cfg.temperature)))

    def loss(self, joints: torch.Tensor, sent: torch.Tensor, text_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Symmetric InfoNCE; pairs sharing a caption (same ``text_ids``) are not negatives."""
        m, t = self.motion(joints), self.text(sent)
        logits = m @ t.T * self.log_scale.exp().clamp(max=100)
        if text_ids is not None:
            same = (text_ids[:, None] == text_ids[None]) & ~torch.eye(len(m), dtype=torch.bool, device=m.device)
            logits = logits.masked_fill(same, float("-inf"))
        target = torch.arange(len(m), device=m.device)
        return 0.5 * (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target))

    @torch.no_grad()
    def embed_motion(self, joints: np.ndarray | torch.Tensor, batch: int = 256) -> np.ndarray:
        """(N, T, 2, 21, 3) -> (N, emb) unit vectors."""
        self.eval()
        j = torch.as_tensor(np.asarray(joints, np.float32))
        dev = self.log_scale.device
        return torch.cat([self.motion(j[i:i + batch].to(dev)).cpu() for i in range(0, len(j), batch)]).numpy()

    @torch.no_grad()
    def embed_prompts(self, prompts: list, text_encoder=None) -> np.ndarray:
        """N prompts (dict / Prompt / str) -> (N, emb) unit vectors."""
        self.eval()
        sent = sentence_table(prompts, text_encoder)
        return self.text(sent.to(self.log_scale.device)).cpu().numpy()


def _branch_texts(p) -> tuple[str, str, str]:
    if isinstance(p, str):
        return (p, "", "")
    if isinstance(p, dict):
        return tuple((p.get(k) or "").strip() for k in BRANCHES)
    return tuple((getattr(p, k, "") or "").strip() for k in BRANCHES)


def sentence_table(prompts: list, text_encoder=None) -> torch.Tensor:
    """N prompts -> (N, 3, 384) MiniLM sentence embeddings per branch (zeros where empty)."""
    if text_encoder is None:
        from engine.diffusion.text_encoder import shared_text_encoder
        text_encoder = shared_text_encoder()
    rows = [_branch_texts(p) for p in prompts]
    uniq = sorted({s for r in rows for s in r if s})
    emb = {}
    for i in range(0, len(uniq), 256):
        chunk = uniq[i:i + 256]
        for s, e in zip(chunk, text_encoder.sentence(chunk)):
            emb[s] = e
    zero = torch.zeros(TEXT_DIM)
    return torch.stack([torch.stack([emb.get(s, zero) if s else zero for s in r]) for r in rows])


# --- training ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalTrainConfig:
    steps: int = 3000
    batch: int = 128
    lr: float = 5e-4
    weight_decay: float = 0.01
    seed: int = 0
    threads: int = 1


def train_evaluator_iter(joints: np.ndarray, prompts: list[list], out_dir: str | Path,
                         cfg: EvaluatorConfig = EvaluatorConfig(), tcfg: EvalTrainConfig = EvalTrainConfig(),
                         text_encoder=None) -> Iterator[dict]:
    """joints (N, T, 2, 21, 3); prompts: N lists of caption candidates (one drawn per step).
    Yields {"step", "of", "loss", "samples_per_s"}; the last item also has "checkpoint"."""
    from engine.threads import torch_threads
    torch.manual_seed(tcfg.seed)
    gen = torch.Generator().manual_seed(tcfg.seed)
    N = len(joints)
    if N != len(prompts) or N < 2:
        raise ValueError(f"need >= 2 windows with one candidate list each; got {N} windows, {len(prompts)} lists")
    flat = [p for cands in prompts for p in cands]
    start = torch.tensor(np.cumsum([0] + [len(c) for c in prompts[:-1]]))
    count = torch.tensor([len(c) for c in prompts])
    keys = {}
    text_id = torch.tensor([keys.setdefault(_branch_texts(p), len(keys)) for p in flat])
    with torch_threads(tcfg.threads):
        sent = sentence_table(flat, text_encoder)  # (P, 3, 384)
        J = torch.as_tensor(np.asarray(joints, np.float32))
        model = Evaluator(cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
        t0 = time.perf_counter()
        for step in range(tcfg.steps):
            idx = torch.randperm(N, generator=gen)[: tcfg.batch]
            k = start[idx] + (torch.rand(len(idx), generator=gen) * count[idx]).long()
            lr = tcfg.lr * min(1.0, (step + 1) / 200) * 0.5 * (1 + math.cos(math.pi * step / tcfg.steps))
            for g in opt.param_groups:
                g["lr"] = lr
            model.train()
            loss = model.loss(J[idx], sent[k], text_id[k])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            item = {"step": step + 1, "of": tcfg.steps, "loss": float(loss.detach()),
                    "samples_per_s": (step + 1) * tcfg.batch / (time.perf_counter() - t0)}
            if step + 1 == tcfg.steps:
                item["checkpoint"] = str(save_evaluator(out_dir, model, {"train": asdict(tcfg), "windows": N}))
            yield item


def save_evaluator(folder: str | Path, model: Evaluator, info: dict | None = None) -> Path:
    from engine.diffusion.checkpoint import save_tensors, write_folder_atomically

    def write(tmp: Path):
        save_tensors(tmp / "evaluator.safetensors", model.state_dict())
        (tmp / "config.json").write_text(json.dumps({"kind": "hand-studio-evaluator", "config": model.config.to_dict(),
                                                      "info": info or {}}, indent=1))
    return write_folder_atomically(Path(folder), write)


def load_evaluator(folder: str | Path, device: str | torch.device = "cpu") -> Evaluator:
    from engine.diffusion.checkpoint import CheckpointError, load_tensors
    folder = Path(folder)
    try:
        meta = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{folder / 'config.json'}: cannot read the evaluator config ({e})") from None
    if meta.get("kind") != "hand-studio-evaluator":
        raise CheckpointError(f"{folder}: not an evaluator checkpoint (kind {meta.get('kind')!r})")
    model = Evaluator(EvaluatorConfig.from_dict(meta["config"]))
    model.load_state_dict(load_tensors(folder / "evaluator.safetensors"))
    return model.to(device).eval()
