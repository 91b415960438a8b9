"""The UOp IR: one immutable, hash-consed node type for Tensor graphs and kernel graphs alike.

Building the same (op, dtype, src, arg) twice returns the same object, so structural equality is identity,
dict keys are cheap and common-subexpression elimination is free.
"""
from __future__ import annotations
import itertools, math, struct, weakref
from dataclasses import dataclass
from typing import Any
from tinygrad.dtype import DType, dtypes, ConstType, truncate
from tinygrad.helpers import prod

class _OpsType(type):
  """Iteration and lookup by name for Ops. Ops is not an Enum: on Python 3.11 EnumType.__getattr__ makes every
  `Ops.ADD` a ~75 ns call (a plain class attribute: ~20 ns), and a realize reads thousands of them."""
  def __iter__(cls): return iter(cls._members)
  def __len__(cls) -> int: return len(cls._members)
  def __getitem__(cls, name: str) -> Ops: return cls._by_name[name]

_auto = itertools.count(1).__next__

class Ops(int, metaclass=_OpsType):
  """The op of a UOp: an int (ordered, hashed as one) with a name."""
  # tensor-level leaves and data
  BUFFER = _auto(); CONST = _auto(); IOTA = _auto(); CONTIGUOUS = _auto(); COPY = _auto(); ASSIGN = _auto()
  DETACH = _auto(); CONTIGUOUS_BACKWARD = _auto(); MULTI = _auto()
  BIND = _auto()  # a Variable bound to its value for one realize: src (DEFINE_VAR, CONST); unbound when a graph is normalised
  # movement (never executed: lowered to index arithmetic)
  RESHAPE = _auto(); PERMUTE = _auto(); EXPAND = _auto(); PAD = _auto(); SHRINK = _auto(); FLIP = _auto(); WINDOWS = _auto()
  # reduce (tensor level: arg ReduceArg; kernel level: src = (value, *ranges), arg the op)
  REDUCE = _auto()
  # unary
  EXP2 = _auto(); LOG2 = _auto(); SIN = _auto(); SQRT = _auto(); RECIPROCAL = _auto(); TRUNC = _auto(); NEG = _auto()
  CAST = _auto(); BITCAST = _auto()
  # binary
  ADD = _auto(); MUL = _auto(); FDIV = _auto(); IDIV = _auto(); MOD = _auto(); MAX = _auto(); CMPLT = _auto(); CMPNE = _auto()
  AND = _auto(); OR = _auto(); XOR = _auto(); SHL = _auto(); SHR = _auto()
  # ternary
  WHERE = _auto()
  # kernel level
  SINK = _auto(); DEFINE_GLOBAL = _auto(); DEFINE_VAR = _auto(); RANGE = _auto(); LANE = _auto(); SPECIAL = _auto()
  LOAD = _auto(); STORE = _auto(); VECTORIZE = _auto()
  # linearized program only
  ENDRANGE = _auto(); DEFINE_ACC = _auto(); ACCUMULATE = _auto()
  name: str
  def __new__(cls, value: int, name: str) -> Ops:
    self = super().__new__(cls, value)
    self.name = name
    return self
  @property
  def value(self) -> int: return int(self)
  def __repr__(self) -> str: return f"Ops.{self.name}"
  __str__ = __repr__
  def __format__(self, spec: str) -> str: return format(repr(self), spec)
  def __reduce__(self): return (getattr, (Ops, self.name))
Ops._members = [Ops(v, k) for k, v in list(vars(Ops).items()) if type(v) is int]
Ops._by_name = {m.name: m for m in Ops._members}
for _m in Ops._members: setattr(Ops, _m.name, _m)
del _m, _auto  # the counter only numbered the class body


