"""Training steps of small models, kernel by kernel: where a model's step spends its kernel time, and how it changes
between two trees of the library (run it from each tree's root, alternating, as docs/performance.md's session 10 table
was made: `cd /tmp/base && python /path/to/bench/train_steps.py lenet`).

    python bench/train_steps.py MODEL [--top N] [--runs R]
    python bench/train_steps.py MODEL --jit [--runs R]                          # the step through TinyJit
    /work/benchenv/bin/python bench/train_steps.py resnet --torch [--runs R]   # the same step in torch eager

MODEL: resnet (examples/resnet_mnist.py), cnn (examples/mnist_cnn.py), lenet (conv, BatchNorm, 2x2 max-pool, twice),
pool (convs at full resolution with 2x2 max-pools), stride (strided convs), dw (depthwise-separable + avg-pool), ae
(conv autoencoder with ConvTranspose2d), rnn (LSTMCell 8 -> 32 unrolled 16 steps), tf (2-block transformer, d 64, T
32), unet (pool, GroupNorm, nearest upsample, concat), seq (Conv1d, GroupNorm, gelu), misc (dilated conv, overlapping
avg and max pools, LayerNorm, silu), bag (Embedding 5000 x 64, mean of 50 tokens), mlp (bench.py's MLP 784-512-512-10,
batch 128).
Prints the first step's time (compiling included) and loss, the median wall time of R steps (graph building and
scheduling included), the loss after 2R + 2 steps, the number of kernels a step runs and the sum of each kernel's
fastest time over R timed steps, then the N slowest kernels (time, lines of LLVM IR, output elements, counted ops,
name). Data is random; the disk cache is used as usual (CACHELEVEL=0 to compile).
"""
from __future__ import annotations
import argparse, statistics, sys, time
sys.path.insert(0, ".")  # the library of the tree this runs from (see above), then its examples
sys.path.insert(0, "examples")
import numpy as np
from tinygrad import Tensor, TinyJit, nn
from tinygrad.engine import realize

class Block:
  def __init__(self, d: int = 64, heads: int = 4):
    self.heads, self.qkv, self.o = heads, nn.Linear(d, 3 * d), nn.Linear(d, d)
    self.ln1, self.ln2, self.f1, self.f2 = nn.LayerNorm(d), nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
  def __call__(self, x: Tensor) -> Tensor:
    B, T, D = x.shape
    q, k, v = self.qkv(self.ln1(x)).reshape(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
    a = (q @ k.transpose(-2, -1) / (D // self.heads) ** 0.5).softmax(-1) @ v
    x = x + self.o(a.permute(0, 2, 1, 3).reshape(B, T, D))
    return x + self.f2(self.f1(self.ln2(x)).gelu())

class Transformer:
  def __init__(self): self.emb, self.blocks, self.head = nn.Embedding(100, 64), [Block(), Block()], nn.Linear(64, 100)
  def __call__(self, t: Tensor) -> Tensor:
    x = self.emb(t)
    for b in self.blocks: x = b(x)
    return self.head(x)

class LeNet:
  def __init__(self):
    self.c1, self.bn1, self.c2, self.bn2 = nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16)
    self.fc = nn.Linear(16 * 5 * 5, 10)
  def __call__(self, x: Tensor) -> Tensor:
    x = self.bn1(self.c1(x)).relu().max_pool2d(2)
    return self.fc(self.bn2(self.c2(x)).relu().max_pool2d(2).flatten(1))

class PoolCNN:
  def __init__(self): self.c1, self.c2, self.fc1, self.fc2 = nn.Conv2d(1, 8, 3), nn.Conv2d(8, 32, 3), nn.Linear(32 * 5 * 5, 128), nn.Linear(128, 10)
  def __call__(self, x: Tensor) -> Tensor:
    x = self.c2(self.c1(x).relu().max_pool2d(2)).relu().max_pool2d(2)
    return self.fc2(self.fc1(x.flatten(1)).relu())

class StrideCNN:
  def __init__(self):
    self.c1, self.c2 = nn.Conv2d(1, 8, 3, stride=2), nn.Conv2d(8, 32, 3, stride=2)
    self.fc1, self.fc2 = nn.Linear(32 * 6 * 6, 128), nn.Linear(128, 10)
  def __call__(self, x: Tensor) -> Tensor: return self.fc2(self.fc1(self.c2(self.c1(x).relu()).relu().flatten(1)).relu())

class AutoEncoder:
  def __init__(self):
    self.e1, self.e2 = nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.Conv2d(16, 32, 3, stride=2, padding=1)
    self.d1 = nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1)
    self.d2 = nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1)
  def __call__(self, x: Tensor) -> Tensor: return self.d2(self.d1(self.e2(self.e1(x).relu()).relu()).relu())

class Depthwise:
  def __init__(self):
    self.c1, self.dw = nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 32, 3, padding=1, groups=32)
    self.pw, self.fc = nn.Conv2d(32, 32, 1), nn.Linear(32, 10)
  def __call__(self, x: Tensor) -> Tensor: return self.fc(self.pw(self.dw(self.c1(x).relu()).relu()).relu().avg_pool2d(2).mean((2, 3)))

