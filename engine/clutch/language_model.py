"""The CLUTCH motion-language model: a T5 encoder-decoder over the unified text + motion vocabulary.

Built from a ``T5Config`` (never the hub); optionally started from a local (Flan-)T5 folder the
user points to (``MotionLM.from_pretrained_t5``: the transformer body transfers, the embedding and
output rows are resized to our vocabulary; nothing is downloaded).

Decoding is constrained (``MotionStreamProcessor``, ``TextProcessor``: ``transformers``
LogitsProcessors, also usable with ``generate``): a motion answer is ``<som>``, then at each
position only the id range of the SHIFT stream due there (eq. 2's interleaving), then ``<eom>``;
a text answer uses text ids only and ends with [SEP]. The result is parsed strictly
(``MotionVocab.parse_motion``); an invalid stream raises, nothing is zero-filled.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from transformers import T5Config, T5ForConditionalGeneration  # noqa: E402
from transformers.generation import LogitsProcessor  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from engine.clutch.step_decoder import T5StepDecoder, output_scale  # noqa: E402
from engine.clutch.vocab import MotionVocab  # noqa: E402
from engine.diffusion.checkpoint import (CheckpointError, load_tensors, save_tensors,  # noqa: E402
                                         write_folder_atomically)

FORMAT, VERSION = "hand-studio-clutch-lm", 1
WEIGHTS, CONFIG = "model.safetensors", "config.json"


@dataclass(frozen=True)
class LMConfig:
    """T5 architecture (the vocabulary size comes from the vocab saved beside the weights).

    Default: d 192, 3 encoder + 3 decoder layers, 4 heads, gated-GELU FFN 768; with the ~3.5 k
    vocabulary of our corpus (untied input/output rows) 4.7 M parameters. Measured on the shared
    2-core CPU, 1 thread, batch 32, 36 input / 34 target tokens, raw T5 step: ~64 samples/s
    (d 256 same depth: 33-47; d 256 with 4+4 layers and FFN 1024: ~35) - see docs/clutch.md."""

    d_model: int = 192
    d_kv: int = 48
    d_ff: int = 768
    num_layers: int = 3
    num_decoder_layers: int = 3
    num_heads: int = 4
    feed_forward_proj: str = "gated-gelu"
    dropout: float = 0.1
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    tie_word_embeddings: bool = False
    max_input_tokens: int = 160  # prompt text + any motion given as input
    max_text_tokens: int = 64  # a caption answer, [SEP] included
    max_motion_steps: int = 32  # 256 frames at 8 frames per step

    def t5_config(self, vocab: MotionVocab) -> T5Config:
        return T5Config(vocab_size=vocab.size, d_model=self.d_model, d_kv=self.d_kv, d_ff=self.d_ff,
                        num_layers=self.num_layers, num_decoder_layers=self.num_decoder_layers,
                        num_heads=self.num_heads, feed_forward_proj=self.feed_forward_proj,
                        dropout_rate=self.dropout, relative_attention_num_buckets=self.relative_attention_num_buckets,
                        relative_attention_max_distance=self.relative_attention_max_distance,
                        tie_word_embeddings=self.tie_word_embeddings, pad_token_id=vocab.pad_id,
                        eos_token_id=vocab.eos_id, decoder_start_token_id=vocab.pad_id)

    @classmethod
    def from_t5_config(cls, c: T5Config, **overrides) -> "LMConfig":
        return cls(d_model=c.d_model, d_kv=c.d_kv, d_ff=c.d_ff, num_layers=c.num_layers,
                   num_decoder_layers=c.num_decoder_layers, num_heads=c.num_heads,
                   feed_forward_proj=c.feed_forward_proj, dropout=c.dropout_rate,
                   relative_attention_num_buckets=c.relative_attention_num_buckets,
                   relative_attention_max_distance=c.relative_attention_max_distance,
                   tie_word_embeddings=bool(c.tie_word_embeddings), **overrides)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LMConfig":
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"LM config has unknown fields {unknown}")
        return cls(**d)


# --- constrained decoding --------------------------------------------------------------------
class MotionStreamProcessor(LogitsProcessor):
    """Only the valid id at each decoder position of a motion answer.

    Position p (tokens generated so far): 0 -> ``<som>``; then stream ``(p-1) % 4``'s range;
    with ``steps`` given, ``<eom>`` exactly after ``4 * steps`` motion tokens; without, ``<eom>``
    is also allowed at every step boundary and forced after ``max_steps`` steps."""

    def __init__(self, vocab: MotionVocab, steps: int | None = None, max_steps: int = 32):
        if steps is not None and not 1 <= steps <= max_steps:
            raise ValueError(f"motion steps must be 1..{max_steps}; got {steps}")
        self.vocab, self.steps, self.max_steps = vocab, steps, max_steps
        V, S = vocab.size, len(vocab.streams)
        self.S = S
        self.only = {}
        for name, ids in [("som", [vocab.som_id]), ("eom", [vocab.eom_id]), ("pad", [vocab.pad_id])] + \
                [(k, list(vocab.stream_range(k))) for k in range(S)]:
            m = torch.zeros(V, dtype=torch.bool)
            m[ids] = True
            self.only[name] = m
        self.only["first_or_eom"] = self.only[0] | self.only["eom"]

    def allowed(self, p: int) -> torch.Tensor:
        """(V,) bool of the ids allowed at decoder position p."""
        S = self.S
        n = self.steps if self.steps is not None else self.max_steps
        if p == 0:
            return self.only["som"]
        if p > S * n + 1:
            return self.only["pad"]
        if p == S * n + 1:
            return self.only["eom"]
        k = (p - 1) % S
        if k == 0 and p > 1 and self.steps is None:
            return self.only["first_or_eom"]
        return self.only[k]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        allowed = self.allowed(input_ids.shape[1] - 1).to(scores.device)  # decoder start excluded
        return scores.masked_fill(~allowed, float("-inf"))


class TextProcessor(LogitsProcessor):
    """A text answer: text ids only (no pad/unk/mask/cls), at least one word, [SEP] by ``max_len``.

    ``no_repeat_ngram`` n > 0 also bans any token that would repeat an n-gram (of word pieces)
    already in the answer: greedy decoding otherwise loops ("first X and finally X", the same
    sentence twice), which the corpus itself almost never does."""

    def __init__(self, vocab: MotionVocab, max_len: int = 64, no_repeat_ngram: int = 0):
        if max_len < 2:
            raise ValueError(f"max_len must be >= 2; got {max_len}")
        if no_repeat_ngram < 0 or no_repeat_ngram == 1:
            raise ValueError(f"no_repeat_ngram must be 0 (off) or >= 2; got {no_repeat_ngram}")
        self.max_len, self.no_repeat_ngram, self.eos_id = max_len, no_repeat_ngram, vocab.eos_id
        self.words = torch.zeros(vocab.size, dtype=torch.bool)
        self.words[5:vocab.text_size] = True
        self.eos = torch.zeros(vocab.size, dtype=torch.bool)
        self.eos[vocab.eos_id] = True
        self.pad = torch.zeros(vocab.size, dtype=torch.bool)
        self.pad[vocab.pad_id] = True
        self.words_or_eos = self.words | self.eos  # one tensor, so decoding caches its output rows

    def allowed(self, p: int) -> torch.Tensor:
        if p == 0:
            return self.words
        if p == self.max_len - 1:
            return self.eos
        if p >= self.max_len:
            return self.pad
        return self.words_or_eos

    def banned(self, generated: list[int]) -> set[int]:
        """Tokens that would complete an n-gram already in ``generated`` (the answer so far)."""
        n = self.no_repeat_ngram
        if not n or len(generated) < n:
            return set()
        prefix = generated[len(generated) - n + 1:]
        return {generated[i + n - 1] for i in range(len(generated) - n + 1) if generated[i:i + n - 1] == prefix}

    def __call__(self, input_ids, scores):
        allowed = self.allowed(input_ids.shape[1] - 1).to(scores.device)
        scores = scores.masked_fill(~allowed, float("-inf"))
        if self.no_repeat_ngram:
            for b, row in enumerate(input_ids[:, 1:].tolist()):  # column 0 is the decoder start
                ban = sorted(self.banned(row) - {self.eos_id})
                if ban:
                    keep = scores[b].clone()
                    scores[b, ban] = float("-inf")
                    if not torch.isfinite(scores[b]).any():  # never ban the only way out
                        scores[b] = keep
        return scores


# --- the model -------------------------------------------------------------------------------
class MotionLM(nn.Module):
    """T5ForConditionalGeneration + its vocabulary."""

    def __init__(self, config: LMConfig, vocab: MotionVocab, t5: T5ForConditionalGeneration | None = None):
        super().__init__()
        self.config, self.vocab = config, vocab
        hf_logging.set_verbosity_error()
        if t5 is None:
            t5 = T5ForConditionalGeneration(config.t5_config(vocab))
            if not config.tie_word_embeddings:
                # transformers initialises an untied T5 output layer with std 1.0 (and, untied, no
                # d_model**-0.5 rescale of the decoder output), so a fresh model's logits have std
                # ~sqrt(d_model) and the first cross-entropy is ~90 nats; std d_model**-0.5 starts
                # it near ln(vocab) instead.
                nn.init.normal_(t5.lm_head.weight, std=config.d_model ** -0.5)
        self.t5 = t5

    @classmethod
    def from_pretrained_t5(cls, folder: str | Path, vocab: MotionVocab, **overrides) -> "MotionLM":
        """Start from a local (Flan-)T5 folder: the transformer body transfers; embedding and output
        rows are resized to ``vocab`` (the pretrained SentencePiece rows do not match our ids)."""
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder}: not a T5 folder (no config.json)")
        if not any((folder / n).is_file() for n in ("model.safetensors", "model.safetensors.index.json")):
            raise FileNotFoundError(f"{folder}: no model.safetensors - only safetensors weights are read "
                                    "(a pickled pytorch_model.bin is never loaded; convert it with the "
                                    "tool you trust)")
        t5 = T5ForConditionalGeneration.from_pretrained(folder, local_files_only=True, use_safetensors=True)
        t5.resize_token_embeddings(vocab.size)
        t5.config.pad_token_id, t5.config.eos_token_id = vocab.pad_id, vocab.eos_id
        t5.config.decoder_start_token_id = vocab.pad_id
        return cls(LMConfig.from_t5_config(t5.config, **overrides), vocab, t5)

    def forward(self, input_ids, attention_mask, labels=None, decoder_input_ids=None):
        """input_ids (B, L), attention_mask (B, L), labels (B, M) with -100 = ignore -> Seq2SeqLMOutput
        (``.loss`` mean CE over labelled tokens, ``.logits`` (B, M, V))."""
        return self.t5(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                       decoder_input_ids=decoder_input_ids)

    def check_input(self, ids: list[int], what: str = "input") -> None:
        if not ids:
            raise ValueError(f"{what} is empty")
        if len(ids) > self.config.max_input_tokens:
            raise ValueError(f"{what} is too long: {len(ids)} tokens, at most {self.config.max_input_tokens}")

    @torch.no_grad()
    def target_log_prob(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                        counted: torch.Tensor, allowed_at=None) -> torch.Tensor:
        """Teacher-forced log p(labels | input) per row (nats, summed where ``counted``). input_ids /
        attention_mask (B, L), labels / counted (B, M). ``allowed_at(p)`` -> (V,) bool (a processor's
        ``allowed``): each position's distribution is renormalised over the ids the constrained
        decoder may emit there - the probability of what ``decode`` samples - and only those output
        rows are computed (a motion position: one stream's 512 of 5 k rows); a label outside its
        position's set has probability 0 (-inf)."""
        pad = self.vocab.pad_id
        dec = torch.cat([torch.full_like(labels[:, :1], pad), labels[:, :-1]], 1)  # T5's shift right
        enc = self.t5.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        h = self.t5.get_decoder()(input_ids=dec, encoder_hidden_states=enc,
                                  encoder_attention_mask=attention_mask).last_hidden_state
        scale = output_scale(self.t5.config)
        if scale is not None:
            h = h * scale
        weight = self.t5.lm_head.weight
        target = (h * weight[labels]).sum(-1).float()  # (B, M) logits of the labels
        if allowed_at is None:
            lp = target - torch.logsumexp(self.t5.lm_head(h).float(), -1)
        else:
            lp = torch.empty_like(target)
            groups: dict = {}
            for p in range(labels.shape[1]):
                m = allowed_at(p)
                groups.setdefault(id(m), (m, []))[1].append(p)
            for m, pos in groups.values():
                m = m.to(labels.device)
                norm = torch.logsumexp((h[:, pos] @ weight[m].T).float(), -1)
                ok = m[labels[:, pos]]
                lp[:, pos] = torch.where(ok, target[:, pos] - norm, torch.full_like(norm, float("-inf")))
        return torch.where(counted.bool(), lp, torch.zeros_like(lp)).sum(-1)

    @torch.no_grad()
    def decode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, processor: LogitsProcessor,
               max_len: int, stop_id: int, temperature: float = 0.0, top_k: int = 0,
               generator: torch.Generator | None = None, greedy_rows: int = 0,
               return_log_prob: bool = False, sampled_len_factor: float = 0.0):
        """Autoregressive decoding with a KV cache (``step_decoder.T5StepDecoder``). -> (B, n)
        generated ids (decoder start excluded);
        rows that stopped early are padded. ``temperature`` 0 = greedy; with a temperature, the
        first ``greedy_rows`` rows are still decoded greedily (a greedy answer and samples in one batch).
        ``return_log_prob``: also (B,) the log-probability of each row's ids (stop id included) under
        the constrained distribution at temperature 1 - what ``target_log_prob`` gives for them.
        ``sampled_len_factor`` f > 0 (with greedy rows): once the greedy rows have stopped at n ids,
        decoding ends after f * n + 2 ids; sampled rows still running then have no stop id (a
        caller drops them) - a rambling sample does not hold up the whole batch."""
        B = input_ids.shape[0]
        dev = input_ids.device
        same = B > 1 and bool((input_ids == input_ids[:1]).all()) and bool((attention_mask == attention_mask[:1]).all())
        if same:  # candidates of one input: encode it once
            enc = self.t5.get_encoder()(input_ids=input_ids[:1], attention_mask=attention_mask[:1]).last_hidden_state
            enc = enc.expand(B, -1, -1)
        else:
            enc = self.t5.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        dec = torch.full((B, 1), self.vocab.pad_id, dtype=torch.long, device=dev)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        stepper = T5StepDecoder(self.t5)  # transformers' logits, a fraction of its per-token overhead
        stepper.start(enc, attention_mask, max_len)
        allowed_at = getattr(processor, "allowed", None)  # our processors: the ids each position may take
        log_prob = torch.zeros(B, device=dev)
        limit = max_len
        for n in range(max_len):
            if n >= limit:
                break
            allowed = allowed_at(dec.shape[1] - 1) if allowed_at is not None else None
            scores = processor(dec, stepper.step(dec[:, -1], allowed))  # (B, V)
            logp = torch.log_softmax(scores, -1) if return_log_prob else None
            if temperature and temperature > 0:
                scores = scores / temperature
                if top_k:  # sample among the k best only (the same distribution, a k-wide draw)
                    vals, idx = scores.topk(min(top_k, scores.shape[-1]), -1)
                    pick = torch.multinomial(torch.softmax(vals, -1).cpu(), 1, generator=generator).to(dev)
                    nxt = idx.gather(1, pick)[:, 0]
                else:
                    nxt = torch.multinomial(torch.softmax(scores, -1).cpu(), 1, generator=generator).to(dev)[:, 0]
                if greedy_rows:
                    nxt[:greedy_rows] = scores[:greedy_rows].argmax(-1)
            else:
                nxt = scores.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.vocab.pad_id), nxt)
            if logp is not None:
                log_prob += torch.where(done, torch.zeros_like(log_prob), logp.gather(1, nxt[:, None])[:, 0])
            dec = torch.cat([dec, nxt[:, None]], 1)
            done |= nxt == stop_id
            if bool(done.all()):
                break
            if sampled_len_factor > 0 and greedy_rows and limit == max_len and bool(done[:greedy_rows].all()):
                limit = min(max_len, math.ceil(sampled_len_factor * (n + 1)) + 2)
        return (dec[:, 1:], log_prob) if return_log_prob else dec[:, 1:]


