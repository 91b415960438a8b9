"""A small convolutional net on Fashion-MNIST: >= 88% test accuracy in about two minutes on 2 CPU cores.

  conv 3x3 stride 2 (1 -> 8) -> relu -> conv 3x3 stride 2 (8 -> 32) -> relu -> linear 1152 -> 128 -> relu -> linear 10

Strided convolutions instead of conv + max-pool: on this CPU backend the pooled version costs ~3x more per step for
about the same accuracy. Adam, batch 128, two epochs, the learning rate decayed linearly to 0 over the second half.
Data: tinygrad.nn.datasets.mnist(fashion=True) (the Debian package dataset-fashion-mnist; nothing is downloaded).

Run: python examples/mnist_cnn.py [--epochs 2] [--steps N] [--batch 128] [--lr 3e-3] [--seed 0]
Prints a progress bar (tqdm if installed) and the parseable lines `loss: <first> -> <last>` and `test accuracy: 0.xxxx`.
"""
import argparse, sys, time
from tinygrad import Tensor, nn
from tinygrad.nn.datasets import mnist

def trange(n: int):
  """tqdm.trange when tqdm is installed, else a minimal text bar with the same set_description()."""
  try:
    from tqdm import trange as tqdm_trange
    return tqdm_trange(n)
  except ImportError: return TextBar(n)

class TextBar:
  def __init__(self, n: int): self.n, self.desc, self.t0, self.shown = n, "", time.perf_counter(), 0.0
  def set_description(self, desc: str) -> None: self.desc = desc
  def __iter__(self):
    for i in range(self.n):
      yield i
      if (now := time.perf_counter()) - self.shown > 0.25 or i == self.n - 1:
        self.shown, done = now, 30 * (i + 1) // self.n
        sys.stderr.write(f"\r{i + 1:>{len(str(self.n))}}/{self.n} [{'#' * done}{'.' * (30 - done)}] {now - self.t0:.0f}s {self.desc}")
        sys.stderr.flush()
    sys.stderr.write("\n")

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST pixel statistics

class CNN:
  def __init__(self, c1: int = 8, c2: int = 32, hidden: int = 128):
    self.conv1, self.conv2 = nn.Conv2d(1, c1, 3, stride=2), nn.Conv2d(c1, c2, 3, stride=2)  # 28 -> 13 -> 6
    self.fc1, self.fc2 = nn.Linear(c2 * 6 * 6, hidden), nn.Linear(hidden, 10)
  def __call__(self, x: Tensor) -> Tensor:
    x = (x.float() / 255 - MEAN) / STD  # uint8 images in, normalised inside the first kernel
    x = self.conv2(self.conv1(x).relu()).relu()
    return self.fc2(self.fc1(x.flatten(1)).relu())

def evaluate(model, X: Tensor, Y: Tensor, batch: int = 1000) -> float:
  with Tensor.train(False):
    return sum((model(X[i:i + batch]).argmax(-1) == Y[i:i + batch]).sum().item() for i in range(0, X.shape[0], batch)) / X.shape[0]

def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--epochs", type=float, default=2, help="passes over the 60000 training images (ignored with --steps)")
  ap.add_argument("--steps", type=int, default=None, help="training steps (default: epochs * 60000 / batch)")
  ap.add_argument("--batch", type=int, default=128)
  ap.add_argument("--lr", type=float, default=3e-3)
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args()

  X_train, Y_train, X_test, Y_test = mnist(fashion=True)
  steps = args.steps if args.steps is not None else int(args.epochs * X_train.shape[0] / args.batch)
  Tensor.manual_seed(args.seed)
  model = CNN()
  params = nn.state.get_parameters(model)
  Tensor.realize_all(params)  # the initial weights as buffers, so every step has the same graph
  opt = nn.optim.Adam(params, lr=args.lr)

  losses, st = [], time.perf_counter()
  with Tensor.train():
    for i in (t := trange(steps)):
      if i >= steps // 2: opt.lr.assign(Tensor([args.lr * (steps - i) / (steps - steps // 2)])).realize()  # linear decay to 0
      idx = Tensor.randint(args.batch, high=X_train.shape[0]).realize()  # a batch of random rows: X_train[idx] is a gather
      x, y = X_train[idx], Y_train[idx]
      opt.zero_grad()
      out = model(x)
      loss = out.sparse_categorical_crossentropy(y).backward()
      acc = (out.argmax(-1) == y).float().mean()
      loss.realize(acc, *opt.schedule_step())  # forward, backward and the Adam update in one realize
      losses.append(loss.item())
      t.set_description(f"loss {losses[-1]:.3f} acc {acc.item():.3f}")
  train_s = time.perf_counter() - st

  test_acc = evaluate(model, X_test, Y_test)
  k = max(1, min(10, steps // 4))
  print(f"trained {steps} steps (batch {args.batch}) in {train_s:.1f} s, {train_s / steps * 1e3:.0f} ms/step")
  print(f"loss: {sum(losses[:k]) / k:.4f} -> {sum(losses[-k:]) / k:.4f}")
  print(f"test accuracy: {test_acc:.4f}")

if __name__ == "__main__": main()