class UNet:
  def __init__(self):
    self.c1, self.c2, self.c3 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1), nn.Conv2d(24, 8, 3, padding=1)
    self.norm, self.out = nn.GroupNorm(4, 16), nn.Conv2d(8, 1, 1)
  def __call__(self, x: Tensor) -> Tensor:
    a = self.c1(x).relu()                                  # 28x28
    b = self.norm(self.c2(a.max_pool2d(2))).relu()         # 14x14
    n = b.shape[0]
    up = b.reshape(n, 16, 14, 1, 14, 1).expand(n, 16, 14, 2, 14, 2).reshape(n, 16, 28, 28)  # nearest upsample
    return self.out(self.c3(up.cat(a, dim=1)).relu())

class LSTM:
  def __init__(self): self.cell, self.fc = nn.LSTMCell(8, 32), nn.Linear(32, 10)
  def __call__(self, x: Tensor) -> Tensor:
    h = None
    for t in range(x.shape[1]): h = self.cell(x[:, t], h)
    return self.fc(h[0])

class Conv1dNet:
  def __init__(self):
    self.c1, self.norm = nn.Conv1d(8, 32, 5, padding=2), nn.GroupNorm(8, 32)
    self.c2, self.fc = nn.Conv1d(32, 32, 3, stride=2, padding=1), nn.Linear(32, 10)
  def __call__(self, x: Tensor) -> Tensor: return self.fc(self.c2(self.norm(self.c1(x)).gelu()).relu().mean(-1))

class Misc:
  def __init__(self):
    self.c1, self.c2 = nn.Conv2d(1, 8, 3, dilation=2, padding=2), nn.Conv2d(8, 16, 3, padding=1)
    self.norm, self.fc = nn.LayerNorm(16), nn.Linear(16, 10)
  def __call__(self, x: Tensor) -> Tensor:
    x = self.c1(x).relu().avg_pool2d(3, stride=2, padding=1)
    x = self.c2(x).leaky_relu().max_pool2d(3, stride=2, padding=1).mean((2, 3))
    return self.fc(self.norm(x).silu())

class MLP:
  def __init__(self): self.l1, self.l2, self.l3 = nn.Linear(784, 512), nn.Linear(512, 512), nn.Linear(512, 10)
  def __call__(self, x: Tensor) -> Tensor: return self.l3(self.l2(self.l1(x.flatten(1)).relu()).relu())

class Bag:
  def __init__(self): self.emb, self.fc = nn.Embedding(5000, 64), nn.Linear(64, 10)
  def __call__(self, t: Tensor) -> Tensor: return self.fc(self.emb(t).mean(1))

def _images(rng, n: int, uint8: bool = False) -> Tensor:
  if uint8: return Tensor(rng.integers(0, 255, (n, 1, 28, 28)).astype(np.uint8))
  return Tensor(rng.standard_normal((n, 1, 28, 28)).astype(np.float32))

def _labels(rng, n: int, classes: int = 10) -> Tensor: return Tensor(rng.integers(0, classes, n).astype(np.int32))

def make(name: str, rng):
  """(model, loss function of no arguments) for a model name."""
  ce = lambda model, x, y: (lambda: model(x).sparse_categorical_crossentropy(y))
  if name in ("resnet", "cnn"):
    import resnet_mnist, mnist_cnn
    model = resnet_mnist.ResNet(8) if name == "resnet" else mnist_cnn.CNN()
    return model, ce(model, _images(rng, 128, uint8=True), _labels(rng, 128))
  if name == "tf":
    model, t, y = Transformer(), Tensor(rng.integers(0, 100, (16, 32)).astype(np.int32)), Tensor(rng.integers(0, 100, (16, 32)).astype(np.int32))
    return model, lambda: model(t).reshape(-1, 100).sparse_categorical_crossentropy(y.reshape(-1))
  if name in ("ae", "unet"):
    model = AutoEncoder() if name == "ae" else UNet()
    x = _images(rng, 64 if name == "ae" else 32)
    return model, lambda: ((model(x) - x) ** 2).mean()
  if name == "rnn": return (m := LSTM()), ce(m, Tensor(rng.standard_normal((64, 16, 8)).astype(np.float32)), _labels(rng, 64))
  if name == "seq": return (m := Conv1dNet()), ce(m, Tensor(rng.standard_normal((64, 8, 100)).astype(np.float32)), _labels(rng, 64))
  if name == "bag": return (m := Bag()), ce(m, Tensor(rng.integers(0, 5000, (64, 50)).astype(np.int32)), _labels(rng, 64))
  cls, n = {"lenet": (LeNet, 64), "pool": (PoolCNN, 128), "stride": (StrideCNN, 128), "dw": (Depthwise, 64), "misc": (Misc, 64), "mlp": (MLP, 128)}[name]
  return (m := cls()), ce(m, _images(rng, n), _labels(rng, n))

MODELS = ("resnet", "cnn", "lenet", "pool", "stride", "dw", "ae", "rnn", "tf", "unet", "seq", "misc", "bag", "mlp")

