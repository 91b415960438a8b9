"""DType, the dtypes namespace and tinygrad's promotion lattice (Python scalars are weak)."""
from __future__ import annotations
import functools, math
from dataclasses import dataclass, field
from typing import Union

ConstType = Union[float, int, bool]

@dataclass(frozen=True, eq=False)
class DType:
  """A scalar or vector element type. Instances are interned (vec() is cached), so == and hash are identity."""
  priority: int      # orders the lattice when several upper bounds tie
  itemsize: int      # bytes of one scalar element
  name: str
  fmt: str | None    # struct/numpy format character; None for bfloat16
  count: int = 1     # vector lanes (kernel-level only; Tensors are always scalar dtypes)
  scalar: DType = field(init=False, repr=False)  # the element type: self, or the scalar of a vector
  def __post_init__(self):  # stored, not a property: dtypes.is_int and friends ask for it on every constant built
    object.__setattr__(self, "scalar", self if self.count == 1 else DTYPES_BY_NAME[self.name])
  def __repr__(self): return f"dtypes.{self.name}" if self.count == 1 else f"dtypes.{self.name}.vec({self.count})"
  def __lt__(self, o: DType): return (self.priority, self.itemsize, self.name, self.count) < (o.priority, o.itemsize, o.name, o.count)
  def vec(self, n: int) -> DType: return self if n == 1 else _vec(self, n)
  @property
  def bitsize(self) -> int: return self.itemsize * 8
  def __reduce__(self): return (_interned, (self.name, self.count))  # unpickles to the same instance (== is identity)

@functools.cache
def _vec(d: DType, n: int) -> DType:
  assert d.count == 1, f"can't vectorize {d} again"
  return DType(d.priority, d.itemsize * n, d.name, None, n)

class dtypes:
  void = DType(-1, 0, "void", None)  # kernel-level nodes with no value (STORE, SINK, RANGE ends)
  bool = DType(0, 1, "bool", "?")
  int8 = DType(1, 1, "char", "b")
  uint8 = DType(2, 1, "uchar", "B")
  int16 = DType(3, 2, "short", "h")
  uint16 = DType(4, 2, "ushort", "H")
  int32 = DType(5, 4, "int", "i")
  uint32 = DType(6, 4, "uint", "I")
  int64 = DType(7, 8, "long", "q")
  uint64 = DType(8, 8, "ulong", "Q")
  float16 = DType(9, 2, "half", "e")
  bfloat16 = DType(10, 2, "bfloat16", None)
  float32 = DType(11, 4, "float", "f")
  float64 = DType(12, 8, "double", "d")
  # aliases
  half, float, double = float16, float32, float64
  uchar, char, short, ushort, int, uint, long, ulong = uint8, int8, int16, uint16, int32, uint32, int64, uint64
  default_float: DType = float32
  default_int: DType = int32
  index = int64  # dtype of loop variables and index arithmetic inside kernels

  @staticmethod
  def is_float(x: DType) -> bool: return x.scalar in _FLOAT_SET
  @staticmethod
  def is_int(x: DType) -> bool: return x.scalar in _INT_SET
  @staticmethod
  def is_unsigned(x: DType) -> bool: return x.scalar in _UINT_SET
  @staticmethod
  def is_bool(x: DType) -> bool: return x.scalar is dtypes.bool
  @staticmethod
  def from_py(x) -> DType:
    if isinstance(x, bool): return dtypes.bool
    if isinstance(x, int): return dtypes.default_int
    if isinstance(x, float): return dtypes.default_float
    if isinstance(x, (list, tuple)): return max((dtypes.from_py(v) for v in x), default=dtypes.default_float)
    raise TypeError(f"from_py: cannot infer a dtype from {type(x).__name__}")
  @staticmethod
  def as_const(val, dtype: DType) -> ConstType:
    if dtypes.is_float(dtype): return float(val)
    if dtypes.is_bool(dtype): return bool(val)
    v = int(val)
    if dtypes.is_int(dtype):  # wrap like a C cast, so constants match what the kernel would store
      bits = dtype.scalar.bitsize
      v &= (1 << bits) - 1
      if not dtypes.is_unsigned(dtype) and v >= 1 << (bits - 1): v -= 1 << bits
    return v
  @staticmethod
  def min(dtype: DType) -> ConstType:
    if dtypes.is_int(dtype): return 0 if dtypes.is_unsigned(dtype) else -2 ** (dtype.scalar.bitsize - 1)
    if dtypes.is_bool(dtype): return False
    return -math.inf
  @staticmethod
  def max(dtype: DType) -> ConstType:
    if dtypes.is_int(dtype): return 2 ** (dtype.scalar.bitsize - (0 if dtypes.is_unsigned(dtype) else 1)) - 1
    if dtypes.is_bool(dtype): return True
    return math.inf
  @staticmethod
  def finfo(dtype: DType) -> tuple[int, int]:
    """(exponent bits, mantissa bits) of a float dtype."""
    return {dtypes.float16: (5, 10), dtypes.bfloat16: (8, 7), dtypes.float32: (8, 23), dtypes.float64: (11, 52)}[dtype]
  @staticmethod
  def fields() -> dict[str, DType]: return dict(DTYPES_BY_NAME_PUBLIC)

