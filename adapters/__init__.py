"""Adapters: the ports of dc_overview implemented against real systems."""
