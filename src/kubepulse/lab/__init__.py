"""kubepulse.lab: a lab cluster of network-namespace pods, real faults, and a scorer.

Modules:
  topology   the plan: nodes, pods, services, addresses (pure)
  sh, procs  running ip/nft inside lab namespaces; starting, tracking and killing processes
  cluster    ``lab up | down | status``; writes the inventory (its model, loader and
             validation are kubepulse.enrich.inventory, docs/inventory.md)
  faults     the faults, each undone by ``stop()``, which appends its ground truth
  labels     ground-truth records and the fixed alert-type names
  scorer     alerts vs ground truth: precision, recall, time to detect, false alarms (pure)
  scenarios  the suite runner; demo: ``kubepulse demo``; cli: the commands
  programs/  what runs inside the pods: server, client, dnsproxy, burst, probe
"""
