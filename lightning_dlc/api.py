"""DeepLabCut-style functions (same names and arguments) over lightning_dlc's engine."""
from __future__ import annotations

from numbers import Integral
from pathlib import Path

from lightning_dlc.project import shuffles as _shuffles
from lightning_dlc.project.coco import write_coco
from lightning_dlc.project.dlc import as_config


# --------------------------------------------------------------------------- the api's argument checks
def _training_fraction(cfg, trainingsetindex, alternatives: str = "") -> float:
    """config.yaml's TrainingFraction at ``trainingsetindex``; a ValueError naming them when it has none there."""
    fractions = cfg.training_fractions
    if not isinstance(trainingsetindex, Integral) or not 0 <= trainingsetindex < len(fractions):
        raise ValueError(f"trainingsetindex {trainingsetindex!r} out of range: config.yaml has TrainingFraction "
                         f"{fractions}{alternatives}")
    return fractions[trainingsetindex]


def _train_folder(cfg, shuffle: int, trainingsetindex: int) -> Path:
    """The shuffle's ``dlc-models-pytorch/.../train`` folder; FileNotFoundError saying how to train it if absent."""
    fraction = _training_fraction(cfg, trainingsetindex)
    train_dir = _shuffles.model_folder(cfg, fraction, shuffle) / "train"
    if not train_dir.is_dir():
        raise FileNotFoundError(f"{train_dir}: no trained model for shuffle {shuffle} (TrainingFraction "
                                f"{fraction}); train it with api.train_network(config, shuffle={shuffle}, "
                                f"trainingsetindex={trainingsetindex})")
    return train_dir


def create_training_dataset(config, num_shuffles: int = 1, Shuffles=None, trainIndices=None,
                            testIndices=None, seed: int = 42, leave_out_video: str | None = None,
                            overwrite: bool = False, net_type: str | None = None, detector_type: str | None = None,
                            ctd_conditions=None, **ignored):
    """DeepLabCut's create_training_dataset: shuffles every TrainingFraction, reproducibly.

    Returns the created shuffles. With ``net_type`` (or ``ctd_conditions``: config.yaml's ``default_net_type``)
    each shuffle's model folder also gets DeepLabCut's ``train/pytorch_config.yaml`` and ``test/pose_cfg.yaml``
    for that net_type (``top_down_<backbone>`` with ``detector_type``, default ssdlite; ``ctd_*`` with
    ``ctd_conditions``: a bottom-up shuffle, ``(shuffle, snapshot name or index)`` or a predictions .h5/.json,
    written to ``inference.conditions`` in DeepLabCut's forms), which :func:`train_network` then trains. An
    existing pytorch_config.yaml stops the call unless ``overwrite=True``. Without either, no model folder is
    written and training picks the model (``net_type=`` of :func:`train_network`, default resnet_50). Other
    DeepLabCut-only arguments (augmenter_type, userfeedback, ...) are accepted and ignored.
    """
    from lightning_dlc.project.pytorch_config import write_pytorch_config
    from lightning_dlc.project.shuffle_pytorch_config import check_free, shuffle_pytorch_config

    cfg = as_config(config)
    if net_type is None and ctd_conditions is not None:
        net_type = cfg.data.get("default_net_type") or "resnet_50"
    graph = _paf_graph_for(cfg) if net_type is not None else None

    def model_configs(pairs):
        return [shuffle_pytorch_config(cfg, fraction, index, net_type, detector_type=detector_type,
                                       ctd_conditions=ctd_conditions, paf_graph=graph) for fraction, index in pairs]

    if net_type is not None and trainIndices is None and leave_out_video is None:
        # DeepLabCut's errors (net_type, ctd_conditions) and taken model folders stop the call before any file
        indices = list(Shuffles) if Shuffles is not None else list(range(1, num_shuffles + 1))
        check_free([d for d, _ in model_configs([(f, i) for f in cfg.training_fractions for i in indices])],
                   overwrite)
    created = _shuffles.create_training_dataset(
        config, num_shuffles=num_shuffles, shuffles=Shuffles, train_indices=trainIndices,
        test_indices=testIndices, seed=seed, leave_out_video=leave_out_video, overwrite=overwrite)
    if net_type is not None:
        for train_dir, pytorch_config in model_configs([(s.train_fraction, s.index) for s in created]):
            write_pytorch_config(train_dir, pytorch_config, overwrite=overwrite)
    return created


def _paf_graph_for(cfg) -> list | None:
    """The PAF graph a new multi-animal bottom-up model learns when DeepLabCut prunes the full one (15+
    bodyparts; ours seeded, :func:`lightning_dlc.models.heads.paf.paf_graph`); None: the full graph."""
    from lightning_dlc.models.heads.paf import PRUNE_FROM_EDGES, paf_graph

    n = len(cfg.meta().bodyparts)
    if not cfg.multianimal or n * (n - 1) // 2 < PRUNE_FROM_EDGES:
        return None  # (net_types without a PAF head ignore the graph)
    return [list(edge) for edge in paf_graph(n)]


def export_coco(config, out: str | Path, shuffle: int = 1, trainset_index: int = 0,
                copy_images: bool = True, overwrite: bool = False) -> Path:
    """Write a DeepLabCut project's shuffle as a COCO keypoint dataset (train.json, test.json)."""
    cfg = as_config(config)
    train, test = _shuffles.load_shuffle(cfg, shuffle, trainset_index)
    return write_coco({"train": train, "test": test}, out, task=cfg.task,
                      copy_images=copy_images, overwrite=overwrite)


def train_network(config, shuffle: int = 1, trainingsetindex: int = 0, overrides: list[str] | None = None,
                  modelprefix: str = "", pytorch_cfg_updates: dict | None = None, **settings):
    """DeepLabCut's train_network over the same Hydra config as ``lightning-dlc train``.

    The run lands in the project's own model folder
    (``[<modelprefix>/]dlc-models-pytorch/iteration-<i>/<Task><date>-trainset<pct>shuffle<n>/train``)
    with ``run_config.yaml`` (the composed run config), snapshots and TensorBoard logs. As
    DeepLabCut does, the shuffle's own ``pytorch_config.yaml`` there (when one exists) sets the
    training (net_type, optimizer, schedule, epochs, augmentation, detector, ...; a field we cannot
    honour stops the call, naming it), after ``pytorch_cfg_updates`` (DeepLabCut's dotted keys,
    ``{"runner.optimizer.params.lr": 1e-3}``) are applied to it. ``overrides`` are Hydra override
    strings (``["model=hrnet_w32", "optimizer.lr=1e-3"]``) and win over the file, as DeepLabCut's
    keywords do: ``epochs``, ``save_epochs``, ``batch_size``, ``max_snapshots_to_keep``,
    ``display_iters``, ``net_type`` (a ``conf/model`` name), ``device`` (``cpu``/``cuda``/``cuda:1``/
    ``auto``), ``seed``, ``snapshot_path`` (fine-tune: the whole model starts from it, epochs from 0),
    and for top-down models ``detector_type`` (a ``conf/detector`` name), ``detector_path``,
    ``detector_epochs`` (0: the detector is not trained), ``detector_save_epochs``,
    ``detector_batch_size``. DeepLabCut's other keywords are refused by name unless they keep their
    defaults (lightning_dlc.lit.compose.TRAIN_KEYWORDS_FIXED). Returns the final key metric.
    """
    from omegaconf import OmegaConf

    from lightning_dlc.lit.compose import compose_train_config, train_keyword_overrides
    from lightning_dlc.lit.train import train
    from lightning_dlc.project.pytorch_config import PYTORCH_CONFIG

    translated = train_keyword_overrides(**settings)
    cfg_project = as_config(config)
    folder = _shuffles.model_folder(cfg_project, _training_fraction(cfg_project, trainingsetindex), shuffle)
    out = cfg_project.root / modelprefix / folder.relative_to(cfg_project.root) / "train"
    own = out / PYTORCH_CONFIG
    if pytorch_cfg_updates and not own.is_file():
        raise FileNotFoundError(f"{own}: pytorch_cfg_updates needs the shuffle's pytorch_config.yaml; without one "
                                "use overrides=['key=value']")
    cfg = compose_train_config(["experiment=dlc", f"data.project={cfg_project.path}", f"data.shuffle={shuffle}",
                                f"data.trainset_index={trainingsetindex}", f"output_dir={out}", *translated,
                                *(overrides or [])],
                               pytorch_config=own if own.is_file() else None, cfg_updates=pytorch_cfg_updates)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "run_config.yaml")
    return train(cfg)


