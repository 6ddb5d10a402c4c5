"""Integration: one :func:`~nbody_core.integrate.solve.solve` for every integrator.

Modules, one concern each, lowest first:

============ ================================================================
trajectory   :class:`Trajectory` (saved snapshots) and the conserved quantities
options      eager checks of run options, save-time grids
solution     :class:`Solution` (trajectory, stats, result) and :class:`RESULTS`
fixed_step   the fixed-step kernels (leapfrog, Yoshida, RK4, Euler)
adaptive     Dormand-Prince 8(7) with compensated summation
ias15        IAS15 (Rein & Spiegel 2015)
integrators  the :data:`INTEGRATORS` registry: one record per integrator
simulate     the fixed-step loop, ``simulate`` and ``advance``
solve        ``solve(state, *, t_end | num_steps, integrator=...) -> Solution``
deprecated   ``simulate_adaptive`` and ``simulate_ias15``, aliases of ``solve``
============ ================================================================
"""
