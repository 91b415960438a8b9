"""Small shared utilities: environment knobs (getenv, ContextVar, Context), counters and tiny math helpers."""
from __future__ import annotations
import functools, math, os, sys, time
from typing import Any, Iterable, TypeVar

T = TypeVar("T")

def prod(xs: Iterable[int]) -> int: return math.prod(xs)
def all_same(xs: list) -> bool: return all(x == xs[0] for x in xs)
def argsort(xs: list) -> list[int]: return sorted(range(len(xs)), key=xs.__getitem__)
def flatten(xss: Iterable[Iterable[T]]) -> list[T]: return [x for xs in xss for x in xs]
def dedup(xs: Iterable[T]) -> list[T]: return list(dict.fromkeys(xs))
def ceildiv(a: int, b: int) -> int: return -(-a // b)
def round_up(a: int, b: int) -> int: return ceildiv(a, b) * b

@functools.cache
def getenv(key: str, default: Any = 0) -> Any:
  """Read an environment variable, converted to the type of `default`."""
  return type(default)(os.environ.get(key, default))

class ContextVar:
  """A global knob read from the environment once, changeable with `Context(NAME=value)`."""
  registry: dict[str, "ContextVar"] = {}
  def __init__(self, key: str, default: int):
    self.key, self.value = key, getenv(key, default)
    ContextVar.registry[key] = self
  def __bool__(self) -> bool: return bool(self.value)
  def __ge__(self, x: int) -> bool: return self.value >= x
  def __gt__(self, x: int) -> bool: return self.value > x
  def __lt__(self, x: int) -> bool: return self.value < x
  def __le__(self, x: int) -> bool: return self.value <= x
  def __eq__(self, x) -> bool: return self.value == x
  def __hash__(self): return hash(self.key)
  def __repr__(self): return f"ContextVar({self.key}={self.value})"

DEBUG, NOOPT, CACHELEVEL, TRAINING = ContextVar("DEBUG", 0), ContextVar("NOOPT", 0), ContextVar("CACHELEVEL", 2), ContextVar("TRAINING", 0)
THREADS, JIT = ContextVar("THREADS", 0), ContextVar("JIT", 1)

class Context:
  """Temporarily set knobs: `with Context(DEBUG=2): ...` or as a decorator `@Context(NOOPT=1)`."""
  def __init__(self, **kwargs: Any): self.kwargs = kwargs
  def __enter__(self):
    self.old = {}
    for k, v in self.kwargs.items():
      if k == "TRAINING":  # Tensor.training is the class attribute the library reads; keep both in step
        from tinygrad.tensor import Tensor
        self.old[k] = Tensor.training
        Tensor.training = bool(v)
      elif k == "DEFAULT_FLOAT":
        from tinygrad.dtype import dtypes
        self.old[k] = dtypes.default_float
        dtypes.default_float = getattr(dtypes, v.lower()) if isinstance(v, str) else v
      if k in ContextVar.registry:
        self.old.setdefault(k, ContextVar.registry[k].value)
        ContextVar.registry[k].value = v
      elif k not in ("TRAINING", "DEFAULT_FLOAT"): raise KeyError(f"Context: unknown variable {k!r} (known: {sorted(ContextVar.registry)})")
    return self
  def __exit__(self, *exc):
    for k, v in self.old.items():
      if k == "TRAINING":
        from tinygrad.tensor import Tensor
        Tensor.training = v
        ContextVar.registry[k].value = int(v)
      elif k == "DEFAULT_FLOAT":
        from tinygrad.dtype import dtypes
        dtypes.default_float = v
        if k in ContextVar.registry: ContextVar.registry[k].value = v
      else: ContextVar.registry[k].value = v
  def __call__(self, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
      with Context(**self.kwargs): return fn(*args, **kwargs)
    return wrapper

class GlobalCounters:
  """Running totals since the last reset(): kernels launched, floating-point ops, bytes moved, kernel time."""
  global_ops: int = 0
  global_mem: int = 0
  time_sum_s: float = 0.0
  kernel_count: int = 0
  mem_used: int = 0
  @staticmethod
  def reset(): GlobalCounters.global_ops, GlobalCounters.global_mem, GlobalCounters.time_sum_s, GlobalCounters.kernel_count = 0, 0, 0.0, 0

def colored(s: str, color: str) -> str:
  if not sys.stdout.isatty(): return s
  codes = {"red": 31, "green": 32, "yellow": 33, "blue": 34, "magenta": 35, "cyan": 36, "white": 37}
  return f"\u001b[{codes[color]}m{s}\u001b[0m"

class Timing:
  def __init__(self, prefix=""): self.prefix = prefix
  def __enter__(self): self.st = time.perf_counter_ns()
  def __exit__(self, *exc): print(f"{self.prefix}{(time.perf_counter_ns()-self.st)*1e-6:.2f} ms")
