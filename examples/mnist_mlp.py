"""A multilayer perceptron on Fashion-MNIST: 784 -> 512 -> 512 -> 10 with ReLU, Adam, batch 128.

Data: tinygrad.nn.datasets.mnist(fashion=True) (the Debian package dataset-fashion-mnist; nothing is downloaded).
Each step samples a batch of random rows with a Tensor index (X_train[idx], compiled to a gather), runs forward,
backward and the Adam update in one realize. The learning rate decays linearly to 0 over the second half.

Run: python examples/mnist_mlp.py [--epochs 2] [--steps N] [--batch 128] [--lr 1e-3] [--seed 0]
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

class MLP:
  def __init__(self, hidden: int = 512):
    self.layers = [nn.Linear(784, hidden), Tensor.relu, nn.Linear(hidden, hidden), Tensor.relu, nn.Linear(hidden, 10)]
  def __call__(self, x: Tensor) -> Tensor:
    return ((x.flatten(1).float() / 255 - MEAN) / STD).sequential(self.layers)  # uint8 images in

def evaluate(model, X: Tensor, Y: Tensor, batch: int = 1000) -> float:
  with Tensor.train(False):
    return sum((model(X[i:i + batch]).argmax(-1) == Y[i:i + batch]).sum().item() for i in range(0, X.shape[0], batch)) / X.shape[0]

def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--epochs", type=float, default=2, help="passes over the 60000 training images (ignored with --steps)")
  ap.add_argument("--steps", type=int, default=None, help="training steps (default: epochs * 60000 / batch)")
  ap.add_argument("--batch", type=int, default=128)
  ap.add_argument("--lr", type=float, default=1e-3)
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args()

  X_train, Y_train, X_test, Y_test = mnist(fashion=True)
  steps = args.steps if args.steps is not None else int(args.epochs * X_train.shape[0] / args.batch)
  Tensor.manual_seed(args.seed)
  model = MLP()
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
