"""Evaluation metrics as Hugging Face ``evaluate`` modules shipped inside the package.

The modules live in ``metric_modules/<name>/<name>.py`` (package data, not Python packages:
``evaluate.load`` copies and imports them itself). ``metrics.py`` loads them by name, offline.
"""
