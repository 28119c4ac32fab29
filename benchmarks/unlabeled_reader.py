"""How fast unlabeled-video sequences are read for training, as JSON.

    python benchmarks/unlabeled_reader.py [--video PATH] [--sequences 40] [--seq-len 5] [--reader opencv]
        [--device cpu] [--threads 1]

Reads ``--sequences`` sequences of ``--seq-len`` consecutive frames from one video through
:class:`~lightning_dlc.data.unlabeled.UnlabeledSequences` (batches of one sequence, the first epoch's seeded
order, no DataLoader workers; one reader for the pass), and the same sequences with a reader opened for each
(``open_video(start=, stop=)``, how they were read before), alternating ``--repeats`` times (the best of each
is reported: the machine may be shared). Prints sequences/s and CPU ms per sequence (all threads). Default video: the shared openfield project's
``videos/m3v1mp4.mp4`` (H.264, 640x480, 2330 frames, a keyframe every ~200 frames), read with OpenCV on one
torch thread.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lightning_dlc.data.unlabeled import UnlabeledSequences
from lightning_dlc.data.video import open_video

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO.parent / "shared/data/openfield-Pranav-2018-10-30/videos/m3v1mp4.mp4"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--sequences", type=int, default=40)
    parser.add_argument("--seq-len", type=int, default=5)
    parser.add_argument("--reader", default="opencv", choices=("auto", "dali", "opencv"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = UnlabeledSequences(args.video, seq_len=args.seq_len, batch_size=1, reader=args.reader,
                                 device=args.device, n_batches=args.sequences, pad_multiple=1)
    items = dataset.share(0)[:args.sequences]  # what the first pass reads

    def one_reader() -> int:
        dataset.set_epoch(0)
        return sum(len(batch["video_index"]) for batch in dataset)

    def reader_per_sequence() -> int:
        n = 0
        for video, start in items:
            info = dataset.videos[video]
            with open_video(info.path, reader=args.reader, device=args.device, batch_size=dataset.span,
                            start=start, stop=start + dataset.span, prefetch=1, info=info) as reader:
                n += sum(bool(batch.valid.all()) for batch in reader)
        return n

    best = {"one_reader": 0.0, "reader_per_sequence": 0.0}
    cpu = {"one_reader": float("inf"), "reader_per_sequence": float("inf")}
    for _ in range(args.repeats):
        for name, read in (("reader_per_sequence", reader_per_sequence), ("one_reader", one_reader)):
            t0, c0 = time.perf_counter(), time.process_time()
            n = read()
            best[name] = max(best[name], n / (time.perf_counter() - t0))
            cpu[name] = min(cpu[name], (time.process_time() - c0) / n)
    result = {"video": str(args.video), "reader": args.reader, "device": args.device, "threads": args.threads,
              "sequences": len(items), "seq_len": args.seq_len,
              "sequences_per_s": {k: round(v, 2) for k, v in best.items()},
              "speedup": round(best["one_reader"] / best["reader_per_sequence"], 2),
              # CPU time of all the process's threads: steadier than wall time on a shared machine
              "cpu_ms_per_sequence": {k: round(1000 * v, 1) for k, v in cpu.items()},
              "skipped": dict(dataset.counts)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
