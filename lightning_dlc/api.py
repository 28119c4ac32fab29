"""DeepLabCut-style functions (same names and arguments) over lightning_dlc's engine."""
from __future__ import annotations

from pathlib import Path

from lightning_dlc.project import shuffles as _shuffles
from lightning_dlc.project.coco import write_coco
from lightning_dlc.project.dlc import as_config


def create_training_dataset(config, num_shuffles: int = 1, Shuffles=None, trainIndices=None,
                            testIndices=None, seed: int = 42, leave_out_video: str | None = None,
                            overwrite: bool = False, **ignored):
    """DeepLabCut's create_training_dataset: shuffles every TrainingFraction, reproducibly.

    Returns the created shuffles. DeepLabCut-only arguments (net_type, augmenter_type,
    userfeedback, ...) are accepted and ignored: model choice happens at training time.
    """
    return _shuffles.create_training_dataset(
        config, num_shuffles=num_shuffles, shuffles=Shuffles, train_indices=trainIndices,
        test_indices=testIndices, seed=seed, leave_out_video=leave_out_video, overwrite=overwrite)


def export_coco(config, out: str | Path, shuffle: int = 1, trainset_index: int = 0,
                copy_images: bool = True, overwrite: bool = False) -> Path:
    """Write a DeepLabCut project's shuffle as a COCO keypoint dataset (train.json, test.json)."""
    cfg = as_config(config)
    train, test = _shuffles.load_shuffle(cfg, shuffle, trainset_index)
    return write_coco({"train": train, "test": test}, out, task=cfg.task,
                      copy_images=copy_images, overwrite=overwrite)


def train_network(config, shuffle: int = 1, trainingsetindex: int = 0, overrides: list[str] | None = None,
                  **settings):
    """DeepLabCut's train_network over the same Hydra config as ``scripts/train.py``.

    The run lands in the project's own model folder
    (``dlc-models-pytorch/iteration-<i>/<Task><date>-trainset<pct>shuffle<n>/train``) with its
    ``config.yaml`` (the composed run config), snapshots and TensorBoard logs. ``overrides`` are
    Hydra override strings (``["model=hrnet_w32", "optimizer.lr=1e-3"]``); DeepLabCut's own
    keywords are translated: ``epochs``, ``save_epochs``, ``batch_size``, ``max_snapshots_to_keep``,
    ``net_type`` (a ``conf/model`` name), ``device`` (``cpu``/``cuda``/``auto``), ``seed``.
    Returns the final key metric (``test.mAP`` by default).
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from lightning_dlc.lit.train import train

    translate = {"epochs": "trainer.max_epochs", "save_epochs": "snapshots.save_epochs",
                 "batch_size": "data.batch_size", "max_snapshots_to_keep": "snapshots.max_snapshots",
                 "net_type": "model", "seed": "seed", "device": "trainer.accelerator"}
    unknown = sorted(set(settings) - set(translate))
    if unknown:
        raise TypeError(f"train_network: unknown arguments {unknown}; known: {sorted(translate)} "
                        "(anything else: overrides=['group=option', 'key=value'])")
    cfg_project = as_config(config)
    fractions = cfg_project.training_fractions
    if not 0 <= trainingsetindex < len(fractions):
        raise ValueError(f"trainingsetindex {trainingsetindex} out of range: config.yaml has TrainingFraction "
                         f"{fractions}")
    out = _shuffles.model_folder(cfg_project, fractions[trainingsetindex], shuffle) / "train"
    devices = {"cuda": "gpu", "gpu": "gpu", "cpu": "cpu", "auto": "auto", "mps": "mps"}
    translated = [f"{translate[k]}={devices.get(str(v), v) if k == 'device' else v}" for k, v in settings.items()]
    with initialize_config_dir(str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=dlc", f"data.project={cfg_project.path}",
                                          f"data.shuffle={shuffle}", f"data.trainset_index={trainingsetindex}",
                                          f"output_dir={out}", *translated, *(overrides or [])])
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "run_config.yaml")
    return train(cfg)


def evaluate_network(config, shuffles=(1,), trainingsetindex: int | str = 0, plotting: bool = False,
                     snapshots: str = "best", overwrite: bool = False, Shuffles=None, device: str = "auto",
                     pcutoff: float | None = None, batch_size: int | None = None):
    """DeepLabCut's evaluate_network: the shuffles' snapshots on their train and test images.

    Snapshots are read from each shuffle's ``dlc-models-pytorch/iteration-<i>/<shuffle>/train``
    (where :func:`train_network` puts them); ``snapshots`` is ``best``, ``last`` or ``all``.
    Results go where DeepLabCut 3 puts them: ``evaluation-results-pytorch/iteration-<i>/<shuffle>/``
    (``DLC_<Net>_<Task><date>shuffle<n>_snapshot_<epochs>.h5``, ``...-results.csv``,
    ``...-keypoint-results.csv``, with ``plotting`` ``LabeledImages_<scorer>/``, and our
    ``results.csv``), and ``evaluation-results-pytorch/iteration-<i>/CombinedEvaluation-results.csv``.
    A snapshot evaluated before stops the call unless ``overwrite=True``. ``trainingsetindex``
    may be ``"all"``; ``Shuffles`` is accepted as DeepLabCut's spelling. Returns the results
    (one row per snapshot and split) of every shuffle, with a ``shuffle`` column.
    """
    import pandas as pd

    from lightning_dlc.evaluation.report import COMBINED_CSV, evaluate_snapshots

    cfg = as_config(config)
    fractions = cfg.training_fractions
    if trainingsetindex == "all":
        indices = list(range(len(fractions)))
    elif isinstance(trainingsetindex, int) and 0 <= trainingsetindex < len(fractions):
        indices = [trainingsetindex]
    else:
        raise ValueError(f"trainingsetindex {trainingsetindex!r} out of range: config.yaml has TrainingFraction "
                         f"{fractions} (or pass 'all')")
    shuffles = Shuffles if Shuffles is not None else shuffles
    shuffles = [shuffles] if isinstance(shuffles, int) else list(shuffles)
    results_root = cfg.root / "evaluation-results-pytorch" / f"iteration-{cfg.iteration}"
    tables = []
    for index in indices:
        for shuffle in shuffles:
            train_dir = _shuffles.model_folder(cfg, fractions[index], shuffle) / "train"
            if not train_dir.is_dir():
                raise FileNotFoundError(f"{train_dir}: no trained model for shuffle {shuffle} (TrainingFraction "
                                        f"{fractions[index]}); train it with api.train_network(config, "
                                        f"shuffle={shuffle}, trainingsetindex={index})")
            out = results_root / _shuffles.shuffle_name(cfg, fractions[index], shuffle)
            table = evaluate_snapshots(train_dir, snapshots, plotting=plotting, out_dir=out, overwrite=overwrite,
                                       project=cfg.path, device=device, pcutoff=pcutoff, batch_size=batch_size,
                                       combined_csv=results_root / COMBINED_CSV, dlc_image_names=True)
            tables.append(table.assign(shuffle=shuffle, trainingsetindex=index))
    return pd.concat(tables, ignore_index=True)


def _trained_snapshot(cfg, shuffle: int, trainingsetindex: int, snapshot) -> Path:
    """The snapshot of a shuffle's train folder: ``best``, ``last`` or a file."""
    from lightning_dlc.evaluation.report import find_snapshots

    if snapshot not in ("best", "last"):
        path = Path(snapshot)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such snapshot file (or pass snapshot='best' / 'last')")
        return path
    fractions = cfg.training_fractions
    if not 0 <= trainingsetindex < len(fractions):
        raise ValueError(f"trainingsetindex {trainingsetindex} out of range: config.yaml has TrainingFraction "
                         f"{fractions}")
    train_dir = _shuffles.model_folder(cfg, fractions[trainingsetindex], shuffle) / "train"
    if not train_dir.is_dir():
        raise FileNotFoundError(f"{train_dir}: no trained model for shuffle {shuffle} (TrainingFraction "
                                f"{fractions[trainingsetindex]}); train it with api.train_network(config, "
                                f"shuffle={shuffle}, trainingsetindex={trainingsetindex})")
    return find_snapshots(train_dir, snapshot)[0]


