#!/usr/bin/env python3
"""Benchmark our tinygrad-compatible library against numpy, torch (eager) and jax.jit.

Run (peers installed in a separate virtualenv, see bench/README.md):

    /work/benchenv/bin/python bench/bench.py [--quick] [--only NAME[,NAME]] [--json out.json] [--plot out.png]

Only numpy is required; torch and jax are used when importable. Our library is imported
from the repository root (the parent of this file's folder), which is put first on sys.path.

Every figure is a median over several timed repeats after warm-up. Every result of ours is
checked once against numpy (np.testing.assert_allclose) on an output that came out of the
timed loop, so a fast but wrong kernel is reported as FAIL instead of a number.

The "ratio" column compares ours with the best peer and is always oriented so that
ratio > 1 means ours is better (faster):
  throughput rows (GB/s, GFLOP/s, steps/s): ratio = ours / best peer
  time rows (us, ms, s):                    ratio = best peer time / our time
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = ["elementwise", "sum", "softmax", "matmul", "conv2d", "overhead", "startup", "firstcall", "mlp", "jit"]
COLS = ["ours", "numpy", "torch", "jax"]
PEERS = ["numpy", "torch", "jax"]

# ----------------------------------------------------------------------------- configuration

class Cfg:
  def __init__(self, quick: bool):
    self.quick = quick
    self.repeats = 5 if quick else 10       # timed repeats per measurement (median taken)
    self.budget = 1.5 if quick else 3.0     # seconds of timed repeats per measurement, at least 3 repeats
    self.warmup = 1 if quick else 2
    self.proc_runs = 1 if quick else 3      # fresh-process runs per startup / first-call cell
    self.overhead_iters = 100 if quick else 300
    self.matmul_sizes = [512, 1024] if quick else [512, 1024, 2048]
    self.mlp_steps = 5 if quick else 15
    self.subprocess_timeout = 90 if quick else 180

# ----------------------------------------------------------------------------- timing helpers

QUIESCE_S = 0.5  # BLAS / OpenMP worker threads of the library measured before spin for a while after its last call

def quiesce() -> None:
  """Pause before a measurement so worker threads left spinning by the previous one (numpy's OpenBLAS after a
  correctness check, torch's OpenMP pool) have parked and do not take cores from the library being timed."""
  time.sleep(QUIESCE_S)

def median_time(fn, cfg: Cfg, warmup: int | None = None, repeats: int | None = None, budget: float | None = None):
  """Run fn() `warmup` times, then time it up to `repeats` times (stopping early after `budget`
  seconds once 3 samples exist, or once one sample exceeds 2x budget). Returns (median_s, samples, last)."""
  warmup = cfg.warmup if warmup is None else warmup
  repeats = cfg.repeats if repeats is None else repeats
  budget = cfg.budget if budget is None else budget
  last = None
  for _ in range(warmup): last = fn()
  quiesce()
  samples: list[float] = []
  start = time.perf_counter()
  while len(samples) < repeats:
    t0 = time.perf_counter()
    last = fn()
    samples.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    if elapsed > budget and (len(samples) >= 3 or elapsed > 2 * budget): break
  return statistics.median(samples), samples, last

def batched_time(fn, iters: int, batch: int = 50):
  """Median per-call time of a very cheap fn, timed in batches of `batch` calls."""
  for _ in range(10): fn()
  quiesce()
  per_call = []
  for _ in range(max(3, iters // batch)):
    t0 = time.perf_counter()
    for _ in range(batch): fn()
    per_call.append((time.perf_counter() - t0) / batch)
  return statistics.median(per_call)

def variant(x: np.ndarray, k: int) -> np.ndarray:
  """Input number k of a timed series: k=0 is x itself, others are exactly rescaled copies (powers of two),
  so each timed call of ours computes on buffers it has never seen (a library that caches results
  of identical graphs cannot skip the work)."""
  return x if k == 0 else x * np.float32(2.0 ** ((k % 7) - 3) if k % 7 != 3 else 1.5)

def peer_time(ctx, make_set, compute):
  """Time a peer as ours is timed: call k computes on input set k, built before the clock starts, so a column does not
  gain from finding its input still in the caches (a 16 MB softmax input fits this host's 32 MB L3). Returns
  (median_s, samples, last)."""
  sets = [make_set(k) for k in range(ctx.cfg.warmup + ctx.cfg.repeats)]
  counter = iter(range(len(sets)))
  return median_time(lambda: compute(*sets[next(counter)]), ctx.cfg)

def ours_time(ctx, row, make_set, compute):
  """Time ours: make_set(k) -> tuple of realized Tensors for call k (fresh buffers for every call, all built
  before the clock starts), compute(*set) -> Tensor, realized inside the timed region.
  Returns (median_s, k_of_last_call, last_output_as_numpy). Adds a note when reading back the realized
  output is suspiciously slow (a sign that realize() did not compute)."""
  cfg, o = ctx.cfg, ctx.ours
  o.need()
  sets = [make_set(k) for k in range(cfg.warmup + cfg.repeats)]
  counter = [0]
  def fn():
    k = counter[0]; counter[0] += 1
    out = o.run(lambda: compute(*sets[k]))
    sets[k] = None  # free this call's inputs
    return k, out
  t, _, (k, out) = median_time(fn, cfg)
  t0 = time.perf_counter(); res = out.numpy(); t_read = time.perf_counter() - t0
  t0 = time.perf_counter(); np.copy(res); t_copy = time.perf_counter() - t0
  if t_read > 0.5 * t and t_read > 5 * t_copy + 2e-3:
    row.notes.append(f"SUSPECT ours: .numpy() after realize() took {t_read*1e3:.1f} ms vs {t*1e3:.1f} ms compute: realize() may not compute")
  return t, k, res

# ----------------------------------------------------------------------------- results table

class Row:
  def __init__(self, name: str, unit: str, higher_is_better: bool, desc: str = ""):
    self.name, self.unit, self.higher, self.desc = name, unit, higher_is_better, desc
    self.values: dict[str, float | None] = {c: None for c in COLS}
    self.errors: dict[str, str] = {}   # col -> short message ("n/a: ..." or "FAIL: ...")
    self.notes: list[str] = []

  def best_peer(self):
    vals = [(self.values[p], p) for p in PEERS if self.values[p] is not None]
    if not vals: return None, None
    return (max(vals) if self.higher else min(vals))

  def ratio(self):
    bp, _ = self.best_peer()
    ours = self.values["ours"]
    if bp is None or ours is None or ours == 0 or bp == 0: return None
    return ours / bp if self.higher else bp / ours

  def to_json(self):
    bp, bpn = self.best_peer()
    return {"name": self.name, "unit": self.unit, "higher_is_better": self.higher, "desc": self.desc,
            "values": self.values, "errors": self.errors, "notes": self.notes,
            "best_peer": bpn, "best_peer_value": bp, "ratio_ours_vs_best_peer": self.ratio()}

def cell(row: Row, col: str, fn, verbose: bool = True):
  """Evaluate one cell: fn() returns the figure (float); exceptions become FAIL entries."""
  try:
    v = fn()
    row.values[col] = None if v is None else float(v)
  except NotAvailable as e:
    row.errors[col] = f"n/a: {e}"
  except ImportFailed as e:
    row.errors[col] = f"FAIL: {e}"
  except Exception as e:  # noqa: BLE001 - a bench must survive anything the library throws
    msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]
    row.errors[col] = f"FAIL: {msg}"
    if verbose:
      print(f"  [{row.name} / {col}] FAILED: {msg}", file=sys.stderr)
      traceback.print_exc(limit=6, file=sys.stderr)
  return row

class NotAvailable(Exception): pass
class ImportFailed(Exception): pass

def merge_rounds(rows: list[Row], new: list[Row]) -> list[Row]:
  """rows with new appended, or folded into the row of the same name from an earlier round: each cell keeps its best
  figure, an error (FAIL or n/a) in any round stays, and notes are kept once."""
  by_name = {r.name: r for r in rows}
  for r in new:
    if (old := by_name.get(r.name)) is None:
      rows.append(r)
      by_name[r.name] = r
      continue
    for c, v in r.values.items():
      if v is not None and c not in old.errors:
        old.values[c] = v if old.values[c] is None else (max if r.higher else min)(old.values[c], v)
    for c, e in r.errors.items():
      old.errors[c], old.values[c] = e, None
    old.notes += [n for n in r.notes if n not in old.notes]
  return rows

def fmt(v: float | None) -> str:
  if v is None: return "-"
  a = abs(v)
  if a >= 1000: return f"{v:,.0f}"
  if a >= 100: return f"{v:.0f}"
  if a >= 10: return f"{v:.1f}"
  if a >= 1: return f"{v:.2f}"
  return f"{v:.3f}"

def render_table(rows: list[Row], markdown: bool = False) -> str:
  header = ["workload", "unit", "ours", "numpy", "torch", "jax", "best peer", "ratio"]
  lines = []
  for r in rows:
    cells = [r.name, r.unit + (" (higher=better)" if r.higher else " (lower=better)")]
    for c in COLS:
      if r.values[c] is not None: cells.append(fmt(r.values[c]))
      elif c in r.errors: cells.append("n/a" if r.errors[c].startswith("n/a") else "FAIL")
      else: cells.append("-")
    _, bpn = r.best_peer()
    cells.append(bpn or "-")
    rt = r.ratio()
    cells.append(("-" if rt is None else f"{rt:.2f}x" if rt >= 0.095 else f"{rt:.2g}x"))
    lines.append(cells)
  if markdown:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 4 + ["---", "---:"]) + "|"]
    out += ["| " + " | ".join(l) + " |" for l in lines]
    return "\n".join(out)
  widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(header)]
  def line(cells): return "  ".join(c.ljust(w) if i < 2 or i == 6 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
  out = [line(header), line(["-" * w for w in widths])] + [line(l) for l in lines]
  return "\n".join(out)

# ----------------------------------------------------------------------------- backends

class Ours:
  """Our library, imported from the repo root. All calls go through tinygrad's public API."""
  def __init__(self):
    self.error = None
    self.Tensor = None
    sys.path.insert(0, str(REPO))
    try:
      import tinygrad  # noqa: F401
      from tinygrad import Tensor
      self.Tensor = Tensor
      self.module = tinygrad
    except Exception as e:  # noqa: BLE001
      self.error = f"{type(e).__name__}: {e}"
      return
    self._sync = None
    try:
      from tinygrad import Device
      dev = Device[Device.DEFAULT]
      if hasattr(dev, "synchronize"): self._sync = dev.synchronize
    except Exception:  # noqa: BLE001 - Device is optional; on CPU realize() is synchronous
      pass

  @property
  def ok(self): return self.Tensor is not None

  def need(self):
    if not self.ok: raise ImportFailed(f"library does not import: {self.error}")

  def t(self, arr: np.ndarray):
    """numpy -> realized Tensor."""
    self.need()
    return self.Tensor(arr).realize()

  def run(self, fn):
    """Call fn() -> Tensor, realize it, wait for the device; returns the realized tensor."""
    out = fn().realize()
    if self._sync is not None: self._sync()
    return out

def load_torch():
  try:
    import torch
    return torch, None
  except Exception as e:  # noqa: BLE001
    return None, f"{type(e).__name__}: {e}"

def load_jax():
  try:
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", False)
    return (jax, jnp), None
  except Exception as e:  # noqa: BLE001
    return None, f"{type(e).__name__}: {e}"

# ----------------------------------------------------------------------------- context

class Ctx:
  def __init__(self, cfg: Cfg, ours: Ours, torch, jaxm):
    self.cfg, self.ours, self.torch = cfg, ours, torch
    self.jax, self.jnp = jaxm if jaxm is not None else (None, None)
    self.rng = np.random.default_rng(0)

  def need_torch(self):
    if self.torch is None: raise NotAvailable("torch not installed")
    return self.torch

  def need_jax(self):
    if self.jax is None: raise NotAvailable("jax not installed")
    return self.jax, self.jnp

  def randn(self, *shape): return self.rng.standard_normal(shape, dtype=np.float32)

def jax_ready(x):
  x.block_until_ready()
  return x

# ----------------------------------------------------------------------------- workloads

N16M = 16 * 1024 * 1024

def w_elementwise(ctx: Ctx) -> list[Row]:
  n = N16M
  row = Row("elementwise (a*b+c).relu() 16M f32", "GB/s", True, "fused multiply-add-relu, 3 reads + 1 write of 4 B/elem")
  a, b, c = ctx.randn(n), ctx.randn(n), ctx.randn(n)
  nbytes = 4 * 4 * n
  def ours():
    o = ctx.ours
    ta, tb = o.t(a), o.t(b)
    t, k, out = ours_time(ctx, row, lambda k: (ta, tb, o.t(variant(c, k))), lambda x, y, z: (x * y + z).relu())
    np.testing.assert_allclose(out, np.maximum(a * b + variant(c, k), 0), rtol=1e-5, atol=1e-6)
    return nbytes / t / 1e9
  def numpy_():
    t, _, _ = peer_time(ctx, lambda k: (a, b, variant(c, k)), lambda x, y, z: np.maximum(x * y + z, 0))
    return nbytes / t / 1e9
  def torch_():
    torch = ctx.need_torch()
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    t, _, _ = peer_time(ctx, lambda k: (ta, tb, torch.from_numpy(variant(c, k))), lambda x, y, z: (x * y + z).relu())
    return nbytes / t / 1e9
  def jax_():
    jax, jnp = ctx.need_jax()
    f = jax.jit(lambda x, y, z: jnp.maximum(x * y + z, 0))
    ja, jb = jax.device_put(a), jax.device_put(b)
    t, _, _ = peer_time(ctx, lambda k: (ja, jb, jax.device_put(variant(c, k))), lambda x, y, z: jax_ready(f(x, y, z)))
    return nbytes / t / 1e9
  for col, fn in zip(COLS, (ours, numpy_, torch_, jax_)): cell(row, col, fn)
  return [row]

def w_sum(ctx: Ctx) -> list[Row]:
  n = N16M
  row = Row("sum 16M f32", "GB/s", True, "full reduction to a scalar, 4 B/elem read")
  a = ctx.randn(n)
  nbytes = 4 * n
  def ours():
    o = ctx.ours
    t, k, out = ours_time(ctx, row, lambda k: (o.t(variant(a, k)),), lambda x: x.sum())
    v = variant(a, k)
    # float32 accumulation over 16M values: allow ~2e-6 of sum|x| (a dropped block of elements is far larger)
    np.testing.assert_allclose(float(out), v.astype(np.float64).sum(), rtol=1e-4, atol=2e-6 * float(np.abs(v).sum()))
    return nbytes / t / 1e9
  def numpy_():
    t, _, _ = peer_time(ctx, lambda k: (variant(a, k),), np.sum)
    return nbytes / t / 1e9
  def torch_():
    torch = ctx.need_torch()
    t, _, _ = peer_time(ctx, lambda k: (torch.from_numpy(variant(a, k)),), torch.sum)
    return nbytes / t / 1e9
  def jax_():
    jax, jnp = ctx.need_jax()
    f = jax.jit(jnp.sum)
    t, _, _ = peer_time(ctx, lambda k: (jax.device_put(variant(a, k)),), lambda x: jax_ready(f(x)))
    return nbytes / t / 1e9
  for col, fn in zip(COLS, (ours, numpy_, torch_, jax_)): cell(row, col, fn)
  return [row]

def np_softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)

