"""Optional parts stay optional: without DALI (no macOS wheel) or FiftyOne (review only), the package imports,
trains and analyzes on the CPU; reader ``auto`` falls back to OpenCV. Each case runs in a fresh interpreter
where the missing package is blocked (``sys.modules[name] = None`` makes its import fail, as when absent)."""
import subprocess
import sys
import textwrap

import pytest

BLOCK = "import sys\nfor _name in {names!r}:\n    sys.modules[_name] = None  # its import now fails, as if absent\n"


def run_without(names: tuple[str, ...], code: str, cwd, timeout: int = 600) -> str:
    script = BLOCK.format(names=names) + textwrap.dedent(code)
    result = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout


def test_blocking_works(tmp_path):
    """The block itself: an import of a blocked package fails (else the tests below prove nothing)."""
    out = run_without(("nvidia.dali", "fiftyone"), """
        for name in ("nvidia.dali.fn", "fiftyone"):
            try:
                __import__(name)
            except ImportError:
                print("blocked", name)
        """, tmp_path)
    assert out.split("\n")[:2] == ["blocked nvidia.dali.fn", "blocked fiftyone"]


def test_api_and_cli_import_without_fiftyone_and_dali(tmp_path):
    out = run_without(("nvidia.dali", "fiftyone"), """
        import lightning_dlc.api, lightning_dlc.cli.train, lightning_dlc.cli.analyze_videos, lightning_dlc.cli.evaluate
        from lightning_dlc.data.dali_reader import dali_available
        print("dali", dali_available())
        """, tmp_path)
    assert "dali False" in out


def test_api_imports_neither_in_a_full_environment(tmp_path):
    """With both installed, ``import lightning_dlc.api`` still loads neither (only review and DALI decoding do)."""
    out = run_without((), """
        import lightning_dlc.api
        print(sorted(n for n in ("fiftyone", "nvidia.dali", "wandb", "onnxruntime") if n in sys.modules))
        """, tmp_path)
    assert out.strip() == "[]"


@pytest.mark.slow  # trains a tiny model in the subprocess
def test_train_and_analyze_on_cpu_without_dali_and_fiftyone(tmp_path):
    """A VP9 video, which DALI's CPU reader would take: without DALI ``auto`` reads it with OpenCV."""
    out = run_without(("nvidia.dali", "fiftyone"), """
        import torch
        from lightning_dlc import api
        from lightning_dlc.data.demo import make_demo_project
        from lightning_dlc.data.demo_scene import render_scene
        from lightning_dlc.data.video_writer import write_video
        from lightning_dlc.data.video import choose_reader
        from lightning_dlc.data.video_reader import probe_video

        config = make_demo_project("fishtank", multianimal=False, n_frames=12, n_labeled=8, size=64)
        api.create_training_dataset(config)
        api.train_network(config, shuffle=1, epochs=1, save_epochs=1, batch_size=4, net_type="resnet_18",
                          overrides=["model.backbone.name=regnetx_002", "model.backbone.pretrained=false",
                                     "data.num_workers=0", "eval_interval=0", "augment=none", "logger=csv",
                                     "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"])
        scene = render_scene(n_frames=12, n_fish=1, width=64, height=64, fps=30.0, seed=0)
        write_video("fish.webm", scene.frames, 30.0, "libvpx-vp9")
        print("choice", *choose_reader(probe_video("fish.webm"), torch.device("cpu")), sep="|")
        summary, = api.analyze_videos(config, ["fish.webm"], destfolder="out", snapshot="last", device="cpu",
                                      progress=False)
        print("RESULT", summary.status, summary.reader, summary.frames, summary.h5, sep="|")
        """, tmp_path)
    assert "choice|opencv|no CUDA device and DALI does not import" in out
    _, status, reader, frames, h5 = next(line for line in out.splitlines() if line.startswith("RESULT|")).split("|")
    assert (status, reader, frames) == ("analyzed", "opencv", "12")
    assert (tmp_path / h5).is_file()  # h5 relative to tmp_path, or absolute
