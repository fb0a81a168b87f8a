"""Shared test settings: the lrjax package is imported from this checkout."""

import jax

# Tests run on the CPU whatever the machine has, so results are comparable.
jax.config.update("jax_platforms", "cpu")
