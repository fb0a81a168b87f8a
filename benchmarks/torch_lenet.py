"""The article's LeNet in PyTorch (ReLU, max-pooling), the reference network of
`train_throughput.py` and `end_to_end.py`; torch is imported when it is built."""

from __future__ import annotations


def torch_lenet():
  """The `torch.nn.Module` class of the article's LeNet."""
  import torch  # pylint: disable=import-outside-toplevel
  from torch import nn  # pylint: disable=import-outside-toplevel
  import torch.nn.functional as F  # pylint: disable=import-outside-toplevel

  class LeNet(nn.Module):
    """The article's LeNet (ReLU, max-pooling)."""

    def __init__(self):
      super().__init__()
      self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
      self.conv2 = nn.Conv2d(6, 16, 5)
      self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
      x = F.max_pool2d(F.relu(self.conv1(x)), 2)
      x = F.max_pool2d(F.relu(self.conv2(x)), 2)
      x = torch.flatten(x, 1)
      return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

  return LeNet
