"""Runs: the run directory and its protocol (rundir, events), starting workers (launch) and the
worker process itself (worker). rundir and events are torch-free: the TUI reads runs through them.
"""
