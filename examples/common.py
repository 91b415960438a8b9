"""Helpers shared by the examples: a progress bar (tqdm when installed) and test-set accuracy."""
import sys, time
from tinygrad import Tensor, TinyJit

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

def evaluate(model, X: Tensor, Y: Tensor, batch: int = 1000) -> float:
  """Accuracy of model on (X, Y), in eval mode and without gradients (a padded conv then runs over whole rows), in batches."""
  prev, Tensor.no_grad = Tensor.no_grad, True
  try:
    with Tensor.train(False):
      return sum((model(X[i:i + batch]).argmax(-1) == Y[i:i + batch]).sum().item() for i in range(0, X.shape[0], batch)) / X.shape[0]
  finally: Tensor.no_grad = prev

def classifier_args(description: str, epochs: float, lr: float):
  """The flags every Fashion-MNIST example takes; returns the parser so an example can add its own."""
  import argparse
  ap = argparse.ArgumentParser(description=description)
  ap.add_argument("--epochs", type=float, default=epochs, help="passes over the 60000 training images (ignored with --steps)")
  ap.add_argument("--steps", type=int, default=None, help="training steps (default: epochs * 60000 / batch)")
  ap.add_argument("--batch", type=int, default=128)
  ap.add_argument("--lr", type=float, default=lr)
  ap.add_argument("--seed", type=int, default=0)
  return ap

def train_classifier(make_model, args) -> None:
  """Train make_model() on Fashion-MNIST with Adam (learning rate decayed linearly to 0 over the second half), then
  print the parseable lines `loss: <first> -> <last>` and `test accuracy: 0.xxxx`."""
  from tinygrad import nn
  from tinygrad.nn.datasets import mnist
  X_train, Y_train, X_test, Y_test = mnist(fashion=True)
  steps = args.steps if args.steps is not None else int(args.epochs * X_train.shape[0] / args.batch)
  Tensor.manual_seed(args.seed)
  model = make_model()
  params = nn.state.get_parameters(model)
  Tensor.realize_all(params)  # initial weights (and BatchNorm buffers) as buffers, so every step has the same graph
  opt = nn.optim.Adam(params, lr=args.lr)

  @TinyJit  # from the third step on, the step's kernels are replayed without rebuilding its graph
  def train_step(idx: Tensor) -> tuple[Tensor, Tensor]:
    x, y = X_train[idx], Y_train[idx]  # a batch of random rows: X_train[idx] is a gather
    opt.zero_grad()
    out = model(x)
    loss = out.sparse_categorical_crossentropy(y).backward()
    acc = (out.argmax(-1) == y).float().mean()
    Tensor.realize_all([loss, acc, *opt.schedule_step()])  # forward, backward and the Adam update in one realize
    return loss, acc

  losses, st = [], time.perf_counter()
  with Tensor.train():
    for i in (t := trange(steps)):
      if i >= steps // 2: opt.lr.assign(Tensor([args.lr * (steps - i) / (steps - steps // 2)])).realize()  # linear decay to 0
      loss, acc = train_step(Tensor.randint(args.batch, high=X_train.shape[0]).realize())
      losses.append(loss.item())
      t.set_description(f"loss {losses[-1]:.3f} acc {acc.item():.3f}")
  train_s = time.perf_counter() - st
  test_acc = evaluate(model, X_test, Y_test)
  k = max(1, min(10, steps // 4))
  print(f"trained {steps} steps (batch {args.batch}) in {train_s:.1f} s, {train_s / steps * 1e3:.0f} ms/step")
  print(f"loss: {sum(losses[:k]) / k:.4f} -> {sum(losses[-k:]) / k:.4f}")
  print(f"test accuracy: {test_acc:.4f}")
