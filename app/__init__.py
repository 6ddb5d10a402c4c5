"""N-body Explorer dashboard (a Panel directory app: ``panel serve app``).

Kept import-light on purpose: Bokeh executes this package once under a generated name and
again as ``app``; only ``app/main.py`` has side effects.
"""
