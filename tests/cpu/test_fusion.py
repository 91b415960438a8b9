"""Fusion: how many kernels a graph becomes (the schedule's cost rule)."""
import re
import numpy as np
import pytest
from tinygrad import Tensor, GlobalCounters
from tinygrad.uop import Ops

def kernels(*ts: Tensor) -> int:
  GlobalCounters.reset()
  Tensor.realize_all(list(ts))
  return GlobalCounters.kernel_count

def rnd(*shape): return Tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32))

def test_elementwise_chain_into_reduce_is_one_kernel():
  a, b, c = rnd(64, 33), rnd(64, 33), rnd(64, 33)
  out = (a * b + c).relu().sum()
  assert kernels(out) == 1
  an, bn, cn = a.numpy(), b.numpy(), c.numpy()
  np.testing.assert_allclose(out.numpy(), np.maximum(an * bn + cn, 0).sum(), rtol=1e-5)

def test_matmul_plus_bias_relu_is_one_kernel():
  a, b, c = rnd(32, 48), rnd(48, 40), rnd(32, 40)
  out = (a @ b + c).relu()
  assert kernels(out) == 1
  np.testing.assert_allclose(out.numpy(), np.maximum(a.numpy() @ b.numpy() + c.numpy(), 0), rtol=1e-4, atol=1e-5)

def test_softmax_is_one_kernel():
  x = rnd(16, 100)
  out = x.softmax(-1)
  assert kernels(out) == 1
  e = np.exp(x.numpy() - x.numpy().max(-1, keepdims=True))
  np.testing.assert_allclose(out.numpy(), e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)

def test_softmax_computes_exp_once(capsys):
  # the row sum's loop stores exp(x - max) to the output, and the output loop scales what it reads back: one exp2
  # (one float->int conversion of its exponent) per element instead of two (codegen/opt.py store_reduced_values).
  # The float16 output differs from exp's dtype, so its output loop keeps a second exp2: one more than float32's (the
  # counts in the text also depend on how far the renderer unrolls the row sum's loop, the same in both)
  from tinygrad import Context
  x, h = rnd(8, 100), rnd(8, 100).cast("float16")
  with Context(DEBUG=4): out, outh = x.softmax(-1).realize(), h.softmax(-1).realize()
  ir = re.split(r"define void @(?!\w+_chunks\()", capsys.readouterr().out)  # kernels, not their _chunks entries
  n32, n16 = [k.count("fptosi") for k in ir[1:]]
  assert n32 >= 1 and n16 == n32 + 1, "float32 computes exp once; float16 output keeps float32 exp"
  for got, a, tol in ((out, x.numpy(), 1e-6), (outh, h.numpy().astype(np.float32), 1e-3)):
    e = np.exp(a - a.max(-1, keepdims=True))
    np.testing.assert_allclose(got.numpy().astype(np.float32), e / e.sum(-1, keepdims=True), rtol=tol * 10, atol=tol)

def test_view_chain_is_one_kernel_and_views_do_not_copy():
  x = rnd(8, 6, 4)
  v = x.permute(2, 0, 1).reshape(4, 48)[1:3, ::2].flip(1).pad(((1, 0), (0, 2)))
  assert kernels(v + 1) == 1
  ref = np.pad(x.numpy().transpose(2, 0, 1).reshape(4, 48)[1:3, ::2][:, ::-1], ((1, 0), (0, 2)))
  np.testing.assert_allclose((v + 1).numpy(), ref + 1)
  assert kernels(x.permute(2, 0, 1).reshape(4, 48)) == 0  # a view of a realized buffer is not computed

def test_reduce_broadcast_back_over_other_axis_is_realized_separately():
  # x.sum(0) broadcast over rows would be recomputed for every row if inlined: it gets its own kernel
  x = rnd(32, 16)
  out = x + x.sum(0)
  assert kernels(out) == 2
  np.testing.assert_allclose(out.numpy(), x.numpy() + x.numpy().sum(0), rtol=1e-5, atol=1e-5)

def test_layernorm_is_one_kernel():
  x = rnd(8, 64)
  m = x.mean(-1, keepdim=True)
  out = (x - m) / ((x - m).square().mean(-1, keepdim=True) + 1e-5).sqrt()
  assert kernels(out) == 1
  xn = x.numpy()
  ref = (xn - xn.mean(-1, keepdims=True)) / np.sqrt(xn.var(-1, keepdims=True) + 1e-5)
  np.testing.assert_allclose(out.numpy(), ref, rtol=1e-4, atol=1e-5)

