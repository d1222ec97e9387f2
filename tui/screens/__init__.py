"""The app's screens: runs (home), dashboard, datasets, profile editor, environment."""
