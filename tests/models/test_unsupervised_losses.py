"""The losses on unlabeled frames: zero on ideal input, growing as they should; differentiable keypoints."""
import numpy as np
import pytest
import torch

from lightning_dlc.models.heads.heatmap import HeatmapHead
from lightning_dlc.models.losses.soft_keypoints import heatmap_keypoints, soft_keypoints
from lightning_dlc.models.losses.unsupervised import PcaSingleViewLoss, TemporalLoss, UnimodalLoss

STRIDE_IN = 8  # the head's deconv halves it: maps at stride 4


def head(**kwargs) -> HeatmapHead:
    return HeatmapHead(in_channels=4, in_stride=STRIDE_IN, n_bodyparts=3, **kwargs)


def ideal_outputs(h: HeatmapHead, keypoints: torch.Tensor, size=(48, 48)) -> dict:
    """What a perfect head outputs for ``keypoints [B, N, K, 3]``: its own targets."""
    shape = {"heatmap": torch.zeros(len(keypoints), h.n_bodyparts, *size)}
    targets = h.targets(keypoints, shape)
    outputs = {"heatmap": targets["heatmap"]}
    if h.locref_head is not None:
        outputs["locref"] = targets["locref"]
    return outputs


# [1, 1, 3, 3], 3 sigmas (34 px) or more inside the 192 x 192 px maps: a blob cut by the border is off-centre
POINTS = torch.tensor([[[[50.3, 61.7, 1.0], [90.0, 70.2, 1.0], [115.6, 119.1, 1.0]]]])


# ---- keypoints read differentiably ---------------------------------------------------------------------
@pytest.mark.parametrize("locref, tolerance", [(True, 1e-3), (False, 0.05)])
def test_soft_keypoints_recover_the_keypoints_of_ideal_maps(locref, tolerance):
    h = head(locref=locref)
    got = soft_keypoints(h, ideal_outputs(h, POINTS))
    assert torch.allclose(got, POINTS[0, :, :, :2], atol=tolerance)


def test_soft_keypoints_carry_gradients_to_the_maps_not_the_offsets():
    h = head()
    outputs = {k: v.clone().requires_grad_(True) for k, v in ideal_outputs(h, POINTS).items()}
    soft_keypoints(h, outputs).sum().backward()
    assert outputs["heatmap"].grad.abs().sum() > 0
    assert outputs["locref"].grad is None  # offsets learn from labels only


def test_keypoints_the_head_has_not_found_are_left_out():
    keypoints = torch.zeros(1, 3, 1, 2)
    keypoints[0, 1, 0, 0] = 50.0  # a 50 px jump out and back
    scores = torch.ones(1, 3, 1)
    loss = TemporalLoss(epsilon=0.0, min_score=0.1)
    assert loss(keypoints, scores=scores) > 0
    scores[0, 1, 0] = 0.05  # the middle frame's keypoint is not found: no pair counts
    assert loss(keypoints, scores=scores) == 0
    pca = PcaSingleViewLoss(epsilon=0.0, min_score=0.1)
    pca.fit(np.random.default_rng(0).normal(size=(40, 3, 2)) * [10.0, 1.0])
    poses = torch.tensor([[[0.0, 0.0], [0.0, 30.0], [5.0, 0.0]]])
    assert pca(poses, torch.ones(1, 3)) > 0
    assert pca(poses, torch.tensor([[1.0, 0.05, 1.0]])) == 0


def test_an_empty_map_reads_as_its_centre_not_a_corner():
    point = heatmap_keypoints(torch.zeros(1, 1, 8, 8), None, stride=4.0)
    assert torch.allclose(point, torch.tensor([[[16.0, 16.0]]]))


def test_simcc_keypoints_are_the_expected_bins():
    class Simcc:  # what soft_keypoints reads of a SimCCHead: outputs x / y and the bin size
        stride = 0.5

    x = torch.full((1, 1, 100), -1e4)
    y = torch.full((1, 1, 80), -1e4)
    x[0, 0, 40], y[0, 0, 21] = 0.0, 0.0
    assert torch.allclose(soft_keypoints(Simcc(), {"x": x, "y": y}), torch.tensor([[[20.0, 10.5]]]))


