"""Captioning metrics for motion -> text (CLUTCH Table 6, M2T columns): corpus BLEU-1 / BLEU-4
and sentence ROUGE-L, as pure functions over strings.

Tokenisation (``tokenize``): lowercase, then runs of letters / digits / underscores are words and
every other non-space character is a token of its own ("The hand, waves." -> the hand , waves .).

BLEU-N (Papineni et al. 2002), corpus level: per n = 1..N the hypotheses' n-gram counts are
clipped by the largest count of that n-gram in any one of their references, summed over the
corpus and divided by the number of hypothesis n-grams; the score is the geometric mean of the N
precisions (uniform weights, no smoothing: a zero precision gives 0) times the brevity penalty
exp(1 - r/c) when c <= r, where c is the total hypothesis length and r the sum over sentences of
the reference length closest to the hypothesis length (ties -> the shorter reference).

ROUGE-L (Lin 2004), sentence level: with L the longest common subsequence of a hypothesis and a
reference, P = L / len(hyp), R = L / len(ref), F = (1 + b^2) P R / (R + b^2 P), b = 1.2 (the
captioning toolkits' value); a hypothesis scores the best F over its references, and the corpus
score is the mean over sentences. (The coco-caption script instead combines the best P and the
best R over references, which can exceed every single reference's F.)
"""
from __future__ import annotations

import math
import re
from collections import Counter

ROUGE_BETA = 1.2
_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lowercased words and single punctuation marks."""
    if not isinstance(text, str):
        raise ValueError(f"a caption must be a str; got {type(text).__name__}")
    return _TOKEN.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> Counter:
    """Counts of the n-grams (tuples) of one token list."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _check_pairs(hypotheses, references) -> tuple[list[list[str]], list[list[list[str]]]]:
    """-> tokenised hypotheses and references; raises on a mismatch or a clip without references."""
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise ValueError("hypotheses and references must be lists (one entry per clip), not a str")
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(f"need one reference list per hypothesis; got {len(hypotheses)} hypotheses and "
                         f"{len(references)} reference lists")
    if not hypotheses:
        raise ValueError("no hypotheses to score")
    hyp = [tokenize(h) for h in hypotheses]
    refs = []
    for i, r in enumerate(references):
        if isinstance(r, str) or not r:
            raise ValueError(f"references[{i}] must be a non-empty list of strings; got {r!r}")
        refs.append([tokenize(s) for s in r])
    return hyp, refs


def closest_length(hyp_len: int, ref_lens: list[int]) -> int:
    """The reference length nearest to ``hyp_len`` (ties -> the shorter)."""
    return min(ref_lens, key=lambda r: (abs(r - hyp_len), r))


def corpus_bleu(hypotheses: list[str], references: list[list[str]], max_n: int = 4) -> float:
    """Corpus BLEU-``max_n`` in [0, 1]; ``references[i]`` is the list of references of hypothesis i."""
    if not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"max_n must be an int >= 1; got {max_n!r}")
    hyp, refs = _check_pairs(hypotheses, references)
    matched, total = [0] * max_n, [0] * max_n
    c = r = 0
    for h, rs in zip(hyp, refs):
        c += len(h)
        r += closest_length(len(h), [len(x) for x in rs])
        for n in range(1, max_n + 1):
            counts = ngrams(h, n)
            ceiling: Counter = Counter()
            for x in rs:
                ceiling |= ngrams(x, n)  # elementwise max over references
            matched[n - 1] += sum(min(k, ceiling[g]) for g, k in counts.items())
            total[n - 1] += sum(counts.values())
    if c == 0 or min(matched) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matched, total)) / max_n
    brevity = 1.0 if c > r else math.exp(1 - r / c)
    return brevity * math.exp(log_p)


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (O(len(a) * len(b)) time, O(len(b)) memory)."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l_sentence(hyp: list[str], refs: list[list[str]], beta: float = ROUGE_BETA) -> float:
    """Best ROUGE-L F over the references of one tokenised hypothesis."""
    best = 0.0
    for ref in refs:
        lcs = lcs_length(hyp, ref)
        if lcs == 0:
            continue
        p, r = lcs / len(hyp), lcs / len(ref)
        best = max(best, (1 + beta ** 2) * p * r / (r + beta ** 2 * p))
    return best


def rouge_l(hypotheses: list[str], references: list[list[str]], beta: float = ROUGE_BETA) -> float:
    """Mean over hypotheses of the sentence ROUGE-L F, in [0, 1]."""
    hyp, refs = _check_pairs(hypotheses, references)
    return sum(rouge_l_sentence(h, rs, beta) for h, rs in zip(hyp, refs)) / len(hyp)


def caption_scores(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """{"BLEU-1", "BLEU-4", "ROUGE-L"} of a set of captions against their references."""
    return {"BLEU-1": corpus_bleu(hypotheses, references, 1), "BLEU-4": corpus_bleu(hypotheses, references, 4),
            "ROUGE-L": rouge_l(hypotheses, references)}


__all__ = ["tokenize", "ngrams", "closest_length", "corpus_bleu", "lcs_length", "rouge_l_sentence", "rouge_l",
           "caption_scores", "ROUGE_BETA"]
