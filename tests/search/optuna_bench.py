"""Optuna's TPE (and random) sampler on the functions labd-search-bench uses, the same way: the best value
found after 50 and 200 trials, median and quartiles over the seeds; for the noisy sphere, the noise-free value
of the trial whose noisy value was best. Prints JSON in labd-search-bench's shape.

Usage: python optuna_bench.py [--seeds N] [--trials N]
"""

import argparse
import json
import math
import random
import sys

import optuna

parser = argparse.ArgumentParser()
parser.add_argument("--seeds", type=int, default=20)
parser.add_argument("--trials", type=int, default=200)
args = parser.parse_args()
optuna.logging.set_verbosity(optuna.logging.WARNING)


def branin(x):
    x1, x2 = x
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


ALPHA = [1.0, 1.2, 3.0, 3.2]
A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886], [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
     [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650], [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]


def hartmann6(x):
    return -sum(ALPHA[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j]) ** 2 for j in range(6))) for i in range(4))


def sphere(x):
    return sum(v * v for v in x)


PROBLEMS = [("branin", [(-5, 10), (0, 15)], branin, 0.0), ("hartmann6", [(0, 1)] * 6, hartmann6, 0.0),
            ("sphere20_noisy", [(-5, 5)] * 20, sphere, 1.0)]


def run(bounds, f, noise, sampler, seed):
    rng = random.Random(seed + 1_000_003)
    best = [math.inf, math.inf]
    trace = []

    def objective(trial):
        x = [trial.suggest_float(f"x{d:02d}", lo, hi) for d, (lo, hi) in enumerate(bounds)]
        truth = f(x)
        seen = truth + noise * rng.gauss(0, 1)
        if seen < best[0]:
            best[0], best[1] = seen, truth
        trace.append(best[1])
        return seen

    study = optuna.create_study(sampler=sampler(seed))
    study.optimize(objective, n_trials=args.trials)
    return trace


def quartiles(v):
    v = sorted(v)
    def at(q):
        i = q * (len(v) - 1)
        lo, hi = math.floor(i), math.ceil(i)
        return v[lo] + (v[hi] - v[lo]) * (i - lo)
    return at(0.25), at(0.5), at(0.75)


samplers = {"optuna_tpe": lambda s: optuna.samplers.TPESampler(seed=s),
            "optuna_random": lambda s: optuna.samplers.RandomSampler(seed=s)}
budgets = [b for b in (50, 200) if b <= args.trials] or [args.trials]
report = {}
for name, bounds, f, noise in PROBLEMS:
    report[name] = {}
    for sname, sampler in samplers.items():
        runs = [run(bounds, f, noise, sampler, s) for s in range(args.seeds)]
        report[name][sname] = {}
        for b in budgets:
            q1, med, q3 = quartiles([r[b - 1] for r in runs])
            report[name][sname][str(b)] = {"median": med, "q1": q1, "q3": q3}
        print(f"{name:>15} {sname}: done", file=sys.stderr, flush=True)
json.dump(report, sys.stdout)
