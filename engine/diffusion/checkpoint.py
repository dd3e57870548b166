"""Model checkpoints: a folder with ``model.safetensors`` + ``config.json`` (the config rebuilds the
model; normalisation stats are buffers in the weights). Nothing here unpickles anything.
Saving is atomic: files go to a temp folder that replaces the target in one rename.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from engine.diffusion.denoiser import Denoiser, DenoiserConfig

FORMAT = "hand-studio-diffusion"
VERSION = 1
WEIGHTS, CONFIG = "model.safetensors", "config.json"


class CheckpointError(ValueError):
    """A checkpoint folder is missing, malformed or does not match its config."""


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path),
              metadata={k: json.dumps(v) for k, v in (metadata or {}).items()})


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def write_folder_atomically(folder: Path, write) -> Path:
    """Call ``write(tmp_folder)`` and put the result at ``folder`` with renames (old copy removed)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        write(tmp)
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old{os.getpid()}")
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def save_model(folder: str | Path, model: Denoiser, meta: dict | None = None) -> Path:
    """Weights + config (+ free-form ``meta``: training data, steps, defaults such as sampler steps)."""
    config = {"format": FORMAT, "version": VERSION, "denoiser": model.config.to_dict(), "meta": meta or {}}

    def write(tmp: Path):
        save_tensors(tmp / WEIGHTS, model.state_dict())
        (tmp / CONFIG).write_text(json.dumps(config, indent=2))
    return write_folder_atomically(Path(folder), write)


def read_config(folder: str | Path) -> dict:
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path}: not found (a diffusion checkpoint is a folder with {CONFIG} and {WEIGHTS})")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format must be {FORMAT!r}; got {config.get('format') if isinstance(config, dict) else config!r}")
    if config.get("version") != VERSION:
        raise CheckpointError(f"{path}: version must be {VERSION}; got {config.get('version')!r}")
    return config


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> tuple[Denoiser, dict]:
    """-> (model in eval mode, config dict with ``meta``)."""
    folder = Path(folder)
    config = read_config(folder)
    try:
        model = Denoiser(DenoiserConfig.from_dict(config["denoiser"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / CONFIG}: bad denoiser config ({e})") from None
    state = load_tensors(folder / WEIGHTS)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{folder / WEIGHTS}: weights do not match the config ({str(e)[:300]})") from None
    return model.to(device).eval(), config
