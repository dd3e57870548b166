"""The one door into the engine for the GUI, the CLI and outside scripts.

Names here are a contract (see docs/architecture.md). Models plug in as they ship; asking for
one that is not installed is a clear error, never a fake result.
"""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import engine
from engine.hands import BACKENDS, load_hands
from engine.hands.skeleton import JOINT_NAMES, KEYPOINT_NAMES, KEYPOINT_PARENTS, PARENTS
from engine.motion.clip import Clip, ClipError, Prompt
from engine.diffusion.constraints import Constraints
from engine.resources import resource_path, resources_dir

__all__ = ["Studio", "Prompt", "Clip", "ClipError", "Constraints", "ModelNotAvailable", "resolve_device"]


SHIPPED_CLUTCH = "models/clutch"  # = engine.clutch.pipeline.SHIPPED
SHIPPED_DIFFUSION = "models/diffusion"  # = engine.diffusion.pipeline.SHIPPED (not imported: keeps `info` light)


class ModelNotAvailable(RuntimeError):
    """A generation/captioning model was asked for that is not installed."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; anything else must name a usable device."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]'; got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device")
    return dev


@dataclass
class Studio:
    """Loaded hands and models on one device. Models load lazily, on first use."""

    device: torch.device
    hand_backend: str = "default"
    mano_dir: str | None = None
    diffusion: str | None = None  # checkpoint folder; None = the shipped one (if installed)
    clutch: str | None = None  # CLUTCH folder (shift/ + lm/); None = the shipped one (if installed)

    @classmethod
    def load(cls, device: str | torch.device = "auto", hand_backend: str = "default",
             mano_dir: str | None = None, diffusion: str | os.PathLike | None = None,
             clutch: str | os.PathLike | None = None,
             use_registry: bool = True) -> "Studio":
        """``diffusion`` / ``clutch`` None = the active registered model of that kind (`hand-studio
        models use NAME`), else the shipped one; ``use_registry=False`` always means the shipped one."""
        if use_registry:
            from engine.registry import active_model_path
            diffusion = active_model_path("diffusion") if diffusion is None else diffusion
            clutch = active_model_path("clutch") if clutch is None else clutch
        if diffusion is not None and not (Path(diffusion) / "config.json").is_file():
            raise FileNotFoundError(f"diffusion checkpoint folder {diffusion} has no config.json")
        if clutch is not None and not all((Path(clutch) / s / "config.json").is_file() for s in ("shift", "lm")):
            raise FileNotFoundError(f"CLUTCH folder {clutch} must hold shift/config.json and lm/config.json")
        studio = cls(resolve_device(device), hand_backend, mano_dir, None if diffusion is None else str(diffusion),
                     None if clutch is None else str(clutch))
        studio.hands  # load now so a bad backend fails here, not later
        return studio

    @property
    def hands(self):
        if not hasattr(self, "_hands"):
            self._hands = load_hands(self.hand_backend, self.mano_dir, self.device)
        return self._hands

    def _diffusion_folder(self) -> Path | None:
        folder = Path(self.diffusion) if self.diffusion else resource_path(SHIPPED_DIFFUSION)
        return folder if (folder / "config.json").is_file() else None

    def _clutch_folder(self) -> Path | None:
        folder = Path(self.clutch) if self.clutch else resource_path(SHIPPED_CLUTCH)
        return folder if all((folder / s / "config.json").is_file() for s in ("shift", "lm")) else None

    @property
    def models(self) -> dict[str, str]:
        """Generation models installed: name -> checkpoint folder."""
        out = {}
        if self._diffusion_folder():
            out["diffusion"] = str(self._diffusion_folder())
        if self._clutch_folder():
            out["clutch"] = str(self._clutch_folder())
        return out

    def pipeline(self, model: str = "diffusion"):
        """The loaded generation pipeline of ``model`` (loaded once)."""
        if model not in self.models:
            raise ModelNotAvailable(f"generation model {model!r} is not installed; installed: "
                                    f"{sorted(self.models) or 'none'} (see `hand-studio info`)")
        cache = self.__dict__.setdefault("_pipelines", {})
        if model not in cache:
            if model == "clutch":
                from engine.clutch.pipeline import load_clutch
                cache[model] = load_clutch(self._clutch_folder(), self.device)
            else:
                from engine.diffusion.pipeline import load_pipeline
                cache[model] = load_pipeline(self._diffusion_folder(), self.device, hands=self.hands)
        return cache[model]

    def prompt_problem(self, prompt: Prompt, frames: int, model: str = "diffusion") -> str | None:
        """Why ``model`` would refuse ``prompt``'s length for a take of ``frames`` frames, or None,
        without loading the model (its config file and the text encoder's tokenizer only): what the
        diffusion pipeline's ``generate_iter`` checks first, said while the prompt is typed. The
        clutch model's text is judged by its own tokenizer at generation."""
        folder = self._diffusion_folder() if model == "diffusion" else None
        if folder is None:
            return None
        from engine.diffusion.checkpoint import read_config
        from engine.diffusion.denoiser import DenoiserConfig
        from engine.diffusion.pipeline import long_text_problem
        from engine.diffusion.text_encoder import token_counter
        windows = self.__dict__.setdefault("_windows", {})
        if folder not in windows:
            windows[folder] = DenoiserConfig.from_dict(read_config(folder)["denoiser"]).frames
        return long_text_problem(prompt, frames, token_counter(), windows[folder])

    def generate_iter(self, prompt: str | Prompt, frames: int = 60, seed: int = 0, model: str = "diffusion",
                      constraints: Constraints | None = None, steps: int | None = None,
                      close_pinches: bool | None = None, split_hands: bool | None = None,
                      joint_limits: bool | None = None):
        """Generator yielding ``{"step", "of", "preview"}`` per denoising step, then the result
        (with ``"pinches"``: the named pinches closed); close it to cancel. Bad input raises when
        this is called. ``close_pinches``: make thumb-fingertip contacts the prompt names touch
        (None: on, the pipeline's default). ``split_hands``: generate each hand from the whole text
        and its own when the prompt gives each hand a separate action at the same time (None: on).
        ``joint_limits``: ease free finger joints the model bends past their anatomical limits back
        inside, smoothly (None: on; the result's ``"limits"`` counts the joint-frames that were).
        The clutch model yields its one result (it takes no constraints, steps or these options)."""
        return self.pipeline(model).generate_iter(prompt, frames, seed, constraints, steps,
                                                  close_pinches=close_pinches, split_hands=split_hands,
                                                  joint_limits=joint_limits)

    def generate(self, prompt: str | Prompt, frames: int = 60, seed: int = 0, model: str = "diffusion",
                 constraints: Constraints | None = None, steps: int | None = None,
                 close_pinches: bool | None = None, candidates: int | None = None,
                 split_hands: bool | None = None, joint_limits: bool | None = None) -> Clip:
        """Text -> clip with the named model. ``candidates`` (clutch): token streams drawn, the one
        the model's own captioner matches best to the prompt kept (None: the pipeline's default)."""
        if model == "clutch":
            if any(v is not None for v in (constraints, steps, close_pinches, split_hands, joint_limits)):
                raise ValueError("the clutch model takes no constraints, steps, pinch closing, hand splitting or "
                                 "joint limits; use model='diffusion'")
            return self.pipeline(model).generate(prompt, frames, seed, candidates=candidates)
        if candidates is not None:
            raise ValueError("candidates is a clutch setting; the diffusion model draws one sample per seed")
        return self.pipeline(model).generate(prompt, frames, seed, constraints, steps, close_pinches=close_pinches,
                                             split_hands=split_hands, joint_limits=joint_limits)

    def caption(self, clip: Clip, candidates: int | None = None) -> str:
        """Motion -> text, with the CLUTCH model. ``candidates``: the greedy caption and candidates - 1
        sampled ones, the one that best explains the motion kept (None: the pipeline's default)."""
        if self._clutch_folder() is None:
            raise ModelNotAvailable("no captioning model is installed: CLUTCH ships under "
                                    f"resources/{SHIPPED_CLUTCH} (see `hand-studio info`)")
        return self.pipeline("clutch").caption(clip, candidates=candidates)

    def info(self) -> dict:
        """Versions, device, hand backend and the skeleton contract."""
        hands = self.hands
        rest = np.stack([hands.left.rest_joints_np, hands.right.rest_joints_np])
        return {
            "hand_studio": engine.__version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "device": str(self.device),
            "cuda_available": torch.cuda.is_available(),
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch_threads": torch.get_num_threads(),
            "hand_backend": self.hand_backend,
            "hand_backends": list(BACKENDS),
            "hand_vertices": hands.info()["vertices"],
            "joint_names": list(JOINT_NAMES),
            "parents": list(PARENTS),
            "keypoint_names": list(KEYPOINT_NAMES),
            "keypoint_parents": list(KEYPOINT_PARENTS),
            "rest_joints": {"left": rest[0].round(6).tolist(), "right": rest[1].round(6).tolist()},
            "models": self.models,
            "resources": os.fspath(resources_dir()),
        }
