"""Interleaved A/B of one kernel built two ways: this host's speed is bimodal (memory streams at ~33 or ~55 GB/s for
seconds at a time), so two builds are compared by alternating their runs on the same buffers, never by two runs.

    PYTHONPATH=. python bench/kernel_ab.py [softmax] [nontemporal] [colsum]

softmax      exp once (codegen/opt.py store_reduced_values) vs the kernel without that rewrite
nontemporal  (a*b+c).relu() on 16M floats with and without non-temporal stores (codegen/llvmir.py streams)
colsum       sum(0) of a 128x512 matrix with and without the four column accumulators (codegen/opt.py choose_upcasts)
"""
from __future__ import annotations
import sys, time
import numpy as np
from tinygrad import Tensor
from tinygrad.device import Device
from tinygrad.engine import realize
from runtime.cpu import CPUProgram
import codegen.opt as opt

def _buf(t: Tensor):
  u = t.uop
  return (u.arg if u.op.name == "BUFFER" else u.src[0].arg).buf

def _kernel(out: Tensor, prefix: str) -> tuple:
  """The (CompiledKernel, buffers) computing `out` whose name starts with prefix."""
  return next((ck, bufs) for ck, bufs in out.schedule_linear() if ck.name.startswith(prefix))

def _rebuilt(make, prefix: str, patch: tuple | None = None):
  """The kernel of make() compiled afresh, with codegen.opt.<name> replaced by fn while it compiles."""
  realize.kernel_cache.clear(); realize.plan_cache.clear()
  old = None
  if patch is not None: old = getattr(opt, patch[0]); setattr(opt, patch[0], patch[1])
  try: return _kernel(make(), prefix)[0]
  finally:
    if patch is not None: setattr(opt, patch[0], old)

def alternate(builds: dict, buffer_sets: list[list], rounds: int = 30) -> dict[str, float]:
  """Median seconds of each build, runs alternating between builds and rotating through the buffer sets."""
  dev, times = Device["CPU"], {k: [] for k in builds}
  for i in range(rounds):
    for j, (name, ck) in enumerate(builds.items()):
      bufs = buffer_sets[(i + j) % len(buffer_sets)]
      t0 = time.perf_counter()
      dev.run(ck.program, [b.ptr for b in bufs], *ck.launch)
      times[name].append(time.perf_counter() - t0)
  return {k: sorted(v)[len(v) // 2] for k, v in times.items()}

def ab_softmax() -> None:
  xs = [Tensor(np.random.default_rng(k).standard_normal((4096, 1024)).astype(np.float32)).realize() for k in range(3)]
  once = _rebuilt(lambda: xs[0].softmax(-1), "r_4096")
  twice = _rebuilt(lambda: xs[0].softmax(-1), "r_4096", ("store_reduced_values", lambda sink: sink))
  sets = [[_buf(Tensor.empty(4096, 1024).realize()), _buf(x)] for x in xs]
  r = alternate({"exp once": once, "exp twice": twice}, sets)
  print("softmax 4096x1024 kernel: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in r.items()))

def ab_nontemporal() -> None:
  n = 16 << 20
  ins = [[Tensor(np.random.default_rng(3 * k + i).standard_normal(n).astype(np.float32)).realize() for i in range(3)] for k in range(3)]
  a, b, c = ins[0]
  nt = _kernel((a * b + c).relu(), "E_")[0]
  assert "!nontemporal" in nt.src, "outputs of this size are stored non-temporally"
  src = nt.src.replace(", !nontemporal !0", "").replace("  fence seq_cst\n", "").replace("\n!0 = !{i32 1}", "")
  comp = Device["CPU"].compiler
  plain = realize.CompiledKernel(nt.name, CPUProgram(comp, nt.name, comp.compile(src), 4), nt.launch, src, nt.ops, nt.flops, nt.nbytes)
  sets = [[_buf(Tensor.empty(n).realize())] + [_buf(t) for t in k] for k in ins]
  r = alternate({"non-temporal": nt, "plain stores": plain}, sets)
  print("(a*b+c).relu() 16M kernel: " + ", ".join(f"{k} {v * 1e3:.2f} ms ({16 * n / v / 1e9:.1f} GB/s)" for k, v in r.items()))

def ab_colsum() -> None:
  xs = [Tensor(np.random.default_rng(k).standard_normal((128, 512)).astype(np.float32)).realize() for k in range(3)]
  four = _rebuilt(lambda: xs[0].sum(0), "r_512")
  orig = opt.choose_upcasts
  one = _rebuilt(lambda: xs[0].sum(0), "r_512", ("choose_upcasts", lambda sink, vec: [u for u in orig(sink, vec) if u != (vec, 4)]))
  sets = [[_buf(Tensor.empty(512).realize()), _buf(x)] for x in xs]
  r = alternate({"4 accumulators": four, "1 accumulator": one}, sets, rounds=200)
  print("sum(0) of 128x512 kernel: " + ", ".join(f"{k} {v * 1e6:.1f} us" for k, v in r.items()))

if __name__ == "__main__":
  todo = {"softmax": ab_softmax, "nontemporal": ab_nontemporal, "colsum": ab_colsum}
  for name in sys.argv[1:] or list(todo): todo[name]()