def test_realized_intermediate_is_reused_by_later_graphs():
  a = rnd(10)
  b = a * 2
  c = b + 1          # built before b is realized
  b.realize()
  assert kernels(c) == 1  # c reads b's buffer instead of recomputing it with a
  np.testing.assert_allclose(c.numpy(), a.numpy() * 2 + 1)

def test_constant_graphs_are_walked_once_and_stay_recomputable():
  # normalize marks a graph of constants (x + 1's constant view) and skips it on later realizes; such a graph
  # realized as an intermediate (its reduce read at two indices) gives the same values when a later graph reads it
  from tinygrad.engine.realize import normalize
  x = rnd(4, 5)
  y = x + 1
  _, _, memo, _ = normalize([y.uop])
  const = y.uop.src[1]
  assert const.op is not Ops.BUFFER and const in memo
  _, _, memo, _ = normalize([(x + 1).uop])
  assert const not in memo  # not walked again
  c = Tensor.ones(4, 5).sum(1)
  out = x + c.reshape(4, 1) + c.reshape(1, 4).pad(((0, 0), (0, 1)))
  assert kernels(out) == 2
  np.testing.assert_allclose(out.numpy(), x.numpy() + 5 + np.pad(np.full((1, 4), 5.0), ((0, 0), (0, 1))), rtol=1e-6)
  np.testing.assert_allclose((c * 2).numpy(), np.full(4, 10.0))

def test_second_identical_graph_compiles_nothing():
  from tinygrad.engine.realize import stats
  x = rnd(37, 5)
  (x.exp() * 3).sum(1).realize()
  before = stats["compiles"]
  y = rnd(37, 5)
  (y.exp() * 3).sum(1).realize()
  assert stats["compiles"] == before

def test_gather_of_computed_index_is_one_load(capsys):
  # X[idx] is a one-hot reduction at the Tensor level; with idx computed in the same graph (randint hashes) the
  # one-hot compare must stay inline so the reduce over 6000 rows folds into a single indexed load
  from tinygrad import Context
  X = rnd(6000, 3, 4)
  idx = Tensor.randint(16, high=6000)
  with Context(DEBUG=6): out = X[idx].realize()
  listing = capsys.readouterr().out
  assert "RANGE" in listing and "[0, 6000)" not in listing  # no loop over the 6000 rows
  np.testing.assert_array_equal(out.numpy(), X.numpy()[idx.numpy()])

def test_lanes_of_different_widths_in_one_kernel():
  # the output loop gets 2 lanes, the row sum 16: each vectorised loop keeps its own width
  x, y = rnd(5, 2), rnd(5, 16)
  out = x * y.sum(1, keepdim=True)
  assert kernels(out) == 1
  np.testing.assert_allclose(out.numpy(), x.numpy() * y.numpy().sum(1, keepdims=True), rtol=1e-5, atol=1e-6)

def test_operand_transform_of_a_matmul_is_realized():
  # relu(a + 1) feeding a matmul would be recomputed inside the reduce for every column tile: it gets its own kernel
  # (1024: 17.6 -> 11.4 ms), and the matmul reads it
  a, b = rnd(64, 48), rnd(48, 40)
  out = (a + 1).relu() @ b
  names = {ck.name: ck.src for ck, _ in out.schedule_linear()}
  assert sorted(names) == ["E_64_48", "r_64_40_48"], list(names)
  assert "maximum" in names["E_64_48"] and "maximum" not in names["r_64_40_48"]  # the relu is not in the matmul
  np.testing.assert_allclose(out.numpy(), np.maximum(a.numpy() + 1, 0) @ b.numpy(), rtol=1e-4, atol=1e-4)
  c = rnd(64, 48)
  assert kernels(c.cast("float16") @ b.cast("float16")) == 1  # a cast stays inline
  assert kernels(Tensor.ones(64, 48) * 2 @ b) == 1  # and so does a value of constants (it folds)

