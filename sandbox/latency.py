"""Answer-latency distributions for the desk's simulated agents and auto-responders.

Each model samples from a `random.Random` owned by the caller, so a seeded desk replays the
same latencies run after run.
"""

from __future__ import annotations

import math
import random
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# z-score of the 95th percentile of the standard normal distribution.
_Z95 = 1.6448536269514722


class FixedLatency(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    distribution: Literal["fixed"] = "fixed"
    seconds: float = Field(ge=0)

    def sample(self, rng: random.Random) -> float:
        return self.seconds


class UniformLatency(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    distribution: Literal["uniform"]
    low: float = Field(ge=0)
    high: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> UniformLatency:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)


class LognormalLatency(BaseModel):
    """Long-tailed human answer times, given as the median and 95th percentile people quote."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    distribution: Literal["lognormal"]
    median: float = Field(gt=0)
    p95: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LognormalLatency:
        if self.p95 < self.median:
            raise ValueError(f"p95 ({self.p95}) must be >= median ({self.median})")
        return self

    def sample(self, rng: random.Random) -> float:
        mu = math.log(self.median)
        sigma = (math.log(self.p95) - mu) / _Z95
        return rng.lognormvariate(mu, sigma)


Latency = Annotated[
    FixedLatency | UniformLatency | LognormalLatency, Field(discriminator="distribution")
]
