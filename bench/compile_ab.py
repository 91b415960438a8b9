"""Kernels compiling on the thread pool while the calling thread runs Python, as it does while it generates the next
kernel: with the GIL switch interval cut while compiles are in flight (runtime.cpu._ShortSwitchInterval) against the
interpreter's default 5 ms. The kernels are those of a first MLP Adam step (784-512-512-10, batch 128: forward,
backward and update in one realize); each round
compiles them anew (under new names, disk cache off) once per variant, and once with the caller idle for reference.

  PYTHONPATH=. python bench/compile_ab.py [--rounds 5]

Prints, per variant, the median and range over rounds of the wall time until every kernel is loaded."""
from __future__ import annotations
import argparse, os, statistics, sys, time
from pathlib import Path
import numpy as np

os.environ["CACHELEVEL"] = "0"  # every round compiles with LLVM
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinygrad import Tensor, nn  # noqa: E402
from tinygrad.device import Device  # noqa: E402
from tinygrad.engine.realize import plan_for  # noqa: E402
import runtime.cpu  # noqa: E402

def mlp_step_sources() -> list[tuple[str, str]]:
  """(name, LLVM IR) of the kernels of one MLP Adam step."""
  rng = np.random.default_rng(0)
  x = Tensor(rng.standard_normal((128, 784), dtype=np.float32)).realize()
  y = Tensor(rng.integers(0, 10, 128).astype(np.int32)).realize()
  layers = [nn.Linear(784, 512), nn.Linear(512, 512), nn.Linear(512, 10)]
  opt = nn.optim.Adam(nn.state.get_parameters(layers), lr=1e-3)
  Tensor.training = True
  loss = layers[2](layers[1](layers[0](x).relu()).relu()).sparse_categorical_crossentropy(y)
  loss.backward()
  plan, _, _ = plan_for([t.uop for t in (loss, *opt.schedule_step())], "CPU")  # the kernels of one realize
  return [(ck.name, ck.src) for ck, _ in plan.kernels]

def compile_all(dev, sources: list[tuple[str, str]], tag: str, busy: bool) -> float:
  st = time.perf_counter()
  pending = [dev.build(f"{name}_{tag}", src.replace(f"@{name}", f"@{name}_{tag}"), src.count("ptr noalias")) for name, src in sources]
  if busy:  # the caller keeps running Python until the pool has loaded every kernel
    while any(p._done.locked() for p in pending): sum(range(200))
  else:
    while any(p._done.locked() for p in pending): time.sleep(0.0002)
  return time.perf_counter() - st

def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--rounds", type=int, default=5)
  args = ap.parse_args()
  sources, dev = mlp_step_sources(), Device["CPU"]
  short = runtime.cpu._ShortSwitchInterval.SECONDS
  variants = {"caller busy, interval cut": (True, short), "caller busy, interval 5 ms": (True, 0.005), "caller idle (reference)": (False, short)}
  times: dict[str, list[float]] = {v: [] for v in variants}
  for r in range(args.rounds):
    for i, (v, (busy, seconds)) in enumerate(variants.items()):
      runtime.cpu._ShortSwitchInterval.SECONDS = seconds
      time.sleep(0.2)
      times[v].append(compile_all(dev, sources, f"r{r}v{i}", busy))
  runtime.cpu._ShortSwitchInterval.SECONDS = short
  print(f"{len(sources)} kernels of an MLP Adam step, compiled and loaded on the pool; {args.rounds} rounds")
  for v, ts in times.items():
    print(f"  {v:28s} median {statistics.median(ts)*1e3:6.0f} ms  range {min(ts)*1e3:.0f}-{max(ts)*1e3:.0f} ms")

if __name__ == "__main__":
  main()
