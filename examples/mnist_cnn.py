"""A small convolutional net on Fashion-MNIST: >= 88% test accuracy (0.8831) in about 7 seconds on 2 CPU cores.

  conv 3x3 stride 2 (1 -> 8) -> relu -> conv 3x3 stride 2 (8 -> 32) -> relu -> linear 1152 -> 128 -> relu -> linear 10

Strided convolutions instead of conv + max-pool: the pooled version (3x3 convs at full resolution, 2x2 pools) costs
about 2.5x more per step for about the same accuracy (its step's kernels 15.5 ms against 5.9, session 10). Adam, batch 128, two epochs,
the learning rate decayed linearly to 0 over the second half.
Data: tinygrad.nn.datasets.mnist(fashion=True) (the Debian package dataset-fashion-mnist; nothing is downloaded).

Run: python examples/mnist_cnn.py [--epochs 2] [--steps N] [--batch 128] [--lr 3e-3] [--seed 0]
Prints a progress bar (tqdm if installed) and the parseable lines `loss: <first> -> <last>` and `test accuracy: 0.xxxx`.
"""
from tinygrad import Tensor, nn
from common import classifier_args, train_classifier  # examples/common.py

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST pixel statistics

class CNN:
  def __init__(self, c1: int = 8, c2: int = 32, hidden: int = 128):
    self.conv1, self.conv2 = nn.Conv2d(1, c1, 3, stride=2), nn.Conv2d(c1, c2, 3, stride=2)  # 28 -> 13 -> 6
    self.fc1, self.fc2 = nn.Linear(c2 * 6 * 6, hidden), nn.Linear(hidden, 10)
  def __call__(self, x: Tensor) -> Tensor:
    x = (x.float() / 255 - MEAN) / STD  # uint8 images in, normalised inside the first kernel
    x = self.conv2(self.conv1(x).relu()).relu()
    return self.fc2(self.fc1(x.flatten(1)).relu())

def main() -> None:
  ap = classifier_args(__doc__.split("\n")[0], epochs=2, lr=3e-3)
  args = ap.parse_args()
  train_classifier(lambda: CNN(), args)

if __name__ == "__main__": main()
