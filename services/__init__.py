"""QAS services: thin asyncio shells that read topics, call the pure core in shared/, write topics."""
