"""kubepulse.web"""