def test_value_reduced_twice_is_realized_once():
  # a costly value feeding two reduces of one kernel (BatchNorm's backward: sum(dy) and sum(dy * xhat)) was computed
  # by each reduce for all of its iterations; it gets its own kernel and both reduces read it (a ResNet step's kernels
  # 92 -> 14 ms). Feeding one reduce and the output (softmax's exp) it stays inline: test_softmax_is_one_kernel
  a, b, c, x = rnd(64, 48), rnd(64, 48), rnd(64, 48), rnd(64, 48)
  d = (a * b + c).exp()
  out = d.sum(1) + (d * x).sum(1)
  nbufs = {ck.name: len(bufs) for ck, bufs in out.schedule_linear()}
  assert nbufs == {"E_64_48": 4, "r_64_48_48": 3}, nbufs  # d from a, b, c; the sums read d and x
  dn = np.exp(a.numpy().astype(np.float64) * b.numpy() + c.numpy())
  np.testing.assert_allclose(out.numpy(), dn.sum(1) + (dn * x.numpy()).sum(1), rtol=1e-4)
  assert kernels(a.exp().sum(1) + (a * x).sum(1)) == 1  # one op (below the cost rule): recomputed, not stored

def test_pool_backward_reads_each_gradient_once():
  # windows that do not overlap: x[i] takes the gradient of its one window (movement only), not a masked sum over every
  # kernel offset, and max's share of each window is computed once, not by every element of the window reading it
  # (max_pool2d(2): 43 ops per element before, 7.5 now)
  xn = np.random.default_rng(0).standard_normal((2, 4, 16, 16)).astype(np.float32)  # no ties
  win = xn.reshape(2, 4, 8, 2, 8, 2)
  up = np.arange(2 * 4 * 8 * 8, dtype=np.float64).reshape(2, 4, 8, 1, 8, 1)  # the upstream gradient of each window
  refs = {"max": up * (win == win.max((3, 5), keepdims=True)), "avg": up / 4 + 0 * win}
  for kind, ref in refs.items():
    x = Tensor(xn, requires_grad=True)
    y = x.max_pool2d(2) if kind == "max" else x.avg_pool2d(2)
    (y * Tensor.arange(y.numel()).reshape(y.shape)).sum().backward()
    GlobalCounters.reset()
    g = x.grad.numpy()
    assert GlobalCounters.global_ops <= 10 * xn.size, (kind, GlobalCounters.global_ops)
    np.testing.assert_allclose(g, ref.reshape(xn.shape), rtol=1e-6)

def test_overlapping_pool_backward_groups_kernel_offsets():
  # a 3x3 stride-2 window's offsets in groups of 2 per axis: within a group the windows do not overlap, so the adjoint
  # is 4 movement-only copies instead of 9 masked, zero-interleaved ones (avg_pool2d: 56 -> 20 ops per element)
  xn = np.random.default_rng(0).standard_normal((2, 4, 16, 16)).astype(np.float32)
  x = Tensor(xn, requires_grad=True)
  y = x.avg_pool2d(3, stride=2, padding=1)
  up = np.arange(y.numel(), dtype=np.float64).reshape(y.shape)
  (y * Tensor(up.astype(np.float32))).sum().backward()
  GlobalCounters.reset()
  g = x.grad.numpy()
  assert GlobalCounters.global_ops <= 30 * xn.size, GlobalCounters.global_ops
  ref = np.zeros((2, 4, 18, 18))  # the padded input: each window adds up/9 to its 3x3 positions
  for i in range(8):
    for j in range(8): ref[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3] += up[:, :, i:i + 1, j:j + 1] / 9
  np.testing.assert_allclose(g, ref[:, :, 1:17, 1:17], rtol=1e-5)

def test_conv_transpose_multiplies_no_interleaved_zeros():
  # ConvTranspose2d as each input element times the kernel, summed where its window lands (the windows adjoint), not a
  # convolution of the zero-interleaved input: 4x fewer products at stride 2 (its forward 70 -> 3.5 ms at 32x64x14x14)
  g = np.random.default_rng(0)
  xn, wn = g.standard_normal((2, 8, 7, 7)).astype(np.float32), g.standard_normal((8, 4, 3, 3)).astype(np.float32)
  y = Tensor(xn).conv_transpose2d(Tensor(wn), stride=2, padding=1, output_padding=1)
  GlobalCounters.reset()
  out = y.numpy()
  macs = 2 * 8 * 7 * 7 * 4 * 9
  assert GlobalCounters.global_ops < 4 * macs, GlobalCounters.global_ops  # 12.7 x macs before
  full = np.zeros((2, 4, 16, 16))
  for i in range(7):
    for j in range(7): full[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3] += np.einsum("nc,cokl->nokl", xn[:, :, i, j], wn)
  np.testing.assert_allclose(out, full[:, :, 1:15, 1:15], rtol=1e-4, atol=1e-4)

