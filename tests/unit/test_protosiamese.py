from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import ModelError
from pipeline.models.protosiamese import (
    OUTPUT_NAMES,
    Encoder,
    ProtoSiameseConfig,
    build_classifier,
    class_prototypes,
    export_metadata,
    model_spec,
    proto_loss,
    script,
    squared_distances,
    triplet_loss,
)
from pipeline.tfidf import fit_idf, pad_windows

WINDOWS = [{1: 3}, {1: 2, 2: 1}, {5: 4}, {5: 3, 6: 1}, {9: 1, 8: 2}, {9: 2}]
LABELS = torch.tensor([0, 0, 1, 1, 2, 2])


def _classifier() -> tuple:
    torch.manual_seed(0)
    idf = fit_idf(WINDOWS)
    config = ProtoSiameseConfig(idf.n_columns)
    ids, counts = (torch.from_numpy(a) for a in pad_windows(WINDOWS))
    return build_classifier(idf, Encoder(config), ids, counts, LABELS, 3), idf, config, ids, counts


def test_encoder_layers_follow_the_paper() -> None:
    encoder = Encoder(ProtoSiameseConfig(495))
    widths = [(m.in_features, m.out_features) for m in encoder.net if isinstance(m, torch.nn.Linear)]
    assert widths == [(495, 128), (128, 128), (128, 32)]
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in encoder.net) == 2
    assert encoder(torch.zeros(4, 495)).shape == (4, 32)


def test_prototypes_are_class_means() -> None:
    emb = torch.tensor([[0.0, 0.0], [2.0, 2.0], [10.0, 0.0]])
    protos = class_prototypes(emb, torch.tensor([0, 0, 1]), 2)
    torch.testing.assert_close(protos, torch.tensor([[1.0, 1.0], [10.0, 0.0]]))
    with pytest.raises(ModelError, match="no support"):
        class_prototypes(emb, torch.tensor([0, 0, 0]), 2)


def test_distances_and_proto_loss() -> None:
    protos = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    d = squared_distances(torch.tensor([[0.0, 0.0], [3.0, 4.0]]), protos)
    torch.testing.assert_close(d, torch.tensor([[0.0, 25.0], [25.0, 0.0]]))
    loss, acc = proto_loss(torch.tensor([[0.0, 0.0], [3.0, 4.0]]), torch.tensor([0, 1]), protos)
    assert acc.item() == 1.0 and loss.item() < 1e-6
    wrong, acc = proto_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([1]), protos)
    assert acc.item() == 0.0 and wrong.item() == pytest.approx(25.0, rel=1e-4)


@pytest.mark.parametrize(
    ("emb", "expected"),
    [
        ([[0.0], [0.0], [5.0], [5.0]], 0.0),  # classes far apart: every hinge inactive
        ([[0.0], [0.0], [0.0], [0.0]], 1.0),  # collapsed: loss = margin
    ],
)
def test_triplet_loss(emb: list, expected: float) -> None:
    loss = triplet_loss(
        torch.tensor(emb), torch.tensor([0, 0, 1, 1]), 32, 1.0, torch.Generator().manual_seed(0)
    )
    assert loss.item() == pytest.approx(expected, abs=1e-4)


def test_triplet_loss_without_triplets_is_zero() -> None:
    gen = torch.Generator().manual_seed(0)
    assert triplet_loss(torch.ones(3, 2), torch.tensor([0, 1, 2]), 8, 1.0, gen).item() == 0.0


def test_forward_shapes_and_nearest_prototype() -> None:
    classifier, _, _, ids, counts = _classifier()
    cls, dist = classifier(ids, counts)
    assert cls.shape == (6, 1) and cls.dtype == torch.int64
    assert dist.shape == (6, 3) and dist.dtype == torch.float32
    assert torch.equal(cls.flatten(), dist.argmin(dim=1))


def test_torchscript_round_trip(tmp_path: Path) -> None:
    classifier, _, _, ids, counts = _classifier()
    path = tmp_path / "model.pt"
    torch.jit.save(script(classifier), str(path))
    loaded = torch.jit.load(str(path))
    batch_ids = torch.cat([ids, torch.tensor([[777, 0]])])  # one window of an unknown template
    batch_counts = torch.cat([counts, torch.tensor([[2.0, 0.0]])])
    eager = classifier(batch_ids, batch_counts)
    scripted = loaded(batch_ids, batch_counts)
    assert torch.equal(eager[0], scripted[0])
    torch.testing.assert_close(eager[1], scripted[1])


def test_export_metadata_and_spec() -> None:
    classifier, idf, config, _, _ = _classifier()
    meta = export_metadata(classifier, ["normal", "A", "B"], idf, config)
    assert meta["class_names"] == ["normal", "A", "B"]
    assert meta["idf"]["template_ids"] == list(idf.template_ids)
    with pytest.raises(ModelError, match="class names"):
        export_metadata(classifier, ["normal"], idf, config)
    spec = model_spec(3)
    assert tuple(t.name for t in spec.outputs) == OUTPUT_NAMES
    assert spec.outputs[1].dims == (-1,)  # one config.pbtxt for versions with any class count


def test_padded_width_does_not_change_the_class() -> None:
    classifier, *_ = _classifier()
    ids, counts = pad_windows(WINDOWS, width=6)
    narrow_ids, narrow_counts = pad_windows(WINDOWS)
    a = classifier(torch.from_numpy(ids), torch.from_numpy(counts))[1]
    b = classifier(torch.from_numpy(narrow_ids), torch.from_numpy(narrow_counts))[1]
    torch.testing.assert_close(a, b)
    assert np.isfinite(a.detach().numpy()).all()


def test_publish_and_load_round_trip(tmp_path: Path) -> None:
    from pipeline.model_repository import load_version, publish_version

    classifier, idf, config, ids, counts = _classifier()
    meta = export_metadata(classifier, ["normal", "A", "B"], idf, config)
    published = publish_version(
        tmp_path, model_spec(3), script(classifier), meta, unservable_reason="unit test: export round trip"
    )
    loaded = load_version(tmp_path, "protosiamese", published.version)
    assert loaded.metadata["class_names"] == ["normal", "A", "B"]
    assert loaded.metadata["outputs"] == list(OUTPUT_NAMES)
    expected = classifier(ids, counts)
    got = loaded.module(ids, counts)
    assert torch.equal(expected[0], got[0])
    torch.testing.assert_close(expected[1], got[1])