def w_softmax(ctx: Ctx) -> list[Row]:
  shape = (4096, 1024)
  row = Row("softmax(-1) 4096x1024 f32", "GB/s", True, "softmax over last axis, 1 read + 1 write of 4 B/elem")
  x = ctx.randn(*shape)
  nbytes = 2 * 4 * x.size
  def ours():
    o = ctx.ours
    t, k, out = ours_time(ctx, row, lambda k: (o.t(variant(x, k)),), lambda v: v.softmax(-1))
    np.testing.assert_allclose(out, np_softmax(variant(x, k).astype(np.float64)), rtol=1e-4, atol=1e-7)
    return nbytes / t / 1e9
  def numpy_():
    t, _, _ = peer_time(ctx, lambda k: (variant(x, k),), np_softmax)
    return nbytes / t / 1e9
  def torch_():
    torch = ctx.need_torch()
    t, _, _ = peer_time(ctx, lambda k: (torch.from_numpy(variant(x, k)),), lambda v: torch.softmax(v, -1))
    return nbytes / t / 1e9
  def jax_():
    jax, jnp = ctx.need_jax()
    f = jax.jit(lambda v: jax.nn.softmax(v, axis=-1))
    t, _, _ = peer_time(ctx, lambda k: (jax.device_put(variant(x, k)),), lambda v: jax_ready(f(v)))
    return nbytes / t / 1e9
  for col, fn in zip(COLS, (ours, numpy_, torch_, jax_)): cell(row, col, fn)
  return [row]

