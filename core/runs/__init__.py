"""Runs: the run directory (rundir, events), what its states and events mean (protocol), listing
runs (listing), the lifecycle every caller uses to check, start, resume, stop and delete runs
(lifecycle, launch_checks, launch), and the worker process itself (worker). All but worker are
torch-free at import: the TUI reads and stops runs through them.
"""
