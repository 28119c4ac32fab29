"""Looking at results: labeled images and videos, plots, FiftyOne datasets."""
