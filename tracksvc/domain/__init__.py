"""
Domain rules, pure: references, status, flags, advice, summaries, views, records.
Imports only tracksvc.core (and carriers' contract); no I/O.
"""
