"""What the segmentation methods share (seg_source_only, seg_adv, clan): the classifier heads, evaluation
as mIoU / per-class IoU / pixel accuracy on the source and target test scenes, the poly learning rate of
DeepLab, and a PNG of predicted target maps.

A batch is the classification one with masks for labels: src_x B x C x H x W, src_y B x H x W (uint8
class ids, 10 = background on digit scenes). `heads` holds the net's classifier and, for co-training
methods, fresh copies of it; the prediction is the sum of the heads' logits (CLAN: p = p1 + p2).
Logged: test/{src,tgt}_{miou,pixel_acc}, test/{src,tgt}_iou_<class>, and the val-split curves val/src_* and
val/tgt_*_oracle (base.metric_key). The snapshot validators (da_bench/snapshots.py) score `pixels_per_image`
fixed pixels of each val scene as samples (features = logits; src_acc and oracle are pixel accuracies there);
each pick reports test mIoU.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from da_bench.methods.base import DOMAINS, OPTIMIZER_ARGS, metric_key
from da_bench.nets.segnet import upsample

# 10 digit colours + black background for the prediction grid
PALETTE = torch.tensor([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                        [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
                        [0, 0, 0]], dtype=torch.uint8)


class SegMethod(pl.LightningModule):
    uses_target_labels = False
    target_metric = "test/tgt_miou"

    def __init__(self, net: nn.Module, optimizer: Callable | None = None, poly_power: float | None = 0.9,
                 num_heads: int = 1, grid_images: int = 8, warmup_fraction: float = 0.0,
                 head_lr_multiplier: float = 1.0, pixels_per_image: int = 16):
        super().__init__()
        self.save_hyperparameters(ignore=["net", *OPTIMIZER_ARGS], logger=False)
        self.net, self.optimizer = net, optimizer
        if not isinstance(getattr(net, "classifier", None), nn.Conv2d):
            raise ValueError(f"{type(self).__name__} segments scenes; {type(net).__name__} has no per-pixel classifier. "
                             "Use data=mnist_mnistm_seg or usps_mnist_seg")
        extra = [copy.deepcopy(net.classifier) for _ in range(num_heads - 1)]
        for head in extra:
            head.reset_parameters()  # the co-training heads start apart
        self.heads = nn.ModuleList([net.classifier, *extra])
        self.num_classes = net.classifier.out_channels
        self.iou = nn.ModuleDict({f"{s}_{d}": MulticlassJaccardIndex(self.num_classes, average="none")
                                  for s in ("val", "test") for d in DOMAINS})
        self.pixel_acc = nn.ModuleDict({f"{s}_{d}": MulticlassAccuracy(self.num_classes, average="micro")
                                        for s in ("val", "test") for d in DOMAINS})

    @property
    def progress(self) -> float:
        return min(1.0, self.global_step / max(1, self.trainer.max_steps))

    def head_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each head's logits at pixel resolution: [B x K x H x W] * num_heads."""
        features = self.net.encoder(x)
        return [upsample(head(features), x.shape[-2:]) for head in self.heads]

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.head_logits(x)).sum(0)

    def lr_factor(self, i: int) -> float:
        """lr_i / lr_0: a linear warm-up i / W over the first warmup_fraction of training (CLAN's code, W its
        preheat), then (1 - i / max_steps)^power (DeepLab / CLAN); constant when poly_power is None."""
        power, total = self.hparams.poly_power, max(1, self.trainer.max_steps)
        warmup = round(self.hparams.warmup_fraction * total)
        if i < warmup:
            return i / warmup
        return 1.0 if power is None else max(0.0, 1 - i / total) ** power

    def poly_scheduler(self, optimizer) -> LambdaLR:
        """lr_factor for every param group; the generator's heads group (the last) x head_lr_multiplier."""
        groups = len(optimizer.param_groups)
        return LambdaLR(optimizer, [
            (lambda i, m=(self.hparams.head_lr_multiplier if g == 1 else 1.0): m * self.lr_factor(i))
            for g in range(groups)])

    def generator_parameters(self) -> list[dict]:
        """Two param groups, each parameter once: the trunk (encoder), then every head (heads[0] is
        net.classifier; a parameter listed twice would get two optimiser steps per iteration)."""
        heads = {id(p) for p in self.heads.parameters()}
        return [{"params": [p for p in self.net.parameters() if id(p) not in heads]},
                {"params": list(self.heads.parameters())}]

    def configure_optimizers(self):
        optimizer = self.optimizer(params=self.generator_parameters())
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.poly_scheduler(optimizer), "interval": "step"}}

    def sample_pixels(self, t: torch.Tensor) -> torch.Tensor:
        """B x [K x] H x W -> (B * P) [x K]: the same P = pixels_per_image fixed pixel positions of every image,
        the samples the snapshot validators score (a scene is mostly background: all its pixels would be
        millions of near-duplicates)."""
        flat = t.flatten(-2)
        if getattr(self, "_pixels", None) is None or self._pixels.device != t.device:
            g = torch.Generator().manual_seed(0)
            self._pixels = torch.randperm(flat.shape[-1], generator=g)[: self.hparams.pixels_per_image].to(t.device)
        picked = flat[..., self._pixels]
        return picked.transpose(1, 2).reshape(-1, t.shape[1]) if t.dim() == 4 else picked.reshape(-1)

    def embed(self, x: torch.Tensor, domain: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits) of the sampled pixels, both the summed heads' logits (B * P) x K."""
        logits = self.sample_pixels(self.segment(x))
        return logits, logits

    def _evaluate(self, batch, dataloader_idx: int, stage: str) -> dict:
        x, y = batch
        key = f"{stage}_{DOMAINS[dataloader_idx]}"
        logits = self.segment(x)
        pred = logits.argmax(1)
        self.iou[key].update(pred, y.long())
        self.pixel_acc[key].update(pred, y.long())
        if stage == "test" and dataloader_idx == 1 and not hasattr(self, "_grid"):
            self._grid = (x[: self.hparams.grid_images], y[: self.hparams.grid_images], pred[: self.hparams.grid_images])
        sampled = self.sample_pixels(logits)
        return {"features": sampled, "logits": sampled, "labels": self.sample_pixels(y)}

    def _log_epoch(self, stage: str) -> None:
        for domain in DOMAINS:
            key = f"{stage}_{domain}"
            if not self.pixel_acc[key].update_called:
                continue
            per_class = self.iou[key].compute()
            self.log(metric_key(stage, domain, "miou"), per_class.mean())
            self.log(metric_key(stage, domain, "pixel_acc"), self.pixel_acc[key].compute())
            if stage == "test":
                for c, value in enumerate(per_class):
                    self.log(f"test/{domain}_iou_{'bg' if c == self.num_classes - 1 else c}", value)
            self.iou[key].reset()
            self.pixel_acc[key].reset()

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        return self._evaluate(batch, dataloader_idx, "val")

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        self._evaluate(batch, dataloader_idx, "test")

    def on_validation_epoch_end(self):
        self._log_epoch("val")

    def on_test_epoch_end(self):
        self._log_epoch("test")
        if hasattr(self, "_grid"):
            self.save_prediction_grid(*self._grid)
            del self._grid

    def save_prediction_grid(self, x, y, pred) -> None:
        """predictions.png next to the run: rows = target test scene, true mask, predicted mask."""
        from torchvision.utils import save_image

        low, high = x.amin((1, 2, 3), keepdim=True), x.amax((1, 2, 3), keepdim=True)
        image = ((x - low) / (high - low + 1e-8)).expand(-1, 3, -1, -1)  # each scene stretched to [0, 1]
        colour = lambda m: PALETTE.to(m.device)[m.long()].permute(0, 3, 1, 2).float() / 255
        rows = torch.cat([image.float(), colour(y), colour(pred)])
        save_image(rows.cpu(), Path(self.trainer.default_root_dir) / "predictions.png", nrow=len(x), padding=1)
