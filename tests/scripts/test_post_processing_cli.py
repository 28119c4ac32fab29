"""The filter-predictions, plot-trajectories and analyze-skeleton commands compose their configs and refuse to run
without videos (their work is tested through the api in tests/tracking and tests/review)."""
import subprocess
import sys
from pathlib import Path

import pytest

CLI = Path(sys.executable).parent / "lightning-dlc"


@pytest.mark.slow  # three Hydra apps in subprocesses (~3 s each)
@pytest.mark.parametrize("command, key", [("filter-predictions", "filtertype: median"),
                                          ("plot-trajectories", "displayedbodyparts: all"),
                                          ("analyze-skeleton", "save_as_csv: false")])
def test_command_composes_and_needs_videos(tmp_path, command, key):
    shown = subprocess.run([str(CLI), command, "--cfg", "job"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0 and key in shown.stdout, shown.stderr
    empty = subprocess.run([str(CLI), command, "config=/nowhere/config.yaml"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert empty.returncode != 0 and "no videos given" in empty.stderr + empty.stdout


@pytest.mark.slow  # an untrained model's analysis, tracked, then the three commands (~2 min)
def test_commands_on_a_models_tracked_analysis(tmp_path):
    """The scorer of a real snapshot names the files: filter, plot and measure the filtered tracks."""
    import pandas as pd

    from lightning_dlc import api
    from test_scripts import _untrained_run_with_analysis

    config, video = _untrained_run_with_analysis(tmp_path)
    snapshot = tmp_path / "run" / "snapshot-001.ckpt"
    api.convert_detections2tracklets(config, [video], snapshot=snapshot, pcutoff=0.0)
    tracks, = api.stitch_tracklets(config, [video], snapshot=snapshot, min_length=1)

    def run(command, *overrides):
        result = subprocess.run([str(CLI), command, f"config={config}", f"snapshot={snapshot}", f"videos=[{video}]",
                                 *overrides], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        return [Path(line.split(": ", 1)[1]) for line in result.stdout.splitlines() if ": /" in line]

    filtered, = run("filter-predictions", "filtertype=median", "save_as_csv=false")
    assert filtered == tracks.with_name(tracks.stem + "_filtered.h5")
    assert pd.read_hdf(filtered).columns.equals(pd.read_hdf(tracks).columns)
    plots = run("plot-trajectories", "filtered=true", "resolution=30")
    assert {p.name for p in plots} == {f"{name}_filtered{fish}.png" for name in
                                       ("trajectory", "plot", "plot-likelihood", "hist")
                                       for fish in ("fish1", "fish2", "fish3")}
    assert all(p.parent == video.parent / "plot-poses" / "fishtank" for p in plots)
    skeleton, = run("analyze-skeleton", "filtered=true")
    assert skeleton == filtered.with_name(filtered.stem + "_skeleton.h5")
    assert len(pd.read_hdf(skeleton)) == 12
