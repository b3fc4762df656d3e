"""ProtoSiamese (LogAnMeta, Sarkar et al.): a prototypical network trained with an extra triplet loss.

An encoder embeds TF-IDF vectors of template counts (input -> 128 -> 128 -> 32, ReLU, dropout 0.5);
each class is the mean embedding of its support examples (its prototype); a window is assigned the
class of the nearest prototype. Training minimises `1/2 (L_proto + L_triplet)` per episode (see
`pipeline.training.episodic`).

Distances are squared Euclidean for the prototypes (as in Snell et al.'s prototypical networks,
the paper's [11]) and Euclidean for the triplet margin; the paper leaves `d` and `alpha` open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.errors import ModelError
from pipeline.tfidf import Idf, TfidfFeaturizer

MODEL_NAME = "protosiamese"
INPUT_NAMES = ("template_ids", "counts")
OUTPUT_NAMES = ("class_index", "distances")


@dataclass(frozen=True)
class ProtoSiameseConfig:
    """Encoder shape (the paper's 3 layers: input, 128, 128, 32) and the triplet margin alpha."""

    input_dim: int
    hidden_dims: tuple[int, ...] = (128, 128)
    embedding_dim: int = 32
    dropout: float = 0.5
    margin: float = 1.0


class Encoder(nn.Module):
    """TF-IDF row (B, V) -> embedding (B, D). ReLU after every layer but the last; dropout after each."""

    def __init__(self, config: ProtoSiameseConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = config.input_dim
        for hidden in config.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, config.embedding_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def squared_distances(x: Tensor, prototypes: Tensor) -> Tensor:
    """(N, D), (C, D) -> (N, C) squared Euclidean distances."""
    diff = x.unsqueeze(1) - prototypes.unsqueeze(0)  # (N, C, D)
    return (diff * diff).sum(dim=2)


def class_prototypes(embeddings: Tensor, labels: Tensor, n_classes: int) -> Tensor:
    """Mean embedding per class label in [0, n_classes): (N, D), (N,) -> (C, D); every class needs >= 1."""
    sums = torch.zeros(n_classes, embeddings.shape[1], dtype=embeddings.dtype, device=embeddings.device)
    sums = sums.index_add(0, labels, embeddings)
    counts = torch.bincount(labels, minlength=n_classes).to(embeddings.dtype)
    if bool((counts == 0).any()):
        missing = [i for i, c in enumerate(counts.tolist()) if c == 0]
        raise ModelError(
            f"prototypes: classes {missing} have no support example; give each class one or more"
        )
    return sums / counts.unsqueeze(1)


def proto_loss(query: Tensor, query_labels: Tensor, prototypes: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. (1): cross-entropy of softmax(-d) over prototypes; also the query accuracy."""
    logits = -squared_distances(query, prototypes)  # (Q, C)
    loss = F.cross_entropy(logits, query_labels)
    accuracy = (logits.argmax(dim=1) == query_labels).float().mean()
    return loss, accuracy


def triplet_loss(
    embeddings: Tensor, labels: Tensor, n_triplets: int, margin: float, generator: torch.Generator
) -> Tensor:
    """Eq. (2): mean hinge `d(a, p) - d(a, n) + alpha` over random (anchor, positive, negative) triplets.

    Anchors are drawn among examples that have another example of their class; positives and
    negatives uniformly among the valid partners. Returns 0 when no triplet exists.
    """
    same = labels.unsqueeze(0) == labels.unsqueeze(1)  # (N, N)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive_ok = same & ~eye
    negative_ok = ~same
    anchors_ok = positive_ok.any(dim=1) & negative_ok.any(dim=1)
    candidates = torch.nonzero(anchors_ok).flatten()
    if len(candidates) == 0 or n_triplets <= 0:
        return embeddings.sum() * 0.0
    pick = torch.randint(len(candidates), (n_triplets,), generator=generator)
    anchors = candidates[pick]
    positives = torch.multinomial(positive_ok[anchors].float(), 1, generator=generator).flatten()
    negatives = torch.multinomial(negative_ok[anchors].float(), 1, generator=generator).flatten()
    d_pos = (embeddings[anchors] - embeddings[positives]).pow(2).sum(dim=1).add(1e-12).sqrt()
    d_neg = (embeddings[anchors] - embeddings[negatives]).pow(2).sum(dim=1).add(1e-12).sqrt()
    return F.relu(d_pos - d_neg + margin).mean()


class ProtoSiameseClassifier(nn.Module):
    """The served model: (template_ids int64 (B, M), counts float32 (B, M)) -> (class (B, 1), d (B, C)).

    Vocabulary, idf and prototypes are buffers of the module, so a version is self-contained.
    """

    def __init__(self, featurizer: TfidfFeaturizer, encoder: Encoder, prototypes: Tensor) -> None:
        super().__init__()
        self.featurizer = featurizer
        self.encoder = encoder
        self.register_buffer("prototypes", prototypes.detach().clone())

    def forward(self, template_ids: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        x = self.featurizer(template_ids, counts)  # (B, V + 1)
        z = self.encoder(x)  # (B, D)
        distances = squared_distances(z, self.prototypes)  # (B, C)
        return distances.argmin(dim=1, keepdim=True), distances


def build_classifier(
    idf: Idf, encoder: Encoder, template_ids: Tensor, counts: Tensor, labels: Tensor, n_classes: int
) -> ProtoSiameseClassifier:
    """Freeze a trained encoder with prototypes from every support example (eval mode, no dropout)."""
    featurizer = TfidfFeaturizer(idf)
    encoder.eval()
    with torch.no_grad():
        embeddings = encoder(featurizer(template_ids, counts))
        prototypes = class_prototypes(embeddings, labels, n_classes)
    classifier = ProtoSiameseClassifier(featurizer, encoder, prototypes)
    classifier.eval()
    return classifier


def script(classifier: ProtoSiameseClassifier) -> torch.jit.ScriptModule:
    """TorchScript export of the served forward."""
    classifier.eval()
    return torch.jit.script(classifier)


def export_metadata(
    classifier: ProtoSiameseClassifier, class_names: Sequence[str], idf: Idf, config: ProtoSiameseConfig
) -> dict[str, Any]:
    """Metadata stored next to a version: class names in prototype order, vocabulary, idf, shapes."""
    n_classes = int(classifier.prototypes.shape[0])
    if len(class_names) != n_classes:
        raise ModelError(
            f"protosiamese export: {len(class_names)} class names for {n_classes} prototypes; "
            "pass one name per class"
        )
    return {
        "class_names": list(class_names),
        "idf": idf.to_json(),
        "config": {
            "input_dim": config.input_dim,
            "hidden_dims": list(config.hidden_dims),
            "embedding_dim": config.embedding_dim,
            "dropout": config.dropout,
            "margin": config.margin,
        },
    }


def model_spec(n_classes: int, max_batch_size: int = 1024) -> Any:
    """The Triton `ModelSpec` for a version with `n_classes` prototypes.

    `distances` is declared variable-width: config.pbtxt is one file for all versions of the model,
    and a retrained version may know more (or fewer) classes than the one Triton serves now.
    """
    from pipeline.model_repository import ModelSpec, TensorSpec

    if n_classes < 1:
        raise ModelError(f"protosiamese spec: need at least one class, got {n_classes}")
    return ModelSpec(
        name=MODEL_NAME,
        inputs=(TensorSpec("template_ids", "INT64", (-1,)), TensorSpec("counts", "FP32", (-1,))),
        outputs=(TensorSpec("class_index", "INT64", (1,)), TensorSpec("distances", "FP32", (-1,))),
        max_batch_size=max_batch_size,
    )
