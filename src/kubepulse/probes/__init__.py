"""kubepulse.probes"""
