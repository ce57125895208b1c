"""Task schedules: which task the next training batch comes from.

Each schedule draws from its own seeded ``random.Random`` and saves that state, so a resumed run
picks the same tasks as an uninterrupted one. ``active`` lists the tasks still training (per-task
early stopping removes finished ones).
"""
from __future__ import annotations

import random


def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(rng: random.Random, state: list) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))


class WeightedSchedule:
    """Draw a task with probability proportional to ``weights[task]`` (restricted to ``active``)."""

    def __init__(self, weights: dict[str, float], seed: int):
        self.weights = dict(weights)
        self.rng = random.Random(f"{seed}/schedule")

    def next(self, active: list[str], step: int = 0) -> str:
        return self.rng.choices(active, weights=[self.weights[t] for t in active])[0]

    def state_dict(self) -> dict:
        return {"rng": _rng_state(self.rng)}

    def load_state_dict(self, state: dict) -> None:
        _set_rng_state(self.rng, state["rng"])


class UniformSchedule(WeightedSchedule):
    """A task uniformly at random, then a batch of it (the Meta-MTL / ASP-MTL protocol)."""

    def __init__(self, sizes: dict[str, int], seed: int):
        super().__init__({t: 1.0 for t in sizes}, seed)


class ProportionalSchedule(WeightedSchedule):
    """A task with probability proportional to its number of training examples."""

    def __init__(self, sizes: dict[str, int], seed: int):
        super().__init__({t: float(n) for t, n in sizes.items()}, seed)


class TemperatureSchedule(WeightedSchedule):
    """p_k ∝ n_k^(1/T): T=1 is proportional, T→∞ uniform (Arivazhagan et al. 2019)."""

    def __init__(self, sizes: dict[str, int], seed: int, temperature: float = 2.0):
        if temperature <= 0:
            raise ValueError("trainer.temperature must be positive")
        super().__init__({t: float(n) ** (1.0 / temperature) for t, n in sizes.items()}, seed)


class RoundRobinSchedule:
    """Shuffled round robin with exhaustion.

    Each round visits every task that still has batches left in this pass, in a fresh random
    order; a task drops out once it has given ``batches[task]`` batches, and when every task is
    exhausted a new pass begins.
    """

    def __init__(self, batches: dict[str, int], seed: int):
        self.batches = dict(batches)
        self.rng = random.Random(f"{seed}/schedule")
        self.left = dict(batches)
        self.round: list[str] = []

    def next(self, active: list[str], step: int = 0) -> str:
        while True:
            while self.round:
                task = self.round.pop()
                if task in active and self.left[task] > 0:
                    self.left[task] -= 1
                    return task
            if not any(self.left[t] > 0 for t in active):
                self.left = dict(self.batches)
            self.round = [t for t in active if self.left[t] > 0]
            self.rng.shuffle(self.round)

    def state_dict(self) -> dict:
        return {"rng": _rng_state(self.rng), "left": dict(self.left), "round": list(self.round)}

    def load_state_dict(self, state: dict) -> None:
        _set_rng_state(self.rng, state["rng"])
        self.left, self.round = dict(state["left"]), list(state["round"])


class CyclicSchedule:
    """One batch from every task in turn, in a fixed order: decaNLP's fully joint training
    (McCann et al. 2018, §4), where every task gets the same number of batches whatever its size
    (``round_robin`` instead gives each task a share that follows its size)."""

    def __init__(self, tasks: list[str]):
        self.order, self.position = list(tasks), 0

    def next(self, active: list[str], step: int = 0) -> str:
        if not any(t in active for t in self.order):
            raise ValueError(f"no active task among {self.order}")
        while True:
            task = self.order[self.position % len(self.order)]
            self.position += 1
            if task in active:
                return task

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])


class AnnealedSchedule(WeightedSchedule):
    """Annealed sampling (Stickland & Murray, ICML 2019, §4): p_k ∝ n_k^α with α going from 1
    (proportional) at step 0 down to 1/T at ``max_steps`` (T = ``trainer.temperature``), so
    large tasks dominate early and small tasks catch up later."""

    def __init__(self, sizes: dict[str, int], seed: int, temperature: float, max_steps: int):
        super().__init__({t: float(n) for t, n in sizes.items()}, seed)
        self.final_alpha, self.max_steps = 1.0 / temperature, max(1, max_steps)

    def next(self, active: list[str], step: int = 0) -> str:
        alpha = 1.0 + (self.final_alpha - 1.0) * min(step / self.max_steps, 1.0)
        return self.rng.choices(active, weights=[self.weights[t] ** alpha for t in active])[0]


class AntiCurriculum:
    """Anti-curriculum pre-training (McCann et al. 2018, decaNLP §4): the first ``steps`` steps
    draw only from ``tasks`` (the hardest ones, chosen by the user), then every task trains."""

    def __init__(self, base, tasks: list[str], steps: int):
        self.base, self.tasks, self.steps = base, list(tasks), steps

    def next(self, active: list[str], step: int = 0) -> str:
        if step < self.steps:
            chosen = [t for t in active if t in self.tasks]
            if chosen:
                return self.base.next(chosen, step)
        return self.base.next(active, step)

    def state_dict(self) -> dict:
        return self.base.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.base.load_state_dict(state)


def build_schedule(name: str, sizes: dict[str, int], batches: dict[str, int], seed: int,
                   temperature: float = 2.0, max_steps: int = 1, pretrain_tasks: list[str] = (),
                   pretrain_steps: int = 0):
    base = _base_schedule(name, sizes, batches, seed, temperature, max_steps)
    if pretrain_steps and pretrain_tasks:
        return AntiCurriculum(base, list(pretrain_tasks), pretrain_steps)
    return base


def _base_schedule(name: str, sizes: dict[str, int], batches: dict[str, int], seed: int,
                   temperature: float, max_steps: int):
    if name == "annealed":
        return AnnealedSchedule(sizes, seed, temperature, max_steps)
    if name == "uniform":
        return UniformSchedule(sizes, seed)
    if name == "proportional":
        return ProportionalSchedule(sizes, seed)
    if name == "temperature":
        return TemperatureSchedule(sizes, seed, temperature)
    if name == "round_robin":
        return RoundRobinSchedule(batches, seed)
    if name == "cyclic":
        return CyclicSchedule(list(batches))
    raise ValueError(f"trainer.schedule: unknown schedule {name!r} "
                     "(uniform, round_robin, cyclic, proportional, temperature, annealed)")
