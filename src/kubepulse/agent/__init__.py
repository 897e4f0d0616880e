"""kubepulse.agent: the node agent (`kubepulse run`), wiring every layer together."""
