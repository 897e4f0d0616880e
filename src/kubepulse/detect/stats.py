"""Shared statistics: an EWMA baseline and the guard that combines it with absolute floors."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class BaselineConfig(BaseModel):
    """How an edge's own history raises the bar. Shared by every adaptive detector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(default=0.05, gt=0.0, le=1.0, description="EWMA weight of each new window")
    warmup_windows: int = Field(default=
        10, ge=0, description="healthy windows before the baseline is trusted"
    )
    sigmas: float = Field(default=4.0, ge=0.0, description="fire above mean + sigmas * stddev")
    factor: float = Field(
        default=1.0, ge=1.0, description="and above factor * mean (1 = off; for rates, not ratios)"
    )
    margin: float = Field(default=0.0, ge=0.0, description="and above mean + margin (absolute)")


@dataclass(slots=True)
class Ewma:
    """Exponentially weighted mean and variance of one value (West's incremental form)."""

    mean: float = 0.0
    var: float = 0.0
    n: int = 0

    def update(self, value: float, alpha: float) -> None:
        if self.n == 0:
            self.mean, self.var = value, 0.0
        else:
            diff = value - self.mean
            incr = alpha * diff
            self.mean += incr
            self.var = (1.0 - alpha) * (self.var + diff * incr)
        self.n += 1

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 0.0))

    def warm(self, cfg: BaselineConfig) -> bool:
        return self.n >= cfg.warmup_windows

    def threshold(self, cfg: BaselineConfig) -> float:
        """The value above which a window is abnormal for this history (0 while cold)."""
        if not self.warm(cfg):
            return 0.0
        return max(
            self.mean + cfg.sigmas * self.std,
            self.mean * cfg.factor,
            self.mean + cfg.margin,
        )

    def as_evidence(self) -> dict[str, float | int]:
        return {"mean": round(self.mean, 6), "stddev": round(self.std, 6), "windows": self.n}


def ratio(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def judge(value: float, floor: float, baseline: Ewma, cfg: BaselineConfig) -> bool:
    """True when ``value`` passes the absolute floor and the edge's own baseline.

    The baseline only ever raises the bar: a normally-high rate is not flagged, and a fresh
    edge (cold baseline) is judged by the absolute floor alone, so a first-time fault fires.
    """
    return value >= floor and value > baseline.threshold(cfg)


def learn(value: float, anomalous: bool, baseline: Ewma, cfg: BaselineConfig) -> None:
    """Feed healthy windows only: an incident must not teach the baseline that it is normal."""
    if not anomalous:
        baseline.update(value, cfg.alpha)