# ---- temporal ---------------------------------------------------------------------------------------------
def sequence(jump: float, frames: int = 4) -> torch.Tensor:
    """[1, T, 2, 2]: two keypoints, each moving ``jump`` px along x every frame."""
    steps = torch.arange(frames, dtype=torch.float32)[:, None, None] * torch.tensor([jump, 0.0])
    return (torch.tensor([[10.0, 10.0], [50.0, 20.0]]) + steps)[None]


def test_temporal_is_zero_within_epsilon_and_grows_with_the_jump():
    loss = TemporalLoss(weight=1.0, epsilon=2.0)
    assert loss(sequence(0.0)) == 0 and loss(sequence(2.0)) == 0
    values = [float(loss(sequence(j))) for j in (3.0, 5.0, 10.0)]
    assert values == pytest.approx([1.0, 3.0, 8.0])  # the hinge: jump - epsilon


def test_temporal_leaves_out_pairs_that_are_not_consecutive_frames():
    loss = TemporalLoss(epsilon=0.0)
    keypoints = torch.cat([sequence(1.0, 2), sequence(1.0, 2)[:, :1] + 100], 1)  # frame 2 jumps 100 px
    assert loss(keypoints) > 30
    assert float(loss(keypoints, torch.tensor([[0, 1, 7]]))) == pytest.approx(1.0)  # 1 -> 7: a gap
    assert float(loss(keypoints, torch.tensor([[0, 2, 14]]))) == pytest.approx(1.0)  # stride 2: 2 -> 14 a gap
    assert loss(keypoints, torch.tensor([[0, 2, 4]])) > 30  # every 2nd frame (frame_stride=2): all pairs count


# ---- PCA single view ------------------------------------------------------------------------------------
def labeled_poses(n: int = 30, seed: int = 0) -> np.ndarray:
    """Poses of 4 keypoints varying along one shape direction (a body stretching along x), anywhere."""
    rng = np.random.default_rng(seed)
    base = np.array([[0, 0], [10, 0], [20, 0], [30, 5]], dtype=np.float64)
    stretch = np.array([[-1, 0], [-0.3, 0], [0.3, 0], [1, 0]])
    poses = base + rng.uniform(-5, 5, (n, 1, 1)) * stretch + rng.uniform(0, 200, (n, 1, 2))
    return np.concatenate([poses, np.ones((n, 4, 1))], -1)


def test_pca_is_zero_on_the_subspace_and_grows_off_it():
    loss = PcaSingleViewLoss(epsilon=0.0)
    poses = labeled_poses()
    poses[0, 2, :2] = np.nan  # an incomplete pose is left out of the fit
    assert loss.fit(poses) == 1 and loss.n_poses == 29
    on = torch.tensor(labeled_poses(5, seed=1)[..., :2], dtype=torch.float32)
    assert float(loss(on)) == pytest.approx(0.0, abs=1e-3)
    off = [float(loss(on + torch.tensor([0.0, d]) * torch.tensor([[1.0], [0], [0], [0]]))) for d in (2, 5, 10)]
    assert 0 < off[0] < off[1] < off[2]
    assert float(PcaSingleViewLoss(epsilon=100.0).forward(on)) == 0  # unfitted: 0


def test_pca_epsilon_is_a_hinge_per_keypoint():
    loss = PcaSingleViewLoss(epsilon=3.0)
    loss.fit(labeled_poses())
    pose = torch.tensor(labeled_poses(1, seed=2)[..., :2], dtype=torch.float32)
    moved = pose.clone()
    moved[0, 1, 1] += 1.0  # a small bend: within epsilon
    assert float(loss(moved)) == 0
    moved[0, 1, 1] += 20.0
    assert float(loss(moved)) > 0


# ---- what the keypoint losses train: targets where the rule holds, the head's distance to them ---------------
def test_temporal_targets_pull_a_lone_outlier_back_and_leave_steady_keypoints():
    keypoints = sequence(1.0, 5)
    keypoints[0, 2, 0] += torch.tensor([40.0, 0.0])  # keypoint 0 of frame 2 jumps out 40 px and back
    loss = TemporalLoss(epsilon=5.0)
    wanted = loss.targets(keypoints)
    assert wanted.moved[0, :, 1].sum() == 0 and wanted.moved[0, :, 0].tolist() == [False, False, True, True, False]
    assert wanted.counted.all()
    shift = (wanted.points - keypoints).norm(dim=-1)[0, :, 0]
    assert shift[2] > 38 and shift[1] == 0 and shift[3] <= 1  # the outlier comes back, its neighbours stay
    assert float(loss(wanted.points)) == 0
    pairs = TemporalLoss(epsilon=5.0).targets(keypoints[:, 1:3])  # 2 frames: each half the excess
    assert (pairs.points - keypoints[:, 1:3]).norm(dim=-1)[0, :, 0].tolist() == pytest.approx([18.0, 18.0])
    gap = loss.targets(keypoints, torch.tensor([[0, 1, 5, 6, 7]]))  # frame 2 is not next to frame 1
    assert not gap.moved[0, :3].any()
    steady = loss.targets(sequence(1.0, 5))
    assert not steady.moved.any() and torch.equal(steady.points, sequence(1.0, 5))