def w_matmul(ctx: Ctx) -> list[Row]:
  rows = []
  for n in ctx.cfg.matmul_sizes:
    row = Row(f"matmul {n}x{n} f32", "GFLOP/s", True, "C = A @ B, 2*n^3 flops")
    a, b = ctx.randn(n, n), ctx.randn(n, n)
    flops = 2 * n ** 3
    def ours(a=a, b=b, n=n, row=row):
      o = ctx.ours
      ta = o.t(a)
      t, k, out = ours_time(ctx, row, lambda k: (ta, o.t(variant(b, k))), lambda x, y: x @ y)
      np.testing.assert_allclose(out, a.astype(np.float64) @ variant(b, k).astype(np.float64), rtol=1e-3, atol=1e-4 * np.sqrt(n))
      return flops / t / 1e9
    # the right operand is a new set for every call, as ours gets (peer_time): none finds it still in the caches
    def numpy_(a=a, b=b):
      t, _, _ = peer_time(ctx, lambda k: (a, variant(b, k)), lambda x, y: x @ y)
      return flops / t / 1e9
    def torch_(a=a, b=b):
      torch = ctx.need_torch()
      ta = torch.from_numpy(a)
      t, _, _ = peer_time(ctx, lambda k: (ta, torch.from_numpy(variant(b, k))), lambda x, y: x @ y)
      return flops / t / 1e9
    def jax_(a=a, b=b):
      jax, jnp = ctx.need_jax()
      f = jax.jit(lambda x, y: x @ y)
      ja = jax.device_put(a)
      t, _, _ = peer_time(ctx, lambda k: (ja, jax.device_put(variant(b, k))), lambda x, y: jax_ready(f(x, y)))
      return flops / t / 1e9
    for col, fn in zip(COLS, (ours, numpy_, torch_, jax_)): cell(row, col, fn)
    rows.append(row)
  return rows

def np_conv2d_pad1(x, w):
  """numpy peer: im2col via sliding_window_view + tensordot (BLAS), NCHW output."""
  xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
  cols = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=(2, 3))  # N,C,H,W,kh,kw
  out = np.tensordot(cols, w, axes=([1, 4, 5], [1, 2, 3]))  # N,H,W,Cout
  return np.ascontiguousarray(out.transpose(0, 3, 1, 2))

def w_conv2d(ctx: Ctx) -> list[Row]:
  N, C, H, W, K = 32, 32, 56, 56, 64
  row = Row("conv2d 32x32x56x56 * 64x32x3x3 pad1", "GFLOP/s", True, "2*N*K*H*W*C*9 flops; numpy peer is im2col+tensordot")
  x, w = ctx.randn(N, C, H, W), ctx.randn(K, C, 3, 3) * 0.1
  flops = 2 * N * K * H * W * C * 9
  ref_holder = {}
  def ref():
    if "r" not in ref_holder:
      if ctx.torch is not None:
        ref_holder["r"] = ctx.torch.nn.functional.conv2d(ctx.torch.from_numpy(x).double(), ctx.torch.from_numpy(w).double(), padding=1).numpy()
      else:
        ref_holder["r"] = np_conv2d_pad1(x.astype(np.float64), w.astype(np.float64))
    return ref_holder["r"]
  def ours():
    o = ctx.ours
    o.need()
    if not hasattr(o.Tensor, "conv2d"): raise NotAvailable("Tensor.conv2d missing")
    tx = o.t(x)
    t, k, out = ours_time(ctx, row, lambda k: (tx, o.t(variant(w, k))), lambda v, f: v.conv2d(f, padding=1))
    # conv is linear in w and variant() scales w exactly by a power of two (or 1.5), so the reference scales too
    scale = float(variant(np.ones(1, np.float32), k)[0])
    np.testing.assert_allclose(out, ref() * scale, rtol=1e-3, atol=1e-3 * scale)
    return flops / t / 1e9
  # the weights are a new set for every call, as ours gets (peer_time)
  def numpy_():
    np.testing.assert_allclose(np_conv2d_pad1(x, w), ref(), rtol=1e-3, atol=1e-3)
    t, _, _ = peer_time(ctx, lambda k: (x, variant(w, k)), np_conv2d_pad1)
    return flops / t / 1e9
  def torch_():
    torch = ctx.need_torch()
    tx = torch.from_numpy(x)
    t, _, _ = peer_time(ctx, lambda k: (tx, torch.from_numpy(variant(w, k))), lambda v, f: torch.nn.functional.conv2d(v, f, padding=1))
    return flops / t / 1e9
  def jax_():
    jax, jnp = ctx.need_jax()
    f = jax.jit(lambda a, b: jax.lax.conv_general_dilated(a, b, (1, 1), ((1, 1), (1, 1))))
    jx = jax.device_put(x)
    t, _, _ = peer_time(ctx, lambda k: (jx, jax.device_put(variant(w, k))), lambda v, g: jax_ready(f(v, g)))
    return flops / t / 1e9
  for col, fn in zip(COLS, (ours, numpy_, torch_, jax_)): cell(row, col, fn)
  return [row]

def w_overhead(ctx: Ctx) -> list[Row]:
  row = Row("per-op overhead (x+1) 16 elems", "us", False, "dispatch cost of a tiny op: ours (x+1).realize(); numpy x+1; torch x+1; jax jitted f(x).block_until_ready()")
  x = np.arange(16, dtype=np.float32)
  iters = ctx.cfg.overhead_iters
  def ours():
    o = ctx.ours
    tx = o.t(x)
    out = o.run(lambda: tx + 1)
    np.testing.assert_allclose(out.numpy(), x + 1)
    for _ in range(10): o.run(lambda: tx + 1)
    samples = []
    for _ in range(iters):
      t0 = time.perf_counter()
      out = o.run(lambda: tx + 1)
      samples.append(time.perf_counter() - t0)
    np.testing.assert_allclose(out.numpy(), x + 1)
    return statistics.median(samples) * 1e6
  def numpy_():
    return batched_time(lambda: x + 1, iters * 10) * 1e6
  def torch_():
    torch = ctx.need_torch()
    tx = torch.from_numpy(x)
    return batched_time(lambda: tx + 1, iters * 10) * 1e6
  def jax_():
    jax, _ = ctx.need_jax()
    f = jax.jit(lambda v: v + 1)
    jx = jax.device_put(x)
    return batched_time(lambda: f(jx).block_until_ready(), iters * 5) * 1e6
  for col, fn in zip(COLS, (ours, numpy_, torch_, jax_)): cell(row, col, fn)
  return [row]

# ----------------------------------------------------------------------------- fresh-process workloads

_CACHEDB_STYLE: list[str] = []  # "dir" (CACHEDB=<empty dir>) or "file" (CACHEDB=<empty dir>/cache.db), probed once

def _env_for_ours(cachedir: str) -> dict:
  env = dict(os.environ)
  env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
  env["CACHEDB"] = os.path.join(cachedir, "cache.db") if _CACHEDB_STYLE == ["file"] else cachedir
  return env

def _probe_cachedb_style(timeout: float) -> str:
  """Our disk cache is configured with CACHEDB=<fresh empty dir>; if the library rejects a directory there
  (upstream tinygrad takes a sqlite file path), fall back to <fresh empty dir>/cache.db."""
  if not _CACHEDB_STYLE:
    with tempfile.TemporaryDirectory(prefix="bench_cachedb_") as d:
      try:
        _run_py(OURS_FIRST, _env_for_ours(d), timeout)
        _CACHEDB_STYLE.append("dir")
      except RuntimeError:
        _CACHEDB_STYLE.append("file")
  return _CACHEDB_STYLE[0]