DTypes = dtypes  # the documented name of the namespace

UINTS = (dtypes.uint8, dtypes.uint16, dtypes.uint32, dtypes.uint64)
SINTS = (dtypes.int8, dtypes.int16, dtypes.int32, dtypes.int64)
INTS = UINTS + SINTS
FLOATS = (dtypes.float16, dtypes.bfloat16, dtypes.float32, dtypes.float64)
_INT_SET, _UINT_SET, _FLOAT_SET = frozenset(INTS), frozenset(UINTS), frozenset(FLOATS)  # hashed by identity
ALL_DTYPES = (dtypes.bool,) + SINTS + UINTS + FLOATS
DTYPES_BY_NAME = {d.name: d for d in ALL_DTYPES}
def _interned(name: str, count: int) -> DType: return (dtypes.void if name == "void" else DTYPES_BY_NAME[name]).vec(count)
DTYPES_BY_NAME_PUBLIC = {n: d for n in ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
                                         "float16", "bfloat16", "float32", "float64") for d in (getattr(dtypes, n),)}

# the promotion lattice: an edge a -> b means a converts to b without loss (tinygrad's lattice)
_PROMO = {dtypes.bool: (dtypes.int8, dtypes.uint8), dtypes.int8: (dtypes.int16,), dtypes.int16: (dtypes.int32,),
          dtypes.int32: (dtypes.int64,), dtypes.int64: (dtypes.float16, dtypes.bfloat16),
          dtypes.uint8: (dtypes.int16, dtypes.uint16), dtypes.uint16: (dtypes.int32, dtypes.uint32),
          dtypes.uint32: (dtypes.int64, dtypes.uint64), dtypes.uint64: (dtypes.float16, dtypes.bfloat16),
          dtypes.float16: (dtypes.float32,), dtypes.bfloat16: (dtypes.float32,), dtypes.float32: (dtypes.float64,)}

@functools.cache
def _supersets(d: DType) -> frozenset[DType]:
  return frozenset({d}).union(*(_supersets(u) for u in _PROMO.get(d, ())))

def least_upper_dtype(*ds: DType) -> DType:
  """The smallest dtype every one of `ds` promotes to."""
  return min(frozenset.intersection(*(_supersets(d) for d in ds)))

def least_upper_float(d: DType) -> DType: return d if dtypes.is_float(d) else least_upper_dtype(d, dtypes.default_float)

def to_dtype(x) -> DType:
  """Accept a DType, a dtype name ('float32'), or a numpy dtype."""
  if isinstance(x, DType): return x
  if isinstance(x, str):
    if (d := DTYPES_BY_NAME_PUBLIC.get(x)) is not None: return d
    raise TypeError(f"unknown dtype {x!r} (supported: {', '.join(DTYPES_BY_NAME_PUBLIC)})")
  import numpy as np
  try: npd = np.dtype(x)
  except TypeError: raise TypeError(f"unknown dtype {x!r} (supported: {', '.join(DTYPES_BY_NAME_PUBLIC)})") from None
  if npd.name == "bfloat16": return dtypes.bfloat16
  for d in ALL_DTYPES:
    if d.fmt is not None and np.dtype(d.fmt) == npd: return d
  raise TypeError(f"dtype {npd} is not supported (supported: {', '.join(DTYPES_BY_NAME_PUBLIC)})")

def to_np_dtype(d: DType):
  import numpy as np
  if d == dtypes.bfloat16:
    import ml_dtypes
    return np.dtype(ml_dtypes.bfloat16)
  return np.dtype(d.fmt)

def truncate(x: ConstType, dtype: DType) -> ConstType:
  """What storing the Python value x into `dtype` gives (rounding floats, wrapping ints)."""
  import struct
  if dtype == dtypes.float32: return struct.unpack("f", struct.pack("f", x))[0] if math.isfinite(x) and abs(x) < 3.5e38 else float(x) if not math.isfinite(x) else math.copysign(math.inf, x)
  if dtype == dtypes.float16:
    try: return struct.unpack("e", struct.pack("e", x))[0]
    except OverflowError: return math.copysign(math.inf, x)
  if dtype == dtypes.bfloat16:
    if not math.isfinite(x): return float(x)
    b = struct.unpack("I", struct.pack("f", truncate(x, dtypes.float32)))[0]
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16  # round to nearest even
    return struct.unpack("f", struct.pack("I", (b << 16) & 0xFFFFFFFF))[0]
  return dtypes.as_const(x, dtype)
