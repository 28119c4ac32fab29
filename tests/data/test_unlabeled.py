"""Unlabeled video sequences for training: the right consecutive frames, DDP shares, bad videos, readers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader

from lightning_dlc.data.dali_reader import dali_available
from lightning_dlc.data.datamodule import PoseDataModule
from lightning_dlc.data.demo import make_demo_project
from lightning_dlc.data.demo_scene import render_scene
from lightning_dlc.data.normalize import normalize_images
from lightning_dlc.data.unlabeled import UnlabeledSequences
from lightning_dlc.data.video import open_video
from lightning_dlc.data.video_writer import write_video
from video_frames import decode_rgb  # tests/video_frames.py

W, H, N = 64, 48, 20


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory) -> Path:
    """A tiny single-animal demo project (one 64x64, 20-frame video); returns its folder."""
    config = make_demo_project(tmp_path_factory.mktemp("unlabeled") / "demo", multianimal=False, n_frames=N,
                               n_labeled=8, size=64)
    return config.parent


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("clips")
    scene = render_scene(n_frames=N, n_fish=2, width=W, height=H, fps=30.0, seed=3)
    paths = {"frames": scene.frames, "root": root}
    other = render_scene(n_frames=N, n_fish=1, width=64, height=64, fps=30.0, seed=9).frames  # another size
    for name, codec, suffix in (("h264", "libx264", ".mp4"), ("vp9", "libvpx-vp9", ".webm")):
        paths[name] = root / f"clip_{name}{suffix}"
        write_video(paths[name], scene.frames, 30.0, codec)
        paths[f"{name}_other"] = root / f"other_{name}{suffix}"
        write_video(paths[f"{name}_other"], other, 30.0, codec)
    return paths


def _sequences(dataset) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(video, frame numbers [T], frames [T, H, W, 3]) of every sequence one pass yields."""
    out = []
    for batch in dataset:
        images = batch["images"]
        assert images.dtype == torch.uint8 and images.ndim == 5 and images.shape[2] == 3
        assert batch["frame_index"].dtype == torch.int64 and batch["video_index"].dtype == torch.int64
        assert batch["frame_index"].shape == images.shape[:2] and batch["video_index"].shape == images.shape[:1]
        for video, index, frames in zip(batch["video_index"], batch["frame_index"], images):
            out.append((int(video), index.numpy(), frames.cpu().permute(0, 2, 3, 1).numpy()))
    return out


def test_sequences_are_consecutive_frames_of_the_right_video(tiny_demo, clips):
    other = clips["root"] / "other" / "fish.mp4"  # a second, different video: video_index must name the right one
    other.parent.mkdir(exist_ok=True)
    write_video(other, render_scene(n_frames=N, n_fish=1, width=64, height=64, fps=30.0, seed=9).frames, 30.0)
    dataset = UnlabeledSequences([tiny_demo / "videos", other.parent], seq_len=4, batch_size=3, frame_stride=2,
                                 reader="opencv")
    assert [info.path.name for info in dataset.videos] == ["fishtank.mp4", "fish.mp4"]
    # the demo's ground-truth .h5 beside its video is not a video
    seen = _sequences(dataset)
    assert len(seen) == dataset.n_batches * 3
    references = [decode_rgb(info.path) for info in dataset.videos]
    for video, index, frames in seen:
        np.testing.assert_array_equal(index, index[0] + 2 * np.arange(4))  # consecutive, frame_stride apart
        np.testing.assert_array_equal(frames, references[video][index])  # the same decoder: the same pixels
    assert {v for v, _, _ in seen} == {0, 1}


def test_resize_and_padding_as_labeled_images(clips):
    dataset = UnlabeledSequences(clips["h264"], seq_len=2, batch_size=1, reader="opencv", resize=0.5, pad_multiple=32)
    batch = next(iter(dataset))
    assert batch["images"].shape == (1, 2, 3, 32, 32) and batch["scale"].tolist() == [0.5]
    assert not batch["images"][..., 24:, :].any()  # 48 * 0.5 = 24 rows of frame, then zero padding to 32