def _run_py(code: str, env: dict | None, timeout: float) -> tuple[float, str]:
  """Run `python -c code` in a fresh process; returns (wall seconds, stdout). Raises on failure. Bytecode caching is
  on for every library, as after a pip install (PYTHONDONTWRITEBYTECODE would make ours, run from a source checkout,
  recompile every module on each start while the peers read their installed .pyc files)."""
  env = {k: v for k, v in (os.environ if env is None else env).items() if k != "PYTHONDONTWRITEBYTECODE"}
  t0 = time.perf_counter()
  try:
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout, cwd=tempfile.gettempdir())
  except subprocess.TimeoutExpired:
    raise RuntimeError(f"fresh-process run timed out after {timeout:.0f}s") from None
  dt = time.perf_counter() - t0
  if p.returncode != 0:
    tail = (p.stderr.strip().splitlines() or ["(no stderr)"])[-1]
    raise RuntimeError(f"subprocess exit {p.returncode}: {tail}")
  return dt, p.stdout

def _check_first_result(out: str):
  nums = [float(t) for t in out.replace("[", " ").replace("]", " ").replace(",", " ").replace("(", " ").replace(")", " ").split()
          if t.replace(".", "", 1).replace("-", "", 1).replace("e", "", 1).isdigit()]
  if nums[-3:] != [2.0, 3.0, 4.0]: raise AssertionError(f"unexpected output {out.strip()!r}")

OURS_FIRST = "from tinygrad import Tensor; print((Tensor([1.,2.,3.])+1).numpy())"
PEER_FIRST = {
  "numpy": "import numpy as np; print(np.array([1.,2.,3.], dtype=np.float32)+1)",
  "torch": "import torch; print((torch.tensor([1.,2.,3.])+1).numpy())",
  "jax": "import jax.numpy as jnp; import numpy as np; print(np.asarray(jnp.array([1.,2.,3.])+1))",
}

def _cache_used(d: str) -> bool:
  return any(True for _ in Path(d).rglob("*"))

def w_startup(ctx: Ctx) -> list[Row]:
  cfg = ctx.cfg
  cold = Row("fresh process -> first result, empty cache", "s", False, "python -c 'import; (x+1) on 3 elems; print' with CACHEDB=<fresh empty dir>")
  warm = Row("fresh process -> first result, warm cache", "s", False, "same, second run with the same CACHEDB dir")
  def ours_cold():
    ctx.ours.need()
    if _probe_cachedb_style(cfg.subprocess_timeout) == "file": cold.notes.append("ours: CACHEDB=<dir> failed, used CACHEDB=<fresh dir>/cache.db")
    ts = []
    for _ in range(cfg.proc_runs):
      with tempfile.TemporaryDirectory(prefix="bench_cachedb_") as d:
        dt, out = _run_py(OURS_FIRST, _env_for_ours(d), cfg.subprocess_timeout)
        _check_first_result(out)
        ts.append(dt)
        if not _cache_used(d): cold.notes.append("ours: nothing was written under CACHEDB dir (disk cache unused or elsewhere)")
    return statistics.median(ts)
  def ours_warm():
    ctx.ours.need()
    with tempfile.TemporaryDirectory(prefix="bench_cachedb_") as d:
      env = _env_for_ours(d)
      _run_py(OURS_FIRST, env, cfg.subprocess_timeout)  # prime the cache
      ts = []
      for _ in range(cfg.proc_runs):
        dt, out = _run_py(OURS_FIRST, env, cfg.subprocess_timeout)
        _check_first_result(out)
        ts.append(dt)
    return statistics.median(ts)
  cell(cold, "ours", ours_cold)
  cell(warm, "ours", ours_warm)
  # peers keep no compile cache on disk (jax's persistent cache is off by default): both rows get the
  # same measurement, the median of fresh-process runs after one untimed run (OS page cache warm).
  for peer in PEERS:
    def peer_fn(peer=peer):
      if peer == "torch": ctx.need_torch()
      if peer == "jax": ctx.need_jax()
      _run_py(PEER_FIRST[peer], None, cfg.subprocess_timeout)
      ts = []
      for _ in range(cfg.proc_runs):
        dt, out = _run_py(PEER_FIRST[peer], None, cfg.subprocess_timeout)
        _check_first_result(out)
        ts.append(dt)
      return statistics.median(ts)
    cell(cold, peer, peer_fn)
    if peer in cold.values and cold.values[peer] is not None: warm.values[peer] = cold.values[peer]
    elif peer in cold.errors: warm.errors[peer] = cold.errors[peer]
  try:
    base, _ = _run_py("pass", None, 60)
    cold.notes.append(f"bare interpreter start: {base:.3f}s")
  except Exception:  # noqa: BLE001
    pass
  cold.notes = sorted(set(cold.notes))
  return [cold, warm]

MM_SETUP = "import time, numpy as np; rng=np.random.default_rng(0); A=rng.standard_normal((1024,1024),dtype=np.float32); B=rng.standard_normal((1024,1024),dtype=np.float32)\n"
MM_CHECK = "np.testing.assert_allclose(R, A.astype(np.float64)@B.astype(np.float64), rtol=1e-3, atol=3e-3)\nprint('TIME', dt)\n"
FIRSTCALL = {
  "ours": MM_SETUP + textwrap.dedent("""\
    from tinygrad import Tensor
    a=Tensor(A).realize(); b=Tensor(B).realize()
    t0=time.perf_counter(); c=(a@b).realize(); R=c.numpy(); dt=time.perf_counter()-t0
    """) + MM_CHECK,
  "jax": MM_SETUP + textwrap.dedent("""\
    import jax
    a=jax.device_put(A); b=jax.device_put(B); f=jax.jit(lambda x,y: x@y)
    t0=time.perf_counter(); c=f(a,b).block_until_ready(); R=np.asarray(c); dt=time.perf_counter()-t0
    """) + MM_CHECK,
  "torch": MM_SETUP + textwrap.dedent("""\
    import torch
    a=torch.from_numpy(A); b=torch.from_numpy(B)
    t0=time.perf_counter(); c=a@b; R=c.numpy(); dt=time.perf_counter()-t0
    """) + MM_CHECK,
  "numpy": MM_SETUP + "t0=time.perf_counter(); R=A@B; dt=time.perf_counter()-t0\n" + MM_CHECK,
}

def _parse_time(out: str) -> float:
  for line in out.splitlines():
    if line.startswith("TIME "): return float(line.split()[1])
  raise RuntimeError(f"no TIME line in output: {out.strip()[-200:]!r}")

def w_firstcall(ctx: Ctx) -> list[Row]:
  cfg = ctx.cfg
  cold = Row("first matmul 1024 in fresh process, empty cache", "ms", False, "first (a@b) incl. compile, timed inside a fresh process; ours with empty CACHEDB; jax.jit first call; torch/numpy eager for reference")
  warm = Row("first matmul 1024 in fresh process, warm cache", "ms", False, "ours with a primed CACHEDB; peers as in the row above")
  def ours(warm_cache: bool):
    ctx.ours.need()
    _probe_cachedb_style(cfg.subprocess_timeout)
    ts = []
    with tempfile.TemporaryDirectory(prefix="bench_cachedb_") as d:
      if warm_cache: _run_py(FIRSTCALL["ours"], _env_for_ours(d), cfg.subprocess_timeout)
      for _ in range(cfg.proc_runs):
        if warm_cache:
          _, out = _run_py(FIRSTCALL["ours"], _env_for_ours(d), cfg.subprocess_timeout)
        else:
          with tempfile.TemporaryDirectory(prefix="bench_cachedb_") as d2:
            _, out = _run_py(FIRSTCALL["ours"], _env_for_ours(d2), cfg.subprocess_timeout)
        ts.append(_parse_time(out))
    return statistics.median(ts) * 1e3
  cell(cold, "ours", lambda: ours(False))
  cell(warm, "ours", lambda: ours(True))
  for peer in PEERS:
    def peer_fn(peer=peer):
      if peer == "torch": ctx.need_torch()
      if peer == "jax": ctx.need_jax()
      ts = [_parse_time(_run_py(FIRSTCALL[peer], None, cfg.subprocess_timeout)[1]) for _ in range(cfg.proc_runs)]
      return statistics.median(ts) * 1e3
    cell(cold, peer, peer_fn)
    warm.values[peer] = cold.values[peer]
    if peer in cold.errors: warm.errors[peer] = cold.errors[peer]
  return [cold, warm]

