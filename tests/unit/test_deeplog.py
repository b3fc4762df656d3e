import torch

from pipeline.models.deeplog import DeepLog, DeepLogConfig


def test_output_shape():
    model = DeepLog(DeepLogConfig(window_size=4, hidden=8), num_indices=7, num_events=5).eval()
    assert model(torch.tensor([[0, 0, 2, 3], [2, 3, 4, 5]])).shape == (2, 5)


def test_learns_a_deterministic_cycle():
    torch.manual_seed(0)
    model = DeepLog(DeepLogConfig(window_size=3, hidden=16, layers=1), num_indices=5, num_events=3)
    x = torch.tensor([[2, 3, 4], [3, 4, 2], [4, 2, 3]])
    y = torch.tensor([0, 1, 2])  # the class of the event after each window: 2 -> 3 -> 4 -> 2
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert model(x).argmax(dim=1).tolist() == [0, 1, 2]
