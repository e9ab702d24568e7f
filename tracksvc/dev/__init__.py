"""
Dev-only tools: the demo, seed data, a private redis-server.
May import the carrier sandbox; no production module imports this package.
"""