# ----------------------------------------------------------------------------- MLP training

MLP_SIZES = (784, 512, 512, 10)
BATCH = 128

class NumpyMLP:
  """Hand-written numpy MLP (784-512-512-10 for the MLP rows) with relu between layers, softmax cross-entropy (mean),
  SGD or Adam. params = [W1, b1, W2, b2, ...], stored like tinygrad's nn.Linear: W (out, in), y = x @ W.T + b."""
  def __init__(self, params: list[np.ndarray], opt: str, lr: float, b1=0.9, b2=0.999, eps=1e-8):
    self.p = [np.array(q, dtype=np.float32, copy=True) for q in params]
    self.opt, self.lr, self.b1, self.b2, self.eps = opt, np.float32(lr), np.float32(b1), np.float32(b2), np.float32(eps)
    self.m = [np.zeros_like(q) for q in self.p]
    self.v = [np.zeros_like(q) for q in self.p]
    self.t = 0

  def loss_and_grads(self, x, y):
    Ws, bs = self.p[0::2], self.p[1::2]
    hs, acts = [], [x]  # pre-activations of the hidden layers, inputs of every layer
    for W, b in zip(Ws[:-1], bs[:-1]):
      h = acts[-1] @ W.T + b
      hs.append(h); acts.append(np.maximum(h, 0))
    z = acts[-1] @ Ws[-1].T + bs[-1]
    z = z - z.max(1, keepdims=True)
    ez = np.exp(z); s = ez.sum(1, keepdims=True)
    n = x.shape[0]
    loss = float(np.mean(np.log(s[:, 0]) - z[np.arange(n), y]))
    d = ez / s; d[np.arange(n), y] -= 1; d /= n   # d loss / d (pre-activation of the current layer)
    grads: list[np.ndarray] = []
    for i in range(len(Ws) - 1, -1, -1):
      grads[:0] = [d.T @ acts[i], d.sum(0)]
      if i > 0: d = (d @ Ws[i]) * (hs[i - 1] > 0)
    return loss, grads

  def step(self, x, y):
    loss, grads = self.loss_and_grads(x, y)
    self.t += 1
    if self.opt == "sgd":
      for q, g in zip(self.p, grads): q -= self.lr * g
    else:
      bc1 = 1 - self.b1 ** self.t; bc2 = 1 - self.b2 ** self.t
      for q, g, m, v in zip(self.p, grads, self.m, self.v):
        m *= self.b1; m += (1 - self.b1) * g
        v *= self.b2; v += (1 - self.b2) * (g * g)
        q -= self.lr * (m / bc1) / (np.sqrt(v / bc2) + self.eps)
    return loss

def mlp_param_shapes(sizes) -> list[tuple[int, ...]]:
  return [s for a, b in zip(sizes, sizes[1:]) for s in ((b, a), (b,))]

LR = {"sgd": 0.01, "adam": 1e-3}

OURS_MLP_SRC = textwrap.dedent("""\
  from tinygrad import Tensor, nn
  class _Net:
    def __init__(self, sizes):
      self.layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]
    def __call__(self, x):
      for l in self.layers[:-1]: x = l(x).relu()
      return self.layers[-1](x)
  def _params(net):
    try:
      from tinygrad.nn.state import get_parameters
      return get_parameters(net)
    except ImportError:
      return [t for l in net.layers for t in (l.weight, l.bias)]
  import contextlib
  try:  # newer upstream tinygrad gates optimizers on Context(TRAINING=1); older ones on Tensor.training
    from tinygrad.helpers import Context, TRAINING  # noqa: F401
    _train_ctx = lambda: Context(TRAINING=1)
  except ImportError:
    _train_ctx = contextlib.nullcontext
  def make_ours(opt_name, lr, sizes=(784, 512, 512, 10)):
    net = _Net(sizes)
    params = [t for l in net.layers for t in (l.weight, l.bias)]  # W1, b1, W2, b2, ... as NumpyMLP
    opt = (nn.optim.SGD if opt_name == "sgd" else nn.optim.Adam)(_params(net), lr=lr)
    def step(x, y):
      Tensor.training = True
      with _train_ctx():
        opt.zero_grad()
        loss = net(x).sparse_categorical_crossentropy(y)
        loss.backward()
        if hasattr(opt, "schedule_step"):
          Tensor.realize(loss, *opt.schedule_step())
        else:
          loss.realize(); opt.step()
      return loss
    return net, params, opt, step
""")

def _ours_mlp_namespace():
  ns: dict = {}
  exec(OURS_MLP_SRC, ns)  # same source as used in the fresh-process first-step measurement
  return ns

def _mlp_data(ctx: Ctx, nbatches: int, batch: int = BATCH, sizes=MLP_SIZES):
  xs = [ctx.randn(batch, sizes[0]) for _ in range(nbatches)]
  ys = [ctx.rng.integers(0, sizes[-1], batch).astype(np.int32) for _ in range(nbatches)]
  return xs, ys

def _ours_tinyjit(ctx: Ctx):
  """Our TinyJit class (upstream tinygrad exports it from the package too; older versions only from tinygrad.engine.jit)."""
  ctx.ours.need()
  try:
    from tinygrad import TinyJit
  except ImportError:
    try:
      from tinygrad.engine.jit import TinyJit
    except ImportError:
      raise NotAvailable("TinyJit missing") from None
  return TinyJit

def _compare_step(opt_name: str, before, after, ref_after, loss: float, ref_loss: float, what: str):
  """One training step against the numpy reference step started from the same weights: loss and the update of every parameter."""
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-4, atol=1e-5, err_msg=f"loss of {what}")
  for i, (a, b, c) in enumerate(zip(before, after, ref_after)):
    d_ours, d_ref = b - a, c - a
    scale = float(np.abs(d_ref).max()) or 1.0
    if opt_name == "adam":
      # an Adam update is ~ -lr*m/sqrt(v) (-lr*sign(g) in step 1); where |g| ~ eps the sign can flip on rounding: allow 0.1% of entries off
      bad = ~np.isclose(d_ours, d_ref, rtol=1e-2, atol=1e-2 * scale)
      if bad.mean() > 1e-3:
        np.testing.assert_allclose(d_ours, d_ref, rtol=1e-2, atol=1e-2 * scale, err_msg=f"adam update of param {i} in {what}")
    else:
      np.testing.assert_allclose(d_ours, d_ref, rtol=1e-2, atol=1e-3 * scale, err_msg=f"sgd update of param {i} in {what}")

def _check_mlp_step(ctx: Ctx, opt_name: str, xs, ys, sizes=MLP_SIZES, jit: bool = False):
  """Train ours and the numpy reference side by side on batches xs[k], ys[k]. Before every checked step the reference
  takes ours' current weights (its Adam moments and step count are its own, from the same earlier steps); the loss and
  the update of every parameter must match. Eager: one step. TinyJit: call 1 (runs), call 2 (records) and two replayed
  steps on batches the jit has not seen. Returns ours' step function (compiled; recorded for TinyJit) for the timing."""
  ns = _ours_mlp_namespace()
  o = ctx.ours
  _, params, _, step = ns["make_ours"](opt_name, LR[opt_name], sizes)
  if jit: step = _ours_tinyjit(ctx)(step)
  p0 = [p.numpy().copy() for p in params]
  if p0[0].shape != (sizes[1], sizes[0]):
    raise AssertionError(f"nn.Linear({sizes[0]},{sizes[1]}).weight has shape {p0[0].shape}, expected {(sizes[1], sizes[0])}")
  ref = NumpyMLP(p0, opt_name, LR[opt_name])
  nsteps = 4 if jit else 1
  if len(xs) < nsteps: raise ValueError(f"need {nsteps} batches")
  before = p0
  for k in range(nsteps):
    ref.p = [q.copy() for q in before]
    ref_loss = ref.step(xs[k], ys[k])
    loss = step(o.t(xs[k]), o.t(ys[k]))
    after = [p.numpy().copy() for p in params]
    what = f"TinyJit call {k + 1}" + (" (replay)" if k >= 2 else " (record)" if k == 1 else " (run)") if jit else "the first step"
    _compare_step(opt_name, before, after, ref.p, float(loss.numpy()), ref_loss, what)
    before = after
  return step