def test_pca_targets_bring_a_bent_pose_towards_the_subspace():
    loss = PcaSingleViewLoss(epsilon=1.0)
    loss.fit(labeled_poses())
    pose = torch.tensor(labeled_poses(1, seed=2)[..., :2], dtype=torch.float32)
    assert not loss.targets(pose).moved.any()
    bent = pose.clone()
    bent[0, 1, 1] += 15.0
    wanted = loss.targets(bent)
    assert wanted.moved[0, 1] and float(loss(wanted.points)) < 0.5 * float(loss(bent))
    assert float(PcaSingleViewLoss().targets(bent).moved.sum()) == 0  # unfitted: nothing moves


@pytest.mark.parametrize("locref", [True, False])
def test_the_head_loss_is_zero_at_its_own_keypoints_and_moves_the_maps_to_the_targets(locref):
    from lightning_dlc.models.losses.unsupervised import KeypointLoss, KeypointTargets

    h = head(locref=locref)
    outputs = ideal_outputs(h, POINTS)
    here = POINTS[:, 0, :, :2]  # [1, 3, 2]
    everyone = torch.ones(1, 3, dtype=torch.bool)
    assert float(KeypointLoss.head_loss(h, outputs, KeypointTargets(here, everyone, everyone))) == pytest.approx(0, abs=1e-6)
    target = here.clone()
    target[0, 0] += torch.tensor([12.0, 0.0])
    moved = torch.tensor([[True, False, False]])
    maps = outputs["heatmap"].clone().requires_grad_(True)
    value = KeypointLoss.head_loss(h, {**outputs, "heatmap": maps}, KeypointTargets(target, moved, everyone))
    assert float(value.detach()) > 1e-4
    value.backward()
    assert maps.grad[0, 1:].abs().sum() == 0  # keypoints the rule leaves alone get no gradient
    (x0, y0), (x1, y1) = ((int(v // h.stride) for v in xy) for xy in (here[0, 0], target[0, 0]))
    assert maps.grad[0, 0, y0, x0] > 0 and maps.grad[0, 0, y1, x1] < 0  # down at the keypoint, up at the target


def test_the_head_loss_reads_coordinate_classification_heads_too():
    from lightning_dlc.models.heads.simcc import SimCCHead
    from lightning_dlc.models.losses.soft_keypoints import ideal_output_error

    h = SimCCHead(8, 32, 3, input_size=(64, 64), hidden=16, gau_qk_dim=8)
    points = torch.tensor([[[20.0, 30.0], [40.0, 10.0], [33.0, 50.0]]])
    targets = h.targets(torch.cat([points, torch.ones(1, 3, 1)], -1)[:, None], {})
    outputs = {"x": targets["x"] * 3, "y": targets["y"] * 3}  # logits peaked at the keypoints
    at, off = ideal_output_error(h, outputs, points), ideal_output_error(h, outputs, points + 8.0)
    assert at.shape == (1, 3) and (off > at + 1e-3).all()


def test_pca_targets_move_the_wrong_keypoint_and_leave_the_right_ones():
    loss = PcaSingleViewLoss(epsilon=2.0)
    loss.fit(labeled_poses())
    pose = torch.tensor(labeled_poses(3, seed=4)[..., :2], dtype=torch.float32)
    np.testing.assert_allclose(loss.robust_reconstruction(pose), pose, atol=1e-2)  # on the subspace: itself
    wrong = pose.clone()
    wrong[:, 3] += torch.tensor([-12.0, 25.0])  # the tail keypoint far off, in every pose
    wanted = loss.targets(wrong)
    assert wanted.moved[:, 3].all() and not wanted.moved[:, :3].any()  # the plain projection moves all four
    assert torch.allclose(wanted.points[:, :3], wrong[:, :3])
    with torch.autocast("cpu", dtype=torch.bfloat16):  # trainer.precision=bf16-mixed: the fit stays float32
        assert torch.equal(loss.targets(wrong).points, wanted.points)
    back = (wanted.points[:, 3] - pose[:, 3]).norm(dim=-1)
    assert (back <= 4.0).all() and (back < 0.2 * 27.7).all()  # near where it belongs (27.7 px off before)


def test_pca_auto_epsilon_is_what_the_labels_themselves_stray():
    poses = labeled_poses(60)
    rng = np.random.default_rng(3)
    poses[..., :2] += rng.normal(0, 0.5, poses[..., :2].shape)  # labeling noise off the one shape direction
    loss = PcaSingleViewLoss(epsilon="auto", explained_variance=0.9)
    assert loss.epsilon == 0 and loss.fit(poses) == 1
    assert 0.5 < loss.epsilon < 3.0  # about the noise, in pixels
    scaled = PcaSingleViewLoss(epsilon="auto", explained_variance=0.9)
    scaled.fit(poses * [4.0, 4.0, 1.0])  # the same animal filmed 4x larger
    assert scaled.epsilon == pytest.approx(4 * loss.epsilon, rel=1e-3)
    fitted = torch.tensor(poses[:, :, :2], dtype=torch.float32)
    assert float((loss._residuals(fitted, None)[0].norm(dim=-1) > loss.epsilon).float().mean()) <= 0.02  # 1 % of 240 keypoints, and ties
    with pytest.raises(ValueError, match="pixels or 'auto'"):
        PcaSingleViewLoss(epsilon="big")


# ---- unimodal ---------------------------------------------------------------------------------------------
def add_blob(outputs: dict, h: HeatmapHead, x: float, y: float, height: float) -> dict:
    """A second peak of ``height`` in bodypart 0's map."""
    extra = h.targets(torch.tensor([[[[x, y, 1.0]] * 3]]), {"heatmap": outputs["heatmap"]})["heatmap"]
    heatmap = outputs["heatmap"].clone()
    heatmap[:, 0] = torch.maximum(heatmap[:, 0], height * extra[:, 0])
    return {**outputs, "heatmap": heatmap}


@pytest.mark.parametrize("locref", [True, False])
def test_unimodal_is_zero_on_ideal_maps_and_grows_with_an_extra_peak(locref):
    h = head(locref=locref)
    loss = UnimodalLoss()
    outputs = ideal_outputs(h, POINTS)
    assert float(loss(h, outputs)) == pytest.approx(0.0, abs=1e-4)
    values = [float(loss(h, add_blob(outputs, h, 150.0, 40.0, height))) for height in (0.2, 0.5, 0.9)]
    assert 1e-4 < values[0] < values[1] < values[2]


def test_unimodal_with_several_animals_counts_one_peak_per_animal():
    h = head()
    two = torch.cat([POINTS, POINTS + torch.tensor([40.0, 10.0, 0.0])], 1)  # [1, 2, 3, 3]: two animals
    outputs = ideal_outputs(h, two)
    loss = UnimodalLoss()
    assert float(loss(h, outputs, n_peaks=2)) == pytest.approx(0.0, abs=1e-4)
    assert float(loss(h, outputs, n_peaks=1)) > 1e-3  # as a one-animal map it has a peak too many
    third = float(loss(h, add_blob(outputs, h, 30.0, 160.0, 0.9), n_peaks=2))
    assert third > 1e-3


def test_unimodal_leaves_out_maps_with_no_animal_when_several_are_expected():
    h = head()
    outputs = ideal_outputs(h, POINTS)
    outputs["heatmap"][:, 1] = 0.05  # no peak above min_peak: this bodypart shows no animal
    assert float(UnimodalLoss(min_peak=0.1)(h, outputs, n_peaks=2)) == pytest.approx(0.0, abs=1e-4)


def test_losses_refuse_negative_weights():
    with pytest.raises(ValueError, match="temporal"):
        TemporalLoss(weight=-1.0)


def test_the_weight_ramps_up_over_the_warmup_epochs():
    loss = TemporalLoss(weight=2.0, warmup_epochs=3)
    assert [loss.weight_at(e) for e in range(5)] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0])
    assert TemporalLoss(weight=2.0).weight_at(0) == 2.0
