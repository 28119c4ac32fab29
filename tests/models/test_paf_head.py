"""PafHead: shapes of both layouts, the round trip targets -> predictor, masked loss, bounded noise."""
import pytest
import torch

from lightning_dlc.models.heads.paf import MAX_FULL_GRAPH_EDGES, PafHead, paf_graph


def three_animals() -> torch.Tensor:
    """[1, 3, 5, 3]: three fish, five bodyparts along a line each, well apart."""
    kp = torch.full((1, 3, 5, 3), 2.0)
    for n, (x0, y0) in enumerate([(30.0, 40.0), (150.0, 60.0), (80.0, 180.0)]):
        kp[0, n, :, 0] = x0 + torch.arange(5) * 12.3
        kp[0, n, :, 1] = y0 + torch.arange(5) * 4.7
    return kp


@pytest.mark.parametrize("n_stages", [0, 5])
def test_shapes_and_gradient(n_stages):
    head = PafHead(64, 16, 5, n_stages=n_stages, output_stride=4 if n_stages else 8)
    out = head(torch.rand(2, 64, 16, 16))
    size = 16 * 16 // int(head.stride)
    assert out["heatmap"].shape == (2, 5, size, size) and out["paf"].shape == (2, 20, size, size)
    assert out["locref"].shape == (2, 10, size, size)
    kp = three_animals().repeat(2, 1, 1, 1)
    kp[1, 2] = float("nan")  # a padded individual
    losses = head.loss(out, head.targets(kp, out))
    losses["total"].backward()
    assert {"heatmap", "locref", "paf", "total"} <= set(losses)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())


def test_targets_decode_back_to_the_animals():
    head = PafHead(8, 8, 5, n_upsample=0, target="gaussian", loss="mse", radius=12.0)
    kp = three_animals()
    outputs = {"heatmap": torch.zeros(1, 5, 32, 32), "paf": torch.zeros(1, 20, 32, 32)}
    targets = head.targets(kp, outputs)
    predicted = head.predict({"heatmap": targets["heatmap"], "locref": targets["locref"], "paf": targets["paf"]},
                             n_individuals=3)
    assert predicted.shape == (1, 3, 5, 3)
    for animal in kp[0]:  # each true animal is one predicted row, every bodypart within 1 px
        errors = (predicted[0, :, :, :2] - animal[:, :2]).norm(dim=-1).max(dim=-1).values
        assert errors.min() < 1.0


def test_full_graph_is_pruned_like_deeplabcut_above_104_edges():
    assert len(paf_graph(9)) == 36  # the cichlid project: every pair
    assert len(paf_graph(14)) == 91 <= MAX_FULL_GRAPH_EDGES  # still the full graph
    assert len(paf_graph(15)) == 45  # 105 pairs -> average degree 6: ceil(15 * 6 / 2) edges
    big = paf_graph(20)
    assert len(big) == 60 and len({p for e in big for p in e}) == 20, "connected, every bodypart in it"
    assert big == paf_graph(20), "seeded: the same project gets the same graph"


def test_untrained_model_on_noise_is_bounded():
    head = PafHead(32, 8, 9, n_upsample=0).eval()
    with torch.no_grad():
        predicted = head.predict(head(torch.randn(1, 32, 60, 80)), n_individuals=10)
    assert predicted.shape == (1, 10, 9, 3)
