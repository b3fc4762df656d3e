import pytest
import torch

from pipeline.errors import DataError
from pipeline.models.vocab import OOV_INDEX, PAD_INDEX, Vocabulary


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([0, 3, 5, 9], [PAD_INDEX, 2, 3, 4]),
        ([4, 100, 1, 2**52], [OOV_INDEX] * 4),
        ([9, 9, 0, 3], [4, 4, PAD_INDEX, 2]),
    ],
)
def test_lookup_maps_padding_oov_and_known(ids, expected):
    vocab = Vocabulary([9, 3, 5])
    assert vocab.lookup(torch.tensor(ids)).tolist() == expected


def test_scripted_lookup_and_class_ids_agree():
    vocab = Vocabulary([30, 10, 20])
    scripted = torch.jit.script(vocab)
    ids = torch.tensor([[0, 10, 15, 30], [20, 20, 99, 0]])
    assert torch.equal(scripted(ids), vocab.lookup(ids))
    assert vocab.ids_of_classes(torch.tensor([0, 2])).tolist() == [10, 30]
    assert (vocab.num_events, vocab.num_indices) == (3, 5)


@pytest.mark.parametrize("ids", [[], [0, 1], [-4]])
def test_vocabulary_rejects_empty_or_non_positive(ids):
    with pytest.raises(DataError):
        Vocabulary(ids)
