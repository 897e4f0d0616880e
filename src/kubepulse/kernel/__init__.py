"""kubepulse.kernel"""
