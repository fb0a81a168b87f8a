"""Parameter groups at multiples of one schedule (layer-wise decay).

`group_rates` builds the ``optax.multi_transform``: a slower backbone, BEiT's
layer-wise decay, timm's ``lr_scale``, big_vision's ``lr_mults``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

import jax
import numpy as np
import optax

from lrjax import _checks
from lrjax._inject import check_value, inject_hyperparams
from lrjax._opt_state import path_keys

__all__ = ["group_rates"]


def group_rates(
    inner_factory: Callable[..., optax.GradientTransformation],
    schedule: Any,
    *,
    multiples: Mapping[Hashable, Any],
    labels: Any,
    hyperparam: str = "learning_rate",
    static_args: str | Iterable[str] = (),
    **hyperparams: Any,
) -> optax.GradientTransformationExtraArgs:
  r"""An optimizer whose parameter groups train at multiples of one schedule.

  Group :math:`g` (the parameters labelled :math:`g`) is updated by
  ``inner_factory`` with `hyperparam` :math:`= m_g \cdot s(t)`, :math:`m_g` =
  ``multiples[g]``; the other hyperparameters are shared. It is
  ``optax.multi_transform`` of one :func:`lrjax.inject_hyperparams` per
  group, so its state is that of ``multi_transform`` over the same groups
  (the inner optimizer's state once per parameter) plus each group's count,
  schedule and values, and every lrjax function reads or changes one group
  with ``group=``: ``lrjax.hyperparams(state, group=g)``,
  ``lrjax.set_hyperparams(state, group=g, learning_rate=...)``. A
  ``set_hyperparams`` without ``group=`` gives every group the same new
  schedule, multiples included: to change the base schedule and keep the
  multiples, set ``new * multiples[g]`` per group.

  Layer-wise decay as in BEiT and MAE (timm's ``param_groups_layer_decay``):
  layer :math:`i` of :math:`L` (0 the embeddings, :math:`L` the head) at
  :math:`d^{L - i}` times the base rate is
  ``multiples={i: d ** (L - i) for i in range(L + 1)}`` with `labels` a
  function giving each parameter's layer from its path.

  Args:
    inner_factory: an optax factory, such as ``optax.adamw``.
    schedule: the base schedule (an lrjax ``Schedule``) or number.
    multiples: each group's label and its multiple of `schedule` (a
      positive number).
    labels: each parameter's group: a function of its path (the tuple of
      dict keys, attribute names and indices from the root of the
      parameters to it, e.g. ``("blocks_3", "kernel")``), or a pytree of
      labels shaped like the parameters (or a prefix of them), as
      ``optax.multi_transform`` takes.
    hyperparam: which of `inner_factory`'s arguments gets the multiples.
    static_args: as in :func:`lrjax.inject_hyperparams`.
    **hyperparams: `inner_factory`'s other arguments, shared by every group.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state is an
    ``optax.MultiTransformState`` with one ``InjectHyperparamsState`` per
    group.

  Raises:
    ValueError: if `multiples` is not a non-empty mapping of positive
      finite numbers; `schedule` is not an lrjax ``Schedule`` or number;
      `hyperparam` is also given in `hyperparams`; a label of `labels` (a
      pytree) is not in `multiples`. ``init`` raises it when the function
      `labels` gives a parameter a label not in `multiples`.
      :func:`lrjax.inject_hyperparams`'s own checks apply.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> params = {"embed": jnp.zeros(2), "block": jnp.zeros(2), "head": jnp.zeros(2)}
    >>> layer = {"embed": 0, "block": 1, "head": 2}
    >>> tx = lrjax.group_rates(
    ...     optax.sgd, lrjax.cosine_decay(0.1, decay_steps=10),
    ...     multiples={i: 0.5 ** (2 - i) for i in range(3)},
    ...     labels=lambda path: layer[path[0]])
    >>> state = tx.init(params)
    >>> for i in range(3):
    ...   print(f"{i}: {lrjax.hyperparams(state, group=i)['learning_rate']:.3f}")
    0: 0.025
    1: 0.050
    2: 0.100

  References:
    Bao et al., 2022, "BEiT: BERT Pre-Training of Image Transformers"
    (layer-wise decay); timm's ``param_groups_layer_decay``; PyTorch's
    ``param_groups``; ``optax.multi_transform``.
  """
  fn = "group_rates"
  if not isinstance(multiples, Mapping) or not multiples:
    raise _checks.fail(fn, "multiples", "a non-empty mapping from each group's label "
                       "to its multiple", multiples)
  for label, m in multiples.items():
    _checks.check_float(fn, f"multiples[{label!r}]", m, low=0.0, low_open=True)
  check_value(fn, "schedule", schedule)
  if hyperparam in hyperparams:
    raise ValueError(
        f"{fn}: hyperparam={hyperparam!r} takes schedule times each group's "
        f"multiple, so it cannot also be given, got {hyperparam}="
        f"{hyperparams[hyperparam]!r}"
    )

  def check_labels(tree: Any) -> Any:
    unknown = {x for x in jax.tree.leaves(tree)} - set(multiples)
    if unknown:
      raise ValueError(
          f"{fn}: labels gives the labels {sorted(unknown, key=repr)!r} that are not "
          f"in multiples (its labels: {list(multiples)})"
      )
    return tree

  if callable(labels):
    def param_labels(params: Any) -> Any:
      return check_labels(jax.tree_util.tree_map_with_path(
          lambda path, _: labels(path_keys(path)), params))
  else:
    param_labels = check_labels(labels)

  inject = inject_hyperparams(inner_factory, static_args=static_args)
  return optax.multi_transform(
      {g: inject(**{hyperparam: schedule * _number(m)}, **hyperparams)
       for g, m in multiples.items()},
      param_labels,
  )


def _number(m: Any) -> Any:
  """A multiple as a Python float where it is one (a traced one as it is)."""
  return float(m) if isinstance(m, (int, float, np.number)) else m
