"""The LightningDataModule: a DeepLabCut shuffle, a COCO dataset or the demo project as loaders.

``source`` picks where the split comes from:

- ``dlc``: ``project`` is a DeepLabCut config.yaml (or its folder); the split is
  shuffle ``shuffle`` of ``TrainingFraction[trainset_index]``, which must exist.
- ``coco``: ``project`` is a COCO root (``annotations/{train,test}.json``, ``images/``).
- ``demo``: ``project`` is the folder of the demo project (``outputs/demo_project``
  by default); it is made with the ``demo`` settings if missing, and its shuffle
  created if missing. An existing project is reused, never overwritten.

Validation, testing and prediction use the test split.

``unlabeled`` (the ``unlabeled`` config group; None or empty: off) adds sequences of unlabeled video to
training: ``train_dataloader`` then returns ``CombinedLoader({"labeled": ..., "unlabeled": ...},
mode="max_size_cycle")`` (:mod:`lightning_dlc.data.unlabeled`), and the unlabeled images arrive normalized on
the batch's device. Validation, testing and prediction never change.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader

from lightning_dlc.data.dataset import PoseDataset, collate_pose
from lightning_dlc.data.normalize import normalize_images
from lightning_dlc.project.config import ProjectConfig
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.records import LabeledData, ProjectMeta

log = logging.getLogger(__name__)

SOURCES = ("dlc", "coco", "demo")
DEFAULT_DEMO_PROJECT = "outputs/demo_project"
PREDICT_SPLITS = ("train", "test", "all")
# keys of the ``unlabeled`` group (conf/unlabeled/videos.yaml)
UNLABELED_KEYS = ("videos", "seq_len", "batch_size", "reader", "num_workers", "frame_stride",
                  "max_sequences_per_epoch", "seed")


class PoseDataModule(L.LightningDataModule):
    def __init__(
        self,
        source: str = "dlc",
        project: str | None = None,
        shuffle: int = 1,
        trainset_index: int = 0,
        batch_size: int = 8,
        num_workers: int = 2,
        pin_memory: bool = True,
        resize: float | None = None,
        pad_multiple: int = 32,
        max_individuals: int | None = None,
        predict_split: str = "test",
        demo: Mapping | None = None,
        unlabeled: Mapping | None = None,
    ):
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"data.source must be one of {SOURCES}, got {source!r}")
        if predict_split not in PREDICT_SPLITS:
            raise ValueError(f"data.predict_split must be one of {PREDICT_SPLITS}, got {predict_split!r}")
        if project is None:
            if source != "demo":
                raise ValueError(f"data.project is required for source={source!r} "
                                 f"({'the config.yaml path' if source == 'dlc' else 'the COCO root folder'})")
            project = DEFAULT_DEMO_PROJECT
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be at least 1, got {batch_size}")
        demo = dict(demo or {})
        for key in ("out", "overwrite"):
            if key in demo:
                raise ValueError(f"data.demo.{key} is not a setting: the demo project goes to data.project "
                                 "and an existing one is never overwritten")
        unlabeled = dict(unlabeled or {})
        unknown = sorted(set(unlabeled) - set(UNLABELED_KEYS))
        if unknown:
            raise ValueError(f"unlabeled.{unknown[0]} is not a setting; the settings are {', '.join(UNLABELED_KEYS)}")
        if unlabeled and unlabeled.get("videos") in (None, "", []):
            raise ValueError("unlabeled.videos is empty: name video files or folders, or `project` for the "
                             "project's videos/ folder")
        self.save_hyperparameters()
        self.source = source
        self.project = Path(project).expanduser().resolve()
        self.shuffle = int(shuffle)
        self.trainset_index = int(trainset_index)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.resize = resize
        self.pad_multiple = int(pad_multiple)
        self.max_individuals = max_individuals
        self.predict_split = predict_split
        self.demo = demo
        self.unlabeled = unlabeled
        self.splits: dict[str, LabeledData] | None = None
        self._meta: ProjectMeta | None = None
        self.train_set: PoseDataset | None = None
        self.test_set: PoseDataset | None = None

    # --- where the data is ------------------------------------------------------------
    def _config(self) -> ProjectConfig:
        """The DeepLabCut config of a dlc or demo source (making the demo project if missing)."""
        if self.source == "demo":
            self._make_demo()
        elif not self.project.exists():
            raise ProjectError(self.project, "no such DeepLabCut project (data.project should be its config.yaml)")
        return ProjectConfig.read(self.project)

    def _make_demo(self) -> None:
        if self.project.is_file():
            raise ProjectError(self.project, "is a file; data.project should be the demo project's folder")
        if (self.project / "config.yaml").is_file():
            return
        if self.project.exists():
            raise ProjectError(self.project, "exists but holds no config.yaml, so it is not a demo project; "
                                             "remove it or choose another data.project")
        from lightning_dlc.data.demo import make_demo_project

        log.info("%s: making the demo project (%s)", self.project, self.demo or "default settings")
        make_demo_project(self.project, **self.demo)

    def _documentation_path(self, cfg: ProjectConfig) -> Path:
        from lightning_dlc.project.shuffles import documentation_path

        fractions = cfg.training_fractions
        if not 0 <= self.trainset_index < len(fractions):
            raise ProjectError(cfg.path, f"data.trainset_index={self.trainset_index} but TrainingFraction "
                                         f"lists {len(fractions)} fraction(s): {fractions}")
        return documentation_path(cfg, fractions[self.trainset_index], self.shuffle)

    def _ensure_demo_shuffle(self) -> None:
        cfg = self._config()
        if self._documentation_path(cfg).exists():
            return
        from lightning_dlc.project.shuffles import create_training_dataset

        log.info("%s: creating shuffle %d of the demo project", cfg.path, self.shuffle)
        create_training_dataset(cfg, shuffles=[self.shuffle])

    def _load_splits(self) -> dict[str, LabeledData]:
        if self.source == "coco":
            return self._load_coco()
        from lightning_dlc.project.shuffles import load_shuffle

        cfg = self._config()
        doc = self._documentation_path(cfg)
        if not doc.exists():
            raise ProjectError(doc, (
                f"shuffle {self.shuffle} (TrainingFraction={cfg.training_fractions[self.trainset_index]}) does "
                f"not exist yet; create it with `lightning-dlc create-training-dataset config={cfg.path} "
                f"Shuffles=[{self.shuffle}]` or lightning_dlc.api.create_training_dataset(config, "
                f"Shuffles=[{self.shuffle}])"))
        train, test = load_shuffle(cfg, self.shuffle, self.trainset_index)
        return {"train": train, "test": test}

    def _load_coco(self) -> dict[str, LabeledData]:
        from lightning_dlc.project.coco import load_coco

        if not self.project.is_dir():
            raise ProjectError(self.project, "no such COCO dataset folder (data.project should hold "
                                             "annotations/train.json and images/)")
        if (self.project / "annotations" / "test.json").exists():
            return load_coco(self.project)
        log.warning("%s: no annotations/test.json; training without a test split", self.project)
        train = load_coco(self.project, splits=("train",))["train"]
        return {"train": train, "test": LabeledData(train.meta, [], train.root)}

    # --- LightningDataModule ----------------------------------------------------------
    def prepare_data(self) -> None:
        """Make what is missing (the demo project and its shuffle); runs on one process only."""
        if self.source == "demo":
            self._ensure_demo_shuffle()

    def load_meta(self) -> ProjectMeta:
        """The dataset's metadata, without loading the split when it can (to build the model first)."""
        if self._meta is None:
            if self.source == "coco":
                self._set_splits(self._load_coco())
            else:
                self._meta = self._config().meta()
        return self._meta

    @property
    def meta(self) -> ProjectMeta:
        if self._meta is None:
            raise RuntimeError("PoseDataModule.meta is known after setup() or load_meta()")
        return self._meta

    @property
    def pcutoff(self) -> float | None:
        """config.yaml's pcutoff for DeepLabCut sources (None for COCO, which has no such setting)."""
        return None if self.source == "coco" else self._config().pcutoff

    def _set_splits(self, splits: dict[str, LabeledData]) -> None:
        self.splits = splits
        self._meta = splits["train"].meta
        kwargs = dict(resize=self.resize, max_individuals=self.max_individuals)
        self.train_set = PoseDataset(splits["train"], **kwargs)
        self.test_set = PoseDataset(splits["test"], **kwargs)

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        if self.source == "demo":
            self._ensure_demo_shuffle()  # done already if prepare_data ran; setup alone works too
        splits = self._load_splits()
        if not len(splits["train"]):
            raise ProjectError(self.project, "the training split has no images")
        if splits["train"].meta.identity:  # names that are not one animal each teach the identity head nonsense
            from lightning_dlc.project.identity_checks import warn_inconsistent_identities

            warn_inconsistent_identities(splits["train"].records + splits["test"].records,
                                         splits["train"].meta.individuals, str(self.project))
        self._set_splits(splits)
        log.info("%s: %d training and %d test images", self.project, len(splits["train"]), len(splits["test"]))

    @property
    def collate_fn(self):
        return functools.partial(collate_pose, pad_multiple=self.pad_multiple)

    def _pin(self) -> bool:
        """``pin_memory`` only helps copies to a CUDA device: elsewhere torch warns and ignores it."""
        if not self.pin_memory:
            return False
        if self.trainer is not None:  # the Trainer's choice (accelerator=cpu on a CUDA machine: no pinning)
            return isinstance(self.trainer.accelerator, CUDAAccelerator)
        return torch.cuda.is_available()

    def _loader(self, dataset: PoseDataset, train: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train and len(dataset) > self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self._pin(),
            persistent_workers=self.num_workers > 0,
            collate_fn=self.collate_fn,
        )

    def _require_setup(self) -> None:
        if self.train_set is None:
            self.setup()

    def train_dataloader(self) -> DataLoader | CombinedLoader:
        self._require_setup()
        labeled = self._loader(self.train_set, train=True)
        if not self.unlabeled:
            return labeled
        return CombinedLoader({"labeled": labeled, "unlabeled": self._unlabeled_loader(len(labeled))},
                              mode="max_size_cycle")

    def _unlabeled_loader(self, labeled_steps: int) -> DataLoader:
        """Sequences of unlabeled video, this process's share, at most as many batches as the labeled loader's
        (``max_size_cycle`` would otherwise stretch the epoch to the unlabeled loader's length)."""
        from lightning_dlc.data.dali_reader import dali_available
        from lightning_dlc.data.unlabeled import UnlabeledSequences

        cfg = self.unlabeled
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        root = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        reader = cfg.get("reader", "auto")
        batch_size = int(cfg.get("batch_size", 2))
        # DALI decodes on the training GPU when it can; CUDA work stays in this process (no worker processes)
        gpu = root.type == "cuda" and reader != "opencv" and dali_available()
        workers = 0 if gpu else int(cfg.get("num_workers", 0))
        n_batches = labeled_steps
        if cfg.get("max_sequences_per_epoch") is not None:  # all processes together
            n_batches = min(n_batches, max(1, -(-int(cfg["max_sequences_per_epoch"]) // (world * batch_size))))
        project = None if self.source == "coco" else self._config().path.parent
        dataset = UnlabeledSequences(
            cfg["videos"], seq_len=int(cfg.get("seq_len", 5)), batch_size=batch_size,
            frame_stride=int(cfg.get("frame_stride", 1)), reader=reader, device=root if gpu else "cpu",
            resize=self.resize, pad_multiple=self.pad_multiple, n_batches=n_batches, rank=rank, world_size=world,
            seed=int(cfg.get("seed", 0)), project=project)
        return DataLoader(dataset, batch_size=None, num_workers=workers, pin_memory=not gpu and self._pin(),
                          persistent_workers=workers > 0)  # persistent: workers count the epochs (new orders)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Unlabeled frames normalized on the batch's device, as labeled images are in the training step."""
        if isinstance(batch, Mapping) and isinstance(batch.get("unlabeled"), Mapping) and "labeled" in batch:
            unlabeled = dict(batch["unlabeled"])
            images = unlabeled["images"]
            unlabeled["images"] = normalize_images(images.flatten(0, 1)).unflatten(0, images.shape[:2])
            batch = {**batch, "unlabeled": unlabeled}
        return batch

    def val_dataloader(self) -> DataLoader | list:
        """The test split; an empty one gives no validation (with a warning), not an error."""
        self._require_setup()
        if not len(self.test_set):
            log.warning("%s: the test split is empty; training without validation", self.project)
            return []
        return self._loader(self.test_set, train=False)

    def test_dataloader(self) -> DataLoader:
        self._require_setup()
        if not len(self.test_set):
            raise ProjectError(self.project, "the test split is empty: nothing to test on")
        return self._loader(self.test_set, train=False)

    @property
    def predict_data(self) -> LabeledData:
        """The records predict_dataloader yields, in order (batch ``index`` points into them)."""
        self._require_setup()
        if self.predict_split == "all":
            train = self.splits["train"]
            return LabeledData(train.meta, train.records + self.splits["test"].records, train.root)
        return self.splits[self.predict_split]

    def predict_dataloader(self) -> DataLoader:
        dataset = PoseDataset(self.predict_data, resize=self.resize, max_individuals=self.max_individuals)
        if not len(dataset):
            raise ProjectError(self.project, f"the {self.predict_split} split is empty: nothing to predict")
        return self._loader(dataset, train=False)