def test_ddp_ranks_take_disjoint_shares_that_cover_the_set(clips):
    ranks = [UnlabeledSequences(clips["h264"], seq_len=2, batch_size=2, reader="opencv", rank=r, world_size=2)
             for r in (0, 1)]
    every = set(ranks[0].sequences)
    assert len(every) == N // 2
    for epoch in (0, 1):
        shares = [set(r.share(epoch)) for r in ranks]
        assert not shares[0] & shares[1] and shares[0] | shares[1] == every
    assert ranks[0].share(0) != ranks[0].share(1)  # a new order each epoch
    # what each process reads in a pass: its own share, nothing of the other's
    starts = [{(v, int(index[0])) for v, index, _ in _sequences(r)} for r in ranks]
    assert not starts[0] & starts[1] and starts[0] | starts[1] == every


def test_short_and_broken_videos_are_skipped_and_counted(clips, damage, caplog):
    root = clips["root"] / "mixed"
    root.mkdir()
    write_video(root / "short.mp4", clips["frames"][:1], 30.0)  # fewer frames than one sequence
    (root / "junk.avi").write_text("not a video\n" * 20)
    # frames 2-7 undecodable read from the start; reading on recovers after them, but a seek decodes from the
    # keyframe (frame 0) through the damage and loses the frames after it: which later sequences decode depends on
    # the order (one capture reads the whole pass, reading on when a sequence starts a few frames ahead)
    damage(clips["h264"], root / "damaged.mp4", length=1000)
    dataset = UnlabeledSequences(root, seq_len=2, batch_size=1, reader="opencv", n_batches=3, pad_multiple=1)
    assert [info.path.name for info in dataset.videos] == ["damaged.mp4"]
    assert dataset.counts["videos_skipped"] == 2
    seen = _sequences(dataset)
    assert len(seen) == 3 and not {(v, int(index[0])) for v, index, _ in seen} & {(0, 2), (0, 4), (0, 6)}
    assert dataset.counts["sequences_skipped"] >= 1 and dataset.counts["bad_frames"] >= 1
    for _, index, frames in seen:  # what is yielded is the right frames
        assert np.abs(frames.astype(int) - clips["frames"][index]).mean() < 10
    assert any("sequence skipped" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="none of"):
        UnlabeledSequences([root / "short.mp4", root / "junk.avi"], seq_len=2)


@pytest.mark.skipif(not dali_available(), reason="DALI does not import")
def test_dali_cpu_reader_gives_opencvs_sequences_on_vp9(clips):
    kw = dict(seq_len=3, batch_size=2, device="cpu", seed=1, pad_multiple=1)
    dali = _sequences(UnlabeledSequences(clips["vp9"], reader="auto", **kw))  # auto: DALI's CPU reader for VP9
    opencv = _sequences(UnlabeledSequences(clips["vp9"], reader="opencv", **kw))
    assert len(dali) == len(opencv) == 6
    for (v1, i1, f1), (v2, i2, f2) in zip(dali, opencv):
        assert v1 == v2 and np.array_equal(i1, i2)
        # another YUV->RGB conversion than OpenCV's: close, not equal
        assert np.abs(f1.astype(int) - f2.astype(int)).mean(axis=(1, 2, 3)).max() < 3


@pytest.mark.gpu
def test_dali_gpu_reader_gives_opencvs_sequences(clips):
    kw = dict(seq_len=3, batch_size=2, seed=1)
    batches = list(UnlabeledSequences(clips["h264"], reader="auto", device="cuda", **kw))
    assert all(b["images"].is_cuda for b in batches)
    gpu = _sequences(batches)
    cpu = _sequences(UnlabeledSequences(clips["h264"], reader="opencv", device="cpu", **kw))
    for (v1, i1, f1), (v2, i2, f2) in zip(gpu, cpu, strict=True):
        assert v1 == v2 and np.array_equal(i1, i2)
        assert np.abs(f1.astype(int) - f2.astype(int)).mean(axis=(1, 2, 3)).max() < 3
    resized = next(iter(UnlabeledSequences(clips["h264"], reader="dali", device="cuda", resize=0.5, **kw)))
    assert resized["images"].is_cuda and resized["images"].shape[-2:] == (32, 32)


# Two videos, starts out of order: a start behind the last range (a seek), one a few frames ahead (read on to),
# a range read twice; all of one length (DALI's sequence_length).
RANGES = [(1, 9, 14), (0, 3, 8), (0, 14, 19), (1, 0, 5), (0, 0, 5), (0, 6, 11), (1, 9, 14)]


