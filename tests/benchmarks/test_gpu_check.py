"""benchmarks/gpu_check.py stays runnable without a GPU: its tiny CPU run prints a JSON line for every part,
none with an error, and writes the same lines to --out."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks/gpu_check.py"
PARTS = ("decode", "analysis", "analysis_memory", "training", "multi_animal")


@pytest.mark.slow
def test_tiny_cpu_run_covers_every_part(tmp_path):
    out = tmp_path / "results/gpu_check.jsonl"
    run = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--out", str(out)],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert [json.loads(line) for line in out.read_text().splitlines()] == lines
    errors = [line for line in lines if "error" in line]
    assert not errors, errors
    for part in PARTS:
        measured = [line for line in lines if line["part"] == part and not line.get("done")]
        assert measured, f"{part} printed no measurement"
        assert any(line.get("done") for line in lines if line["part"] == part)
    decoded = {(line["reader"], tuple(line["size"])) for line in lines if line["part"] == "decode" and "fps" in line}
    assert {reader for reader, _ in decoded} == {"dali", "opencv"} and len(decoded) == 4
    analyses = [line for line in lines if line["part"] == "analysis" and "fps" in line]
    assert {line["precision"] for line in analyses} == {"32", "bf16", "16"}
    assert {line["reader_used"] for line in analyses} == {"dali-cpu", "opencv"}, "DALI's CPU reader on VP9"
    assert all(line["fps"] > 0 for line in analyses)
    assert any(line.get("measure") == "assembly" and line["animals_per_frame"] > 0 for line in lines
               if line["part"] == "multi_animal")
