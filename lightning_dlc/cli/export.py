"""Export a run: format=dlc (default) writes its snapshots into a DeepLabCut project's model folder (DeepLabCut 3.0.2
reads it), format=onnx its snapshot as ONNX with a JSON sidecar (analyze with backend=onnxruntime):
lightning-dlc export run=outputs/YYYY-MM-DD/HH-MM-SS config=/path/to/config.yaml [shuffle=1] [overwrite=true]
lightning-dlc export run=outputs/YYYY-MM-DD/HH-MM-SS format=onnx [out=DIR] [snapshot=best]"""
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_dlc.config_compose import CONF_DIR
from lightning_dlc.models.export import export_run

ONNX_KEYS = ("snapshot", "out", "detector", "opset")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="export")
def main(cfg: DictConfig) -> None:
    args = OmegaConf.to_container(cfg, resolve=True)
    fmt = args.pop("format")
    onnx = {key: args.pop(key) for key in ONNX_KEYS}
    if fmt == "onnx":
        from lightning_dlc.inference.onnx_runner import export_snapshot_onnx
        from lightning_dlc.inference.scorer import snapshot_from_args

        snapshot = snapshot_from_args(args["run"], onnx.pop("snapshot"))
        sidecar = export_snapshot_onnx(snapshot, onnx["out"], detector=onnx["detector"], overwrite=args["overwrite"],
                                       opset=onnx["opset"])
        print(f"ONNX: {sidecar.with_suffix('.onnx')} (sidecar {sidecar})")
    elif fmt == "dlc":
        if args["config"] is None:
            sys.exit("format=dlc needs the DeepLabCut project: config=/path/to/config.yaml")
        export_run(args.pop("run"), args.pop("config"), **args)
    else:
        sys.exit(f"format must be dlc or onnx, got {fmt!r}")


if __name__ == "__main__":
    main()
