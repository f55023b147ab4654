"""The HTTP API as Faust web views (the app's own aiohttp layer)."""
