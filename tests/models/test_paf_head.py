"""PafHead (DeepLabCut's DLCRNetHead): layouts, sizes, targets -> predictor round trip, loss, graph."""
import pytest
import torch

from lightning_dlc.models.heads.paf import PRUNE_FROM_EDGES, PafHead, paf_graph


def three_animals() -> torch.Tensor:
    """[1, 3, 5, 3]: three fish, five bodyparts along a line each, well apart."""
    kp = torch.full((1, 3, 5, 3), 2.0)
    for n, (x0, y0) in enumerate([(30.0, 40.0), (150.0, 60.0), (80.0, 180.0)]):
        kp[0, n, :, 0] = x0 + torch.arange(5) * 12.3
        kp[0, n, :, 1] = y0 + torch.arange(5) * 4.7
    return kp


@pytest.mark.parametrize("n_stages,hidden,stride,size", [(0, [], 8, 33), (5, [], 4, 65), (5, [16], 2, 131)])
def test_shapes_and_gradient(n_stages, hidden, stride, size):
    head = PafHead(64, 16, 5, n_stages=n_stages, hidden_channels=hidden)
    out = head(torch.rand(2, 64, 16, 16))
    assert head.stride == stride  # one unpadded deconv (2H + 1), and a padded one (2H) before the stages
    assert out["heatmap"].shape == (2, 5, size, size) and out["paf"].shape == (2, 20, size, size)
    assert out["locref"].shape == (2, 10, size, size)
    kp = three_animals().repeat(2, 1, 1, 1)
    kp[1, 2] = float("nan")  # a padded individual
    losses = head.loss(out, head.targets(kp, out))
    losses["total"].backward()
    assert {"heatmap", "locref", "paf", "total"} <= set(losses)
    used = [p for n, p in head.named_parameters() if n_stages or not n.startswith("convt")]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in used)


def test_deeplabcut_module_names():
    keys = set(PafHead(32, 16, 3).state_dict())
    assert {"convt1.weight", "convt4.bias", "hm_ref_layers.4.weight", "paf_ref_layers.0.bias",
            "heatmap_head.deconv_layers.0.weight", "locref_head.deconv_layers.0.weight",
            "paf_head.deconv_layers.0.bias"} <= keys


def test_targets_decode_back_to_the_animals():
    head = PafHead(8, 16, 5)
    kp = three_animals()
    outputs = {"heatmap": torch.zeros(1, 5, 65, 65), "paf": torch.zeros(1, 20, 65, 65)}
    targets = head.targets(kp, outputs)
    logits = targets["heatmap"] * 12 - 6
    predicted = head.predict({"heatmap": logits, "locref": targets["locref"], "paf": targets["paf"]}, 3)
    assert predicted.shape == (1, 3, 5, 3)
    for animal in kp[0]:  # each true animal is one predicted row, every bodypart within 1 px
        errors = (predicted[0, :, :, :2] - animal[:, :2]).norm(dim=-1).amax(dim=-1)
        assert errors.min() < 1.0


def test_full_graph_is_pruned_like_deeplabcut_from_105_edges():
    assert paf_graph(3) == [(0, 1), (0, 2), (1, 2)]  # DeepLabCut's order
    assert len(paf_graph(9)) == 36
    assert len(paf_graph(14)) == 91 < PRUNE_FROM_EDGES  # still the full graph
    assert len(paf_graph(15)) == 45  # 105 pairs -> average degree 6: ceil(15 * 6 / 2) edges
    big = paf_graph(20)
    assert len(big) == 60 and len({p for e in big for p in e}) == 20, "connected, every bodypart in it"
    assert big == paf_graph(20), "seeded: the same project gets the same graph"


def test_untrained_head_on_noise_is_bounded():
    head = PafHead(32, 16, 9).eval()
    with torch.no_grad():
        predicted = head.predict(head(torch.randn(1, 32, 15, 20)), n_individuals=10)
    assert predicted.shape == (1, 10, 9, 3)
