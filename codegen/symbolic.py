"""Symbolic simplification and constant folding, as rewrite rules over kernel graphs.

Index arithmetic produced by lowering views (flatten/unflatten = `//` and `%`) is simplified here using value bounds
(vmin/vmax) and an affine decomposition of integer expressions.
"""
from __future__ import annotations
import math
from tinygrad.uop import UOp, Ops, exec_alu, COMMUTATIVE, affine
from tinygrad.dtype import dtypes
from tinygrad.rewrite import UPat, PatternMatcher

FOLDABLE = {Ops.ADD, Ops.MUL, Ops.NEG, Ops.MAX, Ops.CMPLT, Ops.CMPNE, Ops.WHERE, Ops.AND, Ops.OR, Ops.XOR, Ops.IDIV, Ops.MOD}

def build_affine(terms: dict[UOp, int], const: int, like: UOp) -> UOp:
  out: UOp | None = None
  for t, c in sorted(terms.items(), key=lambda tc: -abs(tc[1])):
    x = t if c == 1 else t * c
    out = x if out is None else out + x
  if out is None: return like.const_like(const)
  return out + const if const else out

def _bounds_of(terms: dict[UOp, int], const: int) -> tuple[int, int]:
  lo = hi = const
  for t, c in terms.items():
    lo, hi = lo + min(c * t.vmin, c * t.vmax), hi + max(c * t.vmin, c * t.vmax)
  return lo, hi