def _read_ranges(reader) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    with reader:
        return [(b.indices.numpy(), b.valid.numpy(), b.frames.cpu().permute(0, 2, 3, 1).numpy()) for b in reader]


def _one_reader_and_a_reader_per_range(paths, reader: str, device: str):
    one = _read_ranges(open_video(paths[0], reader=reader, device=device,
                                  ranges=[(paths[v], s, e) for v, s, e in RANGES]))
    per = [_read_ranges(open_video(paths[v], reader=reader, device=device, batch_size=e - s, start=s, stop=e))[0]
           for v, s, e in RANGES]
    return one, per


@pytest.mark.parametrize("codec,reader", [
    ("h264", "opencv"),
    pytest.param("vp9", "dali", marks=pytest.mark.skipif(not dali_available(), reason="DALI does not import")),
])
def test_one_reader_reads_many_ranges_as_a_reader_per_range_does(clips, codec, reader):
    paths = [clips[codec], clips[f"{codec}_other"]]
    one, per = _one_reader_and_a_reader_per_range(paths, reader, "cpu")
    assert len(one) == len(RANGES)
    references = [decode_rgb(p) for p in paths]
    for (v, s, e), (index, valid, frames), (index1, _, frames1) in zip(RANGES, one, per, strict=True):
        np.testing.assert_array_equal(index, np.arange(s, e))
        assert valid.all() and frames.shape == references[v][s:e].shape
        np.testing.assert_array_equal(index, index1)
        np.testing.assert_array_equal(frames, frames1)  # the same decoder: the same pixels
        if reader == "opencv":
            np.testing.assert_array_equal(frames, references[v][s:e])
        else:  # another YUV->RGB conversion than OpenCV's: close, not equal
            assert np.abs(frames.astype(int) - references[v][s:e]).mean() < 3


@pytest.mark.parametrize("codec,reader", [
    ("h264", "opencv"),
    pytest.param("vp9", "dali", marks=pytest.mark.skipif(not dali_available(), reason="DALI does not import")),
])
def test_a_damaged_sequence_is_skipped_and_counted_while_the_next_ones_read(clips, damage, tmp_path, codec, reader):
    # frames 2-7 (H.264) or 4 on (VP9) cannot be decoded: the damage is in the middle of the file
    damaged = damage(clips[codec], tmp_path / f"damaged{clips[codec].suffix}", length=1000)
    dataset = UnlabeledSequences([damaged, clips[f"{codec}_other"]], seq_len=2, reader=reader, pad_multiple=1)
    items = [(0, 0), (0, 4), (1, 6), (1, 2), (0, 0)]  # a bad sequence between good ones of both videos
    got = list(dataset.read_sequences(items))
    assert len(got) == len(items) and got[1] is None
    assert dataset.counts["sequences_skipped"] == 1 and dataset.counts["bad_frames"] == 2
    truth = [clips["frames"], render_scene(n_frames=N, n_fish=1, width=64, height=64, fps=30.0, seed=9).frames]
    for (video, start), item in zip(items, got):
        if item is not None:
            frames, index = item
            np.testing.assert_array_equal(index.numpy(), [start, start + 1])
            assert np.abs(frames.permute(0, 2, 3, 1).numpy().astype(int) - truth[video][index.numpy()]).mean() < 10
    assert got[0] is not None and got[2] is not None and got[3] is not None and got[4] is not None


@pytest.mark.parametrize("codecs,reader,n_readers", [
    (("h264", "h264_other"), "opencv", 1),
    pytest.param(("h264", "vp9"), "auto", 2,  # OpenCV for H.264 and DALI's CPU reader for VP9, side by side
                 marks=pytest.mark.skipif(not dali_available(), reason="DALI does not import")),
])
def test_a_pass_reads_its_sequences_in_order_through_one_reader_per_decoder(clips, monkeypatch, codecs, reader,
                                                                           n_readers):
    import lightning_dlc.data.unlabeled as unlabeled

    opened = []

    def opening(*args, **kwargs):
        opened.append(kwargs["ranges"])
        return open_video(*args, **kwargs)

    monkeypatch.setattr(unlabeled, "open_video", opening)
    dataset = UnlabeledSequences([clips[c] for c in codecs], seq_len=2, batch_size=2, reader=reader, device="cpu")
    seen = _sequences(dataset)
    assert len(seen) == len(dataset.sequences) == N  # the whole share, two videos of N // 2 sequences
    assert [(v, int(index[0])) for v, index, _ in seen] == dataset.share(0)  # the seeded order
    assert len(opened) == n_readers and sum(map(len, opened)) == N


