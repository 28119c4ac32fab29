"""OmegaConf resolvers used by conf/ (registered when lightning_dlc is imported)."""
from omegaconf import OmegaConf


def register() -> None:
    # epochs_fraction:0.8,200 -> 160: a milestone that follows trainer.max_epochs
    OmegaConf.register_new_resolver("epochs_fraction", lambda f, total: int(round(float(f) * int(total))),
                                    replace=True)
    # times:0.1,1e-4 -> 1e-5: a value relative to another (a learning rate to optimizer.lr)
    OmegaConf.register_new_resolver("times", lambda a, b: float(f"{float(a) * float(b):.12g}"), replace=True)
    # minus:200,5 -> 195: epochs left after a warm-up
    OmegaConf.register_new_resolver("minus", lambda a, b: int(a) - int(b), replace=True)
    # max_if:true -> max, false -> min: Lightning's mode for a metric whose direction is key_metric_asc
    OmegaConf.register_new_resolver("max_if", lambda higher: "max" if str(higher).lower() == "true" else "min",
                                    replace=True)
