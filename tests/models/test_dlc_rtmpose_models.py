"""rtmpose_s/m/x and the CSPNeXt backbone against DeepLabCut 3.0.2 itself (tests/dlc_peer.py).

Same weights (DeepLabCut's state dict loaded strictly, keys unchanged), same inputs (sizes
divisible by 32 and odd ones): backbone features, head outputs and decoded keypoints must agree;
DeepLabCut's SimCC labels, KL loss and decoder are fed the same keypoints and maps as ours.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from dlc_peer import run_peer
from lightning_dlc.config_compose import CONF_DIR as CONF
from lightning_dlc.models.heads.simcc import default_sigma, kl_discrete_loss, simcc_decode, simcc_targets
from lightning_dlc.models.pose_model import model_from_config
from lightning_dlc.project.records import ProjectMeta

pytestmark = pytest.mark.slow  # runs DeepLabCut 3.0.2 beside ours

NET_TYPES = ("rtmpose_s", "rtmpose_m", "rtmpose_x")
BODYPARTS = ("snout", "left_ear", "right_ear", "tail")
META = ProjectMeta(bodyparts=BODYPARTS, individuals=("a", "b"))
PROJECT = {"bodyparts": list(BODYPARTS), "individuals": ["a", "b"], "multianimal": True}
SIZES = [(64, 96), (67, 93), (256, 256)]  # (H, W): divisible by 32, odd, DeepLabCut's own crop
SPLIT = 2.0
DLC = "deeplabcut.pose_estimation_pytorch.models"
WORST: dict[str, float] = {}  # largest differences seen, printed with -s


def close(name: str, ours: torch.Tensor, theirs: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    ours, theirs = ours.double(), theirs.double()
    WORST[name] = max(WORST.get(name, 0.0), (ours - theirs).abs().max().item())
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=atol)
    print(f"{name}: max |diff| {WORST[name]:.3g}")


def model_config(name: str, size: tuple[int, int] | None = None):
    overrides = [f"model={name}", "model.backbone.pretrained=false"]
    if size is not None:
        crop = f"[{size[0]},{size[1]}]"
        overrides += [f"model.top_down.crop_size={crop}", f"model.heads.single.bodypart.input_size={crop}"]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides).model


def dlc_size_updates(size: tuple[int, int]) -> dict:
    """DeepLabCut's head config for an (H, W) input, as its RTMCCHead.update_input_size makes it
    (sizes are (W, H) there), but with the feature map the backbone makes: ceil(H / 32) x ceil(W / 32)."""
    H, W = size
    head, sigma = "model.heads.bodypart", list(default_sigma(size))
    return {f"{head}.input_size": [W, H], f"{head}.in_featuremap_size": [-(-H // 32), -(-W // 32)],
            f"{head}.target_generator.input_size": [W, H], f"{head}.target_generator.sigma": sigma,
            f"{head}.predictor.sigma": sigma}


def images(size: tuple[int, int], batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(sum(size)))


def label_keypoints() -> torch.Tensor:
    """[3, 1, 5, 3] for a 64 x 96 input: inside, half bins (rounding ties), outside but near
    (label partly on the grid), far outside, missing, occluded."""
    g = torch.Generator().manual_seed(3)
    xy = torch.rand(3, 1, 5, 2, generator=g) * torch.tensor([95.0, 63.0])
    kp = torch.cat([xy, torch.full((3, 1, 5, 1), 2.0)], -1)
    kp[0, 0, 0] = torch.tensor([10.25, 7.75, 2.0])  # x * 2 = 20.5, y * 2 = 15.5: round half to even
    kp[0, 0, 1] = torch.tensor([-5.0, 60.0, 2.0])  # outside, Gaussians still reach the grid
    kp[0, 0, 2] = torch.tensor([-20.0, 10.0, 2.0])  # too far outside: weight 0
    kp[1, 0, 0] = torch.tensor([98.0, 3.0, 1.0])  # occluded and just outside
    kp[1, 0, 1] = torch.tensor([float("nan"), float("nan"), 0.0])  # missing
    kp[2, 0, 3] = torch.tensor([0.0, 0.0, 0.0])  # unlabeled at the origin
    kp[2, 0, 4] = torch.tensor([96.0, 64.0, 2.0])  # one bin past the end: standard labels drop it
    return kp


def synthetic_maps() -> dict[str, torch.Tensor]:
    """[2, 4, bins] logits: random; ties; values above 1 with peaks in the first bin; flat."""
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(2, 4, 512, generator=g) * 0.1, torch.randn(2, 4, 512, generator=g) * 0.1
    x[:, 1, [5, 50]] = 2.0  # a tie: the first bin wins
    y[:, 1, 0] = 2.0
    x[:, 2, 0], y[:, 2, 0] = 7.5, 3.0  # above 1, first bin
    y[0, 2, 511] = 3.0  # a tie with the last bin
    x[:, 3], y[:, 3] = 0.25, 0.25  # flat: score 1 / bins, decoded as bin -1
    x[1, 0, 100], y[1, 0, 200] = 0.02, 0.03  # weak peaks
    return {"x": x, "y": y}


def target_jobs(kp: torch.Tensor) -> list[dict]:
    H, W = 64, 96
    sigma = default_sigma((H, W))
    common = {"input_size": [W, H], "sigma": list(sigma), "simcc_split_ratio": SPLIT}
    settings = [dict(smoothing_type="gaussian", label_smooth_weight=0.0, normalize=False),
                dict(smoothing_type="gaussian", label_smooth_weight=0.0, normalize=True),
                dict(smoothing_type="standard", label_smooth_weight=0.1, normalize=False)]
    outputs = {"x": torch.zeros(3, 5, int(W * SPLIT)), "y": torch.zeros(3, 5, int(H * SPLIT))}
    return [{"kind": "call", "function": f"{DLC}.target_generators.sim_cc:SimCCGenerator",
             "init_kwargs": {**common, **s}, "attribute": "forward",
             "args": [1.0, outputs, {"keypoints": torch.nan_to_num(kp)}], "ours": s} for s in settings]


def loss_jobs() -> list[dict]:
    g = torch.Generator().manual_seed(7)
    logits, labels = torch.randn(3, 5, 40, generator=g), torch.rand(3, 5, 40, generator=g)
    weights = (torch.rand(3, 5, generator=g) > 0.3).float()
    settings = [dict(beta=10.0, label_softmax=True, use_target_weight=True),
                dict(beta=10.0, label_softmax=True, use_target_weight=False),
                dict(beta=3.0, label_softmax=False, use_target_weight=True)]
    return [{"kind": "call", "function": f"{DLC}.criterions.kl_discrete:KLDiscreteLoss", "init_kwargs": s,
             "attribute": "forward", "args": [logits, labels, weights], "ours": (logits, labels, weights, s)}
            for s in settings]


def decode_jobs(maps: dict[str, torch.Tensor]) -> list[dict]:
    settings = [dict(sigma=[3.83, 3.51], apply_softmax=True), dict(sigma=[6.93, 6.93], apply_softmax=False)]
    return [{"kind": "call", "function": f"{DLC}.predictors.sim_cc:SimCCPredictor",
             "init_kwargs": {"simcc_split_ratio": SPLIT, "decode_beta": 150.0, **s}, "attribute": "forward",
             "args": [1.0, maps], "ours": s} for s in settings]


@pytest.fixture(scope="module")
def peer():
    shapes = [{"net_type": n, "project": PROJECT, "shapes_only": True} for n in NET_TYPES]
    forward = [{"net_type": "rtmpose_s", "project": PROJECT, "seed": i, "inputs": [images(size)],
                "config_updates": dlc_size_updates(size), "backbone_features": True} for i, size in enumerate(SIZES)]
    decoded = [{"net_type": "rtmpose_s", "project": PROJECT, "maps": [{"bodypart": synthetic_maps()}]}]
    calls = [*target_jobs(label_keypoints()), *loss_jobs(), *decode_jobs(synthetic_maps())]
    jobs = [*shapes, *forward, *decoded, *calls]
    sent = [{k: v for k, v in job.items() if k != "ours"} for job in jobs]
    results = run_peer(sent)
    groups, start = {}, 0
    for name, group in (("shapes", shapes), ("forward", forward), ("decoded", decoded), ("targets", calls[:3]),
                        ("loss", calls[3:6]), ("decode", calls[6:])):
        groups[name] = list(zip(group, results[start: start + len(group)]))
        start += len(group)
    return groups


@pytest.mark.parametrize("index", range(len(NET_TYPES)))
def test_parameter_names_and_shapes_are_deeplabcuts(peer, index):
    name = NET_TYPES[index]
    _, theirs = peer["shapes"][index]
    with torch.device("meta"):  # shapes only: no memory, no init time
        ours = model_from_config(model_config(name), META)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == theirs["shapes"]
    head = theirs["config"]["model"]["heads"]["bodypart"]
    W, H = head["input_size"]
    assert list(model_config(name).top_down.crop_size) == [H, W]  # DeepLabCut's crop: 256 x 256, x: 384 x 384
    assert ours.heads["bodypart"].sigma == tuple(head["target_generator"]["sigma"]) == tuple(head["predictor"]["sigma"])


@pytest.mark.parametrize("index", range(len(SIZES)))
def test_outputs_and_keypoints_equal_deeplabcuts(peer, index):
    size = SIZES[index]
    job, theirs = peer["forward"][index]
    cfg = model_config("rtmpose_s") if size == (256, 256) else model_config("rtmpose_s", size)  # 256: as named
    ours = model_from_config(cfg, META).eval()
    ours.load_state_dict(theirs["state_dict"], strict=True)
    with torch.no_grad():
        features = ours.backbone(job["inputs"][0])
        outputs = ours(job["inputs"][0])
        predicted = ours.predict(outputs)["bodypart"]
    close(f"CSPNeXt-s features {size}", features, theirs["outputs"][0]["backbone"]["features"])
    for axis in ("x", "y"):
        close(f"head {axis} {size}", outputs["bodypart"][axis], theirs["outputs"][0]["bodypart"][axis])
    poses = theirs["predictions"][0]["bodypart"]["poses"]
    close(f"keypoints {size}", predicted[..., :2], poses[..., :2], rtol=0, atol=1e-3)
    close(f"scores {size}", predicted[..., 2], poses[..., 2])


def test_decoding_synthetic_maps_equals_deeplabcuts(peer):
    (_, theirs), = peer["decoded"]
    with torch.device("meta"):
        head = model_from_config(model_config("rtmpose_s"), META).heads["bodypart"]
    ours = head.predict(synthetic_maps())
    poses = theirs["decoded"][0]["bodypart"]["poses"]
    close("decoded maps keypoints", ours[..., :2], poses[..., :2], rtol=0, atol=1e-3)
    close("decoded maps scores", ours[..., 2], poses[..., 2])
    assert (ours[:, 0, 3, :2] == -1 / SPLIT).all()  # flat: bin -1
    assert (ours[:, 0, 1, :2] == torch.tensor([5 / SPLIT, 0.0])).all()  # ties: the first bin
    for job, theirs in peer["decode"]:
        s = job["ours"]
        ours = simcc_decode(*synthetic_maps().values(), SPLIT, [150.0 * v for v in s["sigma"]], s["apply_softmax"])
        poses = theirs["value"]["poses"][:, 0]
        close("decoder keypoints", ours[..., :2], poses[..., :2], rtol=0, atol=1e-3)
        close("decoder scores", ours[..., 2], poses[..., 2])


def test_labels_equal_deeplabcuts(peer):
    kp = label_keypoints()
    for job, theirs in peer["targets"]:
        s = job["ours"]
        x, y, weights = simcc_targets(kp, (64, 96), SPLIT, default_sigma((64, 96)), s["smoothing_type"],
                                      s["label_smooth_weight"], s["normalize"])
        theirs = {axis: {k: v[:, 0] for k, v in theirs["value"][axis].items()} for axis in ("x", "y")}  # individual 0
        close("labels x", x, theirs["x"]["target"], atol=1e-6)
        close("labels y", y, theirs["y"]["target"], atol=1e-6)
        assert torch.equal(weights, theirs["x"]["weights"].to(weights.dtype)), s
        if s["smoothing_type"] == "gaussian":  # near the grid counts, far off or missing does not
            assert weights[0, 1] == 1 and weights[1, 0] == 1 and weights[0, 2] == 0 and weights[1, 1] == 0


def test_kl_loss_equals_deeplabcuts(peer):
    for job, theirs in peer["loss"]:
        logits, labels, weights, s = job["ours"]
        ours = kl_discrete_loss(logits, labels, weights if s["use_target_weight"] else None, s["beta"],
                                s["label_softmax"])
        close("KL loss", ours, theirs["value"], atol=1e-6)