def test_long_elementwise_chain_is_cut():
  # a chain of elementwise ops is stored every CHAIN_OPS ops (engine/schedule.py cut_long_chains): inlined whole, every
  # kernel reading it computed it again (an LSTM's backward kernels each recomputed the cell state from step 0)
  xn = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
  x, ref = Tensor(xn), xn.astype(np.float64)
  for _ in range(100): x, ref = (x * 0.9 + 0.1).relu(), np.maximum(ref * 0.9 + 0.1, 0)  # 3 ops a step
  total, rows = x.sum(), x.reshape(10, 100).sum(0)  # two kernels read the chain
  GlobalCounters.reset()
  Tensor.realize_all([total, rows])
  assert GlobalCounters.global_ops < 1.5 * 300 * xn.size, GlobalCounters.global_ops  # not 2 x 300 ops per element
  np.testing.assert_allclose(total.numpy(), ref.sum(), rtol=1e-4)
  np.testing.assert_allclose(rows.numpy(), ref.reshape(10, 100).sum(0), rtol=1e-4)

def test_unrolled_lstm_kernels_stay_small():
  # members of a kernel group that read one another at another index are lowered apart (an unrolled LSTM's backward
  # hung, re-lowering the group forever); no kernel holds the whole recurrence
  from tinygrad import nn
  cell, g = nn.LSTMCell(4, 8), np.random.default_rng(0)
  x = Tensor(g.standard_normal((3, 12, 4)).astype(np.float32))
  h = None
  for t in range(12): h = cell(x[:, t], h)
  h[0].square().sum().backward()
  grads = [p.grad for p in nn.state.get_parameters(cell)]
  sizes = [len(ck.src.splitlines()) for gr in grads for ck, _ in gr.schedule_linear()]
  assert max(sizes) < 1500, max(sizes)
  assert all(np.isfinite(gr.numpy()).all() for gr in grads)

def test_step_after_loss_reuses_forward():
  # loss.realize() then the gradient: the first layer's kernel output (the second matmul reads it) stays attached to
  # its node, so the backward reads it instead of recomputing x @ w (the examples print the loss before step())
  M, K, N = 64, 48, 32
  g = np.random.default_rng(1)
  x = rnd(M, K)
  w = Tensor(g.standard_normal((K, N)).astype(np.float32), requires_grad=True)
  v = Tensor(g.standard_normal((N, 16)).astype(np.float32))
  loss = ((x @ w).relu() @ v).sum()
  loss.backward()
  loss.realize()
  before = GlobalCounters.global_ops
  w.grad.realize()
  assert GlobalCounters.global_ops - before < 1.5 * 2 * M * K * N  # one matmul (x.T @ masked grad), not two
  h = x.numpy() @ w.numpy()
  np.testing.assert_allclose(w.grad.numpy(), x.numpy().T @ ((h > 0) * v.numpy().sum(1)), rtol=1e-4, atol=1e-4)

def test_adam_update_is_one_kernel():
  # Adam's new moments and parameter have the parameter's shape and share its gradient: one kernel per parameter
  # stores all three (engine/schedule.py output_groups), reading the gradient once instead of writing and re-reading it
  from tinygrad import nn
  l = nn.Linear(64, 32)
  opt = nn.optim.Adam([l.weight, l.bias], lr=0.01)
  x = rnd(16, 64).realize()
  for _ in range(2):  # the first step differs (fresh moment buffers); the second is the steady state
    opt.zero_grad()
    l(x).relu().sum().backward()
    before = GlobalCounters.kernel_count
    opt.step()
  # b1^t and b2^t, the masked output gradient, one kernel for the weight and its moments, one for the bias and its
  assert GlobalCounters.kernel_count - before == 5

def test_schedule_linear_lists_the_kernels_without_running_them():
  a, b = rnd(8, 4), rnd(8, 4)
  c = (a * b + 1).relu().sum(1)
  before = GlobalCounters.kernel_count
  items = c.schedule_linear()
  assert GlobalCounters.kernel_count == before and len(items) == 1
  ck, bufs = items[0]
  assert ck.name.startswith("r_8_4") and bufs[0].size == 8
  lin, var_vals = c.linear_with_vars()
  assert len(lin) == 1 and var_vals == {}