def _jax_mlp_step(ctx: Ctx, opt_name: str, lr: float):
  """Hand-written jax MLP step as NumpyMLP (relu between layers, softmax cross-entropy mean, SGD or Adam), gradient and
  update in one jax.jit: step(params, state, x, y) -> (loss, params, state). params = [W1, b1, ...] with W (out, in)."""
  jax, jnp = ctx.need_jax()
  def loss_fn(p, x, y):
    for i in range(0, len(p), 2):
      x = x @ p[i].T + p[i + 1]
      if i + 2 < len(p): x = jnp.maximum(x, 0)
    return jnp.mean(jax.nn.logsumexp(x, axis=1) - jnp.take_along_axis(x, y[:, None], axis=1)[:, 0])
  grad = jax.value_and_grad(loss_fn)
  b1, b2, eps = 0.9, 0.999, 1e-8
  def sgd(p, s, x, y):
    loss, g = grad(p, x, y)
    return loss, [q - lr * gq for q, gq in zip(p, g)], s
  def adam(p, s, x, y):
    m, v, t = s
    loss, g = grad(p, x, y)
    t = t + 1
    m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
    v = [b2 * vi + (1 - b2) * (gi * gi) for vi, gi in zip(v, g)]
    bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
    return loss, [q - lr * (mi / bc1) / (jnp.sqrt(vi / bc2) + eps) for q, mi, vi in zip(p, m, v)], (m, v, t)
  return jax.jit(sgd if opt_name == "sgd" else adam)

def _mlp_peers(ctx: Ctx, opt_name: str, xs, ys, sizes, per_step) -> dict:
  """Peer cells for an MLP training step: {col: fn() -> steps/s}. per_step(one) times one() and returns seconds per call.
  numpy: NumpyMLP; torch: eager nn.Sequential + torch.optim; jax: _jax_mlp_step, first step checked against NumpyMLP."""
  lr = LR[opt_name]
  def init(): return [ctx.randn(*s) * np.float32(0.05) for s in mlp_param_shapes(sizes)]
  def numpy_():
    net = NumpyMLP(init(), opt_name, lr)
    i = [0]
    def one():
      k = i[0] % len(xs); i[0] += 1
      return net.step(xs[k], ys[k])
    return 1 / per_step(one)
  def torch_():
    torch = ctx.need_torch()
    torch.manual_seed(0)
    layers: list = []
    for a, b in zip(sizes, sizes[1:]): layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1])
    opt = (torch.optim.SGD if opt_name == "sgd" else torch.optim.Adam)(net.parameters(), lr=lr)
    txs, tys = [torch.from_numpy(x) for x in xs], [torch.from_numpy(y.astype(np.int64)) for y in ys]
    i = [0]
    def one():
      k = i[0] % len(txs); i[0] += 1
      opt.zero_grad()
      loss = torch.nn.functional.cross_entropy(net(txs[k]), tys[k])
      loss.backward(); opt.step()
      return loss
    return 1 / per_step(one)
  def jax_():
    jax, jnp = ctx.need_jax()
    step = _jax_mlp_step(ctx, opt_name, lr)
    p0 = init()
    params = [jax.device_put(q) for q in p0]
    state = () if opt_name == "sgd" else ([jnp.zeros_like(q) for q in params], [jnp.zeros_like(q) for q in params], jnp.zeros((), jnp.float32))
    jxs, jys = [jax.device_put(x) for x in xs], [jax.device_put(y) for y in ys]
    ref = NumpyMLP(p0, opt_name, lr)
    ref_loss = ref.step(xs[0], ys[0])
    loss, params, state = step(params, state, jxs[0], jys[0])
    _compare_step(opt_name, p0, [np.asarray(q) for q in params], ref.p, float(loss), ref_loss, "the jax peer's first step")
    st = [params, state]
    i = [1]
    def one():
      k = i[0] % len(jxs); i[0] += 1
      loss, st[0], st[1] = step(st[0], st[1], jxs[k], jys[k])
      jax.block_until_ready((loss, st[0], st[1]))
      return loss
    return 1 / per_step(one)
  return {"numpy": numpy_, "torch": torch_, "jax": jax_}

def _ours_mlp_api():
  """Make a missing API of ours fail with a clear message."""
  from tinygrad import nn, Tensor
  if not hasattr(nn, "Linear"): raise NotAvailable("tinygrad.nn.Linear missing")
  if not hasattr(nn, "optim"): raise NotAvailable("tinygrad.nn.optim missing")
  if not hasattr(Tensor, "sparse_categorical_crossentropy"): raise NotAvailable("Tensor.sparse_categorical_crossentropy missing")
  return Tensor

def w_mlp(ctx: Ctx) -> list[Row]:
  cfg = ctx.cfg
  rows = []
  xs, ys = _mlp_data(ctx, 4)
  for opt_name in ("sgd", "adam"):
    name = f"MLP 784-512-512-10 b{BATCH} train step, {opt_name.upper()}"
    row = Row(name, "steps/s", True, "forward + cross-entropy + backward + optimizer update")
    jrow = Row(name + " (TinyJit)", "steps/s", True, "the same step function wrapped in TinyJit: ours times replays (call 3+); peers as in the row above")
    def ours(opt_name=opt_name, row=row, jit=False):
      o = ctx.ours
      o.need()
      Tensor = _ours_mlp_api()
      t0 = time.perf_counter()
      step = _check_mlp_step(ctx, opt_name, xs, ys, jit=jit)  # first step(s): correctness + compile (+ record)
      t_first = (time.perf_counter() - t0) / (4 if jit else 1)
      txs, tys = [o.t(x) for x in xs], [o.t(y) for y in ys]
      i = [4 if jit else 1]
      def one():
        k = i[0] % len(txs); i[0] += 1
        return step(txs[k], tys[k])
      slow = t_first > 2 * cfg.budget  # keep the bench short when a step takes many seconds
      t, samples, last = median_time(one, cfg, warmup=0 if slow else 1, repeats=cfg.mlp_steps)
      if slow: row.notes.append(f"ours: a checked step (check + compile) took {t_first:.1f}s; timed {len(samples)} step(s) without a separate warm-up")
      if not np.isfinite(float(last.numpy())): raise AssertionError("loss is not finite")
      if Tensor.training: Tensor.training = False
      return 1 / t
    cell(row, "ours", ours)
    cell(jrow, "ours", lambda opt_name=opt_name, jrow=jrow: ours(opt_name, jrow, jit=True))
    # peers are measured once per optimizer; the TinyJit row shows the same figures (torch eager, jax.jit, numpy)
    per_step = lambda one: median_time(one, cfg, warmup=2, repeats=cfg.mlp_steps)[0]
    for col, fn in _mlp_peers(ctx, opt_name, xs, ys, MLP_SIZES, per_step).items():
      cell(row, col, fn)
      jrow.values[col] = row.values[col]
      if col in row.errors: jrow.errors[col] = row.errors[col]
    rows += [row, jrow]

  # first Adam step in a fresh process (compile included), empty cache
  first = Row("MLP first Adam step in fresh process, empty cache", "s", False, "build net + Adam, time the first training step (compile included)")
  first_src_ours = MM_SETUP + OURS_MLP_SRC + textwrap.dedent("""\
    X = rng.standard_normal((128, 784), dtype=np.float32); Y = rng.integers(0, 10, 128).astype(np.int32)
    net, params, opt, step = make_ours("adam", 1e-3)
    for p in params: p.realize()  # weights exist before the clock starts, as torch's do (init is lazy in ours)
    x = Tensor(X).realize(); y = Tensor(Y).realize()
    t0 = time.perf_counter(); loss = step(x, y); l = float(loss.numpy()); dt = time.perf_counter() - t0
    assert np.isfinite(l), l
    print("TIME", dt)
    """)
  first_src_torch = textwrap.dedent("""\
    import time, numpy as np, torch
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.standard_normal((128, 784), dtype=np.float32)); Y = torch.from_numpy(rng.integers(0, 10, 128))
    net = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    t0 = time.perf_counter(); opt.zero_grad(); loss = torch.nn.functional.cross_entropy(net(X), Y); loss.backward(); opt.step(); l = float(loss); dt = time.perf_counter() - t0
    print("TIME", dt)
    """)
  def ours_first():
    ctx.ours.need()
    _probe_cachedb_style(cfg.subprocess_timeout)
    eager_adam = rows[-2]  # rows: SGD, SGD (TinyJit), ADAM, ADAM (TinyJit)
    if eager_adam.errors.get("ours", "").startswith("n/a"): raise NotAvailable(eager_adam.errors["ours"][5:])
    ts = []
    for _ in range(max(1, cfg.proc_runs - 2)):
      with tempfile.TemporaryDirectory(prefix="bench_cachedb_") as d:
        ts.append(_parse_time(_run_py(first_src_ours, _env_for_ours(d), cfg.subprocess_timeout)[1]))
    return statistics.median(ts)
  def torch_first():
    ctx.need_torch()
    return statistics.median(_parse_time(_run_py(first_src_torch, None, cfg.subprocess_timeout)[1]) for _ in range(max(1, cfg.proc_runs - 1)))
  if cfg.quick:
    for c in COLS: first.errors[c] = "n/a: skipped by --quick"
    rows.append(first)
    return rows
  cell(first, "ours", ours_first)
  first.errors["numpy"] = "n/a: no compile step"
  cell(first, "torch", torch_first)
  first.errors["jax"] = "n/a: not measured for MLP"
  rows.append(first)
  return rows

