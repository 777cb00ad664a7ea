"""One-off scripts that derive the simulator's shape parameters from real data.

They read the files under ``../shared/data/real/`` in place (never copied into the
repository) and print the few numbers that ``simulators/behaviour.py`` hard-codes.
"""
