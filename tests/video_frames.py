"""Reference decoding for tests: every frame OpenCV decodes, independent of our readers."""
import cv2
import numpy as np


def decode_rgb(path) -> np.ndarray:
    """All frames of a video as RGB uint8 ``[n, H, W, 3]``."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    return np.stack(frames)
