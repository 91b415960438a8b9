"""Compare two source trees of the library by alternating fresh processes of each (A, B, A, B, ...).

    git worktree add /tmp/base <rev>
    python bench/tree_ab.py /tmp/base . [--runs 7] [--only perop,steady]

This host's speed changes for seconds at a time (bench/README.md), so two separate bench runs cannot judge a change
to Python overhead or compile time; alternating processes puts both trees in the same periods. Each process prints
one time; the table gives the median and the range over the runs. Every process gets an empty CACHEDB. Both trees are
byte-compiled first (as after a pip install) and the processes write no bytecode (PYTHONDONTWRITEBYTECODE=1).
"""
from __future__ import annotations
import argparse, compileall, os, re, statistics, subprocess, sys, tempfile, textwrap
from pathlib import Path

from bench import FIRSTCALL, MM_SETUP, OURS_MLP_SRC  # bench/bench.py: this script's folder is first on sys.path

MLP_SETUP = MM_SETUP + OURS_MLP_SRC + textwrap.dedent("""\
  X = rng.standard_normal((128, 784), dtype=np.float32); Y = rng.integers(0, 10, 128).astype(np.int32)
  net, params, opt, step = make_ours("adam", 1e-3)
  x = Tensor(X).realize(); y = Tensor(Y).realize()
  """)

def _median_loop(setup: str, stmt: str, warmup: int, n: int) -> str:
  """A program that runs stmt warmup times, then times it n times and prints the median."""
  return textwrap.dedent(setup) + textwrap.dedent(f"""\
    import time, statistics
    for _ in range({warmup}): {stmt}
    _s = []
    for _ in range({n}):
      _t0 = time.perf_counter(); {stmt}; _s.append(time.perf_counter() - _t0)
    print("TIME", statistics.median(_s))
    """)

PROGRAMS = {
  # a fresh process's first result, imports included (the bench's startup row, timed from the first line)
  "first": "import time; _t0 = time.perf_counter()\nfrom tinygrad import Tensor\nprint((Tensor([1., 2., 3.]) + 1).numpy())\n"
           "print('TIME', time.perf_counter() - _t0)\n",
  # first (a@b) of 1024x1024 in a fresh process, compile included (the bench's firstcall row)
  "first_mm": FIRSTCALL["ours"],
  # the first eager MLP Adam step in a fresh process, compile included (the bench's mlp first-step row)
  "first_adam": MLP_SETUP + textwrap.dedent("""\
    for p in params: p.realize()
    t0 = time.perf_counter(); l = float(step(x, y).numpy()); print("TIME", time.perf_counter() - t0)
    """),
  # an eager MLP Adam step after warm-up (Python graph building, normalising, running)
  "steady": _median_loop(MLP_SETUP, "step(x, y).numpy()", 5, 40),
  # per-op dispatch, as the bench's overhead row
  "perop": _median_loop("""\
    import numpy as np
    from tinygrad import Tensor
    x = Tensor(np.arange(16, dtype=np.float32)).realize()
    """, "(x + 1).realize()", 200, 20000),
  # a TinyJit replay of a 2-kernel function
  "jitcall": _median_loop("""\
    import numpy as np
    from tinygrad import Tensor, TinyJit
    @TinyJit
    def f(a, b): return ((a + b) * 2).sum().realize(), (a * b).realize()
    xs = [Tensor(np.ones(16, np.float32)).realize() for _ in range(2)]
    """, "f(xs[0], xs[1])", 50, 5000),
}

def run_once(tree: Path, code: str) -> float:
  with tempfile.TemporaryDirectory(prefix="tree_ab_") as d:
    env = {**os.environ, "PYTHONPATH": str(tree), "CACHEDB": d, "PYTHONDONTWRITEBYTECODE": "1"}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=d, timeout=300)
  if (m := re.search(r"TIME ([0-9.eE+-]+)", p.stdout)) is None:
    raise RuntimeError(f"{tree}: no TIME line (exit {p.returncode}):\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
  return float(m.group(1))

def fmt(seconds: float) -> str: return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"

def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("a", type=Path, help="first tree (a repository root)")
  ap.add_argument("b", type=Path, help="second tree")
  ap.add_argument("--runs", type=int, default=7, help="processes per tree and program (default 7)")
  ap.add_argument("--only", default=",".join(PROGRAMS), help=f"comma-separated subset of: {','.join(PROGRAMS)}")
  args = ap.parse_args()
  trees = {"A": args.a.resolve(), "B": args.b.resolve()}
  print(f"A = {trees['A']}\nB = {trees['B']}\n{args.runs} alternated fresh processes each")
  for tree in trees.values():
    for pkg in ("tinygrad", "codegen", "runtime"): compileall.compile_dir(tree / pkg, quiet=1)
  for name in args.only.split(","):
    code = PROGRAMS[name]
    times: dict[str, list[float]] = {k: [] for k in trees}
    for _ in range(args.runs):
      for k, tree in trees.items(): times[k].append(run_once(tree, code))
    print(f"{name:<11}" + "   ".join(f"{k}: median {fmt(statistics.median(v))} [{fmt(min(v))} .. {fmt(max(v))}]" for k, v in times.items()), flush=True)

if __name__ == "__main__":
  main()
