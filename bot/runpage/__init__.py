"""The run page: one run's timeline, gate waits, deciders, step output and audit verification,
as one self-contained HTML page (`cutover record RUN --html`, `cutover serve`'s /runs/N).

tokens.py signs and checks the expiring links; page.py reads the run from its audit rows (the
trail is what the page claims, so tests compare it with the export) and kept step output;
render.py draws it with Jinja2 (autoescaped, every string masked) and an inline SVG timeline.
"""
