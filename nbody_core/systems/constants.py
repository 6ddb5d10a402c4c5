"""Numbers the systems layer shares: the body cap and the figure-eight's period.

JAX-free and import-free, so the preset registry (which must list presets without loading JAX)
and the initial-condition builders read the same values without importing each other.
"""

__all__ = ["MAX_BODIES", "FIGURE_EIGHT_PERIOD"]

MAX_BODIES = 20_000  # cap for scalable presets built by name (CLI, dashboard, ensembles)

# Chenciner & Montgomery (2000), Ann. Math. 152, 881; the period of Simo's (2002) initial
# data, to 8 digits; G = m = 1.
FIGURE_EIGHT_PERIOD = 6.32591398
