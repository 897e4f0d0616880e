"""The scenario runner's per-node agents (`scenarios run --per-node`): pure argv building."""

from __future__ import annotations

from pathlib import Path

from kubepulse.lab.scenarios import DEFAULT_AGENT_CMD, agent_argv

INV, OUT = Path("/tmp/inv.json"), Path("/tmp/out")


def test_one_agent_keeps_the_command_as_given() -> None:
    argv = agent_argv(DEFAULT_AGENT_CMD, INV, OUT / "alerts.jsonl")
    assert "--node" not in argv and "--listen" not in argv
    assert argv[argv.index("--state-dir") + 1] == str(OUT / "agent-state")


def test_a_node_agent_is_scoped_with_its_own_state_and_no_shared_listener() -> None:
    argv = agent_argv(DEFAULT_AGENT_CMD, INV, OUT / "alerts-node2.jsonl", "node2")
    assert argv[argv.index("--node") + 1] == "node2"
    assert argv[argv.index("--state-dir") + 1] == str(OUT / "agent-state-node2")
    assert argv[argv.index("--alerts-jsonl") + 1] == str(OUT / "alerts-node2.jsonl")
    assert argv[argv.index("--listen") + 1] == ""  # two agents cannot share 127.0.0.1:9810


def test_a_command_that_places_the_node_itself_is_not_given_it_twice() -> None:
    cmd = "my-agent --inv {inventory} --out {alerts} --scope={node} --listen 127.0.0.1:0"
    argv = agent_argv(cmd, INV, OUT / "alerts-node1.jsonl", "node1")
    assert argv == ["my-agent", "--inv", str(INV), "--out", str(OUT / "alerts-node1.jsonl"),
                    "--scope=node1", "--listen", "127.0.0.1:0"]
