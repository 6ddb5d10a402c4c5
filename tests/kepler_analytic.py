"""Analytic two-body motion for the tests: positions from Kepler's equation."""

import math

import numpy as np


def kepler_positions(times, *, m1, m2, a, e, G=1.0):
    """Positions ``[T, 2, 3]`` of ``nb.kepler(m1, m2, a=a, e=e)`` (pericentre at t = 0, on x)
    at ``times``, by Newton iteration on Kepler's equation ``M = E - e sin E``."""
    total = m1 + m2
    mean_motion = math.sqrt(G * total / a**3)
    mean_anomaly = mean_motion * np.asarray(times, dtype=np.float64)
    eccentric = mean_anomaly + e * np.sin(mean_anomaly)
    for _ in range(100):
        delta = (eccentric - e * np.sin(eccentric) - mean_anomaly) / (1 - e * np.cos(eccentric))
        eccentric -= delta
        if np.max(np.abs(delta)) < 1e-15:
            break
    relative = np.stack(
        [a * (np.cos(eccentric) - e), a * math.sqrt(1 - e * e) * np.sin(eccentric), np.zeros_like(eccentric)],
        axis=-1,
    )
    return np.stack([-m2 / total * relative, m1 / total * relative], axis=1)
