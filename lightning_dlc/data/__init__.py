"""Records -> tensors: datasets, the datamodule, augmentation, video readers, drawing on images, the demo project."""
