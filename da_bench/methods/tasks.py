"""What a method is evaluated on: the task object every `Method` holds (methods/base.py).

A task owns the metrics and the evaluation of one kind of prediction, so that every method, whatever it
predicts, gets the same val / test steps, curves, snapshot outputs and test scoring:

- `Classification`: accuracy of `method.classify(x, domain)`; the snapshot validators read the classifier's last
  hidden layer and the logits (`method.encoder_for(domain)`, `method.classifier_for(domain)`).
- `Segmentation`: mIoU, per-class IoU and pixel accuracy of `method.segment(x)`; the validators read
  `pixels_per_image` fixed pixels of each scene as samples (features = logits), and test scenes are drawn to
  predictions.png.

Logged keys: `metric_key(stage, domain, name)`, e.g. val/src_acc, test/tgt_miou; a curve on the target val
split reads target labels and is named as the oracle's (val/tgt_acc_oracle).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassJaccardIndex

DOMAINS = ("src", "tgt")
STAGES = ("val", "test")


def metric_key(stage: str, domain: str, name: str) -> str:
    """'val/src_acc', 'test/tgt_acc', ...; 'val/tgt_acc_oracle' for the target val curve."""
    return f"{stage}/{domain}_{name}" + ("_oracle" if (stage, domain) == ("val", "tgt") else "")


class Classification(nn.Module):
    target_metric = "test/tgt_acc"

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.accuracy = nn.ModuleDict({f"{s}_{d}": MulticlassAccuracy(num_classes, average="micro")
                                       for s in STAGES for d in DOMAINS})
        self.confusion = MulticlassConfusionMatrix(num_classes)  # the target test set's (no state in checkpoints)
        self.test_confusion: list[list[int]] | None = None

    @staticmethod
    def embed(method, x: torch.Tensor, domain: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(features B x D: the classifier's last hidden layer, or the encoder output for a one-layer head;
        logits B x C)."""
        features = method.encoder_for(domain)(x)
        activations = [features, *method.net.head_activations(features, method.classifier_for(domain))]
        return activations[-2], activations[-1]

    def evaluate(self, method, x, y, domain: str, stage: str) -> dict:
        features, logits = self.embed(method, x, domain)
        metric = self.accuracy[f"{stage}_{domain}"]
        metric.update(logits, y)
        if stage == "test" and domain == "tgt":
            self.confusion.update(logits, y)
        method.log(metric_key(stage, domain, "acc"), metric, on_step=False, on_epoch=True, add_dataloader_idx=False)
        return {"features": features, "logits": logits, "labels": self.snapshot_labels(y)}

    @staticmethod
    def snapshot_labels(y: torch.Tensor) -> torch.Tensor:
        """The labels of the samples `embed` returns: one per image."""
        return y

    def end_epoch(self, method, stage: str) -> None:
        """After the test: the target test confusion matrix (rows: true class, columns: predicted), for
        metrics.json. The accuracy objects are logged per epoch by Lightning."""
        if stage == "test":
            self.test_confusion = self.confusion.compute().long().tolist()
            self.confusion.reset()

    @torch.no_grad()
    def test_scores(self, method, loaders) -> dict[str, float]:
        """{'test/src_acc', 'test/tgt_acc'} of the method's current weights (a snapshot's)."""
        result = {}
        for loader, domain in zip(loaders, DOMAINS):
            correct = total = 0
            for x, y in loader:
                correct += (method.classify(x.to(method.device), domain).argmax(1).cpu() == y.cpu()).sum().item()
                total += len(y)
            result[f"test/{domain}_acc"] = correct / max(1, total)
        return result