def evaluate_network(config, shuffles=(1,), trainingsetindex: int | str = 0, plotting: bool = False,
                     snapshots: str = "best", overwrite: bool = False, Shuffles=None, device: str = "auto",
                     pcutoff: float | None = None, batch_size: int | None = None, detector_snapshot_index=None,
                     precision: str = "auto", ctd_conditions=None, backend: str = "torch"):
    """DeepLabCut's evaluate_network: the shuffles' snapshots on their train and test images.

    Snapshots are read from each shuffle's ``dlc-models-pytorch/iteration-<i>/<shuffle>/train``
    (where :func:`train_network` puts them); ``snapshots`` is ``best``, ``last`` or ``all``.
    Results go where DeepLabCut 3 puts them: ``evaluation-results-pytorch/iteration-<i>/<shuffle>/``
    (``DLC_<Net>_<Task><date>shuffle<n>_snapshot_<epochs>.h5``, ``...-results.csv``,
    ``...-keypoint-results.csv``, with ``plotting`` ``LabeledImages_<scorer>/``, and our
    ``results.csv``), and ``evaluation-results-pytorch/iteration-<i>/CombinedEvaluation-results.csv``.
    A snapshot evaluated before stops the call unless ``overwrite=True``. ``trainingsetindex``
    may be ``"all"``; ``Shuffles`` is accepted as DeepLabCut's spelling. A top-down model's detector:
    ``detector_snapshot_index``, else config.yaml's ``detector_snapshotindex``. ``precision``: ``auto`` (bf16 where
    native, fp16 on other CUDA GPUs, else fp32), ``32`` (DeepLabCut's), ``bf16`` or ``16``. A conditional top-down
    (CTD) model refines ``ctd_conditions``' poses (a bottom-up shuffle as in :func:`analyze_videos`, a snapshot or its
    evaluation ``.h5``; default: what it was trained with). ``backend``: ``torch``, or ``onnxruntime`` (the snapshot's
    ONNX export, written first if missing, runs the network in float32; as :func:`analyze_videos`). Returns the results
    (one row per snapshot and split) of every shuffle, with a ``shuffle`` column.
    """
    import pandas as pd

    from lightning_dlc.evaluation.report import COMBINED_CSV, evaluate_snapshots

    cfg = as_config(config)
    if trainingsetindex == "all":
        indices = list(range(len(cfg.training_fractions)))
    else:
        _training_fraction(cfg, trainingsetindex, " (or pass 'all')")
        indices = [trainingsetindex]
    shuffles = Shuffles if Shuffles is not None else shuffles
    shuffles = [shuffles] if isinstance(shuffles, int) else list(shuffles)
    results_root = cfg.root / "evaluation-results-pytorch" / f"iteration-{cfg.iteration}"
    tables = []
    for index in indices:
        for shuffle in shuffles:
            train_dir = _train_folder(cfg, shuffle, index)
            out = results_root / _shuffles.shuffle_name(cfg, cfg.training_fractions[index], shuffle)
            table = evaluate_snapshots(train_dir, snapshots, plotting=plotting, out_dir=out, overwrite=overwrite,
                                       project=cfg.path, device=device, pcutoff=pcutoff, batch_size=batch_size,
                                       combined_csv=results_root / COMBINED_CSV, dlc_image_names=True,
                                       detector=_detector_index(cfg, detector_snapshot_index), precision=precision,
                                       conditions=_ctd_conditions_snapshot(cfg, train_dir, ctd_conditions, index),
                                       backend=backend)
            tables.append(table.assign(shuffle=shuffle, trainingsetindex=index))
    return pd.concat(tables, ignore_index=True)


def _trained_snapshot(cfg, shuffle: int, trainingsetindex: int, snapshot) -> Path:
    """The snapshot of a shuffle's train folder (ours or DeepLabCut's): ``best``, ``last``, DeepLabCut's
    snapshot index, None for config.yaml's ``snapshotindex`` (DeepLabCut's rule; ``all`` -> -1), or a file."""
    from lightning_dlc.models.snapshot_files import find_snapshots

    if snapshot is None:
        snapshot = cfg.data.get("snapshotindex", -1)
        snapshot = -1 if snapshot in (None, "all") else snapshot
    if isinstance(snapshot, str) and snapshot.lstrip("-").isdigit():
        snapshot = int(snapshot)
    if snapshot not in ("best", "last") and not isinstance(snapshot, int):
        path = Path(snapshot)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such snapshot file (or pass snapshot='best' / 'last')")
        return path
    return find_snapshots(_train_folder(cfg, shuffle, trainingsetindex), snapshot)[0]


def _detector_index(cfg, detector_snapshot_index=None) -> int:
    """DeepLabCut's rule for a top-down model's detector: ``detector_snapshot_index``, else config.yaml's
    ``detector_snapshotindex`` (-1 when unset: the best, else the last)."""
    index = detector_snapshot_index
    if index is None:
        index = cfg.data.get("detector_snapshotindex", -1)
    index = -1 if index in (None, "all") else index
    if isinstance(index, str) and index.lstrip("-").isdigit():
        index = int(index)
    if not isinstance(index, Integral):
        raise ValueError(f"detector_snapshot_index must be an integer (DeepLabCut's index), got {index!r}")
    return int(index)


def _trained_detector(cfg, pose_snapshot: Path, detector_snapshot_index=None) -> Path | None:
    """The detector snapshot beside ``pose_snapshot`` chosen by :func:`_detector_index`; None for a model
    with no detector snapshots (bottom-up, or a top-down run trained on labeled boxes)."""
    from lightning_dlc.models.snapshot_files import detector_beside

    return detector_beside(pose_snapshot, _detector_index(cfg, detector_snapshot_index))