UNARY = {Ops.EXP2, Ops.LOG2, Ops.SIN, Ops.SQRT, Ops.RECIPROCAL, Ops.TRUNC, Ops.NEG}
BINARY = {Ops.ADD, Ops.MUL, Ops.FDIV, Ops.IDIV, Ops.MOD, Ops.MAX, Ops.CMPLT, Ops.CMPNE, Ops.AND, Ops.OR, Ops.XOR, Ops.SHL, Ops.SHR}
ALU = UNARY | BINARY | {Ops.WHERE}
SAME_SHAPE = ALU | {Ops.FLIP, Ops.CONTIGUOUS, Ops.COPY, Ops.DETACH, Ops.CONTIGUOUS_BACKWARD, Ops.CAST, Ops.BITCAST, Ops.ASSIGN}
COMMUTATIVE = {Ops.ADD, Ops.MUL, Ops.MAX, Ops.CMPNE, Ops.AND, Ops.OR, Ops.XOR}
ELEMENTWISE = ALU | {Ops.CAST, Ops.BITCAST}
MOVEMENT = {Ops.RESHAPE, Ops.PERMUTE, Ops.EXPAND, Ops.PAD, Ops.SHRINK, Ops.FLIP, Ops.WINDOWS}
COMPARISON = {Ops.CMPLT, Ops.CMPNE}

@dataclass(frozen=True)
class ReduceArg:
  op: Ops                # ADD, MUL or MAX
  axes: tuple[int, ...]  # reduced axes; they stay in the shape with size 1

@dataclass(frozen=True)
class WindowArg:
  """Sliding windows over the last len(kernel) dims: (..., i) -> (..., o, k) with y[..., o, k] = x[..., o*stride + k*dilation]."""
  kernel: tuple[int, ...]
  stride: tuple[int, ...]
  dilation: tuple[int, ...]
  def out_size(self, i: int, j: int) -> int: return (i - self.dilation[j] * (self.kernel[j] - 1) - 1) // self.stride[j] + 1

class BufferRef:
  """Identity of a realized buffer in a Tensor graph: BUFFER's arg, compared and hashed by identity; `buf` is the
  runtime allocation. A slotted class, not a frozen dataclass (whose __init__ sets each field through
  object.__setattr__): one is made per realized result, 0.38 -> 0.12 us."""
  __slots__ = ("size", "device", "buf")
  def __init__(self, size: int, device: str, buf: Any = None): self.size, self.device, self.buf = size, device, buf
  def __repr__(self) -> str: return f"BufferRef(size={self.size}, device={self.device!r}, buf={self.buf!r})"

@dataclass(frozen=True)
class RangeArg:
  id: int        # unique within a kernel
  end: int | UOp  # a symbolic end (an index expression of DEFINE_VARs) is also the RANGE's source, so it is computed first
  kind: str      # "global" (output loop), "reduce", or "split" (vector outer part)

@dataclass(frozen=True)
class VarArg:
  """A symbolic dimension: DEFINE_VAR's arg. Its value, between vmin and vmax, is a kernel argument."""
  name: str
  vmin: int
  vmax: int

symbolic_in_use = False  # set by the first bind(): graphs are searched for bound variables only from then on

def Variable(name: str, min_val: int, max_val: int) -> UOp:
  """A symbolic dimension size, `Variable("n", 1, 64).bind(10)`: one compiled kernel serves every bound value."""
  if not isinstance(name, str) or not name: raise TypeError(f"Variable: name must be a non-empty str, got {name!r}")
  if not all(isinstance(v, int) and not isinstance(v, bool) for v in (min_val, max_val)) or not 0 <= min_val <= max_val:
    raise ValueError(f"Variable {name}: bounds must be ints with 0 <= min <= max, got ({min_val!r}, {max_val!r})")
  return UOp(Ops.DEFINE_VAR, dtypes.index, (), VarArg(name, min_val, max_val))

class _CacheRef(weakref.ref):
  """UOp._cache's weak reference to a node; it carries its key, so one shared callback (no closure per node) removes
  the entry when the node dies, unless a newer node took the key since."""
  __slots__ = ("key",)

def _drop(ref: _CacheRef) -> None:
  if UOp._cache.get(ref.key) is ref: del UOp._cache[ref.key]

def arg_key(arg):
  # floats are keyed by their bits, so 0.0 / -0.0 stay apart and NaN constants are shared
  if isinstance(arg, float): return ("f", struct.pack("d", arg))
  return arg

_SERIALS = itertools.count(1)

