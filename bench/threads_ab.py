"""How a threaded kernel's chunks are dispatched, compared in one process: the native workers (runtime/workers.py)
against the Python thread pool that platforms without them use. Both run the same tensors; the dispatcher is swapped
every few calls, after a pause, so both see the same periods of this noisy host.

  PYTHONPATH=. python bench/threads_ab.py [--rounds 10]

Prints, per workload and dispatcher, the median over rounds of each round's median call time."""
from __future__ import annotations
import argparse, statistics, sys, time
from pathlib import Path
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinygrad import Tensor, TinyJit, nn  # noqa: E402
import runtime.cpu  # noqa: E402

def workloads():
  rng = np.random.default_rng(0)
  a, b = (Tensor(rng.standard_normal((512, 512), dtype=np.float32)).realize() for _ in range(2))
  xs = [Tensor(rng.standard_normal((128, 784), dtype=np.float32)).realize() for _ in range(4)]
  ys = [Tensor(rng.integers(0, 10, 128).astype(np.int32)).realize() for _ in range(4)]
  layers = [nn.Linear(784, 512), nn.Linear(512, 512), nn.Linear(512, 10)]
  opt = nn.optim.Adam(nn.state.get_parameters(layers), lr=1e-3)
  @TinyJit
  def step(x, y):
    Tensor.training = True
    opt.zero_grad()
    loss = layers[2](layers[1](layers[0](x).relu()).relu()).sparse_categorical_crossentropy(y)
    loss.backward()
    opt.step()
    return loss.realize()
  return {"matmul 512": lambda k: (a @ b).realize(), "jitted MLP Adam step": lambda k: step(xs[k % 4], ys[k % 4]).numpy()}

def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--rounds", type=int, default=10)
  ap.add_argument("--calls", type=int, default=12, help="timed calls per dispatcher per round")
  args = ap.parse_args()
  native, batch_run = runtime.cpu.start_workers, runtime.cpu.KernelBatch.run
  # the Python pool: no native workers, and TinyJit replays kernel by kernel (a recording's batch holds the workers)
  dispatchers = {"native workers": (native, batch_run), "Python pool": (lambda compiler, n: None, lambda self, ptrs: False)}
  work = workloads()
  for fn in work.values():
    for k in range(4): fn(k)  # compile, record the jit
  res: dict[tuple[str, str], list[float]] = {}
  for _ in range(args.rounds):
    for dname, (start, run) in dispatchers.items():
      runtime.cpu.start_workers, runtime.cpu.KernelBatch.run = start, run
      for wname, fn in work.items():
        time.sleep(0.3)  # both dispatchers start each series from idle threads
        ts = []
        for k in range(args.calls):
          t0 = time.perf_counter()
          fn(k)
          ts.append(time.perf_counter() - t0)
        res.setdefault((wname, dname), []).append(statistics.median(ts))
  runtime.cpu.start_workers, runtime.cpu.KernelBatch.run = native, batch_run
  for (wname, dname), v in sorted(res.items()):
    print(f"{wname:<22} {dname:<15} {statistics.median(v) * 1e3:7.2f} ms   (rounds: {min(v) * 1e3:.2f} .. {max(v) * 1e3:.2f})")

if __name__ == "__main__": main()
