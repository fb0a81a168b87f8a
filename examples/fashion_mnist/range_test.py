"""The learning-rate range test of the example's LeNet (``--find-lr``).

`find_lr(config, workdir)` trains a fresh LeNet by the config's optimizer for
a few hundred batches at exponentially growing rates (`lrjax.lr_range_test`,
one compiled `lax.scan`), prints fastai's suggestions and writes
``lr_find.json`` and ``lr_find.png``.
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
  suggestions = {"steepest": result.steepest, "valley": result.valley,
                 "minimum_div_10": result.minimum_div_10}
  finite = lambda xs: [x if math.isfinite(x) else None for x in np.asarray(xs, float).tolist()]
  workdir = pathlib.Path(workdir)
  reporting.check_writable(workdir)
  reporting.write_text(workdir / "lr_find.json", json.dumps({
      "num_steps": num_steps, "batch_size": config.batch_size, "seed": config.seed,
      "train_size": len(images), "min_value": MIN_LR, "max_value": MAX_LR,
      "optimizer": config.optimizer, "time_s": seconds, "num_valid": result.num_valid,
      "suggestions": {k: v if math.isfinite(v) else None for k, v in suggestions.items()},
      "rates": finite(result.rates), "losses": finite(result.losses),
      "smoothed": finite(result.smoothed),
  }, indent=1) + "\n")
  plot(workdir / "lr_find.png", result, config.optimizer)
  print(f"LR range test: {num_steps} batches of {config.batch_size}, {config.optimizer}, rates "
        f"{MIN_LR:g} to {MAX_LR:g}, {result.num_valid} before divergence, {seconds:.1f} s")
  print("suggestions: " + ", ".join(f"{k} {v:.3g}" for k, v in suggestions.items()), flush=True)
  return result


def plot(path: pathlib.Path, result: lrjax.RangeTestResult, optimizer: str) -> None:
  """The raw and smoothed loss against the rate (log scale), suggestions marked."""
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
  rates, losses, smoothed = (np.asarray(a, float) for a in result[:3])
  fig = Figure(figsize=(7, 4.5), dpi=120, layout="tight")
  ax = fig.subplots()
  ax.plot(rates, losses, color="0.75", lw=0.8, label="loss")
  ax.plot(rates, smoothed, lw=1.8, label="smoothed loss")
  marks = [("steepest", result.steepest, "tab:red"), ("valley", result.valley, "tab:green"),
           ("minimum / 10", result.minimum_div_10, "tab:purple")]
  for name, value, color in marks:
    if math.isfinite(value):
      ax.axvline(value, color=color, ls="--", lw=1, label=f"{name}: {value:.3g}")
  valid = np.isfinite(smoothed)
  if valid.any():  # from the lowest loss to a little above the start
    lo = min(losses[valid].min(), smoothed[valid].min())
    hi = smoothed[valid][: max(1, valid.sum() // 10)].max()
    pad = 0.05 * max(hi - lo, 1e-3)
    ax.set_ylim(lo - pad, hi + 4 * pad)
  ax.set(xscale="log", xlabel="learning rate", ylabel="training loss",
         title=f"learning-rate range test (LeNet, Fashion-MNIST, {optimizer})")
  ax.grid(alpha=0.3, which="both")
  ax.legend()
  reporting.write_atomic(path, fig.savefig)  # a PNG: the temporary file keeps the suffix