def analyze_videos(config, videos, shuffle: int = 1, trainingsetindex: int = 0, destfolder=None,
                   batch_size: int = 8, save_as_csv: bool = False, device=None, snapshot="best",
                   overwrite: bool = False, cropping=None, videotype=None, auto_track: bool = False,
                   track_method: str = "ellipse", wait_for_lock: bool = False, identity_only: bool = False,
                   detector_snapshot_index=None, ctd_conditions=None, ctd_tracking=False, **options):
    """DeepLabCut's analyze_videos: every frame of each video -> DeepLabCut's output files.

    The model is the shuffle's snapshot in ``dlc-models-pytorch/iteration-<i>/<shuffle>/train``
    (``snapshot``: ``best``, ``last`` or a file). ``videos``: files or folders (``videotype`` picks
    the suffix in folders). Files go beside each video or in ``destfolder``:
    ``<video><scorer>.h5``, ``_full.pickle``, ``_meta.pickle``, ``_assemblies.pickle`` (multi-animal),
    ``.csv`` with ``save_as_csv``. ``cropping`` ``[x1, x2, y1, y2]``; by default config.yaml's ``x1,
    x2, y1, y2`` when it says ``cropping: true`` (DeepLabCut's rule). An analyzed video is skipped
    unless ``overwrite``. ``options``: ``reader`` (auto, dali, opencv), ``precision`` (auto, 32, bf16, 16),
    ``channels_last``, ``compile``, ``chunk_frames``, ``blank_threshold``, ``progress``, ``verbose``.
    ``auto_track`` (multi-animal): then tracklets and stitched tracks (:func:`convert_detections2tracklets`,
    :func:`stitch_tracklets` with ``track_method``) for every analyzed video; with a model trained with
    ``identity: true`` the tracks are named by identity, and ``identity_only`` (DeepLabCut's) assigns animals
    to tracklets by the identity head alone. A top-down model's detector: ``detector_snapshot_index``, else
    config.yaml's ``detector_snapshotindex`` (DeepLabCut's rule), or ``detector=<file>``.
    One process at a time analyzes a video (with one scorer): a video another process is analyzing is
    skipped (``status="locked"``, naming that process' pid and host), or waited for with
    ``wait_for_lock=True``.
    A conditional top-down (CTD) model refines a bottom-up model's poses: ``ctd_conditions`` (DeepLabCut's
    name) = the bottom-up shuffle (``{"shuffle": 2, "snapshot": "best"}``, an int) or snapshot file, default
    the ``conditions`` it was trained with; ``ctd_tracking`` (True, a dict of DeepLabCut's options or a
    :class:`~lightning_dlc.tracking.ctd.CTDTrackingConfig`) tracks with it and adds ``<prefix>_ctd.h5``
    (:func:`ctd_analyze_videos`).

    A missing or unreadable video is logged and reported, and the others still run. Returns one
    :class:`~lightning_dlc.inference.analyze.VideoSummary` per video (``.status``, ``.h5``,
    ``.scorer``, ``.fps``, ``.error``).
    """
    from lightning_dlc.pipelines.analyze import analyze_and_track

    cfg = as_config(config)
    path = _trained_snapshot(cfg, shuffle, trainingsetindex, snapshot)
    if ctd_conditions is not None or ctd_tracking or _is_ctd_snapshot(path):
        from lightning_dlc.pipelines.analyze import track_analyzed_videos

        options.pop("detector", None)  # a CTD model crops around its conditions
        summaries = ctd_analyze_videos(config, videos, path, ctd_conditions, ctd_tracking, trainingsetindex,
                                       destfolder=destfolder, batch_size=batch_size, save_as_csv=save_as_csv,
                                       device=device, overwrite=overwrite, cropping=cropping, videotype=videotype,
                                       wait_for_lock=wait_for_lock, **options)
        if auto_track and cfg.multianimal:  # as DeepLabCut: its files track like any model's (beside _ctd.h5)
            track_analyzed_videos(summaries, track_method, cfg.meta(), overwrite=overwrite,
                                  wait_for_lock=wait_for_lock, identity_only=identity_only)
        return summaries
    if "detector" not in options:
        options["detector"] = _trained_detector(cfg, path, detector_snapshot_index) or "auto"
    if cropping is None and cfg.data.get("cropping"):
        cropping = [cfg.data.get(k) for k in ("x1", "x2", "y1", "y2")]
    summaries, _ = analyze_and_track(path, videos, destfolder, auto_track=auto_track and cfg.multianimal,
                                     track_method=track_method, meta=cfg.meta(), identity_only=identity_only,
                                     overwrite=overwrite, wait_for_lock=wait_for_lock, videotype=videotype,
                                     device=device, project=cfg.path, batch_size=batch_size,
                                     save_as_csv=save_as_csv, crop=cropping, **options)
    return summaries


def analyze_images(config, images_or_folder, shuffle: int = 1, trainingsetindex: int = 0, destfolder=None,
                   batch_size: int = 8, save_as_csv: bool = False, device=None, snapshot="best",
                   overwrite: bool = False, output_dir=None, detector_snapshot_index=None, **options):
    """DeepLabCut's analyze_images: images of any size (a folder, files, or a list) -> predictions.

    Writes ``image_predictions_<scorer>.h5`` (rows: image paths; DeepLabCut's columns) and
    ``.json`` in ``destfolder`` (``output_dir``, DeepLabCut's name, also works; default: the
    images' folder). ``options``: ``precision`` (auto, 32, bf16, 16), ``channels_last``, ``progress``, ``verbose``. A top-down
    model's detector as :func:`analyze_videos` chooses it (``detector_snapshot_index``).
    Returns the .h5 path.
    """
    from lightning_dlc.inference.analyze import analyze_images as _analyze_images

    cfg = as_config(config)
    path = _trained_snapshot(cfg, shuffle, trainingsetindex, snapshot)
    if "detector" not in options:
        options["detector"] = _trained_detector(cfg, path, detector_snapshot_index) or "auto"
    return _analyze_images(path, images_or_folder, destfolder if destfolder is not None else output_dir,
                           batch_size=batch_size, device=device, save_as_csv=save_as_csv, overwrite=overwrite,
                           project=cfg.path, **options)


def diagnostics(config=None, shuffles=(1,), trainingsetindex: int = 0, runs=None, snapshot: str = "best",
                name: str | None = None, overwrite: bool = False, launch: bool = False, address: str = "localhost",
                port: int = 5151, device: str = "auto", names=None):
    """FiftyOne review of the labeled frames: ground truth, each model's predictions, their errors.

    The models are the shuffles' snapshots (``best`` or ``last``) in
    ``dlc-models-pytorch/iteration-<i>/<shuffle>/train``, or ``runs`` (training run folders or snapshot
    files; then ``config`` is only needed if the project moved). Builds the persistent dataset
    described in :mod:`lightning_dlc.review.diagnostics` (an existing ``name`` needs ``overwrite``)
    and, with ``launch``, opens it in the App on ``address:port`` (localhost by default) and waits.
    Returns the ``fiftyone.Dataset``.
    """
    from lightning_dlc.review.diagnostics import labeled_frames_dataset
    from lightning_dlc.review.fiftyone_session import launch_app

    cfg = as_config(config) if config is not None else None
    if runs is None:
        if cfg is None:
            raise ValueError("diagnostics: give config (and shuffles) or runs")
        fraction = _training_fraction(cfg, trainingsetindex)
        runs = [_shuffles.model_folder(cfg, fraction, s) / "train" for s in ([shuffles] if isinstance(shuffles, int)
                                                                             else shuffles)]
    dataset = labeled_frames_dataset(runs, snapshot=snapshot, names=names, name=name, overwrite=overwrite,
                                     project=cfg.path if cfg is not None else None, device=device)
    if launch:
        launch_app(dataset, address, port, wait=True)
    return dataset


def video_diagnostics(config, videos, destfolder=None, scorer: str | None = None, name: str | None = None,
                      overwrite: bool = False, n_low_confidence: int = 10, n_jumps: int = 10, launch: bool = False,
                      address: str = "localhost", port: int = 5151, filtered: bool = False):
    """FiftyOne review of analyzed videos: per-frame keypoints (tracked ``_el.h5`` preferred), and the
    ``n_low_confidence`` least confident frames and ``n_jumps`` largest jumps marked ``relabel``
    (:mod:`lightning_dlc.review.video_diagnostics`). ``config`` gives the skeleton (None: no edges).
    With ``launch``, opens the App on ``address:port`` and waits. ``filtered``: the ``_filtered.h5`` of
    :func:`filterpredictions` instead of the raw predictions. Returns the ``fiftyone.Dataset``;
    :func:`extract_frames_to_relabel` then copies the marked frames into the project.
    """
    from lightning_dlc.review.fiftyone_session import launch_app
    from lightning_dlc.review.video_diagnostics import video_dataset

    edges = as_config(config).skeleton if config is not None else ()
    videos = [videos] if isinstance(videos, (str, Path)) else list(videos)
    dataset = video_dataset(videos, destfolder=destfolder, scorer=scorer, name=name, overwrite=overwrite,
                            skeleton_edges=edges, n_low_confidence=n_low_confidence, n_jumps=n_jumps,
                            filtered=filtered)
    if launch:
        launch_app(dataset, address, port, wait=True)
    return dataset


