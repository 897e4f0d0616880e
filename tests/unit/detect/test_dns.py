from __future__ import annotations

from kubepulse.model import LatencyStat

from .helpers import Run, dns, of

LAT, ERR, TMO = "dns_latency", "dns_errors", "dns_timeout"


def lat(n: int, mean: float) -> LatencyStat:
    return LatencyStat(mean * n, n, mean * 2)


def test_healthy_dns_with_search_domain_nxdomains_is_silent() -> None:
    run = Run()
    for _ in range(60):  # ndots:5: three NXDOMAIN per external lookup, then NOERROR
        found = run.step(dns=[dns(queries=8, rcodes={"NXDOMAIN": 6, "NOERROR": 2},
                                  latency=lat(8, 0.002))])
        assert found == []


def test_latency_guards() -> None:
    assert of(Run().step(dns=[dns(queries=4, latency=lat(4, 2.0))]), LAT) == []  # 4 answers
    assert of(Run().step(dns=[dns(queries=5, latency=lat(5, 0.099))]), LAT) == []
    found = of(Run().step(dns=[dns(queries=5, latency=lat(5, 0.1))]), LAT)
    assert len(found) == 1 and found[0].severity == "warning"
    assert found[0].labels["dns_server"] == "10.96.0.53"
    assert found[0].identity == {"src": "shop/frontend"}


def test_latency_baseline_for_a_client_with_a_slow_resolver() -> None:
    run = Run()
    for _ in range(20):
        run.step(dns=[dns(queries=10, latency=lat(10, 0.08))])
    assert of(run.step(dns=[dns(queries=10, latency=lat(10, 0.15))]), LAT) == []
    assert len(of(run.step(dns=[dns(queries=50, latency=lat(50, 1.5))]), LAT)) == 1


def test_servfail_guards() -> None:
    assert of(Run().step(dns=[dns(queries=9, rcodes={"SERVFAIL": 2, "NOERROR": 7})]), ERR) == []
    assert of(Run().step(dns=[dns(queries=11, rcodes={"SERVFAIL": 3, "NOERROR": 8})]), ERR) == []
    found = of(Run().step(dns=[dns(queries=10, rcodes={"SERVFAIL": 3, "NOERROR": 7},
                                   error_names=(("api.example.com", "SERVFAIL", 3),))]), ERR)
    assert len(found) == 1
    assert "SERVFAIL/REFUSED" in found[0].cause and "api.example.com" in found[0].cause


def test_nxdomain_needs_its_own_higher_ratio() -> None:
    assert of(Run().step(dns=[dns(queries=10, rcodes={"NXDOMAIN": 8, "NOERROR": 2})]), ERR) == []
    found = of(Run().step(dns=[dns(queries=10, rcodes={"NXDOMAIN": 9, "NOERROR": 1})]), ERR)
    assert len(found) == 1 and found[0].cause.startswith("names do not exist")


def test_timeout_guards() -> None:
    assert of(Run().step(dns=[dns(queries=10, timeouts=2)]), TMO) == []
    assert of(Run().step(dns=[dns(queries=11, timeouts=3, rcodes={"NOERROR": 8})]), TMO) == []
    found = of(Run().step(dns=[dns(queries=10, timeouts=3, rcodes={"NOERROR": 7})]), TMO)
    assert len(found) == 1 and "not answering" in found[0].cause


def test_timeouts_reported_after_their_queries_left_the_window() -> None:
    found = of(Run().step(dns=[dns(queries=0, timeouts=4)]), TMO)
    assert found and found[0].evidence["queries"] == 4


def test_resolver_hang_fires_at_the_second_timeout_despite_earlier_answers() -> None:
    # A client asking 10 times a second, one query at a time with a 2 s timeout: once the
    # resolver hangs, a timeout is reported every 2 s and nothing else. The 5 s window still
    # holds the answers from before; the 3 s window does not, and decides.
    from kubepulse.model import DnsSample

    from .helpers import FRONT

    run = Run()
    for _ in range(20):
        run.step(dns=[DnsSample(FRONT, queries=5, rcodes={"NOERROR": 5})], dt=0.5)
    steps = [DnsSample(FRONT, queries=3, rcodes={"NOERROR": 3})] + [DnsSample(FRONT)] * 3 + [
        DnsSample(FRONT, queries=1, timeouts=1)] + [DnsSample(FRONT)] * 3 + [
        DnsSample(FRONT, queries=1, timeouts=1)]
    fired_at = [i for i, d in enumerate(steps) if of(run.step(dns=[d], dt=0.5), TMO)]
    assert fired_at and fired_at[0] == len(steps) - 1


def test_nxdomain_outage_fires_on_the_newest_second_before_the_window_turns() -> None:
    # 3 s of healthy answers, then every answer NXDOMAIN: the 3 s window is still mostly
    # healthy, the newest second is not, and that is enough (dns_errors must fire <= 2 s).
    from kubepulse.model import DnsSample

    from .helpers import FRONT

    run = Run()
    for _ in range(30):
        run.step(dns=[DnsSample(FRONT, queries=10, rcodes={"NOERROR": 10})], dt=0.5)
    fired = []
    for i in range(3):
        fired += of(run.step(dns=[DnsSample(FRONT, queries=10, rcodes={"NXDOMAIN": 10})],
                             dt=0.5), "dns_errors")
        if fired:
            break
    assert fired and i <= 2, "not within 1.5 s of the outage"
