"""All of DeepLabCut's pose metrics at once: RMSE, OKS mAP/mAR and detection RMSE, as DeepLabCut 3 reports them.

Plain functions over numpy arrays, used by validation during training and by
evaluation. Numbers equal those of ``deeplabcut.core.metrics`` (checked by
``tests/evaluation/test_metrics_deeplabcut.py``); everything is vectorized, the
only Python loops run over images (and, for detection RMSE, over the ground-truth
individuals of an image). One job per module, each documenting DeepLabCut's
conventions it follows: :mod:`~lightning_dlc.evaluation.inputs` (input forms,
cleaning), :mod:`~lightning_dlc.evaluation.matching` (OKS, greedy matching),
:mod:`~lightning_dlc.evaluation.rmse` (RMSE, detection RMSE),
:mod:`~lightning_dlc.evaluation.oks_map` (mAP/mAR).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lightning_dlc.evaluation.inputs import prepare_all, prepare_unique
from lightning_dlc.evaluation.oks_map import oks_map_prepared
from lightning_dlc.evaluation.rmse import rmse_detections_prepared, rmse_prepared

__all__ = ["compute_metrics"]


def compute_metrics(
    predictions,
    ground_truth,
    pcutoff=0.6,
    oks_sigma: float | np.ndarray = 0.1,
    *,
    oks_bbox_margin: float = 0.0,
    single_animal: bool | None = None,
    unique_predictions=None,
    unique_ground_truth=None,
    detections=None,
    bodyparts: Sequence[str] | None = None,
    unique_bodyparts: Sequence[str] | None = None,
    return_per_bodypart: bool = False,
):
    """RMSE, OKS mAP/mAR (and detection RMSE) like DeepLabCut's ``compute_metrics``.

    Returns a flat dict of floats: ``rmse``, ``rmse_pcutoff``, ``mAP``, ``mAR``
    (percent), plus ``rmse_detections`` and ``rmse_detections_pcutoff`` when
    ``detections`` is given (pass ``detections=predictions`` for DeepLabCut's
    own variant, computed on the assembled predictions). As in DeepLabCut,
    ``oks_sigma`` and ``oks_bbox_margin`` apply to mAP/mAR; matching for RMSE
    always uses sigma 0.1 and no margin. DeepLabCut's evaluation uses
    ``single_animal = (max_num_animals == 1)`` and pcutoff from config.yaml
    (0.6); its validation during training uses ``single_animal=False`` and 0.6.

    With ``return_per_bodypart=True`` returns ``(scores, table)``, ``table`` a
    dict of equal-length lists (one row per bodypart, then unique bodypart;
    ``pandas.DataFrame(table)``): ``bodypart``, ``unique``, ``rmse``,
    ``rmse_pcutoff``, ``n``, ``n_pcutoff`` (and ``rmse_detections``,
    ``rmse_detections_pcutoff`` with ``detections``).

    Empty or all-NaN predictions give NaN RMSE and mAP = mAR = 0; cost is linear
    in the number of predicted individuals (no combinatorial matching).
    """
    data = prepare_all(predictions, ground_truth)
    uniq = prepare_unique(unique_predictions, unique_ground_truth, len(data.images))
    r = rmse_prepared(data, uniq, pcutoff, single_animal, 0.0)
    scores = {"rmse": r["rmse"], "rmse_pcutoff": r["rmse_pcutoff"]}
    scores.update(oks_map_prepared(data.images, oks_sigma, oks_bbox_margin))
    det = None
    if detections is not None:
        det_data = data if detections is predictions else prepare_all(detections, ground_truth)
        if len(det_data.images) != len(data.images):
            raise ValueError(f"{len(det_data.images)} detection images but {len(data.images)} images")
        det = rmse_detections_prepared(det_data, uniq, pcutoff)
        scores["rmse_detections"] = det["rmse_detections"]
        scores["rmse_detections_pcutoff"] = det["rmse_detections_pcutoff"]
    if not return_per_bodypart:
        return scores

    n_all = len(r["rmse_per_bodypart"])
    k = data.k
    names = list(bodyparts) if bodyparts is not None else [str(i) for i in range(k)]
    u_names = (
        list(unique_bodyparts) if unique_bodyparts is not None else [f"unique_{i}" for i in range(n_all - k)]
    )
    if len(names) != k or len(u_names) != n_all - k:
        raise ValueError(
            f"{len(names)} bodypart and {len(u_names)} unique bodypart names for "
            f"{k} bodyparts and {n_all - k} unique bodyparts"
        )
    table = {
        "bodypart": names + u_names,
        "unique": [False] * k + [True] * (n_all - k),
        "rmse": r["rmse_per_bodypart"].tolist(),
        "rmse_pcutoff": r["rmse_pcutoff_per_bodypart"].tolist(),
        "n": r["n_per_bodypart"].tolist(),
        "n_pcutoff": r["n_pcutoff_per_bodypart"].tolist(),
    }
    if det is not None:
        table["rmse_detections"] = det["rmse_detections_per_bodypart"].tolist()
        table["rmse_detections_pcutoff"] = det["rmse_detections_pcutoff_per_bodypart"].tolist()
    return scores, table
