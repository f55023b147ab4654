"""Spice Harvester on Faust: command/event-sourced ontology management."""
__version__ = "0.1.0"
