"""Records -> tensors: datasets, the datamodule, augmentation, video readers, the demo project."""