class UOp:
  __slots__ = ("op", "dtype", "src", "arg", "_shape", "_vmin", "_vmax", "_ranges", "_topo", "_pure", "_no_grad_mark", "_serial", "realized", "__weakref__")
  _cache: dict[tuple, _CacheRef] = {}  # (op, dtype, src, arg) -> weak reference; entries removed when the node dies
  op: Ops
  dtype: DType
  src: tuple[UOp, ...]
  arg: Any

  def __new__(cls, op: Ops, dtype: DType = dtypes.void, src: tuple[UOp, ...] = (), arg: Any = None):
    key = (op, dtype, src, arg if type(arg) is not float else arg_key(arg))
    if (ref := UOp._cache.get(key)) is not None and (ret := ref()) is not None: return ret
    self = UOp.unique(op, dtype, src, arg)
    ref = UOp._cache[key] = _CacheRef(self, _drop)
    ref.key = key
    return self
  @staticmethod
  def unique(op: Ops, dtype: DType, src: tuple[UOp, ...], arg: Any) -> UOp:
    """A node made without looking it up: UOp() for every node, and directly for one no other can equal (a realized
    buffer's BUFFER: its BufferRef compares by identity), which is not kept in the cache (0.88 -> 0.35 us each)."""
    self = object.__new__(UOp)
    self.op, self.dtype, self.src, self.arg = op, dtype, src, arg
    self._shape = self._vmin = self._vmax = self._ranges = self._topo = None
    self._pure = False  # set by engine.realize's normalize once it found the node's normalised form to be itself
    self._no_grad_mark = 0  # tensor._reaches: the grad-node set under which nothing below this node requires grad
    self._serial = next(_SERIALS)  # creation order: a node's sources are older than it (tensor._reaches prunes by it)
    self.realized: UOp | None = None  # the buffer view holding this node's value once computed (set by realize)
    return self
  def __reduce__(self): return (UOp, (self.op, self.dtype, self.src, self.arg))
  def replace(self, **kw) -> UOp:
    return UOp(kw.get("op", self.op), kw.get("dtype", self.dtype), kw.get("src", self.src), kw.get("arg", self.arg))

  def __repr__(self) -> str: return sym_str(self) if _is_symbolic_int(self) else pretty(self)
  def __bool__(self) -> bool:
    """A comparison is true or false only if its bounds say so (`n >= 1` for a Variable n in 1..64); otherwise it
    cannot be decided before the value is bound, and an `if` on it is an error rather than silently true."""
    if self.dtype != dtypes.bool: return True
    lo, hi = self._bounds()
    if lo == hi: return bool(lo)
    raise TypeError(f"the symbolic condition {sym_str(self)} depends on a Variable's value and cannot be decided")

  # ---- symbolic dimensions (Variable)
  def bind(self, val: int) -> UOp:
    if self.op is not Ops.DEFINE_VAR: raise TypeError(f"bind: only a Variable can be bound, not {self.op}")
    if not isinstance(val, int) or isinstance(val, bool) or not self.arg.vmin <= val <= self.arg.vmax:
      raise ValueError(f"bind: {self.arg.name} must be an int in [{self.arg.vmin}, {self.arg.vmax}], got {val!r}")
    global symbolic_in_use
    symbolic_in_use = True
    return UOp(Ops.BIND, dtypes.index, (self, UOp.const(dtypes.index, val)))
  def unbind(self) -> tuple[UOp, int]:
    if self.op is not Ops.BIND: raise TypeError(f"unbind: {sym_str(self)} is not a bound Variable")
    return self.src[0], self.src[1].arg
  @property
  def expr(self) -> str:
    if self.op is Ops.DEFINE_VAR: return self.arg.name
    if self.op is Ops.BIND: return self.src[0].arg.name
    return sym_str(self)
  @property
  def val(self) -> int:
    if self.op is not Ops.BIND: raise TypeError(f"val: {sym_str(self)} is not a bound Variable")
    return self.src[1].arg

  # ---- graph walking
  def toposort(self) -> list[UOp]:
    """All nodes reachable from self, every node after its sources. A node's sources never change, so the list is kept
    on the node, without the node itself: codegen asks ~40 times per kernel, mostly of the same few nodes, and a list
    holding its own node would be a reference cycle that keeps a graph's buffers until the cyclic GC runs.
    test_a_dropped_graph_frees_its_buffers_without_the_gc"""
    if self._topo is not None: return self._topo + [self]
    # each stack entry holds an iterator over its node's sources: ~3x faster than pushing (node, done) pairs
    out, seen, stack = [], {self}, [(self, iter(self.src))]
    while stack:
      u, srcs = stack[-1]
      for s in srcs:
        if s not in seen:
          seen.add(s)
          stack.append((s, iter(s.src)))
          break
      else:
        stack.pop()
        out.append(u)
    self._topo = out[:-1]
    return out
  def substitute(self, mapping: dict[UOp, UOp]) -> UOp:
    memo: dict[UOp, UOp] = dict(mapping)
    for u in self.toposort():
      if u in memo: continue
      nsrc = tuple(memo[s] for s in u.src)
      memo[u] = u if nsrc == u.src else u.replace(src=nsrc)
    return memo[self]

  # ---- constants
  @staticmethod
  def const(dtype: DType, val: ConstType) -> UOp:
    # index arithmetic (int64, in range: nothing to wrap) skips as_const: ~100k constants in a ResNet step's lowering
    if dtype is dtypes.index and type(val) is int and -(1 << 63) <= val < 1 << 63: return UOp(Ops.CONST, dtype, (), val)
    if isinstance(val, UOp): return val
    if dtype.count > 1: return UOp(Ops.VECTORIZE, dtype, (UOp.const(dtype.scalar, val),) * dtype.count)
    return UOp(Ops.CONST, dtype, (), truncate(val, dtype) if dtypes.is_float(dtype) else dtypes.as_const(val, dtype))
  def const_like(self, val: ConstType) -> UOp: return UOp.const(self.dtype, val)
  @property
  def is_const(self) -> bool: return self.op is Ops.CONST

  # ---- tensor-level shape (None for kernel-level nodes)
  @property
  def shape(self) -> tuple[int, ...]:
    if self._shape is None: self._shape = _infer_shape(self)
    return self._shape
  @property
  def size(self) -> int: return prod(self.shape)

  # ---- building ALU nodes (used by index arithmetic, the simplifier and the gradient table)
  def alu(self, op: Ops, *src: UOp | ConstType) -> UOp:
    srcs = (self, *[s if type(s) is UOp else UOp.const(self.dtype.scalar, s) for s in src])  # scalars broadcast
    n = max([s.dtype.count for s in srcs])
    out_dtype = dtypes.bool if op in COMPARISON else srcs[-1].dtype.scalar if op is Ops.WHERE else self.dtype.scalar
    out_dtype = out_dtype.vec(n) if n > 1 else out_dtype
    return UOp(op, out_dtype, srcs)
  def cast(self, dtype: DType) -> UOp: return self if self.dtype == dtype else UOp(Ops.CAST, dtype, (self,))
  def _b(self, x): return x if isinstance(x, UOp) else UOp.const(self.dtype.scalar, x)
  # x+0 and x*1 with a Python int stay x, so shapes built with sum()/prod() over symbolic dims stay readable
  def __add__(self, x): return self if type(x) is int and x == 0 else self.alu(Ops.ADD, x)
  def __radd__(self, x): return self if type(x) is int and x == 0 else self._b(x).alu(Ops.ADD, self)
  def __mul__(self, x): return self if type(x) is int and x == 1 else self.alu(Ops.MUL, x)
  def __rmul__(self, x): return self if type(x) is int and x == 1 else self._b(x).alu(Ops.MUL, self)
  def __sub__(self, x): return self + (-self._b(x) if isinstance(x, UOp) else -x)
  def __rsub__(self, x): return self._b(x) + (-self)
  def __neg__(self): return self.alu(Ops.NEG)
  def __floordiv__(self, x): return self.alu(Ops.IDIV, x)
  def __mod__(self, x): return self.alu(Ops.MOD, x)
  def __truediv__(self, x): return self.alu(Ops.FDIV, x)
  def __lt__(self, x): return self.alu(Ops.CMPLT, x)
  def __ge__(self, x): return self.alu(Ops.CMPLT, x).alu(Ops.CMPNE, True)
  def __gt__(self, x): return self._b(x).alu(Ops.CMPLT, self)
  def __le__(self, x): return self._b(x).alu(Ops.CMPLT, self).alu(Ops.CMPNE, True)
  def ne(self, x): return self.alu(Ops.CMPNE, x)
  def eq(self, x): return self.ne(x).alu(Ops.CMPNE, True)
  def maximum(self, x): return self.alu(Ops.MAX, x)
  def where(self, a, b): return UOp(Ops.WHERE, (a if isinstance(a, UOp) else b).dtype, (self, self._bt(a, b), self._bt(b, a)))
  def _bt(self, x, other): return x if isinstance(x, UOp) else UOp.const(other.dtype.scalar, x)
  def logical_and(self, x): return self.alu(Ops.AND, x)

  # ---- value bounds, for index simplification
  @property
  def vmin(self): return self._bounds()[0]
  @property
  def vmax(self): return self._bounds()[1]
  def _bounds(self):
    if self._vmin is None: self._vmin, self._vmax = _bounds(self)
    return self._vmin, self._vmax
  @property
  def ranges(self) -> frozenset[UOp]:
    """The loop variables (RANGE and LANE) this kernel-level value depends on."""
    if self._ranges is None:
      if self.op in (Ops.RANGE, Ops.LANE): self._ranges = frozenset((self,))
      elif self.op is Ops.REDUCE: self._ranges = self.src[0].ranges - frozenset(self.src[1:])
      else: self._ranges = frozenset().union(*(s.ranges for s in self.src)) if self.src else frozenset()
    return self._ranges

