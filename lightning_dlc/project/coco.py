"""COCO keypoint datasets (``annotations/{train,test}.json`` + ``images/``) <-> records.

Reads any COCO keypoint file: bodyparts come from the keypoint category, the
maximum number of individuals from the busiest image. What COCO has no field for
(individual names, unique bodyparts) rides in optional keys our export writes:
``individual`` on each annotation, ``individuals`` and ``identity`` on the
category, and a second category named ``single`` holding unique bodyparts.
"""
from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np

from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.images import image_shape
from lightning_dlc.project.io import atomic_path
from lightning_dlc.project.records import (
    NOT_LABELED,
    UNIQUE_INDIVIDUAL,
    LabeledData,
    PoseRecord,
    ProjectMeta,
    boxes_from_keypoints,
)

SPLITS = ("train", "test")


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise ProjectError(path, "no such COCO annotation file")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProjectError(path, f"not valid JSON: {e}") from e
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ProjectError(path, f"missing the COCO list {key!r}")
    return data


def _categories(data: dict, path: Path) -> tuple[dict, dict | None]:
    keypoint_cats = [c for c in data["categories"] if c.get("keypoints")]
    animals = [c for c in keypoint_cats if c.get("name") != UNIQUE_INDIVIDUAL]
    if len(animals) != 1:
        raise ProjectError(path, f"expected one keypoint category for the animals, found "
                                 f"{[c.get('name') for c in animals]}")
    unique = [c for c in keypoint_cats if c.get("name") == UNIQUE_INDIVIDUAL]
    return animals[0], (unique[0] if unique else None)


def _meta(files: dict[str, tuple[Path, dict]]) -> ProjectMeta:
    """Metadata over all splits, so train and test records have the same shapes."""
    (path, first), *rest = files.values()
    animal, unique = _categories(first, path)
    for other_path, other in rest:
        other_animal, other_unique = _categories(other, other_path)
        if other_animal["keypoints"] != animal["keypoints"]:
            raise ProjectError(other_path, f"keypoints {other_animal['keypoints']} differ from "
                                           f"{animal['keypoints']} in {path}")
    bodyparts = tuple(animal["keypoints"])
    names = list(animal.get("individuals") or [])
    most = 0
    for _, data in files.values():
        per_image = defaultdict(int)
        for ann in data["annotations"]:
            if ann.get("category_id") == animal["id"]:
                per_image[ann["image_id"]] += 1
                name = ann.get("individual")
                if name is not None and name not in names:
                    names.append(name)
        most = max([most, *per_image.values()])
    if len(names) < most:
        names += [f"individual{i}" for i in range(len(names), most)]
    skeleton = tuple((bodyparts[a - 1], bodyparts[b - 1]) for a, b in animal.get("skeleton") or [])
    return ProjectMeta(
        bodyparts=bodyparts,
        individuals=tuple(names) or ("individual0",),
        unique_bodyparts=tuple(unique["keypoints"]) if unique else (),
        skeleton=skeleton,
        identity=bool(animal.get("identity", False)),
    )


def _keypoints(ann: dict, n: int, path: Path) -> np.ndarray:
    flat = np.asarray(ann.get("keypoints", []), dtype=np.float64)
    if flat.size != 3 * n:
        raise ProjectError(path, f"annotation {ann.get('id')} has {flat.size} keypoint values, "
                                 f"expected {3 * n} (x, y, v for {n} keypoints)")
    kpts = flat.reshape(n, 3).astype(np.float32)
    kpts[kpts[:, 2] == NOT_LABELED, :2] = np.nan
    return kpts


