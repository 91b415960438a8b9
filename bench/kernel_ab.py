"""Interleaved A/B of one kernel built two ways: this host's speed is bimodal (memory streams at ~33 or ~55 GB/s for
seconds at a time), so two builds are compared by alternating their runs on the same buffers, never by two runs.

    PYTHONPATH=. python bench/kernel_ab.py [softmax] [nontemporal] [ntload] [colsum]

softmax      exp once (codegen/opt.py store_reduced_values) vs the kernel without that rewrite
nontemporal  (a*b+c).relu() on 16M floats with and without non-temporal stores (codegen/llvmir.py streams)
ntload       a 16M-float sum's partials kernel with and without non-temporal loads (codegen/llvmir.py streamed_load),
             and a tiny realize timed right after each run (what the 64 MB stream left of the interpreter in the caches)
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

def _plain(ck, access: str):
  """The kernel ck compiled again without the non-temporal hint on its `access` lines ("store" or "load")."""
  lines = [ln.replace(", !nontemporal !0", "") if f"= {access} " in ln or ln.lstrip().startswith(f"{access} ") else ln for ln in ck.src.split("\n")]
  src = "\n".join(lines)
  if access == "store": src = src.replace("  fence seq_cst\n", "")
  if "!nontemporal" not in src: src = src.replace("\n!0 = !{i32 1}", "")
  comp = Device["CPU"].compiler
  nbufs = ck.src.split("(")[1].count("ptr noalias")
  return realize.CompiledKernel(ck.name, CPUProgram(comp, ck.name, comp.compile(src), nbufs), ck.launch, src, ck.ops, ck.flops, ck.nbytes)

def ab_nontemporal() -> None:
  n = 16 << 20
  ins = [[Tensor(np.random.default_rng(3 * k + i).standard_normal(n).astype(np.float32)).realize() for i in range(3)] for k in range(3)]
  a, b, c = ins[0]
  nt = _kernel((a * b + c).relu(), "E_")[0]
  assert "store <16 x float>" in nt.src and "!nontemporal" in nt.src, "outputs of this size are stored non-temporally"
  sets = [[_buf(Tensor.empty(n).realize())] + [_buf(t) for t in k] for k in ins]
  r = alternate({"non-temporal": nt, "plain stores": _plain(nt, "store")}, sets)
  print("(a*b+c).relu() 16M kernel: " + ", ".join(f"{k} {v * 1e3:.2f} ms ({16 * n / v / 1e9:.1f} GB/s)" for k, v in r.items()))

def ab_ntload() -> None:
  n = 16 << 20
  xs = [Tensor(np.random.default_rng(k).standard_normal(n).astype(np.float32)).realize() for k in range(6)]
  nt = _kernel(xs[0].sum(), "r_64_")[0]
  assert "!nontemporal" in nt.src, "inputs of this size read once are loaded non-temporally"
  builds, small = {"non-temporal": nt, "plain loads": _plain(nt, "load")}, Tensor(np.arange(16, dtype=np.float32)).realize()
  dev, out, times, after = Device["CPU"], _buf(Tensor.empty(64).realize()), {k: [] for k in builds}, {k: [] for k in builds}
  for i in range(60):
    for name, ck in builds.items():
      t0 = time.perf_counter()
      dev.run(ck.program, [out.ptr, _buf(xs[i % len(xs)]).ptr], *ck.launch)
      t1 = time.perf_counter()
      (small + 1).realize()
      times[name].append(t1 - t0); after[name].append(time.perf_counter() - t1)
  med = lambda v: sorted(v)[len(v) // 2]
  print("sum 16M partials kernel: " + ", ".join(f"{k} {4 * n / med(times[k]) / 1e9:.1f} GB/s, then (x+1) on 16 elements "
                                               f"{med(after[k]) * 1e6:.0f} us" for k in builds))

def ab_colsum() -> None:
  xs = [Tensor(np.random.default_rng(k).standard_normal((128, 512)).astype(np.float32)).realize() for k in range(3)]
  four = _rebuilt(lambda: xs[0].sum(0), "r_512")
  orig = opt.choose_upcasts
  one = _rebuilt(lambda: xs[0].sum(0), "r_512", ("choose_upcasts", lambda sink, vec, along: [u for u in orig(sink, vec, along) if u != (vec, 4)]))
  sets = [[_buf(Tensor.empty(512).realize()), _buf(x)] for x in xs]
  r = alternate({"4 accumulators": four, "1 accumulator": one}, sets, rounds=200)
  print("sum(0) of 128x512 kernel: " + ", ".join(f"{k} {v * 1e6:.1f} us" for k, v in r.items()))

if __name__ == "__main__":
  todo = {"softmax": ab_softmax, "nontemporal": ab_nontemporal, "ntload": ab_ntload, "colsum": ab_colsum}
  for name in sys.argv[1:] or list(todo): todo[name]()