# 10 digit colours + black background for the prediction grid
PALETTE = torch.tensor([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                        [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
                        [0, 0, 0]], dtype=torch.uint8)


class Segmentation(nn.Module):
    target_metric = "test/tgt_miou"

    def __init__(self, num_classes: int, pixels_per_image: int = 16, grid_images: int = 8):
        super().__init__()
        self.num_classes, self.pixels_per_image, self.grid_images = num_classes, pixels_per_image, grid_images
        self.iou = nn.ModuleDict({f"{s}_{d}": MulticlassJaccardIndex(num_classes, average="none")
                                  for s in STAGES for d in DOMAINS})
        self.pixel_acc = nn.ModuleDict({f"{s}_{d}": MulticlassAccuracy(num_classes, average="micro")
                                        for s in STAGES for d in DOMAINS})
        self._pixels = None
        self._grid = None

    def sample_pixels(self, t: torch.Tensor) -> torch.Tensor:
        """B x [K x] H x W -> (B * P) [x K]: the same P fixed pixel positions of every scene (a scene is mostly
        background: all its pixels would be millions of near-duplicate samples)."""
        flat = t.flatten(-2)
        if self._pixels is None or self._pixels.device != t.device:
            g = torch.Generator().manual_seed(0)
            self._pixels = torch.randperm(flat.shape[-1], generator=g)[: self.pixels_per_image].to(t.device)
        picked = flat[..., self._pixels]
        return picked.transpose(1, 2).reshape(-1, t.shape[1]) if t.dim() == 4 else picked.reshape(-1)

    def embed(self, method, x: torch.Tensor, domain: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.sample_pixels(method.segment(x))
        return logits, logits

    def evaluate(self, method, x, y, domain: str, stage: str) -> dict:
        key = f"{stage}_{domain}"
        logits = method.segment(x)
        pred = logits.argmax(1)
        self.iou[key].update(pred, y.long())
        self.pixel_acc[key].update(pred, y.long())
        if stage == "test" and domain == "tgt" and self._grid is None:
            self._grid = (x[: self.grid_images], y[: self.grid_images], pred[: self.grid_images])
        sampled = self.sample_pixels(logits)
        return {"features": sampled, "logits": sampled, "labels": self.snapshot_labels(y)}

    def snapshot_labels(self, y: torch.Tensor) -> torch.Tensor:
        """The labels of the samples `embed` returns: those of the sampled pixels."""
        return self.sample_pixels(y)

    def end_epoch(self, method, stage: str) -> None:
        for domain in DOMAINS:
            key = f"{stage}_{domain}"
            if not self.pixel_acc[key].update_called:
                continue
            per_class = self.iou[key].compute()
            method.log(metric_key(stage, domain, "miou"), per_class.mean())
            method.log(metric_key(stage, domain, "pixel_acc"), self.pixel_acc[key].compute())
            if stage == "test":
                for c, value in enumerate(per_class):
                    method.log(f"test/{domain}_iou_{'bg' if c == self.num_classes - 1 else c}", value)
            self.iou[key].reset()
            self.pixel_acc[key].reset()
        if stage == "test" and self._grid is not None:
            save_prediction_grid(Path(method.trainer.default_root_dir) / "predictions.png", *self._grid)
            self._grid = None

    @torch.no_grad()
    def test_scores(self, method, loaders) -> dict[str, float]:
        """{'test/src_miou', 'test/tgt_miou'} of the method's current weights (a snapshot's)."""
        result = {}
        for loader, domain in zip(loaders, DOMAINS):
            iou = MulticlassJaccardIndex(self.num_classes, average="none").to(method.device)
            for x, y in loader:
                iou.update(method.segment(x.to(method.device)).argmax(1), y.to(method.device).long())
            result[f"test/{domain}_miou"] = iou.compute().mean().item()
        return result


def save_prediction_grid(path: Path, x, y, pred) -> None:
    """Rows: target test scene, true mask, predicted mask."""
    from torchvision.utils import save_image

    low, high = x.amin((1, 2, 3), keepdim=True), x.amax((1, 2, 3), keepdim=True)
    image = ((x - low) / (high - low + 1e-8)).expand(-1, 3, -1, -1)  # each scene stretched to [0, 1]
    colour = lambda m: PALETTE.to(m.device)[m.long()].permute(0, 3, 1, 2).float() / 255
    rows = torch.cat([image.float(), colour(y), colour(pred)])
    save_image(rows.cpu(), path, nrow=len(x), padding=1)
