"""
The ``tracksvc`` command line.
Imports the app and the layers below; dev tools only through tracksvc.dev.
"""
