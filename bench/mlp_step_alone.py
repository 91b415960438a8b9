"""The bench's MLP training step (bench.OURS_MLP_SRC) timed alone in a fresh process, to compare with the in-process
bench row: python bench/mlp_step_alone.py sgd|adam [jit]"""
import os, statistics, sys, time
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench
from tinygrad import Tensor, TinyJit

opt_name, jit = sys.argv[1] if len(sys.argv) > 1 else "sgd", "jit" in sys.argv[2:]
net, params, opt, step = bench._ours_mlp_namespace()["make_ours"](opt_name, bench.LR[opt_name])
if jit: step = TinyJit(step)
rng = np.random.default_rng(0)
xs = [Tensor(rng.standard_normal((bench.BATCH, 784), dtype=np.float32)) for _ in range(4)]
ys = [Tensor(rng.integers(0, 10, bench.BATCH).astype(np.int32)) for _ in range(4)]
for i in range(4): step(xs[i], ys[i])
times = []
for i in range(40):
  t = time.perf_counter()
  step(xs[i % 4], ys[i % 4]).realize()
  times.append(time.perf_counter() - t)
print(f"MLP 784-512-512-10 b{bench.BATCH} {opt_name}{' TinyJit' if jit else ''}: {1 / statistics.median(times):.0f} steps/s (median of 40)")