def extract_frames_to_relabel(config, dataset, reasons=None):
    """The frames a video dataset marks ``relabel`` (``reasons``: only ``low_confidence`` or ``jump``) as
    ``labeled-data/<video>/img<frame>.png``, DeepLabCut's extracted frames, for labeling. Existing
    images and label files are left alone; the video joins ``video_sets`` if it is not listed.
    Returns one :class:`~lightning_dlc.review.relabel.ExtractedFrames` per video.
    """
    from lightning_dlc.review.relabel import extract_marked_frames

    return extract_marked_frames(config, dataset, reasons)


# --------------------------------------------------------------------------- tracking and labeled videos
def _analysis_prefixes(cfg, videos, shuffle, trainingsetindex, snapshot, destfolder, videotype) -> list[tuple]:
    """(video, ``<folder>/<video stem><scorer>``) per video: where its analysis files are, named as
    :func:`analyze_videos` names them (the scorer of the shuffle's snapshot, or ``snapshot`` itself when it is
    an ensemble's scorer: :func:`analyze_videos_ensemble`); a folder's labeled videos are
    left out by :func:`~lightning_dlc.data.discovery.find_videos`."""
    from lightning_dlc.data.discovery import find_videos
    from lightning_dlc.inference.scorer import describe_snapshot
    from lightning_dlc.models.snapshot_files import load_snapshot
    from lightning_dlc.pipelines.ensemble import is_ensemble_scorer
    from lightning_dlc.project.analysis_files import output_prefix

    if is_ensemble_scorer(snapshot):  # an ensemble's scorer (analyze_videos_ensemble) names its files
        return [(v, Path(destfolder or v.parent) / output_prefix(v, snapshot)) for v in find_videos(videos, videotype)]
    path = _trained_snapshot(cfg, shuffle, trainingsetindex, snapshot)
    contents = load_snapshot(path)
    top_down = ((contents.get("run_config") or {}).get("model") or {}).get("top_down") is not None
    detector = _trained_detector(cfg, path) if top_down else None  # named in the scorer, as analyze_videos does
    scorer = describe_snapshot(path, contents, cfg.path, detector).scorer
    return [(v, Path(destfolder or v.parent) / output_prefix(v, scorer)) for v in find_videos(videos, videotype)]


def convert_detections2tracklets(config, videos, videotype=None, shuffle: int = 1, trainingsetindex: int = 0,
                                 overwrite: bool = False, destfolder=None, ignore_bodyparts=None,
                                 track_method: str = "ellipse", snapshot="best", pcutoff: float = 0.1,
                                 max_age: int = 3, min_similarity: float | None = None, box_slack: float = 0.0,
                                 identity_only: bool = False):
    """DeepLabCut's convert_detections2tracklets: each video's ``_assemblies.pickle`` -> tracklets.

    Writes ``<video><scorer>_<el|bx|sk>.pickle`` (``track_method`` ellipse, box or skeleton; see
    :mod:`lightning_dlc.tracking.trackers`) beside the analysis files. Keypoints under ``pcutoff``
    are ignored; ``ignore_bodyparts`` are not looked at by the tracker. Existing tracklets are kept
    unless ``overwrite``. ``identity_only`` (DeepLabCut's; models trained with ``identity: true``): each frame's
    animals go to tracklets by the identity head alone (tracklet i = individual i). Returns the tracklet
    pickles' paths.
    """
    from lightning_dlc.tracking.pipeline import convert_to_tracklets

    cfg = as_config(config)
    return [convert_to_tracklets(prefix, track_method, cfg.meta(), overwrite=overwrite, pcutoff=pcutoff,
                                 max_age=max_age, min_similarity=min_similarity, box_slack=box_slack,
                                 ignore_bodyparts=ignore_bodyparts or (), identity_only=identity_only)
            for _, prefix in _analysis_prefixes(cfg, videos, shuffle, trainingsetindex, snapshot, destfolder,
                                                videotype)]


def stitch_tracklets(config, videos, videotype=None, shuffle: int = 1, trainingsetindex: int = 0,
                     n_tracks: int | None = None, track_method: str = "ellipse", min_length: int = 5,
                     split_tracklets: bool = True, max_gap: int | None = None, fill_gaps: int = 0,
                     destfolder=None, save_as_csv: bool = False, overwrite: bool = False, snapshot="best",
                     animal_names=None, use_identity: bool | None = None):
    """DeepLabCut's stitch_tracklets: tracklets -> ``n_tracks`` whole-video tracks (min-cost flow).

    ``n_tracks`` defaults to the number of individuals (``animal_names`` names the tracks; default
    config.yaml's individuals). Writes ``<video><scorer>_<el|bx|sk>.h5`` (and ``.csv`` with
    ``save_as_csv``); ``fill_gaps`` interpolates gaps up to that many frames. See
    :mod:`lightning_dlc.tracking.stitch` for ``min_length``, ``split_tracklets`` and ``max_gap``.
    Existing tracks are kept unless ``overwrite``. Tracklets with identities (a model trained with
    ``identity: true``) are stitched with the identity head's votes as a cost and track i is named after
    individual i; ``use_identity=False`` stitches by motion alone (ours; None: when there are identities).
    Returns the tracks' paths.
    """
    from dataclasses import replace

    from lightning_dlc.tracking.pipeline import stitch_tracklet_file

    cfg = as_config(config)
    meta = cfg.meta() if animal_names is None else replace(cfg.meta(), individuals=tuple(animal_names))
    return [stitch_tracklet_file(prefix, track_method, n_tracks, meta, min_length=min_length,
                                 split_tracklets=split_tracklets, max_gap=max_gap, fill_gaps=fill_gaps,
                                 save_as_csv=save_as_csv, overwrite=overwrite, use_identity=use_identity)
            for _, prefix in _analysis_prefixes(cfg, videos, shuffle, trainingsetindex, snapshot, destfolder,
                                                videotype)]