@pytest.mark.gpu
def test_dali_gpu_reads_many_ranges_as_a_reader_per_range_does(clips):
    paths = [clips["h264"], clips["h264_other"]]
    one, per = _one_reader_and_a_reader_per_range(paths, "dali", "cuda")
    with open_video(paths[0], reader="dali", device="cuda", ranges=[(p, 0, 5) for p in paths]) as reader:
        assert reader.backend == "dali-gpu" and all(batch.frames.is_cuda for batch in reader)
    references = [decode_rgb(p) for p in paths]
    for (v, s, e), (index, valid, frames), (index1, _, frames1) in zip(RANGES, one, per, strict=True):
        np.testing.assert_array_equal(index, np.arange(s, e))
        np.testing.assert_array_equal(index, index1)
        assert valid.all()
        np.testing.assert_array_equal(frames, frames1)
        assert np.abs(frames.astype(int) - references[v][s:e]).mean() < 3


def test_datamodule_combines_labeled_and_unlabeled_loaders(tiny_demo):
    plain = PoseDataModule(source="demo", project=str(tiny_demo), batch_size=2, num_workers=0)
    assert isinstance(plain.train_dataloader(), DataLoader)
    dm = PoseDataModule(source="demo", project=str(tiny_demo), batch_size=2, num_workers=0,
                        unlabeled={"videos": "project", "seq_len": 3, "batch_size": 2, "reader": "opencv",
                                   "num_workers": 0})
    loader = dm.train_dataloader()
    assert isinstance(loader, CombinedLoader) and loader._mode == "max_size_cycle"
    labeled = plain.train_dataloader()
    assert len(loader.iterables["unlabeled"]) == len(labeled)  # never stretches the epoch
    iter(loader)
    batch, _, _ = next(loader)
    assert set(batch) == {"labeled", "unlabeled"} and set(batch["labeled"]) == set(next(iter(labeled)))
    raw = batch["unlabeled"]["images"]
    moved = dm.on_after_batch_transfer(batch, 0)
    images = moved["unlabeled"]["images"]
    assert images.dtype == torch.float32 and images.shape == raw.shape
    torch.testing.assert_close(images[1, 2], normalize_images(raw[1, 2][None])[0])
    assert moved["labeled"] is batch["labeled"] and moved["unlabeled"]["frame_index"].shape == (2, 3)
    assert dm.val_dataloader().dataset is dm.test_set  # validation never changes
    capped = PoseDataModule(source="demo", project=str(tiny_demo), batch_size=2, num_workers=0,
                            unlabeled={"videos": "project", "seq_len": 3, "reader": "opencv", "num_workers": 0,
                                       "max_sequences_per_epoch": 2})
    assert len(capped.train_dataloader().iterables["unlabeled"]) == 1
    with pytest.raises(ValueError, match="unlabeled.seqlen is not a setting"):
        PoseDataModule(source="demo", project=str(tiny_demo), unlabeled={"videos": "project", "seqlen": 3})


def test_lightning_fit_gets_normalized_unlabeled_sequences_beside_labeled_batches(tiny_demo):
    import lightning as L

    seen = []

    class Probe(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def training_step(self, batch, batch_idx):
            ub = batch["unlabeled"]
            seen.append((batch["labeled"]["image"].dtype, ub["images"].dtype, tuple(ub["images"].shape),
                         float(ub["images"].min())))
            return (self.w - 1) ** 2

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = PoseDataModule(source="demo", project=str(tiny_demo), batch_size=2, num_workers=0,
                        unlabeled={"videos": "project", "seq_len": 2, "batch_size": 3, "reader": "opencv",
                                   "num_workers": 0})
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(Probe(), datamodule=dm)
    steps = len(dm._loader(dm.train_set, train=True))
    assert len(seen) == 2 * steps
    for labeled_dtype, dtype, shape, low in seen:
        assert labeled_dtype == torch.uint8 and dtype == torch.float32 and shape[:2] == (3, 2)
        assert low < 0  # normalized (uint8 / 255 is never negative)