def simplify_divmod(x: UOp, c: UOp, is_mod: bool) -> UOp | None:
  """x // c and x % c for a positive constant c and non-negative x: split x = A + B with A a multiple of some g | c
  and 0 <= B < g; then x//c = A//c and x%c = A%c + B. Terms whose coefficient is a multiple of c leave the division."""
  d = c.arg
  if not dtypes.is_int(x.dtype) or d <= 0 or x.vmin < 0: return None
  if d == 1: return x.const_like(0) if is_mod else x
  terms, k = affine(x)
  # common factor of every coefficient, the constant and the divisor: (g*a)//(g*d) = a//d, (g*a)%(g*d) = (a%d)*g
  g = math.gcd(d, k, *terms.values())
  if g > 1:
    inner = build_affine({t: v // g for t, v in terms.items()}, k // g, x)
    return (inner % (d // g)) * g if is_mod else inner // (d // g)
  # coefficients (and the constant) of d or more: v = q*d + r, the q*d parts leave the division exactly. Needs the
  # remainder part B >= 0 so C truncation agrees with floor. (kw*59 + ow) % 58 -> (kw + ow) % 58  test_divmod_reduce_coefficients
  if k >= d or any(v >= d or v < 0 for v in terms.values()):
    q_terms = {t: v // d for t, v in terms.items() if v // d}
    r_terms = {t: v % d for t, v in terms.items() if v % d}
    if _bounds_of(r_terms, k % d)[0] >= 0 and (q_terms or k >= d):
      b = build_affine(r_terms, k % d, x)
      return b % d if is_mod else build_affine(q_terms, k // d, x) + b // d
  # candidate split points g: divisors of d shared with some coefficient (and d itself)
  cands = sorted({d} | {math.gcd(d, v) for v in terms.values()}, reverse=True)
  for g in cands:
    a_terms = {t: v for t, v in terms.items() if v % g == 0}
    b_terms = {t: v for t, v in terms.items() if v % g != 0}
    b_lo, b_hi = _bounds_of(b_terms, k % g)
    if b_lo < 0 or b_hi >= g: continue
    a_lo, _ = _bounds_of(a_terms, k - k % g)
    if a_lo < 0: continue
    if g == d:  # the part that is a multiple of d leaves the division exactly
      if is_mod: return build_affine(b_terms, k % g, x)
      return build_affine({t: v // d for t, v in a_terms.items()}, (k - k % g) // d, x)
    if not b_terms and k % g == 0: continue  # nothing to split off at this g
    a = build_affine(a_terms, k - k % g, x)
    return (a % d) + build_affine(b_terms, k % g, x) if is_mod else a // d
  return None

def _div_of(y: UOp, c: int) -> UOp:
  """y // c in the form the rules below leave it: (z // a) // c is z // (a*c)."""
  if y.op is Ops.IDIV and y.src[1].op is Ops.CONST and y.src[1].arg > 0 and y.src[0].vmin >= 0: return y.src[0] // (y.src[1].arg * c)
  return y // c

def _is_divmod_term(x: UOp) -> bool:  # x // c or x % c, times k or not: a sum holding a pair has one as its last term
  return x.op in (Ops.MOD, Ops.IDIV) or (x.op is Ops.MUL and x.src[0].op in (Ops.MOD, Ops.IDIV))

def recombine_divmod(u: UOp) -> UOp | None:
  """(y // c)*k*c + (y % c)*k -> y*k in a sum: an index flattened, divided apart and flattened again (a reshape read
  through another view: r // 28 * 28 + r % 28 is r). Exact for truncating division too. Applied until no pair is left:
  (r // 36)*36 + ((r // 6) % 6)*6 + r % 6 is (r // 6)*6 + r % 6, then r. test_flatten_of_unflattened_index_is_affine"""
  if not dtypes.is_int(u.dtype) or u.dtype.count > 1 or not any(_is_divmod_term(x) for x in u.src): return None
  terms, k = affine(u)
  changed = False
  while (pair := next(((m, d) for m, v in terms.items() if m.op is Ops.MOD and m.src[1].op is Ops.CONST and m.src[1].arg > 0 and
                       terms.get(d := _div_of(m.src[0], m.src[1].arg)) == v * m.src[1].arg), None)) is not None:
    m, d = pair
    v = terms.pop(m)
    del terms[d]
    terms[m.src[0]] = terms.get(m.src[0], 0) + v
    if terms[m.src[0]] == 0: del terms[m.src[0]]
    changed = True
  return build_affine(terms, k, u) if changed else None

def fold_const(u: UOp) -> UOp | None:
  if u.op not in FOLDABLE or not all(s.op is Ops.CONST for s in u.src): return None
  if dtypes.is_float(u.dtype) and u.op in (Ops.IDIV, Ops.MOD): return None
  return u.const_like(exec_alu(u.op, u.dtype, [s.arg for s in u.src]))

def fold_by_bounds(u: UOp) -> UOp | None:
  """An integer or bool expression whose bounds pin it to one value is that constant."""
  if u.op is Ops.CONST or u.dtype.count > 1 or not (dtypes.is_int(u.dtype) or u.dtype == dtypes.bool): return None
  if u.op in (Ops.LOAD, Ops.DEFINE_GLOBAL, Ops.REDUCE, Ops.DEFINE_VAR): return None
  lo, hi = u.vmin, u.vmax
  return u.const_like(lo) if lo == hi else None

def fold_cast(u: UOp, c: UOp) -> UOp | None:
  if u.dtype.count > 1 or (isinstance(c.arg, float) and not math.isfinite(c.arg) and not dtypes.is_float(u.dtype) and u.dtype != dtypes.bool): return None
  if dtypes.is_int(u.dtype) and isinstance(c.arg, float) and not dtypes.min(u.dtype) <= c.arg <= dtypes.max(u.dtype): return None
  return u.const_like(c.arg)

def _is_int(u: UOp) -> bool: return dtypes.is_int(u.dtype)

pm_symbolic = PatternMatcher([
  (UPat(name="u"), fold_const),                                                      # c1 op c2 -> c        test_fold_constants
  (UPat(tuple(COMMUTATIVE), src=(UPat.cvar("c"), UPat.var("x")), name="u"),          # c op x -> x op c (constants to the right)
   lambda u, c, x: None if x.op is Ops.CONST else u.replace(src=(x, c))),
  (UPat(Ops.ADD, src=(UPat.var("x"), UPat.const(0))), lambda x: x),                  # x+0 -> x
  (UPat(Ops.MUL, src=(UPat.var("x"), UPat.const(1))), lambda x: x),                  # x*1 -> x
  (UPat(Ops.MUL, src=(UPat.var("x"), UPat.const(0))), lambda x: x.const_like(0) if _is_int(x) else None),  # int x*0 -> 0
  (UPat(Ops.NEG, src=(UPat(Ops.NEG, src=(UPat.var("x"),)),)), lambda x: x),          # --x -> x
  (UPat(Ops.NEG, src=(UPat.var("x"),)), lambda x: x * -1 if _is_int(x) and x.dtype != dtypes.bool else None),  # int -x -> x*-1 (affine form)
  (UPat(Ops.ADD, src=(UPat(Ops.ADD, src=(UPat.var("x"), UPat.cvar("c1"))), UPat.cvar("c2"))),  # (x+c1)+c2 -> x+(c1+c2)
   lambda x, c1, c2: x + exec_alu(Ops.ADD, x.dtype, [c1.arg, c2.arg]) if _is_int(x) else None),
  (UPat(Ops.MUL, src=(UPat(Ops.MUL, src=(UPat.var("x"), UPat.cvar("c1"))), UPat.cvar("c2"))),  # (x*c1)*c2 -> x*(c1*c2)
   lambda x, c1, c2: x * (c1.arg * c2.arg) if _is_int(x) else None),
  (UPat(Ops.MUL, src=(UPat(Ops.ADD, src=(UPat.var("x"), UPat.var("y"))), UPat.cvar("c"))),     # (x+y)*c -> x*c+y*c (int index math)
   lambda x, y, c: x * c + y * c if _is_int(x) and x.dtype == dtypes.index else None),
  (UPat(Ops.ADD, src=(UPat(Ops.ADD, src=(UPat.var("x"), UPat.cvar("c"))), UPat.var("y"))),     # (x+c)+y -> (x+y)+c
   lambda x, c, y: (x + y) + c if _is_int(x) and y.op is not Ops.CONST else None),
  (UPat(Ops.ADD, name="u"), recombine_divmod),                                       # (y//c)*c + y%c -> y
  (UPat(Ops.IDIV, src=(UPat.var("x"), UPat.cvar("c"))), lambda x, c: simplify_divmod(x, c, False)),  # test_divmod_*
  (UPat(Ops.MOD, src=(UPat.var("x"), UPat.cvar("c"))), lambda x, c: simplify_divmod(x, c, True)),
  (UPat(Ops.IDIV, src=(UPat(Ops.IDIV, src=(UPat.var("x"), UPat.cvar("a"))), UPat.cvar("b"))),  # (x//a)//b -> x//(a*b)
   lambda x, a, b: x // (a.arg * b.arg) if x.vmin >= 0 and a.arg > 0 and b.arg > 0 else None),
  (UPat(Ops.WHERE, src=(UPat.const(True), UPat.var("a"), UPat.var())), lambda a: a),  # where(True,a,b) -> a
  (UPat(Ops.WHERE, src=(UPat.const(False), UPat.var(), UPat.var("b"))), lambda b: b), # where(False,a,b) -> b
  (UPat(Ops.WHERE, src=(UPat.var(), UPat.var("a"), UPat.var("b"))), lambda a, b: a if a is b else None),  # where(c,a,a) -> a
  (UPat(Ops.AND, src=[UPat.var("x"), UPat.const(True)]), lambda x: x),               # x & True -> x
  (UPat(Ops.AND, src=[UPat.var("x"), UPat.const(False)]), lambda x: x.const_like(False)),
  (UPat(Ops.AND, src=(UPat.var("x"), UPat.var("y"))), lambda x, y: x if x is y else None),  # x & x -> x
  (UPat(Ops.CAST, src=(UPat.cvar("c"),), name="u"), fold_cast),                    # cast(c) -> c   test_fold_cast
  (UPat(name="u"), fold_by_bounds),                                                  # bounds pin the value test_fold_bounds
], name="symbolic")