# --- checkpoints -----------------------------------------------------------------------------
def _dedupe(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tied tensors (T5's shared / embed_tokens) are stored once; aliases go in the config."""
    seen, out, aliases = {}, {}, {}
    for k, v in state.items():
        key = (v.data_ptr(), tuple(v.shape), tuple(v.stride()))
        if key in seen:
            aliases[k] = seen[key]
        else:
            seen[key], out[k] = k, v
    return out, aliases


def save_lm(folder: str | Path, lm: MotionLM, meta: dict | None = None) -> Path:
    """Folder: model.safetensors + config.json (LMConfig, vocab layout, meta) + tokenizer.json + vocab.json."""
    state, aliases = _dedupe(lm.state_dict())
    config = {"format": FORMAT, "version": VERSION, "lm": lm.config.to_dict(), "vocab": lm.vocab.to_dict(),
              "aliases": aliases, "meta": meta or {}}

    def write(tmp: Path):
        save_tensors(tmp / WEIGHTS, state)
        lm.vocab.save(tmp)
        (tmp / CONFIG).write_text(json.dumps(config, indent=1))
    return write_folder_atomically(Path(folder), write)


def read_config(folder: str | Path, fmt: str = FORMAT) -> dict:
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path}: not found (a checkpoint is a folder with {CONFIG} and {WEIGHTS})")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != fmt or config.get("version") != VERSION:
        raise CheckpointError(f"{path}: expected format {fmt!r} version {VERSION}")
    return config


def load_lm(folder: str | Path, device: str | torch.device = "cpu") -> tuple[MotionLM, dict]:
    """-> (model in eval mode, config dict with ``meta``)."""
    folder = Path(folder)
    config = read_config(folder)
    try:
        vocab = MotionVocab.load(folder)
        lm = MotionLM(LMConfig.from_dict(config["lm"]), vocab)
    except (KeyError, TypeError, ValueError, FileNotFoundError) as e:
        raise CheckpointError(f"{folder}: bad CLUTCH LM config or vocabulary ({e})") from None
    state = load_tensors(folder / WEIGHTS)
    for k, src in config.get("aliases", {}).items():
        if src in state:
            state[k] = state[src]
    try:
        lm.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{folder / WEIGHTS}: weights do not match the config ({str(e)[:300]})") from None
    return lm.to(device).eval(), config


__all__ = ["LMConfig", "MotionLM", "MotionStreamProcessor", "TextProcessor", "save_lm", "load_lm", "read_config"]
