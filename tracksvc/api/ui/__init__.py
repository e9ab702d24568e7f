"""
The HTML pages (sidebar, warehouse) and their static files.
Served by the API; no logic of their own beyond presentation.
"""
