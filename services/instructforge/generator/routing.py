"""Logical models to deployments: weighted or least-busy choice, fallbacks, and cooldown.

A deployment that fails `cooldown.failures` times in a row (retryable faults only: a bad request
says nothing about the deployment) is avoided for `cooldown.seconds`. Cooldown is a preference,
not a wall: when every deployment of a model is cooling, the call moves to the model's fallbacks,
and when there are none left it goes to the deployment that comes back first rather than failing
without trying.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from instructforge.generator.backends.base import Backend
from instructforge.generator.cache import deployment_digest
from instructforge.generator.config import CooldownConfig, DeploymentConfig, ModelRoute
from instructforge.generator.limits import AdaptiveConcurrency, TokenBucket
from instructforge.runtime.errors import NotFound


class DeploymentState:
    """A deployment at run time: its backend, limits, health and cache identity."""

    def __init__(self, config: DeploymentConfig, backend: Backend):
        self.config = config
        self.name = config.name
        self.backend = backend
        self.digest = deployment_digest(config)
        self.defaults = config.defaults.to_sampling()
        self.concurrency = AdaptiveConcurrency(config.max_concurrency, min_limit=config.min_concurrency,
                                               adaptive=config.adaptive_concurrency)
        burst = config.rate_limit_burst_s
        self.rpm = TokenBucket(config.requests_per_minute, burst) if config.requests_per_minute else None
        self.tpm = TokenBucket(config.tokens_per_minute, burst) if config.tokens_per_minute else None
        self.price_in = config.input_cost_per_million_tokens_usd
        self.price_out = config.output_cost_per_million_tokens_usd
        self.cooldown_until = 0.0
        self.failures = 0

    def cooling(self, now: float) -> bool:
        return now < self.cooldown_until

    def load(self) -> float:
        """How busy it is relative to its current limit (least-busy routing)."""
        c = self.concurrency
        return (c.in_flight + c.queued) / max(1.0, c.limit)


@dataclass
class Route:
    name: str
    deployments: list[DeploymentState]
    strategy: str
    fallbacks: list[str]
    weights: list[float]


class Router:
    def __init__(self, routes: list[ModelRoute], states: dict[str, DeploymentState], cooldown: CooldownConfig,
                 rng: random.Random | None = None):
        self.cooldown = cooldown
        self.rng = rng or random.Random()
        self.routes: dict[str, Route] = {}
        for r in routes:
            deps = [states[d.name] for d in r.deployments]
            self.routes[r.name] = Route(r.name, deps, r.strategy, list(r.fallbacks), [d.config.weight for d in deps])
        self._chains = {name: [route] + [self.routes[f] for f in route.fallbacks] for name, route in self.routes.items()}

    def chain(self, model: str) -> list[Route]:
        """The model's route, then its fallbacks' in order."""
        chain = self._chains.get(model)
        if chain is None:
            known = ", ".join(sorted(self.routes)) or "none configured"
            raise NotFound(f"unknown model {model!r}; this gateway serves: {known}", reason="MODEL_NOT_FOUND",
                           metadata={"model": model})
        return chain

    def choose(self, route: Route, now: float, avoid: str | None = None) -> DeploymentState | None:
        """A deployment not cooling down (preferring one other than `avoid`); None if all are cooling."""
        deps = route.deployments
        if len(deps) == 1:
            return None if deps[0].cooling(now) else deps[0]
        pool = [d for d in deps if not d.cooling(now) and d.name != avoid]
        if not pool:
            pool = [d for d in deps if not d.cooling(now)]
            if not pool:
                return None
        if len(pool) == 1:
            return pool[0]
        if route.strategy == "least_busy":
            least = min(d.load() for d in pool)
            pool = [d for d in pool if d.load() == least]
            return pool[0] if len(pool) == 1 else self.rng.choice(pool)
        return self.rng.choices(pool, [d.config.weight for d in pool])[0]

    @staticmethod
    def soonest(route: Route) -> DeploymentState:
        return min(route.deployments, key=lambda d: d.cooldown_until)

    def failed(self, dep: DeploymentState, now: float) -> bool:
        """Count a retryable failure; True when it benches the deployment."""
        dep.failures += 1
        if dep.failures >= self.cooldown.failures and self.cooldown.seconds > 0:
            dep.failures = 0
            dep.cooldown_until = now + self.cooldown.seconds
            return True
        return False

    @staticmethod
    def succeeded(dep: DeploymentState) -> None:
        dep.failures = 0
