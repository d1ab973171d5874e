"""The example app behind ``python -m gradtx compare``: a client of gradtx, not part of it.

- :mod:`gradtx.examples.cli`: the command line (options, checks, dispatch to a task).
- :mod:`gradtx.examples.compare`: ``--task digits``, an MLP on scikit-learn's 8x8 digits.
- :mod:`gradtx.examples.lm_task`: ``--task lm``, a small byte-level transformer language
  model on Python's standard library, and the optimizer registry that
  ``benchmarks/steps_to_target.py`` and ``notebooks/07_frontier.ipynb`` share.

``import gradtx`` does not import this package.  scikit-learn and matplotlib
(``pip install "gradtx[examples]"``) are imported only when a task loads the
digits or draws a figure.
"""
