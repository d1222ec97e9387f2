"""Drivers: detached processes that run a group of normal runs one after another inside a group
directory (k-fold cross-validation: ``cv``; a hyperparameter search later). ``base`` holds what
every driver shares (group directory, lock, heartbeat, status.json, detached launch, stop,
resume); ``cv`` the k-fold specifics. Torch-free at import (the TUI lists groups)."""
