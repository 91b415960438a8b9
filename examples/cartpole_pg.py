"""REINFORCE (Monte-Carlo policy gradient) on CartPole: a 4-32-2 policy learns to balance the pole for 500 steps.

The environment is gymnasium's CartPole-v1 when gymnasium is installed, else the self-contained numpy CartPole below
(the same classic cart-pole physics, episode cap and termination rule). numpy only simulates the environment: the
policy, action sampling, discounted returns, the baseline and the loss are tinygrad Tensors.

Each iteration plays a batch of episodes in parallel (padded to 500 steps, so every update has the same shapes and
compiles once), then takes one Adam step on  -mean_t log pi(a_t | s_t) * (G_t - mean G) / std G.

Run: python examples/cartpole_pg.py [--iters 60] [--episodes 16] [--lr 0.01] [--seed 0] [--numpy-env]
Prints a progress bar (tqdm if installed) and the parseable lines `average return: <first> -> <last>` (training
batches) and `eval average return: <r>` (greedy policy, fresh episodes; 500 is the maximum).
"""
import argparse, math, time
import numpy as np
from tinygrad import Tensor, TinyJit, nn
from common import trange  # examples/common.py

MAX_STEPS = 500  # CartPole-v1's episode cap

class NumpyCartPole:
  """n independent cart-poles stepped together (the physics and termination of gymnasium's CartPole-v1)."""
  gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
  x_threshold, theta_threshold = 2.4, 12 * 2 * math.pi / 360
  def __init__(self, n: int, seed: int): self.n, self.rng = n, np.random.default_rng(seed)
  def reset(self) -> np.ndarray:
    self.state = self.rng.uniform(-0.05, 0.05, (self.n, 4))
    return self.state.astype(np.float32)
  def step(self, action: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Advance the poles that are still up by one step (finished ones stay where they fell); returns (obs, terminated)."""
    x, x_dot, theta, theta_dot = self.state.T
    force = np.where(action == 1, self.force_mag, -self.force_mag)
    cos, sin = np.cos(theta), np.sin(theta)
    total_mass, pml = self.masscart + self.masspole, self.masspole * self.length
    temp = (force + pml * theta_dot ** 2 * sin) / total_mass
    theta_acc = (self.gravity * sin - cos * temp) / (self.length * (4 / 3 - self.masspole * cos ** 2 / total_mass))
    x_acc = temp - pml * theta_acc * cos / total_mass
    new = np.stack([x + self.tau * x_dot, x_dot + self.tau * x_acc, theta + self.tau * theta_dot, theta_dot + self.tau * theta_acc], 1)
    self.state = np.where(alive[:, None], new, self.state)
    done = (np.abs(self.state[:, 0]) > self.x_threshold) | (np.abs(self.state[:, 2]) > self.theta_threshold)
    return self.state.astype(np.float32), done

class GymCartPole:
  """The same interface over n gymnasium CartPole-v1 environments (a finished episode is not stepped again)."""
  def __init__(self, n: int, seed: int):
    import gymnasium
    self.envs, self.seed, self.resets = [gymnasium.make("CartPole-v1") for _ in range(n)], seed, 0
  def reset(self) -> np.ndarray:
    self.resets += 1
    self.obs = np.stack([e.reset(seed=self.seed * 100003 + self.resets * 1009 + i)[0] for i, e in enumerate(self.envs)]).astype(np.float32)
    return self.obs
  def step(self, action: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    done = ~alive
    for i, e in enumerate(self.envs):
      if alive[i]:
        obs, _, terminated, truncated, _ = e.step(int(action[i]))
        self.obs[i], done[i] = obs, terminated or truncated
    return self.obs, done

def make_env(n: int, seed: int, force_numpy: bool):
  if not force_numpy:
    try: return GymCartPole(n, seed), "gymnasium CartPole-v1"
    except ImportError: pass
  return NumpyCartPole(n, seed), "numpy CartPole"

class Policy:
  def __init__(self, hidden: int = 32):
    self.l1, self.l2 = nn.Linear(4, hidden), nn.Linear(hidden, 2)
    # one action per environment and step: sampled (action 1 when a uniform draw falls below its probability) or greedy.
    # Jitted: from the third step on, the step's kernels are replayed (with the parameters' current values and a new
    # random draw) instead of building and scheduling the graph again, ~4x faster per step
    self.sample, self.greedy = TinyJit(self._act), TinyJit(lambda obs: self(obs).argmax(-1).realize())
  def __call__(self, obs: Tensor) -> Tensor: return self.l2(self.l1(obs).tanh())  # action logits
  def _act(self, obs: Tensor) -> Tensor: return (Tensor.rand(obs.shape[0]) < self(obs).softmax(-1)[:, 1]).realize()

def rollout(env, policy: Policy, greedy: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Play one episode in every environment. Returns states (T, n, 4), actions (T, n) and the alive mask (T, n), T = 500:
  mask[t, i] is 1 while episode i is running (its reward at step t is 1), 0 after it ended."""
  n = env.n if hasattr(env, "n") else len(env.envs)
  states, actions, mask = np.zeros((MAX_STEPS, n, 4), np.float32), np.zeros((MAX_STEPS, n), np.int32), np.zeros((MAX_STEPS, n), np.float32)
  obs, alive = env.reset(), np.ones(n, bool)
  for t in range(MAX_STEPS):
    a = (policy.greedy if greedy else policy.sample)(Tensor(obs)).numpy().astype(np.int32)
    states[t], actions[t], mask[t] = obs * alive[:, None], a, alive  # padding steps hold zeros
    obs, done = env.step(a, alive)
    alive = alive & ~done
    if not alive.any(): break
  return states, actions, mask

def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--iters", type=int, default=60, help="policy updates (each on a batch of episodes)")
  ap.add_argument("--episodes", type=int, default=16, help="episodes played in parallel per update")
  ap.add_argument("--lr", type=float, default=0.01)
  ap.add_argument("--gamma", type=float, default=0.99)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--numpy-env", action="store_true", help="use the built-in numpy CartPole even if gymnasium is installed")
  args = ap.parse_args()

  Tensor.manual_seed(args.seed)
  env, env_name = make_env(args.episodes, args.seed, args.numpy_env)
  print(f"environment: {env_name}, {args.episodes} episodes per update")
  policy = Policy()
  params = nn.state.get_parameters(policy)
  Tensor.realize_all(params)
  opt = nn.optim.Adam(params, lr=args.lr)
  # discounted returns-to-go as one matmul: G[t] = sum_{k >= t} gamma^(k-t) r[k]
  t_idx = Tensor.arange(MAX_STEPS)
  discount = (t_idx.reshape(1, -1) >= t_idx.reshape(-1, 1)).where(args.gamma ** (t_idx.reshape(1, -1) - t_idx.reshape(-1, 1)).float(), 0).realize()

  returns, st = [], time.perf_counter()
  for _ in (t := trange(args.iters)):
    states, actions, mask = rollout(env, policy)
    S, A, M = Tensor(states), Tensor(actions), Tensor(mask)
    with Tensor.train():
      G = discount @ M  # rewards are 1 while alive: (T, T) @ (T, n)
      n_valid = M.sum()
      g_mean = (G * M).sum() / n_valid
      g_std = (((G - g_mean) * M).square().sum() / n_valid).sqrt()
      adv = ((G - g_mean) / (g_std + 1e-8)).detach()
      logp = policy(S).log_softmax(-1)  # (T, n, 2)
      logp_a = (A.unsqueeze(-1) == Tensor.arange(2)).where(logp, 0).sum(-1)
      opt.zero_grad()
      loss = (-(logp_a * adv * M).sum() / n_valid).backward()
      loss.realize(*opt.schedule_step())
    returns.append(float(mask.sum(0).mean()))
    t.set_description(f"loss {loss.item():+.3f} return {returns[-1]:.1f}")
  train_s = time.perf_counter() - st

  eval_env = NumpyCartPole(args.episodes, args.seed + 1) if isinstance(env, NumpyCartPole) else GymCartPole(args.episodes, args.seed + 1)
  eval_return = float(rollout(eval_env, policy, greedy=True)[2].sum(0).mean())
  k = max(1, min(5, args.iters // 4))
  print(f"trained {args.iters} updates ({args.iters * args.episodes} episodes) in {train_s:.1f} s")
  print(f"average return: {sum(returns[:k]) / k:.1f} -> {sum(returns[-k:]) / k:.1f}")
  print(f"eval average return: {eval_return:.1f}")

if __name__ == "__main__": main()
