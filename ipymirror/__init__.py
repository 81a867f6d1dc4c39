"""ipymirror: a terminal console for a shared Jupyter kernel.

Peers' cells appear live, labelled, above your own prompt.
"""

__version__ = "0.1.0"
