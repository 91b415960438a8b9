"""The one rewrite engine: UPat patterns, a PatternMatcher bucketed by op, graph_rewrite to a fixed point."""
from __future__ import annotations
import itertools, sys
from typing import Any, Callable
from tinygrad.uop import UOp, Ops
from tinygrad.dtype import DType
from tinygrad.helpers import DEBUG

sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))

class UPat:
  """A pattern over UOps. `src` as a tuple matches in order; as a list it also tries the swapped order (commutative ops)."""
  __slots__ = ("ops", "dtypes", "src", "arg", "name", "allow_any_len")
  def __init__(self, op: Ops | tuple[Ops, ...] | None = None, dtype: DType | tuple[DType, ...] | None = None,
               src: tuple[UPat, ...] | list[UPat] | UPat | None = None, arg: Any = None, name: str | None = None):
    self.ops = (op,) if isinstance(op, Ops) else op
    self.dtypes = (dtype,) if isinstance(dtype, DType) else dtype
    self.src, self.arg, self.name = src, arg, name
  @staticmethod
  def var(name: str | None = None, dtype=None) -> UPat: return UPat(name=name, dtype=dtype)
  @staticmethod
  def cvar(name: str | None = None, dtype=None) -> UPat: return UPat(Ops.CONST, dtype=dtype, name=name)
  @staticmethod
  def const(val: Any, dtype=None) -> UPat: return UPat(Ops.CONST, dtype=dtype, arg=val)
  def __repr__(self): return f"UPat({self.ops}, name={self.name!r})"

  def match(self, u: UOp, store: dict[str, UOp]) -> list[dict[str, UOp]]:
    """Every way u matches, each the bindings of the names so far plus this pattern's. A list, not a generator: few
    patterns match more than one way, and lists cost less than nested generators in CPython (with the iterative
    toposort, schedule + codegen of an MLP step's kernels went from ~130 to ~105 ms)."""
    if self.ops is not None and u.op not in self.ops: return []
    if self.dtypes is not None and u.dtype not in self.dtypes and u.dtype.scalar not in self.dtypes: return []
    if self.arg is not None and not (u.arg == self.arg and type(u.arg) is type(self.arg)): return []
    if self.name is not None:
      if (prev := store.get(self.name)) is not None:
        if prev is not u: return []
      else: store = {**store, self.name: u}
    if self.src is None: return [store]
    if isinstance(self.src, UPat): return _match_all([self.src] * len(u.src), u.src, store)  # every source, one pattern
    if len(self.src) != len(u.src): return []
    if isinstance(self.src, tuple): return _match_all(self.src, u.src, store)
    return [st for pats in itertools.permutations(self.src) for st in _match_all(pats, u.src, store)]

def _match_all(pats, srcs: tuple[UOp, ...], store: dict[str, UOp]) -> list[dict[str, UOp]]:
  stores = [store]
  for p, s in zip(pats, srcs):
    if not (stores := [st for prev in stores for st in p.match(s, prev)]): break
  return stores

class PatternMatcher:
  """An ordered list of (UPat, fn) rules, bucketed by the pattern's op so only candidate rules are tried."""
  def __init__(self, rules: list[tuple[UPat, Callable]], name: str = "rules"):
    self.rules, self.name = rules, name
    self.by_op: dict[Ops, list[tuple[UPat, Callable, bool]]] = {}
    self.wildcard: list[tuple[UPat, Callable, bool]] = []
    for pat, fn in rules:
      entry = (pat, fn, "ctx" in fn.__code__.co_varnames[:fn.__code__.co_argcount])
      for op in (pat.ops or ()): self.by_op.setdefault(op, []).append(entry)
      if pat.ops is None: self.wildcard.append(entry)
    for op in self.by_op: self.by_op[op] += self.wildcard
  def __add__(self, other: PatternMatcher) -> PatternMatcher: return PatternMatcher(self.rules + other.rules, f"{self.name}+{other.name}")
  def rewrite(self, u: UOp, ctx: Any = None) -> UOp | None:
    for pat, fn, wants_ctx in self.by_op.get(u.op, self.wildcard):
      for store in pat.match(u, {}):
        ret = fn(ctx=ctx, **store) if wants_ctx else fn(**store)
        if ret is not None and ret is not u: return ret
    return None

  def apply(self, u: UOp, **kwargs) -> Any:
    """The result of the first rule whose pattern matches u, called with the extra keyword arguments (None if none)."""
    for pat, fn, _ in self.by_op.get(u.op, self.wildcard):
      for store in pat.match(u, {}): return fn(**kwargs, **store)
    return None

def graph_rewrite(sink: UOp, pm: PatternMatcher, ctx: Any = None, name: str | None = None, memo: dict[UOp, UOp] | None = None) -> UOp:
  """Rewrite bottom-up until no rule applies anywhere (a fixed point). `memo`, shared by calls with the same rules and
  no ctx, maps every node rewritten so far to its result: a later call does not visit those again (codegen/lower.py
  simplifies ~40k index expressions built from one another when lowering a small ResNet's training step)."""
  if memo is None: memo = {}
  def rw(u: UOp) -> UOp:
    if (r := memo.get(u)) is not None: return r
    nsrc = tuple([rw(s) for s in u.src])
    x = u if nsrc == u.src else u.replace(src=nsrc)
    if x is not u and (r := memo.get(x)) is not None:
      memo[u] = r
      return r
    new = pm.rewrite(x, ctx)
    out = x if new is None else rw(new)
    memo[u] = memo[x] = out
    return out
  ret = rw(sink)
  rw = None  # a recursive closure refers to itself: break that cycle, so its memo goes now rather than at the next GC
  if DEBUG >= 7: print(f"after {name or pm.name}:\n{ret}")
  return ret
