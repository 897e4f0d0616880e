"""kubepulse.export"""
