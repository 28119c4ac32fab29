"""The only room that knows about optimizers, schedulers, logging and checkpoints."""