JIT_SIZES = (32, 64, 10)
JIT_BATCH = 32

def w_jit(ctx: Ctx) -> list[Row]:
  cfg = ctx.cfg
  iters = cfg.overhead_iters
  rows = []

  # (a) the cost of one replay, i.e. what TinyJit leaves of the per-call Python work: 2 tiny kernels
  row = Row("TinyJit replay: per-call overhead of a 2-kernel function", "us", False,
            "ours: TinyJit f(x) = (x+1).contiguous()*2 on 16 elems, replayed (2 kernels); numpy and torch eager: (x+1)*2 (2 ops); "
            "jax: jax.jit of the same f + block_until_ready()")
  x16 = [np.arange(16, dtype=np.float32) * np.float32(k + 1) - np.float32(3) for k in range(4)]
  def ours():
    o = ctx.ours
    TinyJit = _ours_tinyjit(ctx)
    f = TinyJit(lambda x: (x + 1).contiguous() * 2)
    txs = [o.t(x) for x in x16]
    for k in range(3):  # call 1 runs, call 2 records, call 3 is the first replay: each checked
      np.testing.assert_allclose(o.run(lambda: f(txs[k])).numpy(), (x16[k] + 1) * 2, err_msg=f"TinyJit call {k + 1}")
    try:
      from tinygrad import GlobalCounters
      GlobalCounters.reset()
      o.run(lambda: f(txs[3]))
      if GlobalCounters.kernel_count != 2: row.notes.append(f"ours: one replay ran {GlobalCounters.kernel_count} kernels, expected 2")
    except ImportError:
      pass
    i, last = [0], [None]
    def one():
      k = i[0] % len(txs); i[0] += 1
      last[0] = (k, o.run(lambda: f(txs[k])))
    t = batched_time(one, iters * 5)
    k, out = last[0]
    np.testing.assert_allclose(out.numpy(), (x16[k] + 1) * 2, err_msg="last timed replay")
    return t * 1e6
  def numpy_():
    x = x16[0]
    return batched_time(lambda: (x + 1) * 2, iters * 10) * 1e6
  def torch_():
    torch = ctx.need_torch()
    tx = torch.from_numpy(x16[0])
    return batched_time(lambda: (tx + 1) * 2, iters * 10) * 1e6
  def jax_():
    jax, _ = ctx.need_jax()
    f = jax.jit(lambda v: (v + 1) * 2)
    jx = jax.device_put(x16[0])
    return batched_time(lambda: f(jx).block_until_ready(), iters * 5) * 1e6
  for col, fn in zip(COLS, (ours, numpy_, torch_, jax_)): cell(row, col, fn)
  rows.append(row)

  # (b) a training step small enough that per-step overhead, not arithmetic, decides
  srow = Row("TinyJit replay of a small training step", "steps/s", True,
             f"MLP {'-'.join(map(str, JIT_SIZES))} batch {JIT_BATCH}, SGD lr {LR['sgd']}: ours TinyJit replays; numpy hand-written; "
             "torch eager; jax.jit of grad + update")
  xs, ys = _mlp_data(ctx, 4, batch=JIT_BATCH, sizes=JIT_SIZES)
  per_step = lambda one: batched_time(one, iters, batch=20)
  def ours_step():
    o = ctx.ours
    o.need()
    Tensor = _ours_mlp_api()
    step = _check_mlp_step(ctx, "sgd", xs, ys, sizes=JIT_SIZES, jit=True)  # run, record, 2 replays: each checked
    txs, tys = [o.t(x) for x in xs], [o.t(y) for y in ys]
    i, last = [0], [None]
    def one():
      k = i[0] % len(txs); i[0] += 1
      last[0] = step(txs[k], tys[k])
    t = per_step(one)
    if not np.isfinite(float(last[0].numpy())): raise AssertionError("loss is not finite")
    if Tensor.training: Tensor.training = False
    return 1 / t
  cell(srow, "ours", ours_step)
  for col, fn in _mlp_peers(ctx, "sgd", xs, ys, JIT_SIZES, per_step).items(): cell(srow, col, fn)
  rows.append(srow)
  return rows

WORKLOAD_FNS = {"elementwise": w_elementwise, "sum": w_sum, "softmax": w_softmax, "matmul": w_matmul, "conv2d": w_conv2d,
                "overhead": w_overhead, "startup": w_startup, "firstcall": w_firstcall, "mlp": w_mlp, "jit": w_jit}

# ----------------------------------------------------------------------------- machine info, plot

