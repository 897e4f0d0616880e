"""kubepulse.enrich"""
