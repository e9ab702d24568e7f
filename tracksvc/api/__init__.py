"""
The HTTP API: middlewares, routes per surface, the UI pages, app state keys.
Imports every layer below it; nothing imports it but tracksvc.app and the CLI.
"""
