"""The reference experiment's settings ("Dive into Deep Learning", 12.11).

LeNet trained by plain SGD (no momentum) at base rate 0.3, batch 128, for 30
epochs, under the ``cosine`` schedule unless another is named. `main.py` maps
its flags onto these fields; `train.train_and_evaluate` takes the result.
"""

import dataclasses
import math
from typing import Any

CONV_IMPLS = ("auto", "xla", "patches")
OPTIMIZERS = ("sgd", "adamw")
ADAMW_WEIGHT_DECAY = 1e-4  # optax.adamw's default
# Settings that do not shape a run's trajectory: a resumed run may change them.
NOT_TRAJECTORY = ("epochs", "data_dir", "resume", "progress")


@dataclasses.dataclass(frozen=True)
class Config:
  """One training run. Defaults are those of the reference experiment."""

  schedule: str | dict[str, Any] = "cosine"  # a name in schedules.SCHEDULES or an lrjax dict
  epochs: int = 30
  batch_size: int = 128
  learning_rate: float = 0.3  # the base rate of the named schedules
  optimizer: str = "sgd"  # "sgd" or "adamw"
  momentum: float = 0.0  # SGD's momentum (0: plain SGD, as the reference)
  weight_decay: float | None = None  # AdamW's (None: ADAMW_WEIGHT_DECAY)
  seed: int = 0  # initialisation and data order
  conv_impl: str = "auto"  # "auto": "patches" on CPU, "xla" elsewhere (see train.create_model)
  data_dir: str | None = None  # None: input_pipeline.default_data_dir()
  train_subset: int | None = None  # use the first N training images
  test_subset: int | None = None  # use the first N test images
  resume: bool = False
  progress: bool = False


def get_config() -> Config:
  """The reference experiment."""
  return Config()


def trajectory(config: Config) -> dict[str, Any]:
  """The settings that shape the run's trajectory (what ``--resume`` must keep)."""
  return {k: v for k, v in dataclasses.asdict(config).items() if k not in NOT_TRAJECTORY}


def check(config: Config) -> None:
  """Raises ValueError, naming the field, for a value no run can use."""
  for name in ("epochs", "batch_size", "train_subset", "test_subset"):
    x = getattr(config, name)
    if (x is not None or not name.endswith("subset")) and not (type(x) is int and x >= 1):
      raise ValueError(f"{name} must be an integer >= 1, got {x!r}")
  if not (isinstance(config.learning_rate, (int, float)) and 0 < config.learning_rate < math.inf):
    raise ValueError(f"learning_rate must be a finite number > 0, got {config.learning_rate!r}")
  for name in ("momentum", "weight_decay"):
    x = getattr(config, name)
    if x is not None and not (isinstance(x, (int, float)) and 0 <= x < math.inf):
      raise ValueError(f"{name} must be a finite number >= 0, got {x!r}")
  for name, allowed in (("conv_impl", CONV_IMPLS), ("optimizer", OPTIMIZERS)):
    if getattr(config, name) not in allowed:
      raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(config, name)!r}")
  if config.optimizer != "sgd" and config.momentum:
    raise ValueError(f"momentum applies to optimizer 'sgd', got {config.momentum!r} with "
                     f"{config.optimizer!r}")
  if config.optimizer != "adamw" and config.weight_decay is not None:
    raise ValueError(f"weight_decay applies to optimizer 'adamw', got {config.weight_decay!r} "
                     f"with {config.optimizer!r}")