def create_labeled_video(config, videos, videotype=None, shuffle: int = 1, trainingsetindex: int = 0,
                         destfolder=None, track_method: str = "ellipse", color_by: str = "bodypart",
                         trailpoints: int = 0, draw_skeleton: bool = True, pcutoff: float | None = None,
                         dotsize: int | None = None, keypoints_only: bool = False, overwrite: bool = False,
                         snapshot="best", filtered: bool = False, displayedbodyparts="all",
                         displayedindividuals="all", outputframerate: float | None = None, Frames2plot=None,
                         confidence_to_alpha=False):
    """DeepLabCut's create_labeled_video: each analyzed video with its keypoints drawn, as an H.264 mp4.

    Draws the stitched tracks ``<video><scorer>_<el|bx|sk>.h5`` when they exist, else the analysis'
    ``.h5`` (``filtered``: their ``_filtered.h5``, from :func:`filterpredictions`); writes
    ``<that .h5's name>[_bp|_id]_p<pcutoff x 100>_labeled.mp4`` beside it (DeepLabCut's name). ``color_by``
    bodypart or individual; ``trailpoints`` past positions; the skeleton of config.yaml (``draw_skeleton``;
    on by default here, off in DeepLabCut); points under ``pcutoff`` (config.yaml's) left out;
    ``keypoints_only``: on black. DeepLabCut's ``displayedbodyparts`` / ``displayedindividuals`` (``all`` or
    a list: only those drawn), ``outputframerate`` (the output's fps; default the video's), ``Frames2plot``
    (only those frame indices written), ``confidence_to_alpha`` (True: points fade from opaque at
    likelihood 1 to invisible at ``pcutoff``; or a function likelihood -> alpha).
    An existing video is kept unless ``overwrite``. Returns the videos' paths.
    """
    from lightning_dlc.project.locks import lock_path
    from lightning_dlc.review.labeled_video import labeled_video
    from lightning_dlc.tracking.analysis_tables import analysis_table, crop_offset

    cfg = as_config(config)
    pcutoff = cfg.pcutoff if pcutoff is None else pcutoff
    bodyparts = None if displayedbodyparts == "all" else _names(displayedbodyparts)
    individuals = None if displayedindividuals == "all" else _names(displayedindividuals)
    outputs = []
    for video, prefix in _analysis_prefixes(cfg, videos, shuffle, trainingsetindex, snapshot, destfolder, videotype):
        h5 = analysis_table(prefix, track_method if cfg.multianimal else "", filtered, untracked_ok=True)
        tag = ("_id" if color_by == "individual" else "_bp") if cfg.multianimal else ""
        out = h5.with_name(f"{h5.stem}{tag}_p{int(100 * pcutoff)}_labeled.mp4")
        if out.exists() and not overwrite:
            print(f"{out}: already made, kept (overwrite=True replaces it)")
            outputs.append(out)
            continue
        outputs.append(labeled_video(video, h5, out, skeleton=cfg.skeleton if draw_skeleton else (),
                                     color_by=color_by, pcutoff=pcutoff, dotsize=dotsize or _dotsize(cfg),
                                     trail_points=trailpoints, keypoints_only=keypoints_only,
                                     offset=crop_offset(prefix), overwrite=overwrite, lock=lock_path(prefix),
                                     bodyparts=bodyparts, individuals=individuals, fps=outputframerate,
                                     frames=Frames2plot, confidence_to_alpha=confidence_to_alpha))
    return outputs


def _dotsize(cfg) -> int:
    """config.yaml's dotsize (DeepLabCut's marker size), 4 px when it has none."""
    return int(cfg.data.get("dotsize") or 4)


def create_video_with_all_detections(config, videos, videotype=None, shuffle: int = 1, trainingsetindex: int = 0,
                                     destfolder=None, pcutoff: float = 0.1, dotsize: int | None = None,
                                     overwrite: bool = False, snapshot="best"):
    """DeepLabCut's create_video_with_all_detections: every assembly of the ``_assemblies.pickle`` (before
    tracking) drawn on its frame, coloured by bodypart, in ``<video><scorer>_full.mp4``. Returns the paths."""
    from lightning_dlc.project.locks import lock_path
    from lightning_dlc.review.labeled_video import video_with_all_detections
    from lightning_dlc.tracking.analysis_tables import crop_offset
    from lightning_dlc.tracking.files import read_assemblies

    cfg = as_config(config)
    outputs = []
    for video, prefix in _analysis_prefixes(cfg, videos, shuffle, trainingsetindex, snapshot, destfolder, videotype):
        out = Path(f"{prefix}_full.mp4")
        if out.exists() and not overwrite:
            print(f"{out}: already made, kept (overwrite=True replaces it)")
            outputs.append(out)
            continue
        assemblies, _ = read_assemblies(Path(f"{prefix}_assemblies.pickle"))
        outputs.append(video_with_all_detections(video, assemblies, out, bodyparts=cfg.meta().bodyparts,
                                                 skeleton=cfg.skeleton, pcutoff=pcutoff,
                                                 dotsize=dotsize or _dotsize(cfg), offset=crop_offset(prefix),
                                                 overwrite=overwrite, lock=lock_path(prefix)))
    return outputs


# --------------------------------------------------------------------------- re-identification
def transformer_reID(config, videos, n_tracks: int | None = None, shuffle: int = 1, trainingsetindex: int = 0,
                     track_method: str = "ellipse", train_epochs: int = 20, n_triplets: int = 1000,
                     destfolder=None, videotype=None, snapshot="best", overwrite: bool = False,
                     save_as_csv: bool = False, **options):
    """DeepLabCut's transformer_reID: learn what each animal looks like from its tracklets, stitch with it.

    Needs each video analyzed with ``analyze_videos(..., features=True)`` (the ``<video><scorer>_features.h5``:
    backbone features at every keypoint, from the analysis' own forward pass). Per video: tracklets
    (made with ``track_method`` if missing), ``n_triplets`` triplets mined from them, a small transformer
    trained ``train_epochs`` epochs on them (TensorBoard logs beside the video, ``reid/``), then stitching
    with its embedding distance, calibrated on the training triplets, added to the motion costs ->
    ``<video><scorer>_el_tr.h5``. ``options``: ``test_fraction``, ``cost_weight`` (body sizes, default 0.5),
    ``min_keypoints``, ``seed``, ``log_dir`` and stitching's ``min_length``, ``split_tracklets``, ``max_gap``,
    ``fill_gaps`` (see :func:`lightning_dlc.pipelines.reid.reid_video`). Returns one
    :class:`~lightning_dlc.pipelines.reid.ReIDResult` per video (tracks path, held-out triplet accuracy).
    """
    from lightning_dlc.pipelines.reid import reid_video

    cfg = as_config(config)
    return [reid_video(prefix, track_method, cfg.meta(), n_tracks, train_epochs=train_epochs, n_triplets=n_triplets,
                       overwrite=overwrite, save_as_csv=save_as_csv, **options)
            for _, prefix in _analysis_prefixes(cfg, videos, shuffle, trainingsetindex, snapshot, destfolder,
                                                videotype)]


def export_model(config, shuffle: int = 1, trainingsetindex: int = 0, snapshotindex=None, iteration=None,
                 TFGPUinference: bool = True, overwrite: bool = False, make_tar: bool = True, wipepaths: bool = False,
                 without_detector: bool = False, modelprefix: str = "", engine=None,
                 detector_snapshot_index=None) -> list[Path]:
    """DeepLabCut's export_model (PyTorch engine): the shuffle's model for DeepLabCut-Live.

    Writes ``exported-models-pytorch/DLC_<Task>_NetType.<NET_TYPE>_iteration-<i>_shuffle-<n>/<that name>
    [_snapshot-detector<uid>]_snapshot-<uid>.pt`` (``{"config", "pose"[, "detector"]}``; DeepLabCut 3.0.2's
    names, ``uid`` the epoch or ``best-<epoch>``) for each snapshot
    of the shuffle's model folder chosen by ``snapshotindex`` (None: config.yaml's ``snapshotindex``) and,
    for a top-down model unless ``without_detector``, by ``detector_snapshot_index`` (DeepLabCut's
    ``pose_estimation_pytorch`` argument; None: config.yaml's ``detector_snapshotindex``). ``wipepaths``
    removes this machine's paths from the config. A file exported before is kept unless ``overwrite``, as
    DeepLabCut does. ``TFGPUinference`` and ``make_tar`` are TensorFlow's, accepted and unused (as
    DeepLabCut does for PyTorch models); ``engine`` may only be PyTorch. Returns the export files.
    A run folder of ours goes to the model folder first: :func:`export_run`.
    """
    from lightning_dlc.models.export import export_model as _export_model

    if engine is not None and str(getattr(engine, "name", engine)).lower() not in ("pytorch", "torch"):
        raise ValueError(f"engine {engine!r}: only PyTorch models are exported here (TensorFlow's are not built)")
    return _export_model(config, shuffle=shuffle, trainset_index=trainingsetindex, snapshot_index=snapshotindex,
                         detector_snapshot_index=detector_snapshot_index, iteration=iteration, overwrite=overwrite,
                         wipe_paths=wipepaths, without_detector=without_detector, modelprefix=modelprefix)


