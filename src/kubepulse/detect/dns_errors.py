"""dns_errors: NXDOMAIN, SERVFAIL or REFUSED at an abnormal rate for a client.

NXDOMAIN is judged on its own, higher floor: with Kubernetes search domains (ndots:5) most
lookups of an external name see three NXDOMAIN answers before the one that succeeds.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from kubepulse.model import Finding

from .base import DetectorConfig, DnsDetector
from .dns_common import dns_finding, server_text
from .stats import BaselineConfig, judge, learn, ratio
from .window import FAST_SECONDS, DnsTotals, DnsWindow

HARD_ERRORS = ("SERVFAIL", "REFUSED")


class DnsErrorsConfig(DetectorConfig):
    window_seconds: float = Field(default=3.0, gt=0.0)
    min_errors: int = Field(default=3, ge=1, description="error answers in the window, at least")
    min_ratio: float = Field(default=0.3, ge=0.0, le=1.0, description="SERVFAIL+REFUSED / answers")
    min_nxdomain_ratio: float = Field(default=0.9, ge=0.0, le=1.0, description="NXDOMAIN / answers")
    critical_ratio: float = Field(default=0.9, ge=0.0, le=1.0)
    baseline: BaselineConfig = BaselineConfig(margin=0.1)


def _top_name(t: DnsTotals, rcodes: tuple[str, ...]) -> str:
    names = {k: n for k, n in t.error_names.items() if k[1] in rcodes}
    if not names:
        return ""
    qname, rcode = max(names, key=lambda k: names[k])
    return f" (e.g. {qname}: {rcode})"


class DnsErrorsDetector(DnsDetector[DnsErrorsConfig]):
    name = "dns_errors"
    config_type = DnsErrorsConfig

    def observe(self, window: DnsWindow, now: float) -> Iterator[Finding]:
        cfg = self.config
        hard_base, nx_base = window.baseline(self.name), window.baseline(self.name + ".nxdomain")

        def score(t: DnsTotals) -> tuple[int, int, float, float, bool, bool]:
            answers = t.answers
            hard = sum(t.rcodes.get(rc, 0) for rc in HARD_ERRORS)
            nx = t.rcodes.get("NXDOMAIN", 0)
            hard_rate, nx_rate = ratio(hard, answers), ratio(nx, answers)
            hard_bad = answers >= cfg.min_errors and hard >= cfg.min_errors and judge(
                hard_rate, cfg.min_ratio, hard_base, cfg.baseline)
            nx_bad = answers >= cfg.min_errors and nx >= cfg.min_errors and judge(
                nx_rate, cfg.min_nxdomain_ratio, nx_base, cfg.baseline)
            return hard, nx, hard_rate, nx_rate, hard_bad, nx_bad

        t = window.totals(now, cfg.window_seconds)
        if t.answers < cfg.min_errors:
            return
        hard, nx, hard_rate, nx_rate, hard_bad, nx_bad = score(t)
        # The newest second alone: healthy answers from before an outage would otherwise keep
        # the window's ratio under the bar until they age out of it.
        fast = window.totals(now, FAST_SECONDS)
        f_hard_bad, f_nx_bad = score(fast)[4:]
        learn(hard_rate, hard_bad or f_hard_bad, hard_base, cfg.baseline)
        learn(nx_rate, nx_bad or f_nx_bad, nx_base, cfg.baseline)
        if not (hard_bad or nx_bad) and (f_hard_bad or f_nx_bad):
            t = fast
            hard, nx, hard_rate, nx_rate, hard_bad, nx_bad = score(t)
        if not (hard_bad or nx_bad):
            return
        answers = t.answers
        if hard_bad:
            errors, rate = hard, hard_rate
            cause = (f"{server_text(t)} failing: SERVFAIL/REFUSED for {hard_rate:.0%} of answers "
                     f"(upstream down or resolver refusing){_top_name(t, HARD_ERRORS)}")
        else:
            errors, rate = nx, nx_rate
            cause = (f"names do not exist: NXDOMAIN for {nx_rate:.0%} of answers "
                     f"(typo, missing service or record){_top_name(t, ('NXDOMAIN',))}")
        yield dns_finding(
            self.name, window, t, now,
            critical=rate >= cfg.critical_ratio,
            summary=f"{window.client.display}: {errors} of {answers} DNS answers are errors",
            cause=cause,
            evidence={"answers": answers, "rcodes": dict(t.rcodes), "ratio": round(rate, 4),
                      "baseline": hard_base.as_evidence(),
                      "nxdomain_baseline": nx_base.as_evidence(),
                      "window_seconds": cfg.window_seconds},
        )