def _bounds(u: UOp) -> tuple[Any, Any]:
  if u.op is Ops.CONST: return u.arg, u.arg
  if u.op is Ops.RANGE: return 0, (u.arg.end if isinstance(u.arg.end, int) else u.arg.end.vmax) - 1
  if u.op is Ops.LANE: return 0, u.arg - 1
  if u.op is Ops.SPECIAL: return 0, u.arg[1] - 1
  if u.op is Ops.DEFINE_VAR: return u.arg.vmin, u.arg.vmax
  if u.op is Ops.BIND: return u.src[0]._bounds()
  if dtypes.is_int(u.dtype) and u.src:
    s = [x._bounds() for x in u.src]
    if u.op is Ops.ADD: return s[0][0] + s[1][0], s[0][1] + s[1][1]
    if u.op is Ops.NEG: return -s[0][1], -s[0][0]
    if u.op is Ops.MUL:
      c = [a * b for a in s[0] for b in s[1]]
      return min(c), max(c)
    if u.op is Ops.MAX: return max(s[0][0], s[1][0]), max(s[0][1], s[1][1])
    if u.op is Ops.IDIV and u.src[1].op is Ops.CONST and u.src[1].arg > 0:  # truncating division is monotone in x
      return tuple(-(-v // u.src[1].arg) if v < 0 else v // u.src[1].arg for v in s[0])
    if u.op is Ops.MOD and u.src[1].op is Ops.CONST and u.src[1].arg > 0:
      return (s[0][0], s[0][1]) if 0 <= s[0][0] and s[0][1] < u.src[1].arg else (0, u.src[1].arg - 1) if s[0][0] >= 0 else (-(u.src[1].arg - 1), u.src[1].arg - 1)
    if u.op is Ops.WHERE:
      (t0, t1), c = s[1], u.src[0]
      # where(a < k, a, b): a is below k where it is taken (a clamp, codegen/lower.py _clamped)
      if c.op is Ops.CMPLT and c.src[0] is u.src[1] and c.src[1].op is Ops.CONST: t1 = min(t1, c.src[1].arg - 1)
      return min(t0, s[2][0]), max(t1, s[2][1])
    if u.op is Ops.CAST and (dtypes.is_int(u.src[0].dtype) or u.src[0].dtype == dtypes.bool):
      if dtypes.min(u.dtype) <= s[0][0] and s[0][1] <= dtypes.max(u.dtype): return int(s[0][0]), int(s[0][1])
  if u.dtype.scalar == dtypes.bool and u.src:
    if u.op is Ops.CMPLT and dtypes.is_int(u.src[0].dtype):
      (a0, a1), (b0, b1) = u.src[0]._bounds(), u.src[1]._bounds()
      if a1 < b0: return True, True
      if a0 >= b1: return False, False
    if u.op is Ops.AND:
      (a0, a1), (b0, b1) = u.src[0]._bounds(), u.src[1]._bounds()
      return a0 and b0, a1 and b1
    if u.op is Ops.CMPNE and u.src[0].dtype == dtypes.bool and u.src[1].op is Ops.CONST and u.src[1].arg is True:
      a0, a1 = u.src[0]._bounds()
      return not a1, not a0
    return False, True
  return dtypes.min(u.dtype), dtypes.max(u.dtype)

# ---- tensor-level shape inference, with errors that name the op and the shapes
def _infer_shape(u: UOp) -> tuple[int, ...]:
  op, arg = u.op, u.arg
  if op in SAME_SHAPE: return u.src[0].shape  # first: most nodes of a Tensor graph are elementwise
  if op is Ops.BUFFER: return (arg.size,)
  if op in (Ops.CONST, Ops.BIND, Ops.DEFINE_VAR): return ()
  if op is Ops.IOTA: return (arg,)
  if op in (Ops.RESHAPE, Ops.EXPAND): return arg
  s = u.src[0].shape if u.src else None
  if op is Ops.PERMUTE: return tuple(s[i] for i in arg)
  if op is Ops.PAD: return tuple(d + b + a if type(d) is int and type(b) is int and type(a) is int else sym_canon(d + b + a) for d, (b, a) in zip(s, arg))
  if op is Ops.SHRINK: return tuple(e - b if type(e) is int and type(b) is int else sym_canon(e - b) for b, e in arg)
  if op is Ops.MULTI:
    from tinygrad.multi import multi_shape
    return multi_shape(u.src, arg)
  if op is Ops.WINDOWS:
    n = len(arg.kernel)
    return s[:-n] + tuple(arg.out_size(i, j) for j, i in enumerate(s[-n:])) + arg.kernel
  if op is Ops.REDUCE: return tuple(1 if i in arg.axes else d for i, d in enumerate(s))
  raise RuntimeError(f"shape of {op} is not defined")

# ---- symbolic dimensions: evaluating and printing index expressions of Variables
SYMBOLIC_OPS = {Ops.CONST, Ops.DEFINE_VAR, Ops.BIND, Ops.ADD, Ops.MUL, Ops.NEG, Ops.IDIV, Ops.MOD, Ops.MAX, Ops.CMPLT, Ops.CMPNE, Ops.AND}

def _is_symbolic_int(u: UOp) -> bool:
  return u.op in (Ops.DEFINE_VAR, Ops.BIND) or (u.dtype in (dtypes.index, dtypes.bool) and u.op in SYMBOLIC_OPS and
                                               any(x.op in (Ops.DEFINE_VAR, Ops.BIND) for x in u.toposort()))

def sym_eval(x: int | UOp, var_vals: dict[UOp, int] | None = None) -> int:
  """The value of a dimension: an int, or a symbolic expression evaluated with its bound values (BIND) or var_vals."""
  if not isinstance(x, UOp): return x
  if x.op is Ops.CONST: return x.arg
  if x.op is Ops.BIND: return x.src[1].arg
  if x.op is Ops.DEFINE_VAR:
    if var_vals is None or x not in var_vals: raise ValueError(f"Variable {x.arg.name} has no value here: bind it")
    return var_vals[x]
  if x.op not in SYMBOLIC_OPS: raise TypeError(f"sym_eval: {x.op} is not part of a symbolic dimension")
  return int(exec_alu(x.op, x.dtype, [sym_eval(s, var_vals) for s in x.src]))

def sym_canon(x: int | UOp) -> int | UOp:
  """A symbolic size in one canonical form, sum(term * coef) + const with terms in name order, so sizes computed two
  ways compare equal (cat's `(n + 10) - n` is 10 again); an int when the Variables cancel. test_cat_symbolic"""
  if not isinstance(x, UOp): return x
  terms, const = affine(x)
  out: int | UOp = const
  for t in sorted(terms, key=sym_str): out = (t * terms[t] if terms[t] != 1 else t) + out
  return out

def affine(u: UOp) -> tuple[dict[UOp, int], int]:
  """Write an integer expression as sum(coef * term) + const (no zero coefficients); anything that is not +, - or *
  by a constant is a term. Serves the kernel simplifier (codegen/symbolic.py) and symbolic shapes (sym_canon)."""
  if u.op is Ops.CONST: return {}, u.arg
  if u.op is Ops.ADD:
    (ta, ca), (tb, cb) = affine(u.src[0]), affine(u.src[1])
    out = dict(ta)
    for t, c in tb.items(): out[t] = out.get(t, 0) + c
    return {t: c for t, c in out.items() if c != 0}, ca + cb
  if u.op is Ops.NEG:
    t, c = affine(u.src[0])
    return {x: -v for x, v in t.items()}, -c
  if u.op is Ops.MUL and (k_src := next((s for s in u.src[::-1] if s.op is Ops.CONST), None)) is not None:
    t, c = affine(u.src[0] if k_src is u.src[1] else u.src[1])
    k = k_src.arg
    return ({x: v * k for x, v in t.items()} if k else {}), c * k
  return {u: 1}, 0

def sym_str(u: UOp) -> str:
  if u.op is Ops.CONST: return str(u.arg)
  if u.op is Ops.DEFINE_VAR: return u.arg.name
  if u.op is Ops.BIND: return f"{u.src[0].arg.name}={u.src[1].arg}"
  sym = {Ops.ADD: "+", Ops.MUL: "*", Ops.IDIV: "//", Ops.MOD: "%", Ops.CMPLT: "<", Ops.CMPNE: "!=", Ops.AND: "&"}
  if u.op in sym and len(u.src) == 2: return f"({sym_str(u.src[0])}{sym[u.op]}{sym_str(u.src[1])})"
  return f"{u.op.name.lower()}({', '.join(sym_str(s) for s in u.src)})"

def unbind(x, var_vals: dict[UOp, int]):
  """x (a dimension, or nested tuples of them) with every bound Variable replaced by the Variable; the values go
  into var_vals. One Variable bound to two values in one graph is an error."""
  if isinstance(x, tuple): return tuple(unbind(y, var_vals) for y in x)
  if not isinstance(x, UOp): return x
  binds = [b for b in x.toposort() if b.op is Ops.BIND]
  for b in binds:
    var, val = b.unbind()
    if var_vals.setdefault(var, val) != val:
      raise ValueError(f"Variable {var.arg.name} is bound to both {var_vals[var]} and {val} in one computation")
  return x.substitute({b: b.src[0] for b in binds}) if binds else x

def is_symbolic(arg) -> bool:
  return isinstance(arg, UOp) or (isinstance(arg, tuple) and any(is_symbolic(a) for a in arg))

# ---- printing
def pretty(u: UOp, maxdepth: int = 30) -> str:
  names: dict[UOp, str] = {}
  lines = []
  for i, x in enumerate(u.toposort()):
    names[x] = f"x{i}"
    a = "" if x.arg is None else f", arg={x.arg!r}"
    lines.append(f"{names[x]:>5} = {x.op.name:<14} {str(x.dtype):<20} src=({', '.join(names[s] for s in x.src)}){a}")
  return "\n".join(lines[-200:])

def exec_alu(op: Ops, dtype: DType, operands: list) -> Any:
  """Python semantics of each ALU op as the kernels compute it; used for constant folding."""
  a = operands
  if op is Ops.ADD: r = a[0] + a[1]
  elif op is Ops.MUL: r = a[0] * a[1]
  elif op is Ops.NEG: r = (not a[0]) if dtype == dtypes.bool else -a[0]
  elif op is Ops.MAX: r = max(a[0], a[1]) if not (isinstance(a[0], float) and (math.isnan(a[0]) or math.isnan(a[1]))) else math.nan
  elif op is Ops.CMPLT: r = a[0] < a[1]
  elif op is Ops.CMPNE: r = a[0] != a[1]
  elif op is Ops.WHERE: r = a[1] if a[0] else a[2]
  elif op is Ops.AND: r = a[0] & a[1] if not isinstance(a[0], bool) else a[0] and a[1]
  elif op is Ops.OR: r = a[0] | a[1] if not isinstance(a[0], bool) else a[0] or a[1]
  elif op is Ops.XOR: r = a[0] ^ a[1]
  elif op is Ops.IDIV:  # integer division truncating toward zero (the kernel IDIV); x/0 -> 0
    if a[1] == 0: r = 0
    else: r = abs(a[0]) // abs(a[1]) * (1 if (a[0] < 0) == (a[1] < 0) else -1)
  elif op is Ops.MOD:  # remainder with the sign of the dividend (the kernel MOD); x%0 -> 0
    if a[1] == 0: r = 0
    else: r = a[0] - a[1] * (abs(a[0]) // abs(a[1]) * (1 if (a[0] < 0) == (a[1] < 0) else -1))
  else: raise NotImplementedError(f"exec_alu: {op}")
  return truncate(r, dtype) if dtypes.is_float(dtype) else dtypes.as_const(r, dtype)