def export_run(config, run, shuffle: int = 1, trainingsetindex: int = 0, snapshots: str = "all",
               overwrite: bool = False, net_type: str | None = None) -> Path:
    """A ``lightning-dlc train`` run folder -> the shuffle's DeepLabCut model folder
    (``dlc-models-pytorch/iteration-<i>/<shuffle>/train``: ``snapshot-NNN.pt``, ``pytorch_config.yaml``,
    ``test/pose_cfg.yaml``), so DeepLabCut 3.0.2 (and every function here) uses the model. DeepLabCut's
    files of that shuffle are replaced only with ``overwrite=True``. Returns the ``train`` folder."""
    from lightning_dlc.models.export import export_run

    return export_run(run, config, shuffle=shuffle, trainset_index=trainingsetindex, snapshots=snapshots,
                      overwrite=overwrite, net_type=net_type)


def export_onnx(config_or_run, shuffle: int = 1, trainingsetindex: int = 0, snapshot="best", out=None,
                overwrite: bool = False, detector_snapshot_index=None, opset: int = 17) -> Path:
    """Ours: a trained pose model (and a top-down model's detector) as ONNX, plus the JSON sidecar decoding needs.

    ``config_or_run``: a project's config.yaml (the shuffle's model folder; ``snapshot`` chosen as in
    :func:`analyze_videos`, the detector by ``detector_snapshot_index``), a run folder of ``lightning-dlc
    train`` or a DeepLabCut ``train/`` folder (``snapshot``: best, last, DeepLabCut's index), or a snapshot
    file. Files go to ``out`` (default ``<snapshot folder>/onnx``), each replaced only with ``overwrite``.
    ``analyze_videos(..., backend="onnxruntime")`` runs them. Needs ``pip install lightning_dlc[onnx]``.
    Returns the sidecar's path (the ``.onnx`` beside it; :mod:`lightning_dlc.inference.onnx_runner`).
    """
    from lightning_dlc.inference.onnx_runner import export_snapshot_onnx
    from lightning_dlc.inference.scorer import snapshot_from_args

    where = Path(config_or_run)
    if where.suffix in (".yaml", ".yml") or (where / "config.yaml").is_file():
        cfg = as_config(config_or_run)
        path = _trained_snapshot(cfg, shuffle, trainingsetindex, snapshot)
        detector, project = _trained_detector(cfg, path, detector_snapshot_index), cfg.path
    else:
        path = snapshot_from_args(where, snapshot) if where.is_dir() else snapshot_from_args(None, str(where))
        detector, project = "auto", None
    return export_snapshot_onnx(path, out, detector=detector, project=project, overwrite=overwrite, opset=opset)


# --------------------------------------------------------------------------- ensembles (ours)
def analyze_videos_ensemble(config, videos, shuffles=(1,), snapshots=("best",), trainingsetindex: int = 0,
                            destfolder=None, videotype=None, track_method: str = "ellipse",
                            smoothing: float | None = None, min_likelihood: float = 0.0, average: str = "median",
                            scorer: str | None = None, overwrite: bool = False, **analyze_options):
    """Ours (DeepLabCut has no ensembles): several models analyze each video, an Ensemble Kalman smoother
    (Lightning Pose's EKS method) combines them.

    The members are every (shuffle, snapshot) of ``shuffles`` x ``snapshots`` (as :func:`analyze_videos`
    names them: ``best``, ``last``, DeepLabCut's index or a file), at least two. Each video is analyzed by
    each member with :func:`analyze_videos` (an existing analysis is reused, not redone; ``analyze_options``
    go to it; multi-animal projects are tracked with ``track_method`` and their tracks ensembled), then
    smoothed into ``<video><ensemble scorer>.h5`` (``..._<el|bx|sk>.h5`` multi-animal) with ``_meta.pickle``:
    DeepLabCut's table, likelihood the members' mean, and the posterior variance of x and y inside the same
    file (:func:`lightning_dlc.pipelines.ensemble.read_ensemble_variance`; DeepLabCut does not see it). The
    scorer (``DLC_ensemble<M>_<first member's scorer>`` unless ``scorer``, which must start with
    ``DLC_ensemble``) is what the other functions take as ``snapshot`` to use the ensemble where they would
    use a model's analysis: ``create_labeled_video(config, videos, snapshot=result.scorer)``. ``smoothing``:
    the random walk's step variance (px²; None: chosen per keypoint by likelihood); ``min_likelihood``:
    members' points under it are left out; ``average``: the members' ``median`` (EKS' default) or ``mean``.
    An ensemble made before is kept unless ``overwrite``. Returns one
    :class:`~lightning_dlc.pipelines.ensemble.EnsembleResult` per video (``.h5``, ``.scorer``, ``.status``).
    """
    from lightning_dlc.pipelines.ensemble import ensemble_analyses, is_ensemble_scorer

    if scorer is not None and not is_ensemble_scorer(scorer):
        raise ValueError(f"scorer {scorer!r} must start with 'DLC_ensemble' (so the other functions find it)")
    cfg = as_config(config)
    members = [(sh, sn) for sh in ([shuffles] if isinstance(shuffles, int) else shuffles)
               for sn in ([snapshots] if isinstance(snapshots, (str, int, Path)) else snapshots)]
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members: shuffles x snapshots gave {members}")
    prefixes = []
    for shuffle, snapshot in members:
        analyze_videos(config, videos, shuffle=shuffle, trainingsetindex=trainingsetindex, destfolder=destfolder,
                       snapshot=snapshot, videotype=videotype, auto_track=cfg.multianimal, track_method=track_method,
                       **analyze_options)
        prefixes.append(_analysis_prefixes(cfg, videos, shuffle, trainingsetindex, snapshot, destfolder, videotype))
    return [ensemble_analyses(per_video[0][0], [prefix for _, prefix in per_video], multianimal=cfg.multianimal,
                              track_method=track_method, scorer=scorer, smoothing=smoothing,
                              min_likelihood=min_likelihood, average=average, overwrite=overwrite,
                              destfolder=destfolder)
            for per_video in zip(*prefixes)]


# ------------------------------------------------------------- post-processing: filtering, trajectory plots, skeleton
def _post_track_method(cfg, track_method: str) -> str:
    """DeepLabCut's rule: a multi-animal project reads its tracks (``track_method``, else config.yaml's
    ``default_track_method``, else ellipse); a single-animal one none."""
    if not cfg.multianimal:
        return ""
    return track_method or cfg.data.get("default_track_method") or "ellipse"


def _post_tables(cfg, videos, videotype, shuffle, trainingsetindex, destfolder, modelprefix, track_method,
                 filtered, snapshot) -> list[tuple[Path, Path]]:
    """(video, the analysis table it reads) per video (:func:`~lightning_dlc.tracking.analysis_tables.analysis_table`:
    a clear error naming the file when a video is not analyzed, tracked or filtered)."""
    from lightning_dlc.tracking.analysis_tables import analysis_table

    if modelprefix:
        raise ValueError(f"modelprefix={modelprefix!r}: models outside the project's dlc-models folders are not "
                         "supported; pass the shuffle")
    method = _post_track_method(cfg, track_method)
    return [(video, analysis_table(prefix, method, filtered))
            for video, prefix in _analysis_prefixes(cfg, videos, shuffle, trainingsetindex, snapshot, destfolder,
                                                    videotype)]


