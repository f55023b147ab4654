"""The pure domain: no asyncio, no I/O. Every other layer builds on it."""