def test_a_second_schedule_pass_lowers_only_what_changed(monkeypatch):
  # s is inlined into two kernels, so the schedule realizes it and passes again (engine/schedule.py create_schedule);
  # the kernels that read s are lowered again, the unrelated z is not (its lowering reads the same nodes)
  import tinygrad.engine.schedule as schedule
  lowered: list[tuple[str, ...]] = []
  real_lower = schedule.lower
  def counting(outs, *args):
    lowered.append(tuple(str(o.shape) for o in outs))
    return real_lower(outs, *args)
  monkeypatch.setattr(schedule, "lower", counting)
  x, w = rnd(8, 16), rnd(5)
  s = x.sum(1)
  a, b, z = x - s.reshape(8, 1), s * 2, w * 3
  assert kernels(a, b, z) == 4
  assert lowered.count(("(5,)",)) == 1 and lowered.count(("(8, 16)",)) == 2
  xs = x.numpy().sum(1)
  np.testing.assert_allclose(a.numpy(), x.numpy() - xs[:, None], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(b.numpy(), xs * 2, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(z.numpy(), w.numpy() * 3, rtol=1e-6)

def test_a_dropped_graph_frees_its_buffers_without_the_gc():
  # nothing realize, the schedule or UOp.toposort keeps makes a reference cycle through a graph (toposort keeps its list
  # on the node, without the node): buffers go with their last reference, not at the next cyclic collection
  import gc, weakref
  gc.disable()
  try:
    x = rnd(64, 32).realize()
    y = x * 2 + 1
    y.uop.toposort()
    out = (y.exp() * y).sum(1).realize()
    out.uop.toposort()
    alive = [weakref.ref(t._buffer()) for t in (x, out)]
    del x, y, out
    assert [b() for b in alive] == [None, None]
  finally: gc.enable()

def test_view_chain_is_not_grouped():
  # each step reads the previous one at two other indices (flip, roll): grouping the chain into one kernel would
  # recompute it exponentially; every .contiguous() stays its own kernel
  x = Tensor(np.arange(8, dtype=np.float32))
  ref = np.arange(8, dtype=np.float32)
  for _ in range(14):
    x = (x.flip(0) + x.roll(1, 0)).contiguous()
    ref = ref[::-1] + np.roll(ref, 1)
  before = GlobalCounters.kernel_count
  np.testing.assert_allclose(x.numpy(), ref, rtol=1e-6)
  assert GlobalCounters.kernel_count - before >= 14

def test_deep_graph_does_not_hit_the_recursion_limit():
  # an unrolled iteration builds a graph thousands of nodes deep before its first realize
  import sys
  x, limit = Tensor([1.0, 2.0]).realize(), sys.getrecursionlimit()
  sys.setrecursionlimit(1000)
  try:
    y = x
    for _ in range(3000): y = y * 1.0001 + 0.0001
    from tinygrad.engine.realize import normalize
    norm, bufs, _, _ = normalize([y.uop])
    assert len(bufs) == 1
  finally: sys.setrecursionlimit(limit)

def test_packed_matmul_matches_numpy():
  # a right operand larger than L2 (1024 x 544 float32) is copied into contiguous 32-column panels first: 2 kernels
  g = np.random.default_rng(2)
  a, b = g.standard_normal((256, 1024)).astype(np.float32), g.standard_normal((1024, 544)).astype(np.float32)
  x, w = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
  x.realize(); w.realize()
  out = x @ w
  assert kernels(out) == 2
  np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-4, atol=1e-3)
  out.sum().backward()
  np.testing.assert_allclose(w.grad.numpy(), a.sum(0)[:, None].repeat(544, 1), rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(x.grad.numpy(), b.sum(1)[None, :].repeat(256, 0), rtol=1e-4, atol=1e-3)

def test_full_sum_is_split_across_threads():
  # 2^20 elements into one output: 64 chunk partials (a threaded kernel), then their sum
  from tinygrad.engine.realize import kernel_cache
  x = np.random.default_rng(3).standard_normal(1 << 20).astype(np.float32)
  t = Tensor(x).realize()
  assert kernels(t.sum()) == 2
  np.testing.assert_allclose(t.sum().numpy(), x.astype(np.float64).sum(), rtol=1e-5, atol=1e-3)
  assert any(ck.name == "r_64_16384" and ck.launch[2] for ck in kernel_cache.values()), "the partials kernel splits its chunk loop across threads"

def test_split_reduces_keep_their_semantics():
  rng = np.random.default_rng(4)
  x = rng.standard_normal((1 << 17, 4)).astype(np.float32)
  x[1234, 2] = np.nan
  t = Tensor(x)
  np.testing.assert_allclose(t.sum(0).numpy(), x.astype(np.float64).sum(0), rtol=1e-5, atol=1e-3)  # NaN column stays NaN
  np.testing.assert_array_equal(t.max(0).numpy(), x.max(0))
  np.testing.assert_array_equal(t.argmax(0).numpy(), np.argmax(x, 0))  # first NaN wins, as numpy
  y = rng.uniform(0.999, 1.001, 1 << 18).astype(np.float32)
  np.testing.assert_allclose(Tensor(y).prod().numpy(), np.prod(y.astype(np.float64)), rtol=1e-3)
  z = rng.integers(-100, 100, (1 << 18) + 3, dtype=np.int32)  # no chunk count divides it: one kernel, still right
  assert Tensor(z).sum().item() == int(z.sum())
  assert Tensor((x[:, 0] > 0)).sum().item() == int((x[:, 0] > 0).sum())

def test_embedding_backward_is_a_scatter(capsys):
  # codegen/opt.py scatter_onehot_reduce: the weight gradient of a gather (sum over tokens of where(id == row, g, 0))
  # is a zero fill and one add per token into its row, in a kernel of its own: not V rows x T tokens. Repeated ids add
  # up, ids outside the table add nothing; a width of 20 masks lanes; the Adam update that consumes it is another kernel.
  from tinygrad import Context, nn
  rng = np.random.default_rng(8)
  V, D = 300, 20
  ids = rng.integers(0, V, (3, 7)).astype(np.int32)
  ids[0, :3] = ids[1, 4] = 11  # one row from four tokens
  g = rng.standard_normal((3, 7, D)).astype(np.float32)
  emb = nn.Embedding(V, D)
  with Context(DEBUG=4, CACHELEVEL=0):
    (emb(Tensor(ids)) * Tensor(g)).sum().backward()
    emb.weight.grad.realize()
  ir = capsys.readouterr().out
  kernel = next(k for k in ir.split("\n// ")[1:] if k.startswith(f"r_{V}_{D}_3_7"))
  assert "llvm.masked.store.v16f32" in kernel and kernel.count("loop") < 10, "a fill and a scatter, no loop over V x T"
  expected = np.zeros((V, D), np.float64)
  np.add.at(expected, ids, g.astype(np.float64))
  np.testing.assert_allclose(emb.weight.grad.numpy(), expected, rtol=1e-6, atol=1e-6)
  # inside a training step: the gradient realized apart, then Adam
  emb2 = nn.Embedding(V, D)
  emb2.weight.assign(Tensor(np.zeros((V, D), np.float32))).realize()
  opt = nn.optim.SGD([emb2.weight], lr=1.0)
  with Tensor.train():
    opt.zero_grad()
    (emb2(Tensor(ids)) * Tensor(g)).sum().backward()
    opt.step()
  np.testing.assert_allclose(emb2.weight.numpy(), -expected, rtol=1e-6, atol=1e-6)

def test_view_of_contiguous_root_is_not_copied():
  # a realized root that is a view of a CONTIGUOUS (a conv's whole padded rows, tensor.py _flat_windows) stays a view
  # of that kernel's output: one kernel, not a second one copying the view
  x = rnd(6, 10)
  out = (x * 2).contiguous().reshape(3, 20).shrink(((0, 3), (0, 17))).permute(1, 0)
  assert kernels(out) == 1
  u = out.uop
  while u.op is not Ops.BUFFER: u = u.src[0]
  assert u.arg.size == 60
  np.testing.assert_array_equal(out.numpy(), (x.numpy() * 2).reshape(3, 20)[:, :17].T)
  assert (out + 1).numpy().shape == (17, 3)

def test_view_root_before_its_base():
  # a root that views another root of the same realize is resolved after that root's buffer is known, whatever their
  # order: its graph is then the buffer's view, not the computation
  x = np.arange(12, dtype=np.float32)
  c = (Tensor(x) * 2).contiguous()
  v = c.reshape(3, 4).T
  Tensor.realize_all([v, c])
  assert {u.op for u in v.uop.toposort()} == {Ops.BUFFER, Ops.RESHAPE, Ops.PERMUTE}
  np.testing.assert_array_equal(v.numpy(), (x * 2).reshape(3, 4).T)

def _conv_input_grad_ref(g: np.ndarray, w: np.ndarray, x_shape: tuple, stride: int = 1, padding: int = 1, dilation: int = 1) -> np.ndarray:
  """x's gradient of conv2d(x, w, ...) given the output's gradient g: each kernel offset's products, scattered back."""
  n, c, h, wd = x_shape
  (ho, wo), k = g.shape[2:], w.shape[2]
  out = np.zeros((n, c, h + 2 * padding, wd + 2 * padding))
  for i in range(k):
    for j in range(k):
      out[:, :, i * dilation:i * dilation + stride * ho:stride, j * dilation:j * dilation + stride * wo:stride] += \
        np.einsum("nkhw,kc->nchw", g.astype(np.float64), w[:, :, i, j].astype(np.float64))
  return out[:, :, padding:padding + h, padding:padding + wd]

def test_conv_input_gradient_sums_its_offsets_in_one_kernel():
  # the products of the output's gradient with each kernel offset's weights (9x the input) are no longer stored when
  # they are 4 MiB or more of sums over at most 8 channels: the kernel summing the shifted offsets reads them at disjoint
  # indices and computes each inline (codegen/lower.py _disjoint), its 9 reduces tiled as one (codegen/opt.py
  # choose_upcasts); the schedule realizes that sum rather than the products, which every reader reached through it
  # (schedule._converging_consumer). Smaller products, or sums over more channels, stay a kernel of their own
  rng = np.random.default_rng(0)
  for n, c, hw, stored in ((16, 8, 32, False), (2, 4, 9, True), (4, 32, 32, True)):
    xv, wv, gv = rng.standard_normal((n, c, hw, hw)), rng.standard_normal((c, c, 3, 3)), rng.standard_normal((n, c, hw, hw))
    x = Tensor(xv.astype(np.float32), requires_grad=True)
    (x.conv2d(Tensor(wv.astype(np.float32)), padding=1) * Tensor(gv.astype(np.float32))).sum().backward()
    sizes = [bufs[0].size for _, bufs in x.grad.schedule_linear()]
    assert (n * c * 9 * hw * hw in sizes) == stored, sizes
    np.testing.assert_allclose(x.grad.numpy(), _conv_input_grad_ref(gv, wv, xv.shape), rtol=1e-4, atol=1e-4)

@pytest.mark.parametrize("k,stride,padding,dilation,inlined", [(3, 1, 2, 2, True), (5, 1, 2, 1, True), (3, 1, 0, 1, True), (3, 2, 1, 1, False)])
def test_large_conv_input_gradients_match_numpy(k, stride, padding, dilation, inlined):
  # products of 4 MiB and more over 8 channels, inlined for dilated, 5x5 and unpadded windows; a stride-2 conv's groups
  # of offsets read them at indices not provably disjoint (a loop on the kernel axis), so they stay stored
  rng = np.random.default_rng(1)
  n, hw = 64 if stride == 2 else 16, 34 if padding == 0 else 32  # 32 x 32 outputs (16 x 16 at stride 2)
  xv, wv = rng.standard_normal((n, 8, hw, hw)), rng.standard_normal((8, 8, k, k))
  x = Tensor(xv.astype(np.float32), requires_grad=True)
  out = x.conv2d(Tensor(wv.astype(np.float32)), stride=stride, padding=padding, dilation=dilation)
  gv = rng.standard_normal(out.shape)
  (out * Tensor(gv.astype(np.float32))).sum().backward()
  products = n * 8 * k * k * out.shape[2] * out.shape[3]
  assert products * 4 >= 4 << 20 and (products in [bufs[0].size for _, bufs in x.grad.schedule_linear()]) != inlined
  np.testing.assert_allclose(x.grad.numpy(), _conv_input_grad_ref(gv, wv, xv.shape, stride, padding, dilation), rtol=1e-4, atol=1e-4)
