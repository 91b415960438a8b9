"""Processing ops (scans, sorting, scatter, selection, sampling, linear algebra) built from Tensor's primitives.

Everything here is a composition of Tensor ops, so every result is computed by generated kernels and gradients flow
through the differentiable parts (scanned values, sorted values, scattered sources, selected elements) by themselves.
Patterns that recur:
* a gather along the last axis is a one-hot sum (`_take`), which the compiler folds into one indexed load;
* a loop whose steps differ only in a few integers (a bitonic stage, a Householder column, a Jacobi round) reads them
  from a small buffer (`_ints`) or moves its data instead, so every step is the same kernel graph: it compiles once,
  and realizing each step (which also keeps the graph shallow) is a plan-cache hit from the second step on;
* nonzero and masked_select have data-dependent sizes: the count is computed in a kernel and read with one .item().
"""
from __future__ import annotations
import math
from typing import TYPE_CHECKING, Literal
from tinygrad.dtype import dtypes, ConstType

if TYPE_CHECKING:
  from tinygrad.tensor import Tensor

SCAN_BLOCK = 256  # scans run as an O(n^2) masked reduce inside blocks of this size, then add the totals of earlier blocks
SCATTER_REDUCES = ("sum", "prod", "mean", "amax", "amin")

class ProcessingMixin:
  __slots__ = ()

  # ---------------------------------------------------------------- scans
  def cumsum(self: Tensor, axis: int = 0) -> Tensor:
    """Cumulative sum along `axis`, in sum's dtype (ints and bools accumulate in int32 or their own 64-bit type)."""
    return _scan_along(self.cast(self.sum().dtype), axis, "add", "cumsum")

  def cumprod(self: Tensor, axis: int) -> Tensor:
    """Cumulative product along `axis`, in self's dtype."""
    return _scan_along(self, axis, "mul", "cumprod")

  def cummax(self: Tensor, axis: int = 0) -> tuple[Tensor, Tensor]:
    """Running maximum along `axis` and the int32 index where it was attained: the last such index when values tie,
    and a NaN, once seen, stays the maximum (torch's semantics)."""
    from tinygrad.tensor import Tensor
    d = _dim(self, axis, "cummax")
    if self.ndim == 0 or self.shape[d] == 0: return self, Tensor.zeros(self.shape, dtype=dtypes.int32, device=self.device)
    x = self.transpose(d, -1)
    values = _scan(x, "max")
    # the index is the last j <= i with x[j] == values[i], which is the running max of j over the positions where x[j]
    # equals values[j] (between such positions the running max does not change)
    at_max = (x == values) | (x.isnan() & values.isnan())
    positions = at_max.where(Tensor.arange(x.shape[-1], device=self.device), -1)
    return values.transpose(d, -1), _scan(positions, "max").transpose(d, -1)

  def cummin(self: Tensor, axis: int = 0) -> tuple[Tensor, Tensor]:
    """Running minimum along `axis` and the int32 index where it was attained (the last one on ties, as torch)."""
    values, indices = _order_reversed(self).cummax(axis)
    return _order_reversed(values), indices

  def logcumsumexp(self: Tensor, axis: int = 0) -> Tensor:
    """log(cumsum(exp(self))) along `axis`, computed without overflow (each term is shifted by the running max)."""
    x = self if dtypes.is_float(self.dtype) else self.float()
    return _scan_along(x, axis, "logaddexp", "logcumsumexp")

  # ---------------------------------------------------------------- sorting
  def sort(self: Tensor, dim: int = -1, descending: bool = False) -> tuple[Tensor, Tensor]:
    """Sorted values along `dim` and their int32 indices into self. The sort is stable (equal values keep their order)
    and NaN counts as the largest value: last when ascending (as numpy), first when descending (as torch)."""
    from tinygrad.tensor import Tensor
    d = _dim(self, dim, "sort")
    if self.ndim == 0 or self.shape[d] <= 1: return self, Tensor.zeros(self.shape, dtype=dtypes.int32, device=self.device)
    x = self.transpose(d, -1).contiguous().realize()  # the keys, computed once; the values are read from them too
    order = _sorted_order(x, descending)
    return _take(x, order).transpose(d, -1), order.transpose(d, -1)

  def argsort(self: Tensor, dim: int = -1, descending: bool = False) -> Tensor:
    """The int32 indices that sort self along `dim` (stable; see sort)."""
    return self.sort(dim, descending)[1]

  def topk(self: Tensor, k: int, dim: int = -1, largest: bool = True, sorted_: bool = True) -> tuple[Tensor, Tensor]:
    """The k largest (or smallest) values along `dim` and their int32 indices, in sorted order; among equal values
    the lower index comes first. sorted_=False allows any order, and gets the sorted one."""
    d = _dim(self, dim, "topk")
    n = self.shape[d] if self.ndim else 1
    if not isinstance(k, int) or not 0 <= k <= n:
      raise ValueError(f"topk: k={k} is out of range for dimension {d} of size {n} (shape {self.shape}); valid: 0..{n}")
    values, indices = self.sort(d, descending=largest)
    if self.ndim == 0: return values, indices
    first_k = tuple((0, k) if a == d else None for a in range(self.ndim))
    return values.shrink(first_k), indices.shrink(first_k)

  # ---------------------------------------------------------------- scatter
  def scatter(self: Tensor, dim: int, index: Tensor, src: Tensor | ConstType,
              reduce: Literal["add", "multiply"] | None = None) -> Tensor:
    """A copy of self where, for every position p of index, out[p with dim replaced by index[p]] = src[p] (src a
    tensor at least as large as index, or a scalar). Several writes to one place leave the last one along `dim`;
    indices outside [0, self.shape[dim]) write nothing. reduce='add' / 'multiply' combine instead of overwriting."""
    from tinygrad.tensor import Tensor
    if reduce not in (None, "add", "multiply"):
      raise TypeError(f"scatter: reduce must be None, 'add' or 'multiply', got {reduce!r}")
    if not isinstance(src, Tensor): src = Tensor.full(index.shape, src, self.dtype, self.device)
    if reduce is not None: return self.scatter_reduce(dim, index, src, "sum" if reduce == "add" else "prod")
    d, x, idx, val = _scatter_operands("scatter", self, dim, index, src)
    if idx.shape[-1] == 0: return self
    m, n = idx.shape[-1], x.shape[-1]
    hits = idx.unsqueeze(-1) == Tensor.arange(n, device=self.device)  # (..., m, n): source p writes target t
    last = hits.where(Tensor.arange(m, device=self.device).unsqueeze(-1), -1).max(-2)  # the last source writing t, or -1
    written = _pad_leading(last >= 0, x.shape, False)
    out = written.where(_pad_leading(_take(val, last), x.shape, 0), x)
    return out.transpose(d, -1).reshape(self.shape)

  def scatter_reduce(self: Tensor, dim: int, index: Tensor, src: Tensor,
                     reduce: Literal["sum", "prod", "mean", "amax", "amin"], include_self: bool = True) -> Tensor:
    """Combine every src[p] into out[p with dim replaced by index[p]] with `reduce`; include_self=False leaves self's
    value out wherever something is written. 'mean' divides by the number of values combined (floor division for
    integer dtypes, as torch). The result has self's dtype."""
    from tinygrad.tensor import Tensor
    if reduce not in SCATTER_REDUCES:
      raise RuntimeError(f"scatter_reduce: reduce must be one of {', '.join(map(repr, SCATTER_REDUCES))}, got {reduce!r}")
    d, x, idx, val = _scatter_operands("scatter_reduce", self, dim, index, src)
    if idx.shape[-1] == 0: return self
    hits = idx.unsqueeze(-1) == Tensor.arange(x.shape[-1], device=self.device)  # (..., m, n): source p goes to target t
    ident = {"amax": dtypes.min(self.dtype), "amin": dtypes.max(self.dtype), "prod": 1}.get(reduce, 0)
    written = _pad_leading(hits.any(-2), x.shape, False)
    base = x if include_self else written.where(ident, x)
    reduce_fn = {"sum": Tensor.sum, "mean": Tensor.sum, "prod": Tensor.prod, "amax": Tensor.max, "amin": Tensor.min}[reduce]
    acc = _pad_leading(reduce_fn(hits.where(val.unsqueeze(-1), ident), -2), x.shape, ident)
    if reduce == "mean":
      count = _pad_leading(hits.sum(-2), x.shape, 0) + (1 if include_self else written.where(0, 1))
      out = (acc + base) / count if dtypes.is_float(self.dtype) else (acc + base) // count
    else: out = {"sum": Tensor.add, "prod": Tensor.mul, "amax": Tensor.maximum, "amin": Tensor.minimum}[reduce](acc, base)
    return out.cast(self.dtype).transpose(d, -1).reshape(self.shape)

  # ---------------------------------------------------------------- selection (data-dependent sizes: one .item() each)
  def masked_select(self: Tensor, mask: Tensor) -> Tensor:
    """The elements of self where the bool `mask` (broadcast with self) is True, as a 1-D tensor in row-major order."""
    from tinygrad.tensor import Tensor
    if mask.dtype != dtypes.bool: raise RuntimeError(f"masked_select: mask must be a bool tensor, got {mask.dtype}")
    shape = _broadcast_pair("masked_select", self.shape, mask.shape)
    x, m = self.expand(shape).flatten(), mask.expand(shape).flatten()
    count = int(m.sum().item())
    if count == 0: return Tensor.zeros(0, dtype=self.dtype, device=self.device)
    return _take(x, _true_positions(m, count))

  def nonzero(self: Tensor) -> Tensor:
    """The int32 indices (n, ndim) of the nonzero elements (NaN counts as nonzero), in row-major order."""
    from tinygrad.tensor import Tensor
    if self.ndim == 0: return Tensor.zeros(int((self != 0).item()), 0, dtype=dtypes.int32, device=self.device)
    m = (self != 0).flatten()
    count = int(m.sum().item())
    if count == 0: return Tensor.zeros(0, self.ndim, dtype=dtypes.int32, device=self.device)
    flat = _true_positions(m, count)
    strides = [math.prod(self.shape[a + 1:]) for a in range(self.ndim)]
    return Tensor.stack(*[(flat // st) % s for s, st in zip(self.shape, strides)], dim=-1)

  # ---------------------------------------------------------------- sampling
  def multinomial(self: Tensor, num_samples: int = 1, replacement: bool = False) -> Tensor:
    """int32 category indices drawn with probabilities proportional to the weights in self (1-D, or 2-D: one row of
    draws per row of weights). Without replacement (and num_samples > 1) the draws are distinct."""
    from tinygrad.tensor import Tensor
    if not 1 <= self.ndim <= 2: raise ValueError(f"multinomial: weights must be 1-D or 2-D, got shape {self.shape}")
    if not isinstance(num_samples, int) or num_samples < 1:
      raise ValueError(f"multinomial: num_samples must be a positive int, got {num_samples}")
    w = self.unsqueeze(0) if self.ndim == 1 else self
    if not replacement and num_samples > w.shape[1]:
      raise ValueError(f"multinomial: cannot draw {num_samples} samples without replacement from {w.shape[1]} categories "
                       "(use replacement=True or num_samples <= the number of categories)")
    if replacement or num_samples == 1:
      cdf = w.cumsum(1).float()
      cdf = cdf / cdf[:, -1:]
      u = Tensor.rand(num_samples, w.shape[0], 1, device=self.device)
      drawn = (u >= cdf).sum(2).permute(1, 0)  # the number of categories whose cdf lies at or below u
    else:  # Efraimidis-Spirakis: the num_samples largest keys log(u)/w are a draw without replacement
      drawn = (Tensor.rand(w.shape, device=self.device).log2() / w).topk(num_samples, dim=1)[1]
    return (drawn.squeeze(0) if self.ndim == 1 else drawn).cast(dtypes.int32)

  # ---------------------------------------------------------------- linear algebra
  def qr(self: Tensor) -> tuple[Tensor, Tensor]:
    """Householder QR of the last two dims (m, n): Q (..., m, m) orthogonal and R (..., m, n) upper triangular with
    self == Q @ R (numpy's mode='complete'; the signs of R's diagonal are not normalised). Integer input gives float32."""
    from tinygrad.tensor import Tensor
    if self.ndim < 2: raise ValueError(f"qr: needs a matrix (at least 2 dims), got shape {self.shape}")
    (m, n), batch = self.shape[-2:], self.shape[:-2]
    dt = self.dtype if dtypes.is_float(self.dtype) else dtypes.default_float
    # [R | Q^T] as one matrix: each reflection H updates both as H @ A
    A = self.cast(dt).cat(Tensor.eye(m, dtype=dt, device=self.device).expand(batch + (m, m)), dim=-1).contiguous()
    rows = Tensor.arange(m, device=self.device)
    for i in range(min(m - 1, n)):
      # the column being reduced, as data: every step is the same kernels, and from the second step on its realize
      # is a plan-cache hit (realizing each step also keeps the graph shallow)
      col = _ints([i], self.device)
      x = (rows >= col).where(_take(A, col.reshape(1, 1)).squeeze(-1), 0).contiguous()  # (..., m): column i from row i down
      # w and tau do not change when x is scaled: dividing by max |x| keeps the squares from underflowing (the rounding
      # residue a rank-deficient column leaves is tiny) or overflowing
      scale = x.abs().max(-1, keepdim=True)
      x = (x / (scale > 0).where(scale, 1)).contiguous()
      alpha, below = _take(x, col).squeeze(-1), (rows > col).where(x, 0).square().sum(-1)
      norm = (alpha.square() + below).sqrt()
      beta = (alpha < 0).where(norm, -norm)  # the new R[i, i]: -sign(alpha) * norm never cancels in alpha - beta
      reflect = below > 0  # nothing below the diagonal: no reflection (LAPACK's tau = 0)
      # H = I - tau w w^T with w = (x - beta e_i) / (alpha - beta); (tau, 1 / (alpha - beta)) innermost: one kernel
      tau = reflect.where((beta - alpha) / reflect.where(beta, 1), 0)
      coef = Tensor.stack(tau, reflect.where(1 / reflect.where(alpha - beta, 1), 0), dim=-1).contiguous()
      w = (rows == col).where(1, x * coef[..., 1:])
      A = (A - (coef[..., :1] * w).unsqueeze(-1) * (w.unsqueeze(-1) * A).sum(-2, keepdim=True)).realize()
    return A[..., n:].transpose(-2, -1), A[..., :n].triu()

  def svd(self: Tensor, full_matrices: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """(U, S, Vh) with self == U @ diag(S) @ Vh over the last two dims (m, n), S descending (numpy's and tinygrad's
    order). U is (..., m, m) and Vh (..., n, n) with full_matrices, else (..., m, k) and (..., k, n), k = min(m, n).
    QR first, then one-sided Jacobi rotations on R; for a rank-deficient input the columns of U (or of Vh when m < n)
    that belong to zero singular values complete an orthonormal basis, as numpy's do."""
    from tinygrad.tensor import Tensor
    if self.ndim < 2: raise ValueError(f"svd: needs a matrix (at least 2 dims), got shape {self.shape}")
    m, n = self.shape[-2:]
    if m < n:
      U, S, Vh = self.transpose(-2, -1).svd(full_matrices)
      return Vh.transpose(-2, -1), S, U.transpose(-2, -1)
    Q, R = self.qr()
    W, V = _jacobi(R[..., :n, :])  # R1 V = W with orthogonal columns: R1 = (W / S) diag(S) V^T
    S, order = W.square().sum(-2).sqrt().contiguous().sort(-1, descending=True)
    order = order.unsqueeze(-2)
    # W's columns divided by S are orthonormal except where S is 0 (or negligible); a QR completes them to an
    # orthonormal basis, and the signs of R's diagonal (+-1 on the good columns) give those columns back unchanged
    Qu, Ru = (_take(W, order) / (S != 0).where(S, 1).unsqueeze(-2)).qr()
    signs = (Ru * Tensor.eye(n, dtype=Ru.dtype, device=self.device) < 0).any(-2).where(-1, 1)
    U = Q[..., :n] @ (Qu * signs.unsqueeze(-2))
    if full_matrices and m > n: U = U.cat(Q[..., n:], dim=-1)
    return U, S, _take(V, order).transpose(-2, -1)

# ---------------------------------------------------------------- helpers

def _dim(x: Tensor, dim: int, op: str) -> int:
  nd = max(x.ndim, 1)
  if not isinstance(dim, int) or isinstance(dim, bool): raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
  if not -nd <= dim < nd: raise IndexError(f"{op}: dim {dim} is out of range for shape {x.shape} (valid: {-nd}..{nd - 1})")
  return dim % nd

def _ints(values: list[int], device: str) -> Tensor:
  """A small int32 buffer of loop parameters: kernels that read them are the same graph on every iteration."""
  from tinygrad.tensor import Tensor
  return Tensor(values, dtype=dtypes.int32, device=device)

def _take(src: Tensor, idx: Tensor) -> Tensor:
  """out[..., j] = src[..., idx[..., j]], leading dims broadcast; an index outside [0, src.shape[-1]) reads 0.
  A one-hot sum, which the compiler folds into one indexed load per element."""
  from tinygrad.tensor import Tensor
  onehot = idx.unsqueeze(-1) == Tensor.arange(src.shape[-1], device=src.device)
  return onehot.where(src.unsqueeze(-2), Tensor.zeros((), dtype=src.dtype, device=src.device)).sum(-1, dtype=src.dtype)

def _order_reversed(x: Tensor) -> Tensor:
  """An order-reversing map that is its own inverse: -x for floats, ~x for ints, not for bools."""
  if dtypes.is_float(x.dtype): return -x
  return x.logical_not() if x.dtype == dtypes.bool else ~x

def _broadcast_pair(op: str, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
  nd = max(len(a), len(b))
  a, b = (1,) * (nd - len(a)) + a, (1,) * (nd - len(b)) + b
  if any(x != y and 1 not in (x, y) for x, y in zip(a, b)): raise ValueError(f"{op}: shapes {a} and {b} do not broadcast")
  return tuple(y if x == 1 else x for x, y in zip(a, b))

def _pad_leading(x: Tensor, shape: tuple[int, ...], value: ConstType) -> Tensor:
  """x padded with value at the end of every dim but the last, up to shape."""
  if x.shape[:-1] == shape[:-1]: return x
  return x.pad(tuple((0, s - xs) for s, xs in zip(shape[:-1], x.shape[:-1])) + ((0, 0),), value=value)

# scans along the last axis

def _scan_along(x: Tensor, axis: int, op: str, name: str) -> Tensor:
  d = _dim(x, axis, name)
  if x.ndim == 0 or x.shape[d] == 0: return x
  return _scan(x.transpose(d, -1), op).transpose(d, -1)

def _scan(x: Tensor, op: str) -> Tensor:
  """Inclusive scan of x along its last axis with op ('add', 'mul', 'max' or 'logaddexp'). Long axes are cut into
  blocks of SCAN_BLOCK: each block is scanned on its own, the block totals are scanned (recursively), and each block is
  combined with the total of the blocks before it, so the work is O(n * SCAN_BLOCK)."""
  n, lead = x.shape[-1], x.shape[:-1]
  if n <= 2 * SCAN_BLOCK: return _scan_block(x, op)
  nb = -(-n // SCAN_BLOCK)
  # the padding at the end only reaches outputs that are cut off, and the last block total, which nothing uses
  blocks = x.pad(((0, 0),) * len(lead) + ((0, nb * SCAN_BLOCK - n),)).reshape(lead + (nb, SCAN_BLOCK))
  # both are read at many positions by what follows: realized once instead of recomputed inside those loops
  inner = _scan_block(blocks, op).contiguous()
  totals = _scan(inner[..., -1], op).contiguous()
  identity = {"add": 0, "mul": 1}.get(op, dtypes.min(totals.dtype))  # max and logaddexp: -inf (or the int minimum)
  before = totals.pad(((0, 0),) * len(lead) + ((1, -1),), value=identity).unsqueeze(-1)
  return _combine(inner, before, op).reshape(lead + (nb * SCAN_BLOCK,))[..., :n]

def _scan_block(x: Tensor, op: str) -> Tensor:
  """The scan as one reduce over the (n, n) triangle j <= i: O(n^2) work in one kernel."""
  from tinygrad.tensor import Tensor
  n = x.shape[-1]
  tri = Tensor.arange(n, device=x.device).unsqueeze(-1) >= Tensor.arange(n, device=x.device)  # [i, j]: j <= i
  xs = x.unsqueeze(-2)
  if op == "add": return tri.where(xs, 0).sum(-1)
  if op == "mul": return tri.where(xs, 1).prod(-1)
  if op == "max": return tri.where(xs, dtypes.min(x.dtype)).max(-1)
  # logaddexp: every term is shifted by the running max (a constant for the gradient)
  m = _finite_or_zero(_scan_block(x, "max").detach())
  return tri.where(xs - m.unsqueeze(-1), -math.inf).exp().sum(-1).log() + m

def _combine(a: Tensor, b: Tensor, op: str) -> Tensor:
  if op == "add": return a + b
  if op == "mul": return a * b
  if op == "max": return a.maximum(b)
  m = _finite_or_zero(a.maximum(b).detach())
  return ((a - m).exp() + (b - m).exp()).log() + m

def _finite_or_zero(m: Tensor) -> Tensor:
  """A shift for log-sum-exp: an infinite max shifts by 0 (inf - inf would be NaN; the sum's own inf/0 is right)."""
  return m.isinf().where(0, m)

# sorting

def _sorted_order(x: Tensor, descending: bool) -> Tensor:
  """The int32 indices that stably sort x (..., n) along its last axis: a bitonic network over the next power of
  two, N. The network moves indices only; each stage reads keys through `_take` and takes its partner distance and
  block size from a buffer, so all log2(N) * (log2(N) + 1) / 2 stages run the same two compiled kernels. Each stage
  is realized: the graph stays shallow, and from the second stage on the realize is a plan-cache hit."""
  from tinygrad.tensor import Tensor
  n = x.shape[-1]
  N = 1 << (n - 1).bit_length()
  keys = x.detach()
  pos = Tensor.arange(N, device=x.device)
  order = pos.expand(x.shape[:-1] + (N,)).contiguous()
  size = 2
  while size <= N:
    stride = size // 2
    while stride:
      step = _ints([stride, size], x.device)
      partner_pos = pos ^ step[0]
      partner = _take(order, partner_pos)
      first = _before(_take(keys, order), order, _take(keys, partner), partner, n, descending)
      # sorting blocks of `size` alternate direction; the lower position of a pair takes the element that comes first
      want_first = (pos < partner_pos) == ((pos & step[1]) == 0)
      order = (first == want_first).where(order, partner).contiguous().realize()
      stride //= 2
    size *= 2
  return order[..., :n]

def _before(a: Tensor, ia: Tensor, b: Tensor, ib: Tensor, n: int, descending: bool) -> Tensor:
  """Whether element (value a, index ia) sorts before (b, ib): padding (index >= n) goes last, NaN after every value
  (before, when descending), then by value, and equal values by index, so the order is strict and the sort stable."""
  def rank(v: Tensor, i: Tensor) -> Tensor: return (i >= n).cast(dtypes.int32) * 2 + (v.isnan() != descending).cast(dtypes.int32)
  ra, rb = rank(a, ia), rank(b, ib)
  by_value = (a > b) if descending else (a < b)
  tie = (a == b) | a.isnan()  # NaN ties with NaN, and padding reads 0 for both
  return (ra < rb) | ((ra == rb) & (by_value | (tie & (ia < ib))))

# scatter

def _scatter_operands(op: str, x: Tensor, dim: int, index: Tensor, src: Tensor) -> tuple[int, Tensor, Tensor, Tensor]:
  """Check the operands as torch does; return dim and (self, index, src cut to index's shape) with dim moved last."""
  if not dtypes.is_int(index.dtype): raise TypeError(f"{op}: index must be an integer tensor, got {index.dtype}")
  if src.dtype != x.dtype: raise RuntimeError(f"{op}: src dtype {src.dtype} must equal self dtype {x.dtype}")
  if not x.ndim == index.ndim == src.ndim:
    raise ValueError(f"{op}: self {x.shape}, index {index.shape} and src {src.shape} must have the same number of dims")
  d = _dim(x, dim, op)
  if x.ndim == 0: x, index, src = x.reshape(1), index.reshape(1), src.reshape(1)
  if any(i > s or (a != d and i > t) for a, (i, s, t) in enumerate(zip(index.shape, src.shape, x.shape))):
    raise ValueError(f"{op}: index shape {index.shape} must be <= src shape {src.shape} in every dim, and <= self shape "
                     f"{x.shape} in every dim but {d}")
  src = src.shrink(tuple((0, i) for i in index.shape))
  return d, x.transpose(d, -1), index.transpose(d, -1), src.transpose(d, -1)

# selection

def _true_positions(m: Tensor, count: int) -> Tensor:
  """The positions of the `count` True elements of the 1-D bool tensor m, in order, as int32. With c the inclusive
  running count, the k-th True element sits at #{i : c[i] <= k}. That count is taken in two levels over blocks of
  sqrt(N): first the blocks whose last c is <= k, then within the next block, so the work is O(count * sqrt(N))."""
  from tinygrad.tensor import Tensor
  N = m.shape[0]
  S = max(1, math.isqrt(N))
  B = -(-N // S)
  c = m.cumsum().pad((0, B * S - N), value=count).reshape(B, S)  # still nondecreasing
  k = Tensor.arange(count, device=m.device)
  block = (c[:, -1] <= k.unsqueeze(-1)).sum(-1)  # (count,): blocks lying wholly before the k-th True element
  row = _take(c.transpose(), block.unsqueeze(0))  # (S, count): the running counts of the block it lies in
  return (block * S + (row <= k).sum(0)).cast(dtypes.int32)

# linear algebra

def _jacobi(a: Tensor) -> tuple[Tensor, Tensor]:
  """One-sided Jacobi on a (..., r, n): rotate pairs of columns until all are orthogonal; returns (W, V) with
  a @ V == W and V orthogonal. W and V are rotated together as one stack of rows (..., r + n, h, 2) where pair k is
  (k, 0) and (k, 1); between rounds every column but (0, 0) moves one step around the circle (the round-robin circle
  method), so every round is the same two kernels. An odd n gets a zero column at the fixed (0, 0), which never
  rotates. Sweeps of n - 1 rounds converge quadratically; log2(n) + 3 sweeps reach rounding level (tried n <= 64).
  Each round is realized: the graph stays shallow however many rounds run (hundreds for n = 64), and from the second
  round on the realize is a plan-cache hit, so only the first round is scheduled."""
  from tinygrad.tensor import Tensor
  (r, n), odd, batch = a.shape[-2:], a.shape[-1] % 2, a.shape[:-2]
  n2 = n + odd
  eye = Tensor.eye(n2, dtype=a.dtype, device=a.device).expand(batch + (n2, n2))
  M = a.pad(((0, 0),) * (a.ndim - 1) + ((odd, 0),)).cat(eye, dim=-2).reshape(batch + (r + n2, n2 // 2, 2)).contiguous()
  for _ in range(((n - 1).bit_length() + 3) * (n2 - 1)):
    top, bot = M[..., :r, :, 0], M[..., :r, :, 1]
    alpha, beta, gamma = (top * top).sum(-2), (bot * bot).sum(-2), (top * bot).sum(-2)
    rot = gamma != 0
    zeta = (beta - alpha) / rot.where(2 * gamma, 1)
    # t = tan of the rotation angle: the smaller root of t^2 + 2 zeta t = 1
    t = rot.where((zeta >= 0).where(1, -1) / (zeta.abs() + (1 + zeta.square()).sqrt()), 0)
    c = (1 + t.square()).rsqrt()
    # (c, s) innermost, so the sums are evaluated once per pair inside this kernel instead of being realized first
    cs = Tensor.stack(c, c * t, dim=-1).contiguous()
    M = _rotate(M, cs[..., 0].unsqueeze(-2), cs[..., 1].unsqueeze(-2)).realize()
  M = M.reshape(batch + (r + n2, n2))[..., odd:]
  return M[..., :r, :], M[..., r + odd:, :]

def _rotate(M: Tensor, c: Tensor, s: Tensor) -> Tensor:
  """Rotate each pair (k, 0), (k, 1) of M (..., rows, h, 2) by (c, s), then move every column but (0, 0) one step
  around the circle: (0, 1) -> (1, 0) -> ... -> (h - 1, 0) -> (h - 1, 1) -> ... -> (0, 1)."""
  from tinygrad.tensor import Tensor
  top, bot = M[..., 0], M[..., 1]
  top, bot = c * top - s * bot, s * top + c * bot
  h = top.shape[-1]
  if h > 1:
    top, bot = top[..., :1].cat(bot[..., :1], *([top[..., 1:h - 1]] if h > 2 else []), dim=-1), bot[..., 1:].cat(top[..., h - 1:], dim=-1)
  return Tensor.stack(top, bot, dim=-1)  # the pair axis innermost: the rotation is computed in the kernel that stores it