def analyze_videos(config, videos, shuffle: int = 1, trainingsetindex: int = 0, destfolder=None,
                   batch_size: int = 8, save_as_csv: bool = False, device=None, snapshot="best",
                   overwrite: bool = False, cropping=None, videotype=None, **options):
    """DeepLabCut's analyze_videos: every frame of each video -> DeepLabCut's output files.

    The model is the shuffle's snapshot in ``dlc-models-pytorch/iteration-<i>/<shuffle>/train``
    (``snapshot``: ``best``, ``last`` or a file). ``videos``: files or folders (``videotype`` picks
    the suffix in folders). Files go beside each video or in ``destfolder``:
    ``<video><scorer>.h5``, ``_full.pickle``, ``_meta.pickle``, ``_assemblies.pickle`` (multi-animal),
    ``.csv`` with ``save_as_csv``. ``cropping`` ``[x1, x2, y1, y2]``; by default config.yaml's ``x1,
    x2, y1, y2`` when it says ``cropping: true`` (DeepLabCut's rule). An analyzed video is skipped
    unless ``overwrite``. ``options``: ``reader`` (auto, dali, opencv), ``precision`` (32, bf16, 16),
    ``channels_last``, ``compile``, ``chunk_frames``, ``blank_threshold``, ``progress``, ``verbose``.

    A missing or unreadable video is logged and reported, and the others still run. Returns one
    :class:`~lightning_dlc.inference.analyze.VideoSummary` per video (``.status``, ``.h5``,
    ``.scorer``, ``.fps``, ``.error``).
    """
    from lightning_dlc.inference.analyze import analyze_videos as _analyze_videos

    cfg = as_config(config)
    path = _trained_snapshot(cfg, shuffle, trainingsetindex, snapshot)
    if cropping is None and cfg.data.get("cropping"):
        cropping = [cfg.data.get(k) for k in ("x1", "x2", "y1", "y2")]
    return _analyze_videos(path, videos, destfolder, videotype=videotype, device=device, project=cfg.path,
                           batch_size=batch_size, save_as_csv=save_as_csv, overwrite=overwrite, crop=cropping,
                           **options)


def analyze_images(config, images_or_folder, shuffle: int = 1, trainingsetindex: int = 0, destfolder=None,
                   batch_size: int = 8, save_as_csv: bool = False, device=None, snapshot="best",
                   overwrite: bool = False, output_dir=None, **options):
    """DeepLabCut's analyze_images: images of any size (a folder, files, or a list) -> predictions.

    Writes ``image_predictions_<scorer>.h5`` (rows: image paths; DeepLabCut's columns) and
    ``.json`` in ``destfolder`` (``output_dir``, DeepLabCut's name, also works; default: the
    images' folder). ``options``: ``precision``, ``channels_last``, ``progress``, ``verbose``.
    Returns the .h5 path.
    """
    from lightning_dlc.inference.analyze import analyze_images as _analyze_images

    cfg = as_config(config)
    path = _trained_snapshot(cfg, shuffle, trainingsetindex, snapshot)
    return _analyze_images(path, images_or_folder, destfolder if destfolder is not None else output_dir,
                           batch_size=batch_size, device=device, save_as_csv=save_as_csv, overwrite=overwrite,
                           project=cfg.path, **options)
