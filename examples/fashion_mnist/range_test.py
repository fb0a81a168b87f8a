"""The learning-rate range test of the example's LeNet (``--find-lr``).

`find_lr(config, workdir)` trains a fresh LeNet by the config's optimizer for
a few hundred batches at exponentially growing rates (`lrjax.lr_range_test`,
one compiled `lax.scan`), prints fastai's suggestions and writes
``lr_find.json`` and ``lr_find.png`` (`lrjax.plot_range_test`).
"""

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

MIN_LR, MAX_LR = 1e-5, 10.0  # the rates of the first and the last step


def find_lr(config: train.Config, workdir: str | pathlib.Path, *,
            num_steps: int = 200) -> lrjax.RangeTestResult:
  """The range test of a fresh LeNet: `num_steps` batches of the config's
  size, in the training run's order, at rates from `MIN_LR` to `MAX_LR`.

  Raises:
    ValueError: if a setting is unusable (see `lrjax.lr_range_test`).
    input_pipeline.DataError: if the data cannot be found or prepared.
  """
  ds = input_pipeline.load(config.data_dir)
  images, labels = ds["train_images"][:config.train_subset], ds["train_labels"][:config.train_subset]
  epochs = -(-num_steps * config.batch_size // len(images)) + 1  # enough for num_steps batches
  idx, weight = (np.concatenate(a)[:num_steps] for a in zip(*(
      train.epoch_batches(config, epoch, len(images)) for epoch in range(epochs))))
  graphdef, params = nnx.split(train.create_model(config))

  def loss_fn(p, batch):
    return train.loss_and_metrics(nnx.merge(graphdef, p), batch)[0]

  def optimizer(learning_rate):  # the config's, without lrjax.inject_hyperparams
    plan = schedules.Plan(learning_rate, momentum=config.momentum or None)
    return getattr(optax, config.optimizer)(**train.hyperparams(config, plan))

  t0 = time.perf_counter()
  result = lrjax.lr_range_test(
      loss_fn, params, {"image": images[idx], "label": labels[idx], "weight": weight},
      optimizer=optimizer, min_value=MIN_LR, max_value=MAX_LR)
  seconds = time.perf_counter() - t0
  suggestions = {k: getattr(result, k) for k in ("steepest", "valley", "minimum_div_10")}
  finite = lambda xs: [x if math.isfinite(x) else None for x in np.asarray(xs, float).tolist()]
  workdir = pathlib.Path(workdir)
  reporting.check_writable(workdir)
  reporting.write_text(workdir / "lr_find.json", json.dumps({
      "num_steps": num_steps, "batch_size": config.batch_size, "seed": config.seed,
      "train_size": len(images), "min_value": MIN_LR, "max_value": MAX_LR,
      "optimizer": config.optimizer, "time_s": seconds, "num_valid": result.num_valid,
      "suggestions": dict(zip(suggestions, finite(list(suggestions.values())))),
      **{k: finite(getattr(result, k)) for k in ("rates", "losses", "smoothed")},
  }, indent=1) + "\n")
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
  fig = Figure(figsize=(7, 4.5), dpi=120, layout="tight")  # not pyplot's: safe in any thread
  title = f"learning-rate range test (LeNet, Fashion-MNIST, {config.optimizer})"
  lrjax.plot_range_test(result, ax=fig.subplots(), title=title)
  reporting.write_atomic(workdir / "lr_find.png", fig.savefig)  # a PNG: the tmp keeps the suffix
  print(f"LR range test: {num_steps} batches of {config.batch_size}, {config.optimizer}, rates "
        f"{MIN_LR:g} to {MAX_LR:g}, {result.num_valid} before divergence, {seconds:.1f} s")
  print("suggestions: " + ", ".join(f"{k} {v:.3g}" for k, v in suggestions.items()), flush=True)
  return result