def machine_info(torch, jaxm) -> dict:
  info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "python": sys.version.split()[0],
          "executable": sys.executable, "platform": platform.platform(), "cpu": platform.processor() or "?", "cores": os.cpu_count()}
  try:
    txt = Path("/proc/cpuinfo").read_text()
    for line in txt.splitlines():
      if line.startswith("model name"): info["cpu"] = line.split(":", 1)[1].strip(); break
    flags = next((l for l in txt.splitlines() if l.startswith("flags")), "")
    info["avx512f"] = " avx512f" in flags
    info["avx2"] = " avx2" in flags
  except OSError:
    pass
  info["numpy"] = np.__version__
  info["loadavg_start"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
  info["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE")
  info["OPENBLAS_L2_SIZE"] = os.environ.get("OPENBLAS_L2_SIZE")
  try:
    import threadpoolctl
    info["numpy_blas"] = [{k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads")} for d in threadpoolctl.threadpool_info() if d.get("user_api") == "blas"]
  except Exception:  # noqa: BLE001
    info["numpy_blas"] = None
  info["torch"] = getattr(torch, "__version__", None)
  if torch is not None: info["torch_threads"] = torch.get_num_threads()
  info["jax"] = getattr(jaxm[0], "__version__", None) if jaxm else None
  try:
    import llvmlite
    info["llvmlite"] = llvmlite.__version__
    import llvmlite.binding as llvm
    info["llvm"] = ".".join(map(str, llvm.llvm_version_info))
  except Exception:  # noqa: BLE001
    pass
  try:
    info["git_head"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or None
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "tinygrad", "codegen", "runtime"], capture_output=True, text=True).stdout.strip()
    if info["git_head"] and dirty: info["git_head"] += "+uncommitted"
  except Exception:  # noqa: BLE001
    info["git_head"] = None
  return info

def plot(rows: list[Row], path: str, info: dict):
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except Exception as e:  # noqa: BLE001
    print(f"--plot: matplotlib not available ({e}); no plot written", file=sys.stderr)
    return False
  names, ratios, colors = [], [], []
  for r in rows:
    rt = r.ratio()
    label = f"{r.name} [{r.unit}]"
    if rt is None:
      names.append(label + ("  (ours FAIL)" if r.errors.get("ours", "").startswith("FAIL") else "  (n/a)")); ratios.append(float("nan")); colors.append("grey")
    else:
      names.append(label + f"  vs {r.best_peer()[1]}"); ratios.append(rt); colors.append("tab:green" if rt >= 1 else "tab:red")
  fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.8))
  y = np.arange(len(rows))[::-1]
  finite = [r for r in ratios if r == r]
  ax.set_xscale("log")
  ax.set_xlim(min([0.5] + [f / 2 for f in finite]), max([2.0] + [f * 2 for f in finite]))
  fy = [yi for yi, r in zip(y, ratios) if r == r]
  if fy: ax.barh(fy, [r - 1 for r in ratios if r == r], left=1, color=[c for c, r in zip(colors, ratios) if r == r])  # bars grow from 1x
  ax.axvline(1.0, color="black", lw=1)
  ax.set_yticks(y)
  ax.set_yticklabels(names, fontsize=8)
  for yi, r in zip(y, ratios):
    if r == r: ax.text(r, yi, f" {r:.2f}x" if r >= 0.095 else f" {r:.2g}x", va="center", fontsize=8)
  ax.set_xlabel("ours vs best peer (log scale; >1 = ours faster)")
  ax.set_title(f"ours vs best of numpy/torch/jax - {info.get('cpu', '?')}, {info.get('cores')} cores, {info.get('date', '')[:10]}", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True

# ----------------------------------------------------------------------------- main

def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--quick", action="store_true", help="fewer repeats; skips matmul 2048, conv2d and the MLP fresh-process first step")
  ap.add_argument("--only", default="", help=f"comma-separated subset of: {','.join(WORKLOADS)}")
  ap.add_argument("--json", metavar="PATH", help="write all results (+ machine info) as JSON")
  ap.add_argument("--plot", metavar="PATH.png", help="write a bar chart of ours/best-peer ratios (needs matplotlib)")
  ap.add_argument("--markdown", metavar="PATH.md", help="write the results table (+ failures and notes) as Markdown")
  ap.add_argument("--no-peers", action="store_true", help="do not import torch/jax (numpy only)")
  ap.add_argument("--rounds", type=int, default=1, metavar="N",
                  help="run the selected workloads N times over and keep each cell's best figure (a host whose speed "
                       "changes for seconds at a time then gives every library its fast period); a failure in any round stays")
  args = ap.parse_args(argv)

  selected = [w.strip() for w in args.only.split(",") if w.strip()] or list(WORKLOADS)
  bad = [w for w in selected if w not in WORKLOADS]
  if bad: ap.error(f"unknown workload(s) {bad}; choose from {WORKLOADS}")
  cfg = Cfg(args.quick)
  if args.quick and not args.only: selected = [w for w in selected if w != "conv2d"]

  t_start = time.perf_counter()
  ours = Ours()
  torch, terr = (None, "disabled by --no-peers") if args.no_peers else load_torch()
  jaxm, jerr = (None, "disabled by --no-peers") if args.no_peers else load_jax()
  info = machine_info(torch, jaxm)

  print(f"# bench {info['date']}  {info['cpu']}  cores={info['cores']}  avx512f={'yes' if info.get('avx512f') else 'no'}  python {info['python']}")
  print(f"ours: {'tinygrad from ' + str(Path(ours.module.__file__).parent) if ours.ok else 'IMPORT FAILED: ' + str(ours.error)}"
        f"  (llvmlite {info.get('llvmlite', '?')}, LLVM {info.get('llvm', '?')}, git {info.get('git_head')})")
  print(f"numpy: {np.__version__}  blas={info.get('numpy_blas')}")
  print(f"OPENBLAS_CORETYPE={'set to ' + repr(info['OPENBLAS_CORETYPE']) if info['OPENBLAS_CORETYPE'] is not None else 'not set'}  "
        f"OPENBLAS_L2_SIZE={'set to ' + repr(info['OPENBLAS_L2_SIZE']) if info['OPENBLAS_L2_SIZE'] is not None else 'not set'}"
        f"{'  (numpy is run as-is; these may slow its BLAS)' if info['OPENBLAS_CORETYPE'] or info['OPENBLAS_L2_SIZE'] else ''}")
  print(f"torch: {torch.__version__ + f' ({torch.get_num_threads()} threads)' if torch is not None else 'not installed'}"
        + (f"  [{terr}]" if torch is None and terr and 'No module' not in terr else ""))
  print(f"jax: {jaxm[0].__version__ if jaxm is not None else 'not installed'}" + (f"  [{jerr}]" if jaxm is None and jerr and 'No module' not in jerr else ""))
  if (info.get("loadavg_start") or 0) > 0.7:
    print(f"WARNING: load average {info['loadavg_start']:.2f} at start: other processes compete for the {info['cores']} cores; figures will be noisy")
  print(f"mode: {'quick' if args.quick else 'full'}; workloads: {','.join(selected)}; figures are medians of repeats after warm-up", flush=True)

  ctx = Ctx(cfg, ours, torch, jaxm)
  rows: list[Row] = []
  for rnd, w in ((r, w) for r in range(max(1, args.rounds)) for w in selected):
    t0 = time.perf_counter()
    print(f"... {w}" + (f" (round {rnd + 1} of {args.rounds})" if args.rounds > 1 else ""), end="", flush=True)
    try:
      new = WORKLOAD_FNS[w](ctx)
    except Exception as e:  # noqa: BLE001
      r = Row(w, "?", True)
      r.errors["ours"] = f"FAIL: workload crashed: {type(e).__name__}: {e}"
      traceback.print_exc()
      new = [r]
    rows = merge_rounds(rows, new)
    print(f" ({time.perf_counter() - t0:.1f}s)", flush=True)
    for r in new:
      vals = "  ".join(f"{c}={fmt(r.values[c])}" if r.values[c] is not None else f"{c}={r.errors.get(c, '-')[:60]}" for c in COLS)
      print(f"    {r.name}: {vals}", flush=True)

  print()
  print("ratio: ours vs best peer, >1 means ours is faster (throughput rows: ours/best; time rows: best/ours)")
  print(render_table(rows))
  fails = [(r.name, c, e) for r in rows for c, e in r.errors.items() if c == "ours"]
  if fails:
    print("\nours: failing / unavailable rows:")
    for name, _, e in fails: print(f"  {name}: {e}")
  notes = [(r.name, n) for r in rows for n in r.notes]
  if notes:
    print("\nnotes:")
    for name, n in notes: print(f"  {name}: {n}")
  total = time.perf_counter() - t_start
  info["loadavg_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
  print(f"\ntotal bench time {total:.0f}s; load average at start {info.get('loadavg_start')}, at end {info.get('loadavg_end')}")

  if args.json:
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"meta": {**info, "mode": "quick" if args.quick else "full", "workloads": selected, "total_s": total,
                                                    "ours_import_error": ours.error, "torch_error": terr, "jax_error": jerr},
                                           "rows": [r.to_json() for r in rows]}, indent=1, default=str))
    print(f"wrote {args.json}")
  if args.markdown:
    md = [render_table(rows, markdown=True), ""]
    if fails: md += ["Ours, failing or unavailable:", ""] + [f"- {name}: `{e}`" for name, _, e in fails] + [""]
    if notes: md += ["Notes:", ""] + [f"- {name}: {n}" for name, n in notes] + [""]
    Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
    Path(args.markdown).write_text("\n".join(md))
    print(f"wrote {args.markdown}")
  if args.plot:
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    if plot(rows, args.plot, info): print(f"wrote {args.plot}")
  return 0

if __name__ == "__main__":
  sys.exit(main())
