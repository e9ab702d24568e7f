"""
HTTP routes, one module per surface (track, batch, portal, push, ops).
Thin: validate, call the service, answer JSON.
"""
