"""Losses that need no labels (semi-supervised training on unlabeled video) and the keypoints they read."""
