"""Faust agents and tasks: command workers, projections, status, the publisher, DLQ."""
