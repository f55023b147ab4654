"""Ports (protocols) and their adapters, one module per port."""
