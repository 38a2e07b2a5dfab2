"""Config values checked before any data is read: one line naming the key, instead of a traceback deep in
Lightning or torch minutes later."""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from da_bench.errors import ConfigError
from da_bench.rules import LAST_STEP, SELECTION_RULES, VALIDATOR_NAMES


# key: (type, minimum or None); None values are allowed where the key is optional
RULES = {
    "seed": (int, 0),
    "snapshots": (int, 1),
    "jobs_per_gpu": (int, 1),
    "updates_per_step": (int, 1),
    "trainer.max_steps": (int, 1),
    "trainer.val_check_interval": (int, 1),
    "trainer.log_every_n_steps": (int, 1),
    "data.batch_size": (int, 1),
    "data.eval_batch_size": (int, 1),
    "data.num_workers": (int, 0),
    "data.split_seed": (int, 0),
    "data.image_size": (int, 1),
}


def validate_config(cfg: DictConfig) -> None:
    for key, (kind, minimum) in RULES.items():
        if OmegaConf.select(cfg, key, default="__absent__") == "__absent__":
            continue
        value = OmegaConf.select(cfg, key)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ConfigError(f"{key}={value!r}: expected {'an integer' if kind is int else kind.__name__}")
        if minimum is not None and value < minimum:
            raise ConfigError(f"{key}={value}: must be >= {minimum}")
    updates = cfg.get("updates_per_step", 1)
    for key in ("trainer.val_check_interval", "callbacks.model_checkpoint.every_n_train_steps"):
        interval = OmegaConf.select(cfg, key)
        if updates > 1 and isinstance(interval, int) and interval % updates:
            raise ConfigError(f"{key}={interval} is not a multiple of updates_per_step={updates}: Lightning checks "
                              "it once per training_step, i.e. every updates_per_step updates")
    if cfg.get("selection", LAST_STEP) not in SELECTION_RULES:
        raise ConfigError(f"selection={cfg.selection!r}: expected one of {', '.join(SELECTION_RULES)}")
    if cfg.get("optimized_metric", "im") not in VALIDATOR_NAMES:  # last_step has no score to optimise
        raise ConfigError(f"optimized_metric={cfg.optimized_metric!r}: expected one of {', '.join(VALIDATOR_NAMES)}")
    for side in ("source", "target"):
        val_size = OmegaConf.select(cfg, f"data.{side}.val_size")
        if val_size is not None and (not isinstance(val_size, int) or val_size < 0):
            raise ConfigError(f"data.{side}.val_size={val_size!r}: expected an integer >= 0")
