"""The learning-rate range test of the example's LeNet (``--find-lr``).

`find_lr(config, workdir)` trains a fresh LeNet by the config's optimizer
for a few hundred batches at exponentially growing rates (`lrjax.lr_range_test`, one
compiled `lax.scan`) and prints fastai's suggestions.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib
import time

import numpy as np
import optax
from flax import nnx

import lrjax

import input_pipeline
import reporting
import schedules
import train


def range_batches(images, labels, batch_size: int, seed: int, num_steps: int) -> dict[str, np.ndarray]:
  """`num_steps` training batches stacked on a leading axis, in the epochs' order.

  Runs through as many epochs (each in `input_pipeline.epoch_order`) as it takes.
  """
  idx, weight = [], []
  for epoch in range(-(-num_steps * batch_size // len(images)) + 1):
    order = input_pipeline.epoch_order(seed, epoch, len(images))
    i, w = input_pipeline.batch_indices(order, batch_size)
    idx.append(i)
    weight.append(w)
  idx, weight = np.concatenate(idx)[:num_steps], np.concatenate(weight)[:num_steps]
  return {"image": images[idx], "label": labels[idx], "weight": weight}


def find_lr(config: train.Config, workdir: str | pathlib.Path, *, num_steps: int = 200,
            min_value: float = 1e-5, max_value: float = 10.0) -> lrjax.RangeTestResult:
  """The learning-rate range test of a fresh LeNet under the config's optimizer.

  `num_steps` batches of the config's size, rates growing exponentially from
  `min_value` to `max_value`; prints the suggestions and writes
  ``lr_find.json`` and ``lr_find.png`` (the loss against the rate, the
  suggestions marked) to `workdir`.

  Raises:
    ValueError: if a setting is unusable (see `lrjax.lr_range_test`).
    input_pipeline.DataError: if the data cannot be found or prepared.
  """
  ds = input_pipeline.load(config.data_dir)
  images, labels = ds["train_images"][:config.train_subset], ds["train_labels"][:config.train_subset]
  stacked = range_batches(images, labels, config.batch_size, config.seed, num_steps)
  graphdef, params = nnx.split(train.create_model(config))

  def loss_fn(p, batch):
    return train.loss_and_metrics(nnx.merge(graphdef, p), batch)[0]

  t0 = time.perf_counter()
  plan = schedules.Plan(lrjax.constant(min_value), momentum=config.momentum or None)
  settings = {k: v for k, v in train.hyperparams(config, plan).items() if k != "learning_rate"}
  optimizer = functools.partial(getattr(optax, config.optimizer), **settings)
  result = lrjax.lr_range_test(loss_fn, params, stacked, optimizer=optimizer,
                               min_value=min_value, max_value=max_value)
  seconds = time.perf_counter() - t0
  suggestions = {"steepest": result.steepest, "valley": result.valley,
                 "minimum_div_10": result.minimum_div_10}
  workdir = pathlib.Path(workdir)
  reporting.check_writable(workdir)
  finite = lambda xs: [float(x) if math.isfinite(x) else None for x in np.asarray(xs, float)]
  record = {
      "num_steps": num_steps, "batch_size": config.batch_size, "seed": config.seed,
      "train_size": len(images), "min_value": min_value, "max_value": max_value,
      "optimizer": config.optimizer, "time_s": seconds, "num_valid": result.num_valid,
      "suggestions": {k: (v if math.isfinite(v) else None) for k, v in suggestions.items()},
      "rates": finite(result.rates), "losses": finite(result.losses),
      "smoothed": finite(result.smoothed),
  }
  reporting.write_text(workdir / "lr_find.json", json.dumps(record, indent=1) + "\n")
  reporting.plot_range_test(workdir / "lr_find.png", result)
  print(f"LR range test: {num_steps} batches of {config.batch_size}, "
        f"{config.optimizer}, rates {min_value:g} to {max_value:g}, {result.num_valid} before divergence, "
        f"{seconds:.1f} s")
  print("suggestions: " + ", ".join(f"{k} {v:.3g}" for k, v in suggestions.items()), flush=True)
  return result
