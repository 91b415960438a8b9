"""Vector loops whose trip count is not a multiple of the lane width (codegen/opt.py vectorize): the last iteration's
lanes past the end are masked. Results must match numpy, no kernel may read memory it did not write (POISON=1, set by
tests/conftest.py, fills fresh allocations with 0xFF) and no kernel may write past the end of its output.

Inputs are small integers, so sums, products and convolutions are exact in every dtype and compared exactly.
"""
import ctypes, re
import numpy as np
import pytest
from hypothesis import given, strategies as st
from tinygrad import Tensor, Context
from strategies import NP_STORAGE, tdt, to_numpy, examples

# trip counts around the lane widths (2..16): primes, one less or more than a power of two, CNN feature maps
SIZES = st.one_of(st.sampled_from([1, 2, 3, 5, 6, 7, 10, 11, 12, 13, 17, 23, 28, 29, 31, 36, 37]), st.integers(1, 40))
DTYPES = ("float32", "float16", "int32", "bool", "uint8")

def ints(data, shape, name: str, lo: int = -8, hi: int = 8) -> np.ndarray:
  """Integers in [lo, hi] (uint8: [0, hi], bool: 0/1) stored in dtype `name`."""
  g = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
  if name == "bool": return g.integers(0, 2, shape).astype(np.bool_)
  return g.integers(0 if name == "uint8" else lo, hi + 1, shape).astype(NP_STORAGE[name])

def t(arr: np.ndarray) -> Tensor: return Tensor(arr)

def assert_exact(got: Tensor, expected: np.ndarray, name: str) -> None:
  assert got.dtype == tdt(name), f"dtype {got.dtype} != {name}"
  np.testing.assert_array_equal(to_numpy(got), np.asarray(expected).astype(NP_STORAGE[name]).astype(to_numpy(got).dtype))

@examples(30)
@given(name=st.sampled_from(DTYPES), rows=st.integers(1, 5), cols=SIZES, data=st.data())
def test_elementwise_odd_widths_match_numpy(name, rows, cols, data):
  a, b = ints(data, (rows, cols), name), ints(data, (rows, cols), name)
  if name == "bool": assert_exact(t(a) ^ t(b), a ^ b, name)
  else: assert_exact(t(a) * t(b) + t(a), a * b + a, name)

@examples(30)
@given(name=st.sampled_from(DTYPES), rows=st.integers(1, 4), cols=SIZES, step=st.integers(1, 4),
       pad=st.tuples(st.integers(0, 5), st.integers(0, 5)), data=st.data())
def test_strided_and_padded_views_match_numpy(name, rows, cols, step, pad, data):
  # x[:, ::step] reads lanes `step` apart (one wide load and a shuffle); a PAD makes the load leave the row
  a = ints(data, (rows, cols * step), name)
  x, v = t(a)[:, ::step], a[:, ::step]
  if name == "bool": assert_exact(x ^ t(a)[:, :cols], v ^ a[:, :cols], name)
  else: assert_exact(x * t(a)[:, :cols] + x, v * a[:, :cols] + v, name)
  assert_exact(x.pad(((0, 0), pad)), np.pad(v, ((0, 0), pad)), name)

@examples(20)
@given(name=st.sampled_from(DTYPES), rows=SIZES, cols=SIZES, data=st.data())
def test_broadcast_odd_widths_matches_numpy(name, rows, cols, data):
  a, b, c = ints(data, (rows, 1), name), ints(data, (1, cols), name), ints(data, (rows, cols), name) > 0
  assert_exact(t(c).where(t(a), t(b)), np.where(c, a, b), name)

@examples(30)
@given(name=st.sampled_from(DTYPES), shape=st.tuples(st.integers(1, 4), SIZES, SIZES), axis=st.sampled_from([1, 2]),
       op=st.sampled_from(["sum", "max"]), data=st.data())
def test_reduce_over_odd_axis_matches_numpy(name, shape, axis, op, data):
  # the reduce identity (0 for sum, the dtype minimum for max) fills the masked lanes, never the 0xFF poison
  a = ints(data, shape, name)
  if op == "max": assert_exact(t(a).max(axis), a.max(axis), name)
  else: assert_exact(t(a).sum(axis), a.sum(axis, dtype=np.int64), {"bool": "int32", "uint8": "uint32"}.get(name, name))

@examples(20)
@given(name=st.sampled_from(["float32", "float16"]), rows=st.integers(1, 6), cols=SIZES, data=st.data())
def test_softmax_over_odd_width_matches_numpy(name, rows, cols, data):
  g = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
  x = (g.standard_normal((rows, cols)) * 3).astype(NP_STORAGE[name])
  e = np.exp(x.astype(np.float64) - x.max(1, keepdims=True))
  tol = 1e-5 if name == "float32" else 2e-3
  np.testing.assert_allclose(to_numpy(t(x).softmax(-1)), e / e.sum(1, keepdims=True), rtol=tol, atol=tol)

@examples(25)
@given(name=st.sampled_from(["float32", "float16", "int32"]), m=SIZES, k=SIZES, n=SIZES, data=st.data())
def test_matmul_odd_sizes_matches_numpy(name, m, k, n, data):
  a, b = ints(data, (m, k), name, -4, 4), ints(data, (k, n), name, -4, 4)
  assert_exact(t(a) @ t(b), a.astype(np.int64) @ b.astype(np.int64), name)

