"""``python -m lrjax``: plot and inspect learning-rate schedules.

Run ``python -m lrjax --help`` (or the ``lrjax`` console script) for usage::

  lrjax plot 'cosine_decay(0.3, decay_steps=9380, warmup_steps=469)' --steps 14070 -o cos.png
  lrjax show 'step_decay(0.1, step_size=30, gamma=0.1)' --at 0,30,60
  lrjax show 'step_decay(0.1, step_size=30, gamma=0.1)' --json
"""

import sys

from lrjax._cli import main

__all__ = ["main"]

if __name__ == "__main__":
  sys.exit(main())
