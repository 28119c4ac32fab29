"""Conditional top-down (CTD) crops at inference: the same context around a condition as in training."""
import torch

from lightning_dlc.data.crops import crop_transforms, to_crop
from lightning_dlc.models import ctd_crops
from lightning_dlc.models.top_down import TopDown


class Echo(torch.nn.Module):
    """A stand-in CTD model: predicts its condition (crop pixels) and remembers what it was given."""

    conditional = True

    def __init__(self, top_down: TopDown):
        super().__init__()
        self.top_down = top_down

    def forward(self, images, conditions):
        self.seen = conditions
        return {}

    def predict(self, outputs):
        return {"bodypart": self.seen[:, None]}


def test_inference_crops_resized_images_with_the_training_margin():
    # training boxes are conditions + margin * scale (margin in original pixels, ctd_crops.training_crops);
    # inference on images resized by the same scale must crop the same boxes, else the animal looks smaller
    top_down, scale = TopDown(crop_size=(64, 64), margin=20), 0.5
    images = torch.zeros((1, 3, 100, 100), dtype=torch.uint8)
    conditions = torch.tensor([[[[30.0, 40, 1], [45, 42, 1], [60, 50, 1]]]])
    model = Echo(top_down)
    refined = ctd_crops.predict(model, images, conditions, scale=scale)
    sizes = torch.tensor([[[100, 100]]])
    box = ctd_crops.condition_boxes(conditions, sizes, top_down.margin * scale)[0]  # as training crops it
    expected = to_crop(conditions[0], crop_transforms(box, top_down.crop_size))
    torch.testing.assert_close(model.seen, expected)
    torch.testing.assert_close(refined[..., :2], conditions[..., :2])  # and back to image pixels
