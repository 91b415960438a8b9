"""A multilayer perceptron on Fashion-MNIST: 784 -> 512 -> 512 -> 10 with ReLU, Adam, batch 128.

Data: tinygrad.nn.datasets.mnist(fashion=True) (the Debian package dataset-fashion-mnist; nothing is downloaded).
Each step samples a batch of random rows with a Tensor index (X_train[idx], compiled to a gather), runs forward,
backward and the Adam update in one realize. The learning rate decays linearly to 0 over the second half.

Run: python examples/mnist_mlp.py [--epochs 2] [--steps N] [--batch 128] [--lr 1e-3] [--seed 0]
Prints a progress bar (tqdm if installed) and the parseable lines `loss: <first> -> <last>` and `test accuracy: 0.xxxx`.
"""
from tinygrad import Tensor, nn
from common import classifier_args, train_classifier  # examples/common.py

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST pixel statistics

class MLP:
  def __init__(self, hidden: int = 512):
    self.layers = [nn.Linear(784, hidden), Tensor.relu, nn.Linear(hidden, hidden), Tensor.relu, nn.Linear(hidden, 10)]
  def __call__(self, x: Tensor) -> Tensor:
    return ((x.flatten(1).float() / 255 - MEAN) / STD).sequential(self.layers)  # uint8 images in

def main() -> None:
  ap = classifier_args(__doc__.split("\n")[0], epochs=2, lr=1e-3)
  args = ap.parse_args()
  train_classifier(lambda: MLP(), args)

if __name__ == "__main__": main()