def _records(path: Path, data: dict, images_dir: Path, meta: ProjectMeta) -> list[PoseRecord]:
    animal, unique = _categories(data, path)
    by_image = defaultdict(list)
    for ann in sorted(data["annotations"], key=lambda a: a.get("id", 0)):
        by_image[ann["image_id"]].append(ann)
    n_ind, n_bp, n_u = len(meta.individuals), len(meta.bodyparts), len(meta.unique_bodyparts)
    records = []
    for image in data["images"]:
        file_name = str(image["file_name"])
        image_path = Path(file_name) if Path(file_name).is_absolute() else images_dir / file_name
        _, height, width = image_shape(image_path, listed_in=path)
        if (image.get("width"), image.get("height")) not in ((None, None), (width, height)):
            raise ProjectError(path, f"image {file_name!r} is {width}x{height} but listed as "
                                     f"{image.get('width')}x{image.get('height')}")
        keypoints = np.full((n_ind, n_bp, 3), np.nan, np.float32)
        keypoints[..., 2] = NOT_LABELED
        boxes = np.full((n_ind, 4), np.nan, np.float32)
        unique_kpts = np.full((n_u, 3), np.nan, np.float32)
        unique_kpts[:, 2] = NOT_LABELED
        free = iter(range(n_ind))
        for ann in by_image.get(image["id"], []):
            if unique is not None and ann.get("category_id") == unique["id"]:
                unique_kpts = _keypoints(ann, n_u, path)
                continue
            if ann.get("category_id") != animal["id"]:
                continue
            name = ann.get("individual")
            slot = meta.individuals.index(name) if name is not None else next(free)
            keypoints[slot] = _keypoints(ann, n_bp, path)
            if ann.get("bbox"):
                x, y, w, h = (float(v) for v in ann["bbox"])
                boxes[slot] = (x, y, x + w, y + h)
        record = PoseRecord(image=image_path, key=file_name, size=(width, height), keypoints=keypoints,
                            unique_keypoints=unique_kpts, individuals=meta.individuals)
        # Keep the file's boxes where given; derive the rest from keypoints.
        record.boxes = np.where(np.isfinite(boxes), boxes, record.boxes)
        records.append(record)
    return records


def load_coco(root: str | Path, splits: tuple[str, ...] = SPLITS) -> dict[str, LabeledData]:
    """Read ``root/annotations/<split>.json`` for each split, images under ``root/images``."""
    root = Path(root)
    files = {}
    for split in splits:
        path = root / "annotations" / f"{split}.json"
        files[split] = (path, _load_json(path))
    meta = _meta(files)
    return {split: LabeledData(meta, _records(path, data, root / "images", meta), root)
            for split, (path, data) in files.items()}


def _to_coco(data: LabeledData, task: str) -> dict:
    meta = data.meta
    animal = {"id": 1, "name": task, "supercategory": "animal", "keypoints": list(meta.bodyparts),
              "skeleton": [[meta.bodyparts.index(a) + 1, meta.bodyparts.index(b) + 1]
                           for a, b in meta.skeleton if a in meta.bodyparts and b in meta.bodyparts],
              "individuals": list(meta.individuals), "identity": meta.identity}
    categories = [animal]
    if meta.unique_bodyparts:
        categories.append({"id": 2, "name": UNIQUE_INDIVIDUAL, "supercategory": "animal",
                           "keypoints": list(meta.unique_bodyparts), "skeleton": []})
    images, annotations = [], []

    def annotate(image_id: int, category_id: int, kpts: np.ndarray, box: np.ndarray, **extra):
        labeled = kpts[:, 2] != NOT_LABELED
        if not labeled.any():
            return
        flat = np.where(labeled[:, None], kpts, 0.0).astype(np.float64)
        x1, y1, x2, y2 = (float(v) for v in box.astype(np.float64))
        w, h = x2 - x1, y2 - y1
        annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category_id,
                            "keypoints": [float(v) for v in flat.ravel()], "num_keypoints": int(labeled.sum()),
                            "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0, **extra})

    for image_id, record in enumerate(data.records, start=1):
        width, height = record.size
        images.append({"id": image_id, "file_name": record.key, "width": width, "height": height})
        for name, kpts, box in zip(record.individuals, record.keypoints, record.boxes):
            annotate(image_id, 1, kpts, box, individual=name)
        if meta.unique_bodyparts:
            annotate(image_id, 2, record.unique_keypoints, boxes_from_keypoints(record.unique_keypoints[None])[0])
    return {"info": {"description": f"{task}, exported by lightning_dlc"},
            "images": images, "annotations": annotations, "categories": categories}


def write_coco(splits: dict[str, LabeledData], out: str | Path, task: str = "animal",
               copy_images: bool = True, overwrite: bool = False) -> Path:
    """Write each split as ``out/annotations/<split>.json``; images go under ``out/images/<key>``.

    With ``copy_images=False`` file names are absolute paths to the original images.
    """
    out = Path(out)
    for split, data in splits.items():
        coco = _to_coco(data, task)
        for image, record in zip(coco["images"], data.records):
            if copy_images:
                target = out / "images" / record.key
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    shutil.copy2(record.image, target)
            else:
                image["file_name"] = str(Path(record.image).resolve())
        with atomic_path(out / "annotations" / f"{split}.json", overwrite=overwrite) as tmp:
            tmp.write_text(json.dumps(coco, indent=1), encoding="utf-8")
    return out