def conv2d_ref(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
  x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
  kh, kw = w.shape[2:]
  oh, ow = (x.shape[2] - kh) // stride + 1, (x.shape[3] - kw) // stride + 1
  out = np.zeros((x.shape[0], w.shape[0], oh, ow))
  for i in range(kh):
    for j in range(kw):
      out += np.einsum("nchw,kc->nkhw", x[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride], w[:, :, i, j])
  return out

@examples(25)
@given(name=st.sampled_from(["float32", "float16"]), n=st.integers(1, 3), cin=st.integers(1, 5), cout=st.integers(1, 5),
       hw=st.tuples(st.integers(3, 17), st.integers(3, 17)), k=st.integers(1, 3), stride=st.integers(1, 3),
       padding=st.integers(0, 1), data=st.data())
def test_conv2d_odd_sizes_matches_numpy(name, n, cin, cout, hw, k, stride, padding, data):
  x, w = ints(data, (n, cin) + hw, name, -3, 3), ints(data, (cout, cin, k, k), name, -3, 3)
  assert_exact(t(x).conv2d(t(w), stride=stride, padding=padding), conv2d_ref(x, w, stride, padding), name)

@examples(10)
@given(shape=st.tuples(st.integers(1, 3), SIZES, SIZES, SIZES), data=st.data())
def test_conv2d_gradients_odd_sizes_match_numpy(shape, data):
  # the input gradient of a strided conv is a sum of zero-interleaved padded copies: clamped gathers in masked lanes
  n, c, h, w = shape[0], shape[1] % 5 + 1, shape[2] % 13 + 3, shape[3] % 13 + 3
  xv, wv = ints(data, (n, c, h, w), "float32", -3, 3), ints(data, (3, c, 3, 3), "float32", -3, 3)
  x, wt = Tensor(xv, requires_grad=True), Tensor(wv, requires_grad=True)
  x.conv2d(wt, stride=2).sum().backward()
  ones = np.ones(conv2d_ref(xv, wv, 2, 0).shape)
  gx, gw = np.zeros(xv.shape), np.zeros(wv.shape)
  for i in range(3):
    for j in range(3):  # out[o] uses x[2*o + (i, j)] * w[:, :, i, j]
      win = (slice(None), slice(None), slice(i, i + 2 * ones.shape[2] - 1, 2), slice(j, j + 2 * ones.shape[3] - 1, 2))
      gx[win] += np.einsum("nkhw,kc->nchw", ones, wv[:, :, i, j])
      gw[:, :, i, j] = np.einsum("nkhw,nchw->kc", ones, xv[win])
  np.testing.assert_array_equal(x.grad.numpy(), gx)
  np.testing.assert_array_equal(wt.grad.numpy(), gw)

@examples(10)
@given(rows=st.integers(1, 5), cols=SIZES, data=st.data())
def test_outputs_sharing_a_reduce_store_masked_rows(rows, cols, data):
  # one kernel stores both outputs (a multi-output group sharing the row max): every store is masked
  x = Tensor(ints(data, (rows, cols), "float32"))
  d = x - x.max(1, keepdim=True)
  e = d.exp2()
  Tensor.realize_all([d, e])
  xn = x.numpy()
  np.testing.assert_array_equal(d.numpy(), xn - xn.max(1, keepdims=True))
  np.testing.assert_allclose(e.numpy(), np.exp2(xn - xn.max(1, keepdims=True)), rtol=1e-6)

def _bytes_after(t: Tensor) -> bytes:
  """The bytes between the end of t's buffer and the end of its 64-byte-rounded allocation (runtime/cpu.py)."""
  buf = t._buffer()
  return ctypes.string_at(buf.ptr + buf.nbytes, -buf.nbytes % 64)

def test_odd_sized_output_leaves_the_bytes_after_it_alone():
  # a full-width vector store of the last partial iteration would overwrite the 0xFF poison past the end
  for name, n in (("float32", 13), ("float16", 7), ("uint8", 29), ("bool", 45), ("int32", 3)):
    a = np.arange(n).astype(NP_STORAGE[name])
    out = (t(a) == t(a)) if name == "bool" else t(a) + t(a)
    out.realize()
    tail = _bytes_after(out)
    assert tail and tail == b"\xff" * len(tail), f"{name}[{n}]: a kernel wrote past the end of its output"
    assert_exact(out, a == a if name == "bool" else a + a, name)

def test_neighbouring_buffers_stay_intact():
  keep = [Tensor(np.full(n, 7, np.float32)).realize() for n in (3, 13, 29)]
  outs = [(Tensor(np.arange(n, dtype=np.float32)) * 2).realize() for n in (3, 13, 29) for _ in range(3)]
  for k, n in zip(keep, (3, 13, 29)): np.testing.assert_array_equal(k.numpy(), np.full(n, 7, np.float32))
  for o in outs: np.testing.assert_array_equal(o.numpy(), np.arange(o.shape[0]) * 2)

def test_odd_sized_output_split_over_threads():
  # 3000 rows of 45: the outer loop is split over the thread pool and every row ends in a masked iteration
  a = np.arange(3000 * 45, dtype=np.float32).reshape(3000, 45)
  np.testing.assert_array_equal((t(a) * 2 + 1).numpy(), a * 2 + 1)
  np.testing.assert_array_equal(t(a).max(1).numpy(), a.max(1))

def test_13x13_conv_and_width_10_reduce_are_vectorised(capsys):
  x, w = Tensor(np.ones((2, 3, 15, 15), np.float32)), Tensor(np.ones((4, 3, 3, 3), np.float32))
  logits = Tensor(np.ones((32, 10), np.float32))
  with Context(DEBUG=4):
    conv = x.conv2d(w).realize()
    s = logits.sum(1).realize()
  out = capsys.readouterr().out
  assert "r_2_4_13_13_3_3_3: vector=('global', 16)" in out  # 13 output columns = 16 lanes, 3 masked
  assert "r_32_10: vector=('reduce', 16)" in out
  assert "llvm.masked.store.v16f32" in out and "llvm.masked.load.v16f32" in out
  np.testing.assert_array_equal(conv.numpy(), np.full((2, 4, 13, 13), 27, np.float32))
  np.testing.assert_array_equal(s.numpy(), np.full(32, 10, np.float32))

def test_stride_2_conv_reads_rows_with_wide_loads(capsys):
  # 13 outputs per row read inputs 2 apart: one masked 32-wide load and a shuffle, not 16 scalar loads
  x, w = Tensor(np.ones((1, 2, 27, 27), np.float32)), Tensor(np.ones((3, 2, 3, 3), np.float32))
  with Context(DEBUG=4): out = x.conv2d(w, stride=2).realize()
  ir = capsys.readouterr().out
  assert "r_3_13_13_2_3_3: vector=('global', 16)" in ir and "llvm.masked.load.v32f32" in ir and "extractelement" not in ir
  np.testing.assert_array_equal(out.numpy(), np.full((1, 3, 13, 13), 18, np.float32))

@examples(20)
@given(name=st.sampled_from(["int32", "uint8", "int64"]), cols=SIZES, c=st.integers(1, 9), data=st.data())
def test_int_division_by_constant_in_lanes_matches_python(name, cols, c, data):
  # x // c and x % c on 32-bit-bounded values run as 32-bit vector ops (codegen/llvmir.py i32_divmod)
  a = ints(data, (3, cols), name, -100, 100)
  assert_exact(t(a) // c, np.floor_divide(a, c), name)
  assert_exact(t(a) % c, np.mod(a, c), name)

@examples(15)
@given(name=st.sampled_from(DTYPES), rows=SIZES, cols=SIZES, data=st.data())
def test_transposed_operand_gathers_masked_lanes(name, rows, cols, data):
  # a.T's lanes are `rows` elements apart: a per-lane gather whose invalid lanes must read inside the buffer
  a, b = ints(data, (cols, rows), name), ints(data, (rows, cols), name)
  if name == "bool": assert_exact(t(a).T ^ t(b), a.T ^ b, name)
  else: assert_exact(t(a).T * t(b), a.T * b, name)

def test_nested_reduce_keeps_one_lane_width():
  # the row max (16 lanes over 10) sits inside the sum over 6 rows: the sum must stay scalar, not 8 lanes of its own
  a = np.arange(5 * 6 * 10, dtype=np.float32).reshape(5, 6, 10) % 17
  np.testing.assert_array_equal(t(a).max(-1).sum(-1).numpy(), a.max(-1).sum(-1))

def test_load_whose_index_loses_the_lane_is_one_scalar_read():
  # column r of the (3, 40) view reads a[r // 16]: 16 lanes in a masked loop of 40, yet one address per iteration
  a = np.arange(2 * 3, dtype=np.float32).reshape(2, 3, 1)
  v = t(a).expand(2, 3, 16).reshape(2, 48)[:, :40] + 1
  np.testing.assert_array_equal(v.numpy(), np.broadcast_to(a, (2, 3, 16)).reshape(2, 48)[:, :40] + 1)

def test_padded_row_is_one_masked_load(capsys):
  # a PAD inside the kernel: the lanes left of and right of the source row are masked off, not clamped lane by lane
  a = np.arange(7 * 37, dtype=np.float32).reshape(7, 37)
  with Context(DEBUG=4): out = (t(a).pad(((0, 0), (3, 5))) * 2).realize()
  ir = capsys.readouterr().out
  assert "llvm.masked.load.v16f32" in ir and "extractelement" not in ir
  np.testing.assert_array_equal(out.numpy(), np.pad(a, ((0, 0), (3, 5))) * 2)

def test_flatten_of_realized_images_is_contiguous(capsys):
  # codegen/symbolic.py recombine_divmod: a realized (N, 1, 6, 7) batch is a reshape of its buffer; flattened for a
  # Linear layer, the index went through both reshapes ((r // 7) * 7 + r % 7, which the simplifier kept), so the
  # matmul was vectorised along its output with a gather per lane instead of along the reduce
  rng = np.random.default_rng(4)
  x, w = rng.standard_normal((32, 1, 6, 7)).astype(np.float32), rng.standard_normal((24, 42)).astype(np.float32)
  xt = t(x).realize()
  with Context(DEBUG=4, CACHELEVEL=0): out = (xt.flatten(1) @ t(w).T).realize()
  ir = capsys.readouterr().out
  assert "vector=('reduce', " in ir and not re.search(r"\b[us](div|rem) ", ir) and "extractelement" not in ir
  np.testing.assert_allclose(out.numpy(), x.reshape(32, 42).astype(np.float64) @ w.T, rtol=1e-5, atol=1e-5)
  # through a chain of views the values stay right: unflatten, flatten and reshape again
  y = (xt.reshape(32, 42).reshape(4, 8, 6, 7).flatten(2) * 2).realize()
  np.testing.assert_array_equal(y.numpy(), x.reshape(4, 8, 42) * 2)

def test_linear_with_short_reduce_copies_its_weight(capsys):
  # tensor.py _copies_transposed: x @ W.T over K <= 128 copies W.T row-major first and multiplies rows vectorised along
  # the outputs; a long K keeps the dot products. Values and W's gradient as numpy's.
  rng = np.random.default_rng(6)
  x, w, w_long = rng.standard_normal((96, 64)), rng.standard_normal((48, 64)), rng.standard_normal((48, 300))
  wt = Tensor(w.astype(np.float32), requires_grad=True)
  with Context(DEBUG=3, CACHELEVEL=0):
    out = t(x.astype(np.float32)) @ wt.T
    out.realize()
  ir = capsys.readouterr().out
  assert re.search(r"r_96_48_64: vector=\('global', 16\)", ir) and "realize on CPU: 2 kernels" in ir
  np.testing.assert_allclose(out.numpy(), x @ w.T, rtol=1e-4, atol=1e-4)
  (out * out).sum().backward()
  np.testing.assert_allclose(wt.grad.numpy(), 2 * (x @ w.T).T @ x, rtol=1e-4, atol=1e-3)
  x_long = rng.standard_normal((96, 300)).astype(np.float32)
  with Context(DEBUG=3, CACHELEVEL=0): (t(x_long) @ t(w_long.astype(np.float32)).T).realize()
  assert "r_96_48_300: vector=('reduce', 16)" in capsys.readouterr().out

def test_repeated_lanes_are_one_narrow_load(capsys):
  # codegen/opt.py _base_and_stride: lanes reading base + LANE // c (a nearest upsample, a stride-2 window's gradient
  # interleaving zeros) load 16 / c elements and shuffle them out, not 16 scalar loads; an odd width masks its tail
  rng = np.random.default_rng(9)
  for n in (64, 37):
    x = rng.standard_normal((3, n)).astype(np.float32)
    with Context(DEBUG=4, CACHELEVEL=0):
      up = (t(x).reshape(3, n, 1).expand(3, n, 2).reshape(3, 2 * n) * 2).realize()
      zi = (t(x).reshape(3, n, 1).pad(((0, 0), (0, 0), (0, 1))).reshape(3, 2 * n) + 1).realize()
      up4 = (t(x).reshape(3, n, 1).expand(3, n, 4).reshape(3, 4 * n) - 1).realize()
    ir = capsys.readouterr().out
    assert "extractelement" not in ir and "@llvm.masked.load.v8f32" in ir and "@llvm.masked.load.v4f32" in ir
    np.testing.assert_array_equal(up.numpy(), np.repeat(x, 2, axis=1) * 2)
    np.testing.assert_array_equal(zi.numpy(), np.stack([x, np.zeros_like(x)], -1).reshape(3, 2 * n) + 1)
    np.testing.assert_array_equal(up4.numpy(), np.repeat(x, 4, axis=1) - 1)
  # lanes in no order: two rows interleaved, lane l reads row l % 2 at l // 2 (one load of the span, then a shuffle)
  for n in (24, 37):
    x = rng.standard_normal((3, 2, n)).astype(np.float32)
    with Context(DEBUG=4, CACHELEVEL=0): zipped = (t(x).permute(0, 2, 1).reshape(3, 2 * n) * 2).realize()
    assert "extractelement" not in capsys.readouterr().out
    np.testing.assert_array_equal(zipped.numpy(), x.transpose(0, 2, 1).reshape(3, 2 * n) * 2)

@examples(12)
@given(m=st.integers(64, 130), k=st.integers(1, 128), n=st.integers(16, 70), data=st.data())
def test_linear_with_short_reduce_matches_numpy(m, k, n, data):
  # the W.T copy of _copies_transposed at any K <= 128, widths that leave masked lanes: forward and both gradients
  g = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
  x, w, up = g.standard_normal((m, k)).astype(np.float32), g.standard_normal((n, k)).astype(np.float32), g.standard_normal((m, n)).astype(np.float32)
  xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
  out = xt @ wt.T
  (out * t(up)).sum().backward()
  x64, w64, up64 = x.astype(np.float64), w.astype(np.float64), up.astype(np.float64)
  tol = dict(rtol=1e-4, atol=1e-4 * max(1, k) ** 0.5)
  np.testing.assert_allclose(out.numpy(), x64 @ w64.T, **tol)
  np.testing.assert_allclose(xt.grad.numpy(), up64 @ w64, rtol=1e-4, atol=1e-4 * max(1, n) ** 0.5)
  np.testing.assert_allclose(wt.grad.numpy(), up64.T @ x64, rtol=1e-4, atol=1e-4 * max(1, m) ** 0.5)

def test_column_sum_keeps_four_accumulators(capsys):
  # a sum over rows of a (128, 512) matrix: every load moves with the vector loop, so nothing is shared, yet four
  # vectors of each row are summed side by side (four accumulators, 64 contiguous floats per row read)
  a = (np.arange(128 * 512, dtype=np.float32).reshape(128, 512) % 13) - 6
  with Context(DEBUG=4): s = t(a).sum(0).realize()
  ir = capsys.readouterr().out
  assert "r_512_128: vector=('global', 16)" in ir and "%acc3 = alloca <16 x float>" in ir and "%acc4" not in ir
  np.testing.assert_array_equal(s.numpy(), a.sum(0))

def test_register_tiles_of_matmul_and_conv(capsys):
  # codegen/opt.py choose_upcasts: a broadcast-FMA matmul over a reduce of 256+ unrolls 8 rows (8 x 2 vectors = 16
  # accumulators); a shorter reduce unrolls 8 rows of one vector and a convolution 8 output channels of one vector (8),
  # over rows of 56 (a conv whose weight requires grad) or over the padded rows end to end (one that needs no gradient)
  rng = np.random.default_rng(2)
  a, b = rng.standard_normal((64, 256)).astype(np.float32), rng.standard_normal((256, 64)).astype(np.float32)
  x, w = rng.standard_normal((2, 8, 56, 56)).astype(np.float32), rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
  with Context(DEBUG=4):
    mm, short = (t(a) @ t(b)).realize(), (t(a[:, :128]) @ t(b[:128])).realize()
    conv, flat = t(x).conv2d(Tensor(w, requires_grad=True), padding=1).realize(), t(x).conv2d(t(w), padding=1).realize()
  ir = capsys.readouterr().out
  def kernel(name: str) -> str: return ir.split(f"// {name}\n")[1].split("\n// ")[0]
  assert "%acc15 = alloca" in kernel("r_64_64_256") and "%acc16" not in kernel("r_64_64_256")
  for name in ("r_64_64_128", "r_2_16_56_56_8_3_3", "r_2_16_3248_8_3_3"):
    assert "%acc7 = alloca" in kernel(name) and "%acc8" not in kernel(name)
  # the convolution's tile: 1 input vector and 8 weight broadcasts per 8 FMAs, in every copy of its unrolled window
  conv_ir = kernel("r_2_16_56_56_8_3_3")
  taps = conv_ir.count("call <16 x float> @llvm.masked.load")
  assert taps >= 1 and conv_ir.count("= load float") == 8 * taps
  assert "masked.load" not in kernel("r_2_16_3248_8_3_3")  # 56 rows of 58 are 203 full vectors
  np.testing.assert_array_equal(flat.numpy(), conv.numpy())
  np.testing.assert_allclose(mm.numpy(), a @ b, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(short.numpy(), a[:, :128] @ b[:128], rtol=1e-4, atol=1e-4)
  ref = np.zeros((2, 16, 56, 56))
  xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
  for i in range(3):
    for j in range(3): ref += np.einsum("nchw,oc->nohw", xp[:, :, i:i + 56, j:j + 56], w[:, :, i, j])
  np.testing.assert_allclose(conv.numpy(), ref, rtol=1e-4, atol=1e-4)

def test_reduce_loops_are_unrolled_in_the_ir(capsys):
  # codegen/llvmir.py: a reduce loop of constant size is unrolled completely when its copies are short (a 3x3 window,
  # both of its loops), an innermost one by 4 when it is long (a row sum: the loop steps by 4); a short loop around
  # one that stays a loop stays a loop too (the copies would repeat its labels). Values as numpy's, bit for bit.
  rng = np.random.default_rng(5)
  x, w = rng.integers(-4, 5, (1, 16, 9, 9)).astype(np.float32), rng.integers(-4, 5, (2, 16, 3, 3)).astype(np.float32)
  rows, deep = rng.integers(-4, 5, (4, 4096)).astype(np.float32), rng.integers(-4, 5, (4, 3, 4000)).astype(np.float32)
  with Context(DEBUG=4):
    conv = t(x).conv2d(t(w)).realize()
    rsum, dsum = t(rows).sum(1).realize(), t(deep).sum((1, 2)).realize()
  ir = capsys.readouterr().out
  def loops(name: str) -> list[str]: return re.findall(r"^(loop\d+):", ir.split(f"// {name}\n")[1].split("\n// ")[0], re.M)
  assert len(loops("r_2_7_7_16_3_3")) == 2, "the output rows and the 16 input channels; the 3x3 window unrolled"
  row_loop = ir.split("// r_4_4096\n")[1]
  assert len(loops("r_4_4096")) == 2 and re.search(r"%\w+ = add nuw nsw i64 %r\d+, 4\n", row_loop), "the row loop steps by 4"
  assert len(loops("r_4_3_4000")) == 3, "the loop of 3 around the loop over 4000 stays a loop"
  ref = sum(np.einsum("nchw,oc->nohw", x[:, :, i:i + 7, j:j + 7], w[:, :, i, j]) for i in range(3) for j in range(3))
  np.testing.assert_array_equal(conv.numpy(), ref)
  np.testing.assert_array_equal(rsum.numpy(), rows.sum(1))
  np.testing.assert_array_equal(dsum.numpy(), deep.sum((1, 2)))

def test_one_accumulator_is_split_across_unrolled_copies(capsys):
  # codegen/llvmir.py split_accumulators: a row sum's unrolled copies add into 4 accumulators (one chain of dependent
  # adds held it to the adder's latency), a short row's completely unrolled copies too; a matmul's tile of
  # accumulators is left as it is. A NaN or inf in any copy's share still reaches the result.
  rng = np.random.default_rng(11)
  rows, short, a, b = rng.standard_normal((8, 4096)), rng.standard_normal((64, 128)), rng.standard_normal((64, 96)), rng.standard_normal((96, 80))
  rows[3, 17], rows[5, 4000], short[2, 50] = np.nan, np.inf, -np.inf
  rows, short, a, b = (x.astype(np.float32) for x in (rows, short, a, b))
  def kernel_ir(make) -> tuple[Tensor, str]:
    with Context(DEBUG=4, CACHELEVEL=0):
      out = make().realize()
    ir = capsys.readouterr().out
    return out, ir.split("\n// ")[0]  # the first kernel's IR
  def accs(k: str) -> int: return len(re.findall(r"^  %acc\d+ = alloca", k, re.M))
  rsum, sum_ir = kernel_ir(lambda: t(rows).sum(1))
  after_loop = sum_ir.split("\nexit1:\n")[1]
  assert accs(sum_ir) == 4 and len(re.findall(r"= fadd contract <16 x float> %v\d+, %v\d+\n", after_loop)) == 3, "4 chains, added pairwise"
  rmax, max_ir = kernel_ir(lambda: t(rows).max(1) + 0)
  assert accs(max_ir) == 4
  ssum, short_ir = kernel_ir(lambda: t(short).sum(1))
  assert accs(short_ir) == 4 and "loop1:" not in short_ir, "the completely unrolled copies of a short row too"
  mm, mm_ir = kernel_ir(lambda: t(a) @ t(b))
  assert accs(mm_ir) >= 4 and not re.search(r"^exit\d+:\n  %v\d+ = load .* %acc\d+\n  %v\d+ = load .* %acc\d+\n  %v\d+ = fadd", mm_ir, re.M), \
    "a matmul keeps its tile's accumulators, none combined after its loop"
  np.testing.assert_allclose(rsum.numpy(), rows.astype(np.float64).sum(1), rtol=1e-5, atol=1e-3)
  np.testing.assert_array_equal(rmax.numpy(), rows.max(1))
  np.testing.assert_allclose(ssum.numpy(), short.astype(np.float64).sum(1), rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(mm.numpy(), a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)

@examples(25)
@given(name=st.sampled_from(["float32", "int32", "float16"]), rows=st.integers(1, 3), n=st.integers(33, 1100),
       op=st.sampled_from(["sum", "max"]), data=st.data())
def test_long_reduce_loops_unrolled_by_2_or_4_match_numpy(name, rows, n, op, data):
  # codegen/llvmir.py: a reduce loop of n/lanes iterations (masked tail or not) is unrolled by 4 when that divides it,
  # else by 2, else stays a plain loop; the copies add into separate accumulators (small integers still sum exactly)
  a = ints(data, (rows, n), name)
  if op == "max": assert_exact(t(a).max(1), a.max(1), name)
  else: assert_exact(t(a).sum(1), a.sum(1, dtype=np.int64), name)

@examples(15)
@given(m=SIZES, k=st.sampled_from([64, 96, 128, 130, 200]), n=SIZES, data=st.data())
def test_short_reduce_tiles_of_a_transposed_matmul_match_numpy(m, k, n, data):
  # x.T @ g over a batch of k (the MLP's weight gradient): one vector x 8 rows of output, odd rows and columns
  x, g = ints(data, (k, m), "float32", -3, 3), ints(data, (k, n), "float32", -3, 3)
  np.testing.assert_array_equal((t(x).T @ t(g)).numpy(), x.T @ g)

@examples(20)
@given(rows=SIZES, cols=SIZES, data=st.data())
def test_column_sums_of_odd_shapes_match_numpy(rows, cols, data):
  # cols = 4 * 16 * k + tail: four accumulators in the unrolled iterations, masked lanes in the last one
  a = ints(data, (rows, cols * 5), "float32")
  np.testing.assert_array_equal(t(a).sum(0).numpy(), a.sum(0))
  np.testing.assert_array_equal(t(a).max(0).numpy(), a.max(0))

@examples(25)
@given(shape=st.tuples(SIZES, SIZES, st.sampled_from([1, 3, 16, 33, 100])), axis=st.integers(0, 2), data=st.data())
def test_values_stored_for_their_row_sum_match_numpy(shape, axis, data):
  # out = e / sum(e) along an axis (softmax, and a plain ratio): the sum's loop stores e into the output, the output
  # loop reads it back (codegen/opt.py store_reduced_values); every axis, odd widths, upcast rows
  a = ints(data, shape, "float32").astype(np.float32) / 4
  e = np.exp(a - a.max(axis, keepdims=True))
  np.testing.assert_allclose(t(a).softmax(axis).numpy(), e / e.sum(axis, keepdims=True), rtol=1e-5, atol=1e-7)
  r = a * a + 1
  np.testing.assert_allclose((t(a) * t(a) + 1).div((t(a) * t(a) + 1).sum(axis, keepdim=True)).numpy(), r / r.sum(axis, keepdims=True), rtol=1e-5)

def test_values_stored_for_their_row_sum_split_over_threads():
  # rows are split across threads (2^17+ elements): each thread stores and reads back only its own rows
  a = np.random.default_rng(1).standard_normal((517, 300)).astype(np.float32)
  for axis in (0, 1):
    e = np.exp(a - a.max(axis, keepdims=True))
    np.testing.assert_allclose(t(a).softmax(axis).numpy(), e / e.sum(axis, keepdims=True), rtol=1e-5, atol=1e-8)

def test_large_outputs_are_stored_non_temporally(capsys):
  # an output of 32 MiB or more is written with non-temporal vector stores (no read of each line before it is
  # overwritten) and a fence before the kernel returns; a small one with ordinary stores. A size the lanes do not
  # divide stores through masks (ordinary masked stores); every element is right either way.
  n = 8 << 20
  a = np.arange(n + 5, dtype=np.float32) % 1000
  with Context(DEBUG=4):
    big = (t(a[:n]) * 2 + 1).realize()
    small = (t(a[:4096]) * 2 + 1).realize()
  kernels = re.split(r"define void @(?!\w+_chunks\()", capsys.readouterr().out)[1:]  # not the _chunks entries
  assert len(kernels) == 2 and "!nontemporal" in kernels[0] and "fence seq_cst" in kernels[0]
  assert "!nontemporal" not in kernels[1]
  np.testing.assert_array_equal(big.numpy(), a[:n] * 2 + 1)
  np.testing.assert_array_equal(small.numpy(), a[:4096] * 2 + 1)
  np.testing.assert_array_equal((t(a) * 2 + 1).numpy(), a * 2 + 1)

def test_large_inputs_read_once_are_loaded_non_temporally(capsys):
  # codegen/llvmir.py streamed_load: whole aligned vectors of an input of 32 MiB or more that every loop around the
  # load moves (each element read once) are non-temporal loads (vmovntdqa: its lines do not evict the caches), with no
  # fence (that is for non-temporal stores); an input read once per row of a broadcast, or a small one, loads as usual
  n = 8 << 20
  a = (np.arange(n, dtype=np.float32) % 1000) - 500
  x = t(a).realize()
  with Context(DEBUG=4):
    big = x.sum().realize()
    twice = (x.reshape(1, n).expand(2, n) + 1).realize()
    small = x[:4 << 20].sum().realize()
  out = capsys.readouterr().out
  def kernel(name: str) -> str: return out.split(f"// {name}\n")[1].split("\n// ")[0]
  nt_load = re.compile(r"= load <16 x float>, ptr %v\d+, align 64, !nontemporal !0")
  assert nt_load.search(kernel("r_64_131072")) and "fence" not in kernel("r_64_131072")
  assert "= load <16 x float>" in kernel("E_2_8388608") and not nt_load.search(kernel("E_2_8388608"))
  assert "= load <16 x float>" in kernel("r_64_65536") and "!nontemporal" not in kernel("r_64_65536")
  np.testing.assert_allclose(big.item(), a.astype(np.float64).sum(), rtol=1e-5, atol=1e-3)
  np.testing.assert_array_equal(twice.numpy(), np.broadcast_to(a + 1, (2, n)))
  np.testing.assert_allclose(small.item(), a[:4 << 20].astype(np.float64).sum(), rtol=1e-5, atol=1e-3)

def test_row_value_depending_on_the_output_column_is_not_stored_early():
  # out[i, j] = sum_k a[i,j]*a[i,k] + a[i,j]^2: the summed value depends on j too, so it cannot be kept in out[i, k]
  # (it was, once: wrong values, and a vector store past the end of the buffer for the last row)
  for shape in ((2, 4), (512, 256)):
    a = (np.arange(np.prod(shape), dtype=np.float32).reshape(shape) % 7) / 4
    x = t(a)
    np.testing.assert_allclose(((x[:, :, None] * x[:, None, :]).sum(-1) + x * x).numpy(),
                               (a[:, :, None] * a[:, None, :]).sum(-1) + a * a, rtol=1e-5)

def test_reshape_of_padded_index_simplifies():
  # a PAD's inner index (i - b) is out of range only where the pad's mask is false; a RESHAPE after it clamps it to its
  # dimension (codegen/lower.py _clamped), so flattening and dividing it again simplifies back to its parts instead of
  # keeping a signed division per lane. ConvTranspose2d's gradients: 218 -> 33 signed divisions, a small conv autoencoder's
  # training step 1020 -> 26 ms of kernels
  rng = np.random.default_rng(0)
  xn, wn = rng.standard_normal((2, 4, 5, 5)).astype(np.float32), rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
  x, w = Tensor(xn, requires_grad=True), Tensor(wn, requires_grad=True)
  x.conv_transpose2d(w, stride=2, padding=1, output_padding=1).sum().backward()
  src = "\n".join(ck.src for ck, _ in w.grad.schedule_linear() + x.grad.schedule_linear())
  assert src.count("sdiv") + src.count("srem") <= 40, src.count("sdiv") + src.count("srem")
  # d(sum of the output)/dW[ci, co, kh, kw] = sum of x[:, ci] over the positions that kernel tap reaches, d/dx = sum of W
  gw = np.zeros_like(wn)
  for kh in range(3):
    for kw in range(3):  # output position 2*i - 1 + k must land in [0, 10)
      rows, cols = [i for i in range(5) if 0 <= 2 * i - 1 + kh < 10], [j for j in range(5) if 0 <= 2 * j - 1 + kw < 10]
      gw[:, :, kh, kw] = xn[:, :, rows][:, :, :, cols].sum((0, 2, 3))[:, None]
  np.testing.assert_allclose(w.grad.numpy(), gw, rtol=1e-5, atol=1e-5)

def test_padded_index_clamp_is_dropped_for_vector_loads():
  # the clamps that let a padded index divide apart are dropped after simplification (codegen/opt.py
  # pm_drop_pad_clamps): a depthwise convolution's input gradient reads its rows with masked vector loads again, not
  # lane-by-lane gathers (192 extractelement before). Values: the numeric-gradient check on a small copy of the graph
  g = np.random.default_rng(0)
  def net(x, w, w2): return x.conv2d(w, groups=x.shape[1], padding=1).relu().conv2d(w2).relu().avg_pool2d(2).sum()
  x = Tensor(g.standard_normal((2, 8, 28, 28)).astype(np.float32), requires_grad=True)
  net(x, Tensor(g.standard_normal((8, 1, 3, 3)).astype(np.float32)), Tensor(g.standard_normal((8, 8, 1, 1)).astype(np.float32))).backward()
  src = "\n".join(ck.src for ck, _ in x.grad.schedule_linear())
  assert src.count("extractelement") == 0 and "masked.load" in src, src.count("extractelement")
  from gradcheck import assert_grad_matches
  assert_grad_matches(net, g.uniform(-1, 1, (1, 2, 6, 6)), g.uniform(-1, 1, (2, 1, 3, 3)), g.uniform(-1, 1, (2, 2, 1, 1)))

def test_overlapping_pool_backward_has_no_division(capsys):
  # codegen/lower.py _clamped: min(i, n - 1) is where(i < n, i, n - 1), whose bounds are below n (tinygrad/uop.py), so
  # an overlapping pool's backward drops its (x + 1) // 2 % 14; codegen/opt.py _shift_clamped_divmod: max(x - 1, 0) // 2
  # is (x + 1) // 2 - 1, so no signed division splits the lane; _base_and_picks: lanes reading base + (LANE + 1) // 2
  # are one load of a span and a shuffle, masked to the buffer where the span may leave it
  rng = np.random.default_rng(10)
  x, g = rng.standard_normal((2, 3, 28, 28)).astype(np.float32), rng.standard_normal((2, 3, 14, 14)).astype(np.float32)
  xt = Tensor(x, requires_grad=True)
  with Context(DEBUG=4, CACHELEVEL=0):
    (xt.avg_pool2d(3, stride=2, padding=1) * t(g)).sum().backward()
    xt.grad.realize()
  ir = capsys.readouterr().out
  kernel = next(k for k in re.split(r"^// ", ir, flags=re.M) if k.startswith("E_2_3_28_28"))
  assert not re.search(r"rem i32 %v\d+, 14\b", kernel) and "icmp sge <16 x i64>" in kernel and "shufflevector <16 x float>" in kernel
  assert "extractelement" not in kernel and not re.search(r"\bs(div|rem) ", kernel), "no gather, no signed division"
  ref = np.zeros((2, 3, 30, 30), np.float64)
  for i in range(3):
    for j in range(3): ref[:, :, i:i + 28:2, j:j + 28:2] += g / 9
  np.testing.assert_allclose(xt.grad.numpy(), ref[:, :, 1:29, 1:29], rtol=1e-6, atol=1e-6)

def test_masked_reduce_lanes_accumulate_by_masked_fma(capsys):
  # codegen/llvmir.py: a reduce over a loop whose last vector has masked lanes adds where(m, x, identity); it is
  # rendered where(m, acc + x, acc) (one masked FMA, not fmul, select and fadd). Values as numpy's for sum, max and
  # prod over 100 columns (16 lanes: the last 4 valid), rows holding inf, -inf and NaN
  rng = np.random.default_rng(11)
  a, b = rng.standard_normal((37, 100)).astype(np.float32), rng.standard_normal((37, 100)).astype(np.float32)
  a[1, 3], a[2, 97], a[3, :] = np.inf, -np.inf, -np.inf
  a[4, 50], b[5, 99] = np.nan, np.inf
  with Context(DEBUG=4):
    dot = (t(a) * t(b)).sum(1).realize()
  ir = capsys.readouterr().out
  accs = set(re.findall(r"(%v\d+) = load <16 x float>, ptr %acc\d+", ir))
  sels = re.findall(r"= select <16 x i1> %v\d+, <16 x float> %v\d+, <16 x float> (%v\d+)", ir)
  assert sels and all(s in accs for s in sels), "invalid lanes keep the accumulator"
  np.testing.assert_allclose(dot.numpy(), (a.astype(np.float64) * b).sum(1), rtol=1e-5, atol=1e-4)
  np.testing.assert_array_equal(t(a).max(1).numpy(), a.max(1))
  p = np.abs(a[:, :40]) * 0.5 + 0.75
  np.testing.assert_allclose(t(p).prod(1).numpy(), p.astype(np.float64).prod(1), rtol=1e-4)

def test_depthwise_weight_gradient_vectorises_its_reduce(capsys):
  # codegen/opt.py: a depthwise 3x3 weight gradient's output row is 3 wide (4 lanes, one masked) and its reduce runs
  # along 28-wide image rows. Both are tiled and the cheaper kept (loop_cost): the reduce, with the 3x3 window as
  # the register tile, 9 accumulators sharing each vector of the upstream gradient
  rng = np.random.default_rng(7)
  x, w = rng.standard_normal((4, 8, 28, 28)).astype(np.float32), rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
  g = rng.standard_normal((4, 8, 28, 28)).astype(np.float32)
  tw = Tensor(w, requires_grad=True)
  with Context(DEBUG=4):
    (t(x).conv2d(tw, padding=1, groups=8) * t(g)).sum().backward()
    dw = tw.grad.realize()
  ir = capsys.readouterr().out
  name = next(n for n in re.findall(r"^// (r_8_3_3\w*)$", ir, re.M))
  assert f"{name}: vector=('reduce', 16)" in ir
  kernel = ir.split(f"// {name}\n")[1].split("\n// ")[0]
  assert "%acc8 = alloca <16 x float>" in kernel, "the 3x3 window is unrolled: 9 accumulators"
  xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
  ref = np.array([[[(g[:, c] * xp[:, c, i:i + 28, j:j + 28]).sum() for j in range(3)] for i in range(3)] for c in range(8)])
  np.testing.assert_allclose(dw.numpy(), ref[:, None], rtol=1e-4, atol=1e-3)

@pytest.mark.parametrize("dtype", [np.bool_, np.int32, np.float32])
def test_all_lanes_picking_one_element_load(dtype):
  # a 2-lane vector whose lanes both read element 0 of a padded, flipped column (found by
  # test_random_view_chain_matches_numpy): its masked load was rendered on a scalar T, not <2 x T>, and LLVM refused it
  a = np.array([[1], [0]]).astype(dtype)
  out = Tensor(a).pad(((0, 0), (0, 1))).reshape(1, 2, 2).expand(1, 2, 2).flip(2).numpy()
  np.testing.assert_array_equal(out, np.flip(np.pad(a, ((0, 0), (0, 1)))[None], 2))
