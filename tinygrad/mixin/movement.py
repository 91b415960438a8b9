"""High-level movement ops built from Tensor's primitives (reshape, permute, pad, shrink, expand, flip, getitem).

Everything here is a composition of Tensor ops, so it runs as generated kernels and is differentiated by the rules of
the primitives it is made of. Selecting by a data-dependent index is a one-hot sum (`_take_along`), which the
compiler folds into a single indexed load.
"""
from __future__ import annotations
import functools
from typing import TYPE_CHECKING, Sequence
from tinygrad.dtype import DType, dtypes, least_upper_dtype, least_upper_float, to_dtype, to_np_dtype
from tinygrad.helpers import prod

if TYPE_CHECKING:
  from tinygrad.tensor import Tensor

class MovementMixin:
  __slots__ = ()

  # ---------------------------------------------------------------- selection by index
  def _take_along(self: Tensor, dim: int, index: Tensor) -> Tensor:
    """out[..., k, ...] = self[..., index[..., k, ...], ...] along dim, with index broadcast against self in every other
    dim (numpy's take_along_axis). Negative indices count from the end; out-of-range ones give 0."""
    from tinygrad.tensor import Tensor
    n = self.shape[dim]
    i = index if index.dtype.itemsize >= 4 else index.cast(dtypes.int32)  # n + a negative index must not overflow
    if not dtypes.is_unsigned(i.dtype): i = (i < 0).where(i + n, i)
    onehot = i.unsqueeze(-1) == Tensor.arange(n, dtype=i.dtype, device=self.device)
    # self with dim moved to a new last axis (size 1 left in its place), lined up with onehot's last axis
    x = self.unsqueeze(-1).transpose(dim, -1)
    return onehot.where(x, 0).sum(-1, dtype=self.dtype)

  def gather(self: Tensor, dim: int, index: Tensor) -> Tensor:
    """out[i][j] = self[index[i][j]][j] for dim=0, out[i][j] = self[i][index[i][j]] for dim=1 (torch.gather).
    index has self's number of dims and is no larger than self in any dim but `dim`; out has index's shape.
    Negative indices count from the end; out-of-range indices give 0 (they are not checked: that would need a sync)."""
    from tinygrad.tensor import Tensor
    if not isinstance(index, Tensor): raise TypeError(f"gather: index must be a Tensor, got {type(index).__name__}")
    if not dtypes.is_int(index.dtype): raise TypeError(f"gather: index must have an integer dtype, got {index.dtype}")
    d = self._axis("gather", dim)
    if index.ndim != self.ndim:
      raise ValueError(f"gather: index of shape {index.shape} must have as many dims as the input of shape {self.shape} ({self.ndim})")
    if self.ndim == 0: return self.reshape(1).gather(0, index.reshape(1)).reshape(())
    for j, (i, s) in enumerate(zip(index.shape, self.shape)):
      if j != d and i > s:
        raise ValueError(f"gather: index of shape {index.shape} is larger than the input of shape {self.shape} in dim {j} "
                         f"(index.shape[{j}] <= {s} is needed in every dim but dim {d})")
    x = self.shrink(tuple(None if j == d else (0, i) for j, i in enumerate(index.shape)))
    return x._take_along(d, index)

  # ---------------------------------------------------------------- views
  def repeat_interleave(self: Tensor, repeats: int, dim: int | None = None) -> Tensor:
    """Each element repeated `repeats` times along dim (over the flattened tensor when dim is None):
    [1, 2].repeat_interleave(2) == [1, 1, 2, 2]."""
    if not isinstance(repeats, int) or repeats < 0:
      raise ValueError(f"repeat_interleave: repeats must be a non-negative int, got {repeats!r}")
    d = 0 if dim is None else self._axis("repeat_interleave", dim)
    x, d = (self.flatten(), 0) if dim is None or self.ndim == 0 else (self, d)
    s = x.shape
    return x.unsqueeze(d + 1).expand(s[:d + 1] + (repeats,) + s[d + 1:]).reshape(s[:d] + (s[d] * repeats,) + s[d + 1:])

  def unfold(self: Tensor, dim: int, size: int, step: int) -> Tensor:
    """Every window of `size` elements along dim, `step` apart (torch.Tensor.unfold): dim becomes the window count
    (n - size) // step + 1 and a last dim of length size is appended."""
    d = self._axis("unfold", dim)
    n = self.shape[d] if self.ndim else 1
    if step <= 0: raise ValueError(f"unfold: step must be positive, got {step}")
    if not 0 <= size <= n: raise ValueError(f"unfold: size {size} must be in [0, {n}] (dim {d} of shape {self.shape})")
    if self.ndim == 0: return self.reshape(1).unfold(0, size, step).reshape(size)
    out_shape = self.shape[:d] + ((n - size) // step + 1,) + self.shape[d + 1:] + (size,)
    if prod(out_shape) == 0: return self.flatten().shrink(((0, 0),)).reshape(out_shape)
    last = tuple(j for j in range(self.ndim) if j != d) + (d,)
    w = self.permute(last)._windows((size,), step, 1, "unfold")  # (..., windows, size)
    return w.permute(tuple(range(d)) + (self.ndim - 1,) + tuple(range(d, self.ndim - 1)) + (self.ndim,))

  def diag(self: Tensor) -> Tensor:
    """The (n, n) matrix with the 1-D self on its diagonal and zeros elsewhere."""
    if self.ndim != 1: raise ValueError(f"diag: needs a 1-D tensor, got shape {self.shape} (use diagonal() to read a matrix's diagonal)")
    n = self.shape[0]
    # row i of the (n, n+1) padding holds x[i] at flat position i*(n+1): the diagonal of an (n, n) matrix
    return self.unsqueeze(-1).pad(((0, 0), (0, n))).flatten().shrink(((0, n * n),)).reshape(n, n)

  def diagonal(self: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal of the (dim1, dim2) planes, `offset` above the main one (below for negative offsets), as a new last
    dim; dim1 and dim2 are removed (torch.diagonal)."""
    if self.ndim < 2: raise ValueError(f"diagonal: needs at least 2 dims, got shape {self.shape}")
    d1, d2 = self._axis("diagonal", dim1), self._axis("diagonal", dim2)
    if d1 == d2: raise ValueError(f"diagonal: dim1 and dim2 must differ, both are {d1} (shape {self.shape})")
    x = self.permute(tuple(j for j in range(self.ndim) if j not in (d1, d2)) + (d1, d2))
    a, b = x.shape[-2:]
    r0, c0 = min(a, max(0, -offset)), min(b, max(0, offset))
    n = min(a - r0, b - c0)
    x = x.shrink((None,) * (x.ndim - 2) + ((r0, r0 + n), (c0, c0 + n))).flatten(-2)
    # the flattened (n, n) block padded to (n, n+1): its first column is the diagonal
    x = x.pad(((0, 0),) * (x.ndim - 1) + ((0, n),)).unflatten(-1, (n, n + 1))
    return x.shrink((None,) * (x.ndim - 1) + ((0, 1),)).squeeze(-1)

  def roll(self: Tensor, shifts: int | Sequence[int], dims: int | Sequence[int] | None = None) -> Tensor:
    """Elements shifted by shifts[i] along dims[i], wrapping around (torch.roll); over the flattened tensor when dims is None."""
    sh = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    if dims is None:
      if len(sh) != 1: raise ValueError(f"roll: without dims, shifts must be a single int, got {shifts}")
      return self.flatten().roll(sh, 0).reshape(self.shape)
    ds = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(sh) != len(ds): raise ValueError(f"roll: shifts {shifts} and dims {dims} must have the same length")
    if self.ndim == 0: return self.flatten().roll(sh, tuple(self._axis("roll", d) for d in ds)).reshape(())
    x = self
    for s, dim in zip(sh, ds):
      d = self._axis("roll", dim)
      n = x.shape[d]
      if n == 0 or (k := s % n) == 0: continue
      # two copies of x side by side along d; the window starting at n - k is x rolled by k
      x = x.repeat(tuple(2 if j == d else 1 for j in range(x.ndim)))
      x = x.shrink(tuple((n - k, 2 * n - k) if j == d else None for j in range(x.ndim)))
    return x

  def rearrange(self: Tensor, formula: str, **sizes: int) -> Tensor:
    """einops-style reshape + permute: "b c (h w) -> b h w c" with h=2 or w=3 given as keywords. Parentheses split
    (left side) or merge (right side) dims; "1" and "()" are unit dims; "..." stands for the dims not named."""
    if formula.count("->") != 1: raise ValueError(f"rearrange: formula {formula!r} needs exactly one '->'")
    lhs, rhs = (_parse_axes(side, formula) for side in formula.split("->"))
    lnames, rnames = _axis_names(lhs), _axis_names(rhs)
    if any(isinstance(a, list) and "..." in a for a in lhs):
      raise ValueError(f"rearrange: '...' cannot be inside parentheses on the left of {formula!r}")
    for side, names in (("left", lnames), ("right", rnames)):
      if len(set(names)) != len(names): raise ValueError(f"rearrange: an axis name is repeated on the {side} of {formula!r}")
    if set(lnames) != set(rnames):
      raise ValueError(f"rearrange: {formula!r} names {sorted(set(lnames) ^ set(rnames))} on one side only (both sides need the same names)")
    if unused := [k for k in sizes if k not in lnames]: raise ValueError(f"rearrange: sizes given for {unused}, which {formula!r} does not use")
    n_ell = self.ndim - (len(lhs) - 1) if "..." in lhs else 0
    if n_ell < 0 or ("..." not in lhs and len(lhs) != self.ndim):
      raise ValueError(f"rearrange: the left of {formula!r} has {len(lhs)} dims, the tensor has shape {self.shape}")
    ell = [f"...{j}" for j in range(n_ell)]
    lhs, rhs = _expand_ellipsis(lhs, ell), _expand_ellipsis(rhs, ell)
    size_of: dict[str, int] = {}
    for ax, n in zip(lhs, self.shape):
      group = ax if isinstance(ax, list) else [ax]
      unknown = [a for a in group if a not in sizes]
      known = prod(sizes[a] for a in group if a in sizes)
      if len(unknown) > 1:
        raise ValueError(f"rearrange: cannot split a dim of size {n} into {group}: give sizes for all but one of {unknown}")
      if (unknown and (known == 0 or n % known)) or (not unknown and known != n):
        given = {a: sizes[a] for a in group if a in sizes}
        raise ValueError(f"rearrange: cannot split a dim of size {n} into {group} with sizes {given}")
      size_of.update({a: sizes[a] if a in sizes else n // known for a in group})
    flat = _axis_names(lhs)
    x = self.reshape(tuple(size_of[a] for a in flat)).permute(tuple(flat.index(a) for a in _axis_names(rhs)))
    return x.reshape(tuple(prod(size_of[a] for a in ax) if isinstance(ax, list) else size_of[ax] for ax in rhs))

  def meshgrid(self: Tensor, *args: Tensor, indexing: str = "ij") -> tuple[Tensor, ...]:
    """Coordinate grids from 1-D tensors (torch.meshgrid): with indexing="ij" output k varies along dim k;
    "xy" swaps the roles of the first two inputs (out shape (len(y), len(x), ...))."""
    if indexing not in ("ij", "xy"): raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    ts = (self, *args)
    for t in ts:
      if t.ndim > 1: raise ValueError(f"meshgrid: inputs must be 0-D or 1-D, got shape {t.shape}")
    pos = list(range(len(ts)))
    if indexing == "xy" and len(ts) > 1: pos[0], pos[1] = 1, 0
    shape = [0] * len(ts)
    for p, t in zip(pos, ts): shape[p] = t.numel()
    return tuple(t.reshape(tuple(-1 if j == p else 1 for j in range(len(ts)))).expand(tuple(shape)) for p, t in zip(pos, ts))

  # ---------------------------------------------------------------- comparisons
  def isclose(self: Tensor, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    """|self - other| <= atol + rtol * |other| elementwise, in floating point (numpy.isclose); infinities are close
    only to themselves, NaNs only to NaNs and only with equal_nan."""
    from tinygrad.tensor import Tensor, _broadcast_shape
    dt = least_upper_float(least_upper_dtype(self.dtype, other.dtype) if isinstance(other, Tensor) else self.dtype)
    b = other.cast(dt) if isinstance(other, Tensor) else Tensor(other, dtype=dt, device=self.device)
    shape = _broadcast_shape("isclose", self.shape, b.shape)
    a, b = self.cast(dt).expand(shape), b.expand(shape)
    finite = a.isfinite() & b.isfinite()
    close = finite.where((a - b).abs() <= atol + rtol * b.abs(), a == b)
    return close | (a.isnan() & b.isnan()) if equal_nan else close

  def allclose(self: Tensor, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """True if every element of self is close to other (see isclose); realizes the comparison."""
    return bool(self.isclose(other, rtol, atol, equal_nan).all().item())

  # ---------------------------------------------------------------- contractions and resampling
  @staticmethod
  def einsum(formula: str, *operands, dtype: DType | str | None = None) -> Tensor:
    """Einstein summation (numpy.einsum): "ij,jk->ik" is a matmul, "ii->i" a diagonal, "bij->" a total sum.
    Without "->" the output is the letters used once, sorted; "..." and size-1 dims broadcast. operands may be one list."""
    from tinygrad.tensor import Tensor, _broadcast_shape
    xs = list(operands[0]) if len(operands) == 1 and isinstance(operands[0], (list, tuple)) else list(operands)
    spec = formula.replace(" ", "")
    if spec.count("->") > 1: raise ValueError(f"einsum: formula {formula!r} has more than one '->'")
    terms = spec.split("->")[0].split(",")
    if len(terms) != len(xs): raise ValueError(f"einsum: {formula!r} has {len(terms)} operands, got {len(xs)} tensors")
    # one label per dim: a letter, or ("...", k) for the k-th from the right of the broadcast dims
    labels: list[list] = []
    for term, x in zip(terms, xs):
      if not isinstance(x, Tensor): raise TypeError(f"einsum: operands must be Tensors, got {type(x).__name__}")
      letters = term.replace("...", "")
      if term.count("...") > 1 or not all(c.isascii() and c.isalpha() for c in letters):
        raise ValueError(f"einsum: bad subscripts {term!r} in {formula!r} (letters a-z, A-Z and at most one '...')")
      n_ell = x.ndim - len(letters)
      if n_ell < 0 or ("..." not in term and n_ell != 0):
        raise ValueError(f"einsum: subscripts {term!r} do not match an operand of shape {x.shape}")
      labels.append(_with_ellipsis(term, [("...", k - n_ell) for k in range(n_ell)]))
    ell_shapes = [tuple(s for s, lb in zip(x.shape, lbs) if isinstance(lb, tuple)) for x, lbs in zip(xs, labels)]
    ell_shape = _broadcast_shape("einsum", *ell_shapes)
    ell = [("...", k - len(ell_shape)) for k in range(len(ell_shape))]
    used = [c for lbs in labels for c in lbs if isinstance(c, str)]
    if "->" in spec:
      rhs = spec.split("->")[1]
      letters = rhs.replace("...", "")
      if rhs.count("...") > 1 or any(c not in used for c in letters) or len(set(letters)) != len(letters):
        raise ValueError(f"einsum: output {rhs!r} of {formula!r} must use distinct letters of the inputs and at most one '...'")
      if ell and "..." not in rhs: raise ValueError(f"einsum: {formula!r} broadcasts over '...' but its output {rhs!r} has no '...'")
      out = _with_ellipsis(rhs, ell)
    else: out = ell + sorted(c for c in set(used) if used.count(c) == 1)
    order = out + sorted(set(used) - set(out))  # output dims first, then the summed ones
    views, size = [], {}
    for x, lbs in zip(xs, labels):
      for c in dict.fromkeys(lbs):  # a letter repeated in one operand reads that operand's diagonal
        while lbs.count(c) > 1:
          i = lbs.index(c)
          j = lbs.index(c, i + 1)
          if x.shape[i] != x.shape[j]:
            raise ValueError(f"einsum: subscript {c!r} of {formula!r} has sizes {x.shape[i]} and {x.shape[j]} in one operand")
          x, lbs = x.diagonal(0, i, j), [lb for k, lb in enumerate(lbs) if k not in (i, j)] + [c]
      for c, s in zip(lbs, x.shape):
        if isinstance(c, str) and s != 1 and size.setdefault(c, s) != s:
          raise ValueError(f"einsum: subscript {c!r} of {formula!r} has sizes {size[c]} and {s} (operand shapes {[t.shape for t in xs]})")
      perm = sorted(range(len(lbs)), key=lambda k: order.index(lbs[k]))
      x, lbs = x.permute(perm), [lbs[k] for k in perm]
      views.append(x.reshape(tuple(x.shape[lbs.index(c)] if c in lbs else 1 for c in order)))
    return functools.reduce(lambda a, b: a * b, views).sum(tuple(range(len(out), len(order))), dtype=dtype)

  def interpolate(self: Tensor, size: Sequence[int], mode: str = "linear", align_corners: bool = False) -> Tensor:
    """Resample the last len(size) dims to `size` (torch's interpolate, as tinygrad): "linear" interpolates along each of
    them (bilinear, trilinear...), "nearest" takes floor(i * in / out), "nearest-exact" floor((i + 0.5) * in / out)."""
    from tinygrad.tensor import Tensor
    if not isinstance(size, (tuple, list)): raise TypeError(f"interpolate: size must be a tuple of ints, got {size!r}")
    size = tuple(size)
    if not 0 < len(size) <= self.ndim or not all(isinstance(s, int) and s > 0 for s in size):
      raise ValueError(f"interpolate: size {size} must be 1 to {self.ndim} positive ints for an input of shape {self.shape}")
    if mode not in ("linear", "nearest", "nearest-exact"):
      raise ValueError(f"interpolate: mode must be 'linear', 'nearest' or 'nearest-exact', got {mode!r}")
    if align_corners and mode != "linear": raise ValueError(f"interpolate: align_corners=True needs mode='linear', got {mode!r}")
    if any(s == 0 for s in self.shape[-len(size):]): raise ValueError(f"interpolate: cannot resample the empty dims of shape {self.shape}")
    x = self
    for d, n_out in zip(range(self.ndim - len(size), self.ndim), size):
      n_in = self.shape[d]
      at_d = tuple(-1 if j == d else 1 for j in range(self.ndim))
      if mode == "linear":
        fdt = dtypes.float64 if self.dtype == dtypes.float64 else dtypes.float32
        k = Tensor.arange(n_out, dtype=fdt, device=self.device)
        pos = k * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0) if align_corners else (k + 0.5) * (n_in / n_out) - 0.5
        pos = pos.clip(0, n_in - 1)
        lo = pos.floor()
        hi, w = (lo + 1).clip(max_=n_in - 1), pos - lo
        lo_i, hi_i = (t.cast(dtypes.int32).reshape(at_d) for t in (lo, hi))
        x = x._take_along(d, lo_i).lerp(x._take_along(d, hi_i), w.reshape(at_d))
      else:
        k = Tensor.arange(n_out, device=self.device)
        src = (k * n_in) // n_out if mode == "nearest" else ((2 * k + 1) * n_in) // (2 * n_out)  # exact integer floors
        x = x._take_along(d, src.reshape(at_d))
    return x.cast(self.dtype)

  def max_unpool2d(self: Tensor, indices: Tensor, kernel_size=(2, 2), stride=None, dilation=1, padding=0, output_size=None) -> Tensor:
    """The inverse of a max pool: self (N, C, *spatial) scattered to the flat positions `indices` (as returned by torch's
    max_pool2d(return_indices=True)) of each (N, C) plane, zeros elsewhere. Repeated indices add up."""
    from tinygrad.tensor import Tensor, _tuple
    if self.ndim < 3: raise ValueError(f"max_unpool2d: input must be (N, C, *spatial), got shape {self.shape}")
    if indices.shape != self.shape:
      raise ValueError(f"max_unpool2d: indices of shape {indices.shape} must match the input's shape {self.shape}")
    if not dtypes.is_int(indices.dtype): raise TypeError(f"max_unpool2d: indices must have an integer dtype, got {indices.dtype}")
    nsp = self.ndim - 2
    if output_size is None:
      k, d = _tuple(kernel_size, nsp, "max_unpool2d kernel_size"), _tuple(dilation, nsp, "max_unpool2d dilation")
      s, p = _tuple(k if stride is None else stride, nsp, "max_unpool2d stride"), _tuple(padding, nsp, "max_unpool2d padding")
      out_sp = tuple((i - 1) * st - 2 * pd + dl * (kk - 1) + 1 for i, kk, dl, st, pd in zip(self.shape[2:], k, d, s, p))
    else: out_sp = tuple(output_size)[-nsp:]
    if len(out_sp) != nsp or any(o <= 0 for o in out_sp):
      raise ValueError(f"max_unpool2d: output size {out_sp} must be {nsp} positive ints for an input of shape {self.shape}")
    n, c, q, P = self.shape[0], self.shape[1], prod(self.shape[2:]), prod(out_sp)
    # out[p] = sum over the input positions q of where(indices[q] == p, x[q], 0): the reduce over q is the last axis
    hit = indices.reshape(n, c, 1, q) == Tensor.arange(P, dtype=indices.dtype, device=self.device).reshape(P, 1)
    return hit.where(self.reshape(n, c, 1, q), 0).sum(-1, dtype=self.dtype).reshape((n, c) + out_sp)

  # ---------------------------------------------------------------- creation
  @staticmethod
  def randperm(n: int, device: str | None = None, dtype: DType | str = dtypes.int32, **kwargs) -> Tensor:
    """A random permutation of 0..n-1: the rank of n random 48-bit keys (ties broken by position), O(n^2) compares."""
    from tinygrad.tensor import Tensor
    if not isinstance(n, int) or n < 0: raise ValueError(f"randperm: n must be a non-negative int, got {n!r}")
    r = Tensor.rand(2, n, device=device, **kwargs).cast(dtypes.float64)
    key = r[0] * (1 << 24) + r[1]  # rand has 24 random bits: two draws make an exact 48-bit key
    pos = Tensor.arange(n, device=device)
    ki, kj = key.reshape(n, 1), key.reshape(1, n)
    before = (kj < ki) | ((kj == ki) & (pos.reshape(1, n) < pos.reshape(n, 1)))
    return before.sum(1).cast(to_dtype(dtype))

  @staticmethod
  def from_blob(ptr: int, shape, dtype: DType | str | None = None, device: str | None = None, **kwargs) -> Tensor:
    """A tensor holding a copy of prod(shape) elements of `dtype` read from the host address ptr (tinygrad wraps the
    memory instead: here later writes through ptr are not seen)."""
    import ctypes
    import numpy as np
    from tinygrad.tensor import Tensor
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    dt = to_dtype(dtype) if dtype is not None else dtypes.default_float
    if any(not isinstance(s, int) or s < 0 for s in shape): raise ValueError(f"from_blob: shape {shape} must be non-negative ints")
    nbytes = prod(shape) * dt.itemsize
    if nbytes and not ptr: raise ValueError(f"from_blob: null pointer for {nbytes} bytes of shape {shape} {dt}")
    raw = (ctypes.c_uint8 * nbytes).from_address(ptr) if nbytes else b""
    return Tensor(np.frombuffer(raw, dtype=to_np_dtype(dt)).reshape(shape), device=device, **kwargs)

  @staticmethod
  def from_url(url: str, gunzip: bool = False, **kwargs) -> Tensor:
    """The bytes of a file:// URL as a 1-D tensor (uint8, or reinterpreted as dtype=). This build does no network
    download: any other URL raises RuntimeError."""
    import gzip
    import numpy as np
    from urllib.parse import urlparse
    from urllib.request import url2pathname
    from tinygrad.tensor import Tensor
    u = urlparse(url)
    if u.scheme != "file":
      raise RuntimeError(f"from_url: {url!r}: this build does no network download; fetch the file yourself and pass a "
                         f"file:// URL, or use Tensor(pathlib.Path(...).read_bytes())")
    with open(url2pathname(u.path), "rb") as f: data = f.read()
    if gunzip: data = gzip.decompress(data)
    dt = to_dtype(kwargs.pop("dtype", dtypes.uint8))
    arr = np.frombuffer(data, dtype=to_np_dtype(dt), count=len(data) // dt.itemsize)
    return Tensor(arr, **kwargs)

def _parse_axes(side: str, formula: str) -> list:
  """One side of a rearrange formula: 'b (h w) 1 ...' -> ['b', ['h', 'w'], [], '...'] (a group is a list; '1' and
  '()' are empty groups, '1' inside a group adds nothing)."""
  out: list = []
  group: list | None = None
  for tok in side.replace("(", " ( ").replace(")", " ) ").split():
    if tok == "(":
      if group is not None: raise ValueError(f"rearrange: nested parentheses in {formula!r}")
      group = []
    elif tok == ")":
      if group is None: raise ValueError(f"rearrange: unbalanced ')' in {formula!r}")
      out.append(group)
      group = None
    elif tok == "1":
      if group is None: out.append([])
    elif tok == "..." or tok.isidentifier(): (out if group is None else group).append(tok)
    else: raise ValueError(f"rearrange: invalid axis name {tok!r} in {formula!r} (names are identifiers, '1' or '...')")
  if group is not None: raise ValueError(f"rearrange: unbalanced '(' in {formula!r}")
  return out

def _with_ellipsis(term: str, ell: list) -> list:
  """The einsum subscripts of term, one per dim, with '...' replaced by the labels ell."""
  e = term.find("...")
  return list(term) if e < 0 else list(term[:e]) + ell + list(term[e + 3:])

def _expand_ellipsis(axes: list, ell: list[str]) -> list:
  """A parsed rearrange side with '...' (at the top or inside a group) replaced by the names ell."""
  out: list = []
  for a in axes:
    if isinstance(a, list): out.append(_expand_ellipsis(a, ell))
    elif a == "...": out.extend(ell)
    else: out.append(a)
  return out

def _axis_names(axes: list) -> list[str]:
  """The axis names of a parsed side, groups flattened, in order."""
  return [a for ax in axes for a in (ax if isinstance(ax, list) else [ax])]
