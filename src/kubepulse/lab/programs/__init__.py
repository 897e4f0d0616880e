"""Small programs the lab runs inside its pods: servers, clients, load, a DNS proxy, probes.

Each is run as ``python -m kubepulse.lab.programs.NAME`` inside a lab netns. Every load loop is
bounded in count and in time and stops by itself.
"""