def filterpredictions(config, video, videotype="", shuffle: int = 1, trainingsetindex: int = 0,
                      filtertype: str = "median", windowlength: int = 5, p_bound: float = 0.001, ARdegree: int = 3,
                      MAdegree: int = 1, alpha: float = 0.01, save_as_csv: bool = True, destfolder=None,
                      modelprefix: str = "", track_method: str = "", snapshot="best", return_data: bool = False):
    """DeepLabCut's filterpredictions: analyzed videos' predictions smoothed (:mod:`lightning_dlc.tracking.filtering`).

    ``filtertype`` median (``windowlength``: odd window), arima (SARIMAX(``ARdegree``, 0, ``MAdegree``), points
    under ``p_bound`` missing; ``alpha`` only sets DeepLabCut's unused confidence interval) or spline
    (``windowlength``: the longest gap filled). Reads ``<video><scorer>.h5`` (a multi-animal project: its tracks
    ``_<el|bx|sk>.h5`` of ``track_method``) and writes ``..._filtered.h5`` (and ``.csv`` with ``save_as_csv``)
    beside it, atomically. A video already filtered is skipped, as DeepLabCut does (delete the file to filter
    again); an unanalyzed video raises naming its missing file. Returns the filtered files' paths, or with
    ``return_data`` ``{video: filtered table}``.
    """
    from lightning_dlc.tracking.analysis_tables import read_table
    from lightning_dlc.tracking.filtering import filter_file

    cfg = as_config(config)
    written = {v: filter_file(h5, filtertype, windowlength, p_bound, ARdegree, MAdegree, save_as_csv)
               for v, h5 in _post_tables(cfg, video, videotype, shuffle, trainingsetindex, destfolder, modelprefix,
                                         track_method, False, snapshot)}
    return {v: read_table(path) for v, path in written.items()} if return_data else list(written.values())


def plot_trajectories(config, videos, videotype="", shuffle: int = 1, trainingsetindex: int = 0,
                      filtered: bool = False, displayedbodyparts="all", displayedindividuals="all",
                      showfigures: bool = False, destfolder=None, modelprefix: str = "", imagetype: str = ".png",
                      resolution: int = 100, linewidth: float = 1.0, track_method: str = "",
                      pcutoff: float | None = None, snapshot="best"):
    """DeepLabCut's plot_trajectories: ``plot-poses/<video stem>/`` beside the analysis (``destfolder``), with
    ``trajectory``, ``plot``, ``plot-likelihood`` and ``hist`` images (:mod:`lightning_dlc.review.trajectories`;
    ``_filtered`` in their names for ``filtered`` predictions, the individual's name per track). Colours and
    transparency from config.yaml's ``colormap`` and ``alphavalue``; points under ``pcutoff`` (config.yaml's
    by default) left out. Returns the images' paths."""
    from lightning_dlc.review.trajectories import plot_trajectories as plot
    from lightning_dlc.tracking.analysis_tables import FILTERED, plot_folder

    cfg = as_config(config)
    bodyparts = None if displayedbodyparts == "all" else _names(displayedbodyparts)
    individuals = None if displayedindividuals == "all" else _names(displayedindividuals)
    written = []
    for video, h5 in _post_tables(cfg, videos, videotype, shuffle, trainingsetindex, destfolder, modelprefix,
                                  track_method, filtered, snapshot):
        written += plot(h5, plot_folder(h5.parent, video), bodyparts, individuals, FILTERED if filtered else "",
                        pcutoff=cfg.pcutoff if pcutoff is None else pcutoff,
                        colormap=cfg.data.get("colormap") or "rainbow", alpha=float(cfg.data.get("alphavalue") or 1.0),
                        imagetype=imagetype, resolution=resolution, linewidth=linewidth, show=showfigures)
    return written


def _names(given) -> list[str]:
    """A name or a list of names (DeepLabCut's displayedbodyparts / displayedindividuals)."""
    return [given] if isinstance(given, str) else list(given)


def analyzeskeleton(config, videos, videotype="", shuffle: int = 1, trainingsetindex: int = 0, filtered: bool = False,
                    save_as_csv: bool = False, destfolder=None, modelprefix: str = "", track_method: str = "",
                    snapshot="best", return_data: bool = False):
    """DeepLabCut's analyzeskeleton: length, orientation and likelihood of each edge of config.yaml's ``skeleton``
    per frame (:mod:`lightning_dlc.review.skeleton_analysis`) in ``..._skeleton.h5`` (``.csv`` with
    ``save_as_csv``) beside the (``filtered``) analysis table. An existing one is skipped, as DeepLabCut does.
    Returns the files' paths, or with ``return_data`` ``{video: table}``."""
    from lightning_dlc.review.skeleton_analysis import skeleton_file
    from lightning_dlc.tracking.analysis_tables import read_table

    cfg = as_config(config)
    if not cfg.skeleton:
        raise ValueError(f"{cfg.path}: no skeleton defined in config.yaml")
    written = {v: skeleton_file(h5, cfg.skeleton, save_as_csv)
               for v, h5 in _post_tables(cfg, videos, videotype, shuffle, trainingsetindex, destfolder, modelprefix,
                                         track_method, filtered, snapshot)}
    return {v: read_table(path) for v, path in written.items()} if return_data else list(written.values())


# ------------------------------------------- the refine loop: outlier frames, machine labels, merge, next iteration
def extract_outlier_frames(config, videos, videotype="", shuffle: int = 1, trainingsetindex: int = 0,
                           outlieralgorithm: str = "jump", frames2use=None, comparisonbodyparts="all",
                           epsilon: float = 20, p_bound: float = 0.01, ARdegree: int = 3, MAdegree: int = 1,
                           alpha: float = 0.01, extractionalgorithm: str = "kmeans", automatic: bool = False,
                           cluster_resizewidth: int = 30, cluster_color: bool = False, opencv: bool = True,
                           savelabeled: bool = False, copy_videos: bool = False, destfolder=None,
                           modelprefix: str = "", track_method: str = "", snapshot="best", seed: int = 0,
                           video_extensions=None, **kwargs):
    """DeepLabCut's extract_outlier_frames (:mod:`lightning_dlc.pipelines.refine`): each analyzed video's
    putative outlier frames (``outlieralgorithm`` jump / uncertain / fitting / list, DeepLabCut's parameters),
    ``numframes2pick`` of them (config.yaml) picked by ``extractionalgorithm`` (kmeans / uniform), written as
    ``labeled-data/<video>/img<frame>.png`` with ``machinelabels-iter<i>.h5`` (+ ``machinelabels.csv``), the
    video added to ``video_sets``. Existing images and their labels are never replaced (those frames are
    skipped, said once). Reads the analysis of the shuffle's ``snapshot`` (its scorer; DeepLabCut's
    ``snapshot_index`` keyword works too), a multi-animal project's tracks of ``track_method``
    (config.yaml's ``default_track_method``, else ellipse). Differences, documented: ``automatic=False``
    does not ask on stdin (it proceeds, as ``automatic=True``); picks are reproducible (``seed``);
    ``outlieralgorithm="manual"`` (DeepLabCut's napari GUI) is not built: mark frames in the FiftyOne review
    (:func:`video_diagnostics`) and :func:`extract_frames_to_relabel` them; ``savelabeled`` draws nothing
    (use :func:`create_labeled_video`); the video is listed by its path, not copied (``copy_videos``). An
    unanalyzed video raises naming the missing file. Returns one
    :class:`~lightning_dlc.pipelines.refine.OutlierFrames` per video.
    """
    import logging

    from lightning_dlc.pipelines.refine import extract_outliers

    if modelprefix:
        raise ValueError(f"modelprefix={modelprefix!r}: models outside the project's dlc-models folders are not "
                         "supported; pass the shuffle")
    snapshot = kwargs.pop("snapshot_index", snapshot)
    kwargs.pop("detector_snapshot_index", None)  # names the scorer only with a detector: the analysis has it
    if kwargs:
        raise TypeError(f"extract_outlier_frames: unknown arguments {sorted(kwargs)}")
    if savelabeled or copy_videos or not opencv:
        logging.getLogger(__name__).warning("extract_outlier_frames: savelabeled / copy_videos / opencv=False are "
                                            "DeepLabCut options not built here; ignored")
    cfg = as_config(config)
    method = _post_track_method(cfg, track_method)
    return [extract_outliers(cfg, video, prefix, outlieralgorithm=outlieralgorithm,
                             extractionalgorithm=extractionalgorithm, comparisonbodyparts=comparisonbodyparts,
                             track_method=method, cluster_resizewidth=cluster_resizewidth,
                             cluster_color=cluster_color, seed=seed, frames2use=frames2use, epsilon=epsilon,
                             p_bound=p_bound, ARdegree=ARdegree, MAdegree=MAdegree, alpha=alpha)
            for video, prefix in _analysis_prefixes(cfg, videos, shuffle, trainingsetindex, snapshot, destfolder,
                                                    video_extensions or videotype or None)]


