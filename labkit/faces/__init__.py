"""Helpers for the lab's faces that must stay out of the engine.

``labkit`` itself never imports this package: the engine loads no widget or IPython code.
:mod:`labkit.faces.notebook` is imported by the course notebooks only; the playground keeps
its own Streamlit helper in ``playground/controls.py``.
"""