def torch_resnet_step(rng):
  """examples/resnet_mnist.py's model and step in torch eager (--torch: the peer of `resnet`'s median step)."""
  import torch
  tnn = torch.nn
  class TorchBlock(tnn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
      super().__init__()
      self.c1, self.b1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False), tnn.BatchNorm2d(cout)
      self.c2, self.b2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False), tnn.BatchNorm2d(cout)
      self.short = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout)) \
                   if stride != 1 or cin != cout else tnn.Identity()
    def forward(self, x): return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + self.short(x))
  class TorchResNet(tnn.Module):
    def __init__(self, width: int = 8):
      super().__init__()
      self.stem = tnn.Sequential(tnn.Conv2d(1, width, 3, 2, 1, bias=False), tnn.BatchNorm2d(width), tnn.ReLU())
      self.blocks = tnn.Sequential(TorchBlock(width, width), TorchBlock(width, 2 * width, 2))
      self.fc = tnn.Linear(2 * width, 10)
    def forward(self, x): return self.fc(self.blocks(self.stem((x.float() / 255 - 0.2860) / 0.3530)).mean((2, 3)))
  torch.manual_seed(0)
  model = TorchResNet()
  opt = torch.optim.Adam(model.parameters(), lr=1e-3)
  x, y = torch.tensor(rng.integers(0, 256, (128, 1, 28, 28), dtype=np.uint8)), torch.tensor(rng.integers(0, 10, 128))
  def step():
    opt.zero_grad()
    loss = tnn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss
  print(f"torch {torch.__version__} eager, {torch.get_num_threads()} threads")
  return step

def median_step_ms(step, runs: int) -> float:
  """The median wall time of a training step (its loss read back, so its work is done)."""
  walls = []
  for _ in range(runs):
    st = time.perf_counter()
    step().item()
    walls.append(time.perf_counter() - st)
  return statistics.median(walls) * 1e3

def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("model", choices=MODELS)
  ap.add_argument("--top", type=int, default=5, help="slowest kernels to list")
  ap.add_argument("--runs", type=int, default=5, help="timed steps")
  ap.add_argument("--jit", action="store_true", help="the step through TinyJit: its median wall time only")
  ap.add_argument("--torch", action="store_true", help="resnet only: the same model and step in torch eager (needs torch)")
  args = ap.parse_args()
  rng = np.random.default_rng(0)
  if args.torch:
    if args.model != "resnet": ap.error("--torch: only the resnet model has a torch twin")
    step = torch_resnet_step(rng)
    for _ in range(3): step()
    print(f"median step {median_step_ms(step, args.runs):.2f} ms of wall time")
    return
  Tensor.manual_seed(0)
  model, loss_fn = make(args.model, rng)
  params = nn.state.get_parameters(model)
  Tensor.realize_all(params)
  opt = nn.optim.Adam(params, lr=1e-3)
  def step() -> Tensor:
    with Tensor.train():
      opt.zero_grad()
      loss = loss_fn().backward()
      Tensor.realize_all([loss, *opt.schedule_step()])
    return loss
  if args.jit:  # the same step replayed by TinyJit from its third call: only the median step is measured
    jitted = TinyJit(step)
    for _ in range(3): jitted()
    print(f"{args.model}: median TinyJit step {median_step_ms(jitted, args.runs):.2f} ms of wall time")
    return
  t0 = time.perf_counter()
  first = step().item()
  print(f"{args.model}: first step {time.perf_counter() - t0:.2f} s, loss {first:.4f}")
  step()
  print(f"median step {median_step_ms(step, args.runs):.2f} ms of wall time (building the graph, scheduling, kernels)")
  steps: list[list] = []  # per timed step, (kernel, seconds) in the order run
  run_kernel = realize.run_kernel
  def timed(ck, bufs, dev, var_vals=None):
    st = time.perf_counter()
    run_kernel(ck, bufs, dev, var_vals)
    steps[-1].append((ck, time.perf_counter() - st))
  realize.run_kernel = timed
  batch_run = realize.NativeBatch.run
  realize.NativeBatch.run = lambda self, bufs: False  # kernel by kernel, through timed (a plan's kernels are one native call)
  try:
    for _ in range(args.runs):
      steps.append([])
      loss = step()
  finally: realize.run_kernel, realize.NativeBatch.run = run_kernel, batch_run
  kernels = [(min(run[i][1] for run in steps), ck) for i, (ck, _) in enumerate(steps[0])]
  print(f"loss after {2 * args.runs + 2} steps {loss.item():.4f}; {len(kernels)} kernels a step, sum of their fastest times "
        f"{sum(t for t, _ in kernels) * 1e3:.2f} ms")
  for t, ck in sorted(kernels, key=lambda tc: -tc[0])[:args.top]:
    name, lines = getattr(ck, "name", "copy"), len(getattr(ck, "src", "").splitlines())
    print(f"  {t * 1e3:8.3f} ms {lines:6d} lines {getattr(ck, 'flops', 0):12d} ops  {name}")

if __name__ == "__main__": main()
