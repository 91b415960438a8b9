"""The rewrite engine: UPat matching, bucketing by op, fixed-point graph_rewrite."""
from tinygrad.uop import UOp, Ops
from tinygrad.dtype import dtypes
from tinygrad.rewrite import UPat, PatternMatcher, graph_rewrite

x = UOp(Ops.DEFINE_VAR, dtypes.int32, (), ("x", 0, 100))

def test_named_vars_must_bind_to_the_same_node():
  pm = PatternMatcher([(UPat(Ops.ADD, src=(UPat.var("a"), UPat.var("a"))), lambda a: a * 2)])
  assert graph_rewrite(x + x, pm) is x * 2
  y = UOp(Ops.DEFINE_VAR, dtypes.int32, (), ("y", 0, 1))
  assert graph_rewrite(x + y, pm) is x + y

def test_list_src_matches_either_order():
  pm = PatternMatcher([(UPat(Ops.MUL, src=[UPat.var("a"), UPat.const(0)]), lambda a: a.const_like(0))])
  zero = UOp.const(dtypes.int32, 0)
  assert graph_rewrite(UOp(Ops.MUL, dtypes.int32, (zero, x)), pm) is zero
  assert graph_rewrite(UOp(Ops.MUL, dtypes.int32, (x, zero)), pm) is zero

def test_rewrite_runs_to_a_fixed_point():
  # each step peels one +1; the engine must keep going until nothing matches
  pm = PatternMatcher([(UPat(Ops.ADD, src=(UPat.var("a"), UPat.const(1))), lambda a: a)])
  e = ((x + 1) + 1) + 1
  assert graph_rewrite(e, pm) is x

def test_rules_are_bucketed_by_op():
  calls = []
  def never(a):
    calls.append(a)
    return None
  pm = PatternMatcher([(UPat(Ops.MUL, src=(UPat.var("a"), UPat.var())), never)])
  graph_rewrite(x + 1, pm)
  assert calls == []  # no MUL in the graph: the rule was never tried
  assert Ops.MUL in pm.by_op and Ops.ADD not in pm.by_op

def test_ctx_is_passed_to_rules_that_ask_for_it():
  seen = []
  pm = PatternMatcher([(UPat(Ops.DEFINE_VAR, name="v"), lambda ctx, v: seen.append(ctx))])
  graph_rewrite(x, pm, ctx="hello")
  assert seen == ["hello"]

def test_a_shared_memo_rewrites_each_node_once():
  # codegen/lower.py simplifies index expressions built from one another with one memo: nodes rewritten by an earlier
  # call are not matched again, and the results are those of separate calls
  y, seen = UOp(Ops.DEFINE_VAR, dtypes.int32, (), ("y", 0, 100)), []
  def rename(v):
    seen.append(v)
    return y
  pm = PatternMatcher([(UPat(Ops.DEFINE_VAR, arg=("x", 0, 100), name="v"), rename)])
  memo: dict = {}
  assert graph_rewrite(x * 3, pm, memo=memo) is y * 3 and len(seen) == 1
  assert graph_rewrite(x * 3 + 5, pm, memo=memo) is y * 3 + 5 and len(seen) == 1, "x was matched again"
  assert graph_rewrite(x * 3 + 5, pm) is y * 3 + 5 and len(seen) == 2
