"""Stage 2b: route and modality from a logistic regression over hashed word, character and cue features (numpy).

Training is deterministic (full-batch Adam from zero weights) and takes well under a second on the shipped corpus,
so the default model is trained on first use rather than stored.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from agent.corpus import MODALITIES, ROUTES, Example, training_examples
from agent.cues import Cues, read_cues
from agent.normalise import Doc
from agent.params import blank, extract_params

HASH_BITS = 18
EPOCHS = 80
LEARNING_RATE = 0.08
L2 = 2e-4
CHAR_NGRAMS = (3, 4)
CUE_VALUE = 0.5


def features(doc: Doc, cues: Cues) -> list[str]:
    """Word unigrams and bigrams, character n-grams of each word, and the rule cues."""
    words = ["<s>"] + ["#" if t.norm.isdigit() else "|" if t.is_boundary else t.norm for t in doc.tokens]
    found = [f"w:{w}" for w in words[1:] if w != "|"]
    found += [f"b:{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    for word in words[1:]:
        if len(word) > 2 and word != "#":
            padded = f"^{word}$"
            found += [f"c:{padded[k : k + n]}" for n in CHAR_NGRAMS for k in range(len(padded) - n + 1)]
    found += cues.features
    return list(dict.fromkeys(found))


def vectorise(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Stable feature indexes (CRC-32, independent of PYTHONHASHSEED) and values: n-grams share a unit norm,
    each rule cue counts CUE_VALUE whatever the request's length."""
    mask = (1 << HASH_BITS) - 1
    idx = np.fromiter((zlib.crc32(n.encode()) & mask for n in names), dtype=np.int64, count=len(names))
    is_cue = np.fromiter((n.startswith("cue:") for n in names), dtype=bool, count=len(names))
    grams = max(int((~is_cue).sum()), 1)
    return idx, np.where(is_cue, CUE_VALUE, 1 / np.sqrt(grams))


def request_features(request: str) -> tuple[Doc, Cues, list[str]]:
    """Parse a request the way the router does and return its doc, cues and feature names."""
    found = extract_params(request)
    doc = Doc.parse(blank(request, found.spans))
    cues = read_cues(doc, found.params)
    return doc, cues, features(doc, cues)


@dataclass(frozen=True, slots=True)
class Head:
    """One softmax layer: weights per hashed feature and class, and a bias per class."""

    classes: tuple[str, ...]
    weights: np.ndarray  # (2**HASH_BITS, classes)
    bias: np.ndarray

    def probabilities(self, idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Class probabilities for one request's features."""
        logits = values @ self.weights[idx] + self.bias
        exp = np.exp(logits - logits.max())
        return exp / exp.sum()

    def evidence(self, names: list[str], idx: np.ndarray, label: str, top: int = 3) -> list[str]:
        """The readable features that pushed most towards label (words and cues, not character n-grams)."""
        c = self.classes.index(label)
        rows = self.weights[idx]
        push = rows[:, c] - rows.mean(axis=1)
        order = np.argsort(-push, kind="stable")
        picked = [names[k] for k in order if push[k] > 0 and not names[k].startswith("c:")]
        return [_readable(n) for n in picked[:top]]


def _readable(name: str) -> str:
    kind, _, value = name.partition(":")
    return f"cue {value}" if kind == "cue" else f"'{value.replace('<s> ', '^').replace('|', ',')}'"


@dataclass(frozen=True, slots=True)
class Model:
    """The route head and the modality head."""

    route: Head
    modality: Head


def _train_head(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, labels: np.ndarray, classes: int) -> Head:
    """Fit one multinomial logistic regression on compact columns; return weights over the hashed space."""
    unique, inverse = np.unique(cols, return_inverse=True)
    n, f = int(labels.shape[0]), int(unique.shape[0])
    weights, bias = np.zeros((f, classes)), np.zeros(classes)
    target = np.eye(classes)[labels]
    m_w, v_w, m_b, v_b = np.zeros_like(weights), np.zeros_like(weights), np.zeros(classes), np.zeros(classes)
    for step in range(1, EPOCHS + 1):
        summed = [np.bincount(rows, vals * weights[inverse, c], minlength=n) for c in range(classes)]
        logits = np.stack(summed, 1).astype(np.float64) + bias
        prob = np.exp(logits - logits.max(axis=1, keepdims=True))
        prob /= prob.sum(axis=1, keepdims=True)
        error = (prob - target) / n
        pushed = [np.bincount(inverse, vals * error[rows, c], minlength=f) for c in range(classes)]
        grad_w = np.stack(pushed, 1).astype(np.float64) + L2 * weights
        grad_b = error.sum(axis=0)
        for param, grad, m, v in ((weights, grad_w, m_w, v_w), (bias, grad_b, m_b, v_b)):
            m *= 0.9
            m += 0.1 * grad
            v *= 0.999
            v += 0.001 * grad * grad
            param -= LEARNING_RATE * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    full = np.zeros((1 << HASH_BITS, classes))
    np.add.at(full, unique, weights)
    return Head(("",) * classes, full, bias)


def train(examples: Sequence[Example]) -> Model:
    """Train both heads on labelled examples."""
    rows_list, cols_list, vals_list = [], [], []
    for row, example in enumerate(examples):
        idx, values = vectorise(request_features(example.request)[2])
        rows_list.append(np.full(idx.shape[0], row))
        cols_list.append(idx)
        vals_list.append(values)
    rows, cols, vals = np.concatenate(rows_list), np.concatenate(cols_list), np.concatenate(vals_list)
    route_labels = np.array([ROUTES.index(e.route) for e in examples])
    modality_labels = np.array([MODALITIES.index(e.modality) for e in examples])
    route = _train_head(rows, cols, vals, route_labels, len(ROUTES))
    modality = _train_head(rows, cols, vals, modality_labels, len(MODALITIES))
    return Model(Head(ROUTES, route.weights, route.bias), Head(MODALITIES, modality.weights, modality.bias))


@cache
def default_model() -> Model:
    """The model trained on the shipped corpus and dev set (trained once per process)."""
    return train(training_examples())