def accept_machine_labels(config, videos=None, pcutoff: float | None = None) -> list[Path]:
    """Ours, a scripted stand-in for DeepLabCut's refine GUI: each labeled-data folder's (``videos``: only
    theirs) machine labels of this iteration join its ``CollectedData_<scorer>.h5`` as they are (points with
    likelihood > ``pcutoff``, default config.yaml's; the rest unlabeled). Rows already in CollectedData are
    kept exactly. Returns the CollectedData files written."""
    from lightning_dlc.project.machine_labels import accept_machine_labels as accept

    cfg = as_config(config)
    root = cfg.root / "labeled-data"
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if videos is not None:
        stems = {Path(v).stem for v in ([videos] if isinstance(videos, (str, Path)) else videos)}
        folders = [p for p in folders if p.name in stems]
    return [path for path in (accept(cfg, folder, pcutoff) for folder in folders) if path is not None]


def merge_datasets(config, forceiterate: int | None = None) -> int:
    """DeepLabCut's merge_datasets: every labeled-data folder labeled or refined (``CollectedData_<scorer>.h5``)
    -> config.yaml's ``iteration`` + 1 (or ``forceiterate``), written atomically with its comments. A folder with
    only machine labels (not refined) raises, naming it (DeepLabCut prints it and leaves the iteration). Then
    :func:`create_training_dataset` and :func:`train_network` for the new iteration; start it from the last
    one's model with ``train_network(config, snapshot_path=previous_iteration_snapshot(config))`` (or the
    shuffle's pytorch_config.yaml ``resume_training_from``, or ``overrides=["model.weights=<snapshot>"]``):
    the whole model's weights, epochs counted from 0. Returns the new iteration."""
    from lightning_dlc.project.machine_labels import merge_datasets as merge

    return merge(config, forceiterate)


def previous_iteration_snapshot(config, shuffle: int = 1, trainingsetindex: int = 0, snapshot="best",
                                iteration: int | None = None, modelprefix: str = "") -> Path:
    """Ours: the ``snapshot`` (best, last or an index) of the shuffle's model in ``iteration`` (default: the
    iteration before config.yaml's), to start the next iteration from (:func:`merge_datasets`)."""
    from lightning_dlc.pipelines.refine import previous_iteration_snapshot as previous

    cfg = as_config(config)
    return previous(cfg, _training_fraction(cfg, trainingsetindex), shuffle, modelprefix, snapshot, iteration)


# --------------------------------------------------------------------------- conditional top-down (CTD)
def _is_ctd_snapshot(path) -> bool:
    from lightning_dlc.pipelines.ctd import is_ctd_snapshot

    return is_ctd_snapshot(path)


def _ctd_conditions_snapshot(cfg, ctd_snapshot: Path, conditions, trainingsetindex: int,
                             analysis: bool = False) -> Path | None:
    """The bottom-up snapshot whose poses a CTD model refines: a shuffle (int or DeepLabCut's dict with
    ``shuffle`` and ``snapshot``/``snapshot_index``), a snapshot file or run folder; None: the model folder's
    ``pytorch_config.yaml`` ``inference.conditions`` (DeepLabCut's rule), else what it was trained with."""
    if isinstance(conditions, int):
        conditions = {"shuffle": conditions}
    if isinstance(conditions, dict):
        unknown = set(conditions) - {"shuffle", "snapshot", "snapshot_index", "trainset_index"}
        if "shuffle" not in conditions or unknown:
            raise ValueError(f"ctd_conditions={conditions}: expected a dict with 'shuffle' and optionally 'snapshot' "
                             f"or 'snapshot_index' (DeepLabCut's form)")
        chosen = conditions.get("snapshot", conditions.get("snapshot_index", "best"))
        return _trained_snapshot(cfg, int(conditions["shuffle"]),
                                 int(conditions.get("trainset_index", trainingsetindex)), chosen)
    if conditions is None:
        return _recorded_ctd_conditions(cfg, ctd_snapshot, analysis)
    return Path(conditions)


def _recorded_ctd_conditions(cfg, ctd_snapshot: Path, analysis: bool) -> Path | None:
    """``inference.conditions`` of the CTD model folder's pytorch_config.yaml (create_training_dataset's
    ``ctd_conditions``): a shuffle's snapshot, a model's snapshot, or a predictions file (evaluation only)."""
    from lightning_dlc.project.pytorch_config import PYTORCH_CONFIG, read_pytorch_config
    from lightning_dlc.project.shuffle_pytorch_config import ctd_conditions_of

    path = (ctd_snapshot if ctd_snapshot.is_dir() else ctd_snapshot.parent) / PYTORCH_CONFIG
    recorded = ctd_conditions_of(read_pytorch_config(path), path) if path.is_file() else None
    if recorded is None:
        return None
    if recorded["source"] == "file":
        if analysis:
            raise ValueError(f"{path}: inference.conditions is a predictions file ({recorded['filepath']}), which "
                             "serves evaluation only (DeepLabCut's rule): analyze with ctd_conditions=<bottom-up "
                             "shuffle> (or {'shuffle': n, 'snapshot': ...})")
        return recorded["filepath"]
    if recorded["source"] == "model":
        return recorded["snapshot_path"]
    if recorded["modelprefix"]:
        raise ValueError(f"{path}: inference.conditions names modelprefix {recorded['modelprefix']!r}, which is "
                         "not read here; pass ctd_conditions=<snapshot file>")
    project = as_config(recorded["config"]) if recorded["config"] else cfg
    if recorded["snapshot"] is not None:  # DeepLabCut's: a file name in the bottom-up model folder
        return _trained_snapshot(project, recorded["shuffle"], recorded["trainset_index"],
                                 _train_folder(project, recorded["shuffle"], recorded["trainset_index"])
                                 / recorded["snapshot"])
    index = -1 if recorded["snapshot_index"] is None else int(recorded["snapshot_index"])  # DeepLabCut: the last
    return _trained_snapshot(project, recorded["shuffle"], recorded["trainset_index"], index)


def ctd_analyze_videos(config, videos, ctd_snapshot, ctd_conditions=None, ctd_tracking=False,
                       trainingsetindex: int = 0, destfolder=None, cropping=None, **options):
    """A CTD snapshot analyzes videos with a bottom-up snapshot's poses as its conditions (see
    :func:`analyze_videos`; :func:`lightning_dlc.pipelines.ctd.analyze_videos_ctd`)."""
    from lightning_dlc.pipelines.ctd import analyze_videos_ctd

    cfg = as_config(config)
    bottom_up = _ctd_conditions_snapshot(cfg, Path(ctd_snapshot), ctd_conditions, trainingsetindex, analysis=True)
    if cropping is None and cfg.data.get("cropping"):
        cropping = [cfg.data.get(k) for k in ("x1", "x2", "y1", "y2")]
    return analyze_videos_ctd(ctd_snapshot, videos, destfolder, conditions=bottom_up, ctd_tracking=ctd_tracking,
                              project=cfg.path, crop=cropping, **options)
