"""IAS15: 15th-order Gauss-Radau integration with adaptive steps, in one jitted ``lax.while_loop``.

Written from Rein & Spiegel 2015, MNRAS 446, 1424 (RS15), after Everhart (1985). Over one
step of length ``dt`` the acceleration is a polynomial in ``s = t / dt``::

    a(s) = a0 + b0 s + b1 s**2 + ... + b6 s**7                      (RS15 eq. 4)

whose coefficients ``b`` come from accelerations sampled at the 8 Gauss-Radau nodes ``h_k``
(written in Newton form with coefficients ``g``, eq. 5-7). Integrating twice gives position
and velocity at any ``s`` (eq. 9-10). A predictor-corrector iterates the ``b`` to a fixed
point (sec. 2.3), here with the 7 nodes' forces evaluated as one batch per pass (a Jacobi
sweep; RS15 sweeps the nodes in turn). The next step is ``dt (epsilon / error)**(1/7)`` with
the error ``max |b6| / max |a|`` (sec. 3.2, eq. 11-12; ``adaptive_mode="global"``, the
default) or from each body's acceleration, jerk and snap (Pham, Rein & Spiegel 2024,
``adaptive_mode="prs23"``, REBOUND's default: fewer, longer steps). A step whose successor
would be 4x (``1 / safety_factor``) shorter is rejected and redone. The next step's ``b``
are predicted from this step's polynomial (sec. 2.5, the ``e`` coefficients). Positions,
velocities and time are carried with compensated (Kahan) summation (sec. 5), and forces are
evaluated on compensated pair separations (Newtonian gravity, up to 64 bodies) or after a
translation to the most accelerated body (other potentials): on the Pythagorean problem the
energy error at t = 70 is ~1e-13, against REBOUND's ~3e-11.

Interface: :func:`solve_ias15` is the ``ias15`` record's solver in
:data:`~nbody_core.integrate.integrators.INTEGRATORS`; call it through :func:`nbody_core.solve`
(``solve(state, t_end=..., integrator="ias15", adaptive_mode="prs23")``; ``t_end`` is an end
time, not a duration).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from nbody_core.physics.forces import Acceleration
from nbody_core.physics.potentials import NEWTONIAN
from nbody_core.physics.state import ParticleState, PhysicsParams
from .adjoint import ADJOINTS, bounded_while_loop, is_traced, loop_of, result_code
from .options import check_positive_number
from .solution import RESULTS, Solution, Stats
from .trajectory import Trajectory, conserved_quantities, empty_piece

__all__ = ["solve_ias15", "EPSILON", "SAFETY_FACTOR", "GAUSS_RADAU_SPACINGS", "ADAPTIVE_MODES"]

EPSILON = 1e-9  # RS15 sec. 3.2: the step-size parameter; 1e-9 keeps the error at machine precision
SAFETY_FACTOR = 0.25  # RS15 sec. 3.2: largest growth (x4) and the rejection threshold (x1/4)
PREDICTOR_CORRECTOR_TOLERANCE = 1e-16  # RS15 sec. 2.3: converged when |delta b6| / |a| < 1e-16
MAX_ITERATIONS = 12  # RS15 sec. 2.3: give up iterating after 12 passes
NO_PREDICTION_RATIO = 20.0  # step growth beyond which the previous polynomial is not extrapolated
ADAPTIVE_MODES = ("global", "prs23")  # step-size criteria: RS15 sec. 3.2, and PRS23 (REBOUND's default)
# Newtonian runs up to this many bodies take forces from compensated pair separations with the
# kernel below; beyond it (and for other potentials) the chosen force method, [7, n, 3] at once.
PAIRWISE_MAX_BODIES = 64
UNROLLED_MAX_BODIES = 8  # pair loop written out (no reductions: one fused kernel) up to this N

# Gauss-Radau spacings on [0, 1] for 15th order (RS15 table 1; Everhart 1985): the zero node
# and the seven roots of the Radau quadrature polynomial.
GAUSS_RADAU_SPACINGS = (
    0.0,
    0.0562625605369221464656521910318,
    0.180240691736892364987579942780,
    0.352624717113169637373907769648,
    0.547153626330555383001448554766,
    0.734210177215410531523210605558,
    0.885320946839095768090359771030,
    0.977520613561287501891174488626,
)


def _coefficients():
    """Newton <-> monomial conversion matrices, computed in extended precision.

    ``N_j(s) = s (s - h_1) ... (s - h_{j-1})`` (``j = 1..7``) is the Newton basis of RS15 eq. 5;
    ``C[j-1, m-1]`` is the coefficient of ``s**m`` in ``N_j``, so ``b[m-1] = sum_j g[j-1] C[j-1, m-1]``
    (RS15's ``c_ij``); ``D`` inverts it (``g = D b``, RS15's ``d_ij``).
    """
    h = np.array(GAUSS_RADAU_SPACINGS, dtype=np.longdouble)
    C = np.zeros((7, 7), dtype=np.longdouble)
    poly = np.array([0.0, 1.0], dtype=np.longdouble)  # s, lowest power first
    for j in range(1, 8):
        if j > 1:
            poly = np.concatenate([[0.0], poly]) - h[j - 1] * np.concatenate([poly, [0.0]])
        C[j - 1, : j] = poly[1 : j + 1]
    M = C.T  # b = M g, unit upper triangular
    D = np.zeros_like(M)
    identity = np.eye(7, dtype=np.longdouble)
    for column in range(7):  # back substitution: exact structure, no pivoting needed
        x = np.zeros(7, dtype=np.longdouble)
        for row in range(6, -1, -1):
            x[row] = identity[row, column] - np.dot(M[row, row + 1 :], x[row + 1 :])
        D[:, column] = x
    return C, D


_C, _D = _coefficients()
_H = tuple(float(x) for x in GAUSS_RADAU_SPACINGS)
# Position / velocity weights of b_k after integrating a(s) twice / once (RS15 eq. 9-10):
# x(s) = x0 + s dt v0 + (s dt)**2 [a0/2 + sum_k b_k s**(k+1) / ((k+2)(k+3))],
# v(s) = v0 + s dt [a0 + sum_k b_k s**(k+1) / (k+2)].
_X_WEIGHTS = np.array([1.0 / ((k + 2) * (k + 3)) for k in range(7)])
_V_WEIGHTS = np.array([1.0 / (k + 2) for k in range(7)])
# Python-float tuples (not NumPy float64 scalars, which would promote a float32 run).
_X_NODE = tuple(tuple(float(_X_WEIGHTS[k] * _H[n] ** (k + 1)) for k in range(7)) for n in range(8))
_C_ROWS = tuple(tuple(float(c) for c in _C[j]) for j in range(7))
# Node n's position weights on b_k (times (h_n dt)**2), nodes 1..7 as rows.
_X_NODE_MATRIX = np.array(_X_NODE[1:])
_BINOMIAL = np.array([[float(math.comb(k + 1, j + 1)) if j <= k else 0.0 for k in range(7)] for j in range(7)])


def _two_sum_add(high, low, increment):
    """Kahan compensated ``high + low + increment`` -> new ``(high, low)``."""
    corrected = increment + low
    total = high + corrected
    return total, corrected - (total - high)


def _predict_b(b_last, e_last, ratio):
    """Next step's ``(b, e)`` from the last accepted step's polynomial (RS15 sec. 2.5).

    With ``s = 1 + q u`` (``q = dt_new / dt_old``) the old polynomial rewritten in the new
    step's variable ``u`` has ``e_j = q**(j+1) sum_k binom(k+1, j+1) b_k``; the last step's
    prediction error ``b - e`` is added as a correction. No prediction past a 20x growth.
    """
    dtype = b_last.dtype
    powers = ratio ** jnp.arange(1, 8, dtype=dtype)
    e = powers[:, None, None] * jnp.stack(
        [sum(float(_BINOMIAL[j, k]) * b_last[k] for k in range(j, 7)) for j in range(7)])
    b = e + (b_last - e_last)
    usable = ratio <= NO_PREDICTION_RATIO
    return jnp.where(usable, b, 0.0), jnp.where(usable, e, 0.0)


_STATIC = ("acceleration_fn", "potential", "pairwise", "adaptive_mode")


def _kernels(mass, save_times, params, epsilon, *, acceleration_fn, potential, pairwise, adaptive_mode,
             corrector_loop=lax.while_loop):
    """The loop's pieces for one run: ``(separations, pair_acceleration, acceleration, energy,
    body, cond)``, ``cond(max_steps)`` giving the loop's condition (call inside ``jit``);
    ``corrector_loop`` runs the predictor-corrector passes (a bounded loop for reverse mode)."""
    dtype = save_times.dtype
    num_saves = save_times.shape[0] - 1
    n_bodies = mass.shape[0]
    off_diagonal = ~jnp.eye(n_bodies, dtype=bool)

    def acceleration(x):
        return acceleration_fn(x, mass, params)

    def separations(x, x_low):
        """Compensated pair separations ``dr[i, j] = x_j - x_i``, ``[n, n, 3]``: the low words
        keep the bits that rounding ``x`` to float64 loses (see ``energy``)."""
        return (x[None, :, :] - x[:, None, :]) + (x_low[None, :, :] - x_low[:, None, :])

    def pair_acceleration(dr0, displacement):
        """Newtonian accelerations ``[..., n, 3]`` at separations ``dr0 + (d_j - d_i)``.

        The ``analytic`` kernel's formula on compensated separations (``dr0`` carries the low
        words): every pair, not only the anchor's, keeps ulp(r) rather than ulp(|x|) at a close
        encounter. ``displacement``: ``[..., n, 3]`` (a batch of nodes)."""
        if n_bodies <= UNROLLED_MAX_BODIES:
            terms = [[] for _ in range(n_bodies)]
            for i in range(n_bodies):
                for j in range(i + 1, n_bodies):
                    d = dr0[i, j] + (displacement[..., j, :] - displacement[..., i, :])
                    r2 = d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] + d[..., 2] * d[..., 2]
                    w = params.G * (r2 + params.softening**2)[..., None] ** -1.5 * d
                    terms[i].append(mass[j] * w)
                    terms[j].append(-mass[i] * w)
            zero = jnp.zeros_like(displacement[..., 0, :])
            return jnp.stack([sum(t) if t else zero for t in terms], axis=-2)
        dr = dr0 + (displacement[..., None, :, :] - displacement[..., :, None, :])
        r2 = jnp.sum(dr * dr, axis=-1) + params.softening**2
        inv_r3 = jnp.where(off_diagonal, jnp.where(off_diagonal, r2, 1.0) ** -1.5, 0.0)
        return params.G * jnp.einsum("...ij,...ijk->...ik", inv_r3 * mass[None, :], dr)

    def anchored_acceleration(x, anchor, displacement):
        """The chosen force method at ``x + displacement`` (``displacement`` holds the low words).

        Pair forces depend on separations only: they are evaluated with the body that feels
        the largest acceleration at the origin, so a close pair's coordinates are small and
        rounding them loses ulp(r), not ulp(|x|) (a 2500x gain at the Pythagorean problem's
        r ~ 4e-4 encounter)."""
        return acceleration((x - x[anchor]) + (displacement - displacement[anchor]))

    def energy(dr, v):
        """Total energy from compensated separations ``dr`` (:func:`separations`): they keep the
        bits that rounding ``x`` to float64 loses, which at a close encounter (r ~ 4e-4 in the
        Pythagorean problem) would alone move E by G m_i m_j ulp(x) / r**2 ~ 1e-9 E."""
        r2 = jnp.sum(dr * dr, axis=-1) + params.softening**2
        s = jnp.sqrt(jnp.where(off_diagonal, r2, 1.0))
        pair = jnp.where(off_diagonal, mass[:, None] * mass[None, :] * potential.pair_energy(s, params), 0.0)
        return 0.5 * jnp.sum(mass[:, None] * v * v) + 0.5 * jnp.sum(pair)

    def predictor_corrector(x, x_low, v, a0, dr0, b, h):
        """Iterate the b's to their fixed point (RS15 sec. 2.3), all 7 nodes at once.

        Each pass evaluates the accelerations at the 7 nodes from the current ``b`` as one
        batch, then recomputes ``g`` by divided differences (eq. 7) and ``b = C^T g`` (eq. 6).
        RS15 (and REBOUND) sweep the nodes one after another, each using the b's that the
        nodes before it updated (Gauss-Seidel); this Jacobi form converges to the same fixed
        point in about one pass more per step (3.0 against 2.3 on the Pythagorean problem) but
        a pass is ~5 fused kernels instead of ~35, which on a CPU is what a small-N step costs.
        """
        anchor = jnp.argmax(jnp.sum(a0 * a0, axis=1))
        steps = jnp.asarray(_H[1:], dtype)[:, None, None] * h  # [7, 1, 1]: h_n dt
        drift = v[None] * steps + (a0 / 2)[None] * steps**2
        if not pairwise:
            drift = drift + x_low[None]

        def body(carry):
            b, error, _, iterations, _ = carry
            poly = sum(jnp.asarray(_X_NODE_MATRIX[:, k], dtype)[:, None, None] * b[k] for k in range(7))
            displacement = drift + poly * steps**2  # [7, n, 3]
            if pairwise:
                a_nodes = pair_acceleration(dr0, displacement)
            else:
                a_nodes = jax.vmap(lambda d: anchored_acceleration(x, anchor, d))(displacement)
            change = a_nodes - a0[None]
            g = []
            for n in range(1, 8):  # divided differences (RS15 eq. 7)
                value = change[n - 1] / _H[n]
                for j in range(1, n):
                    value = (value - g[j - 1]) / (_H[n] - _H[j])
                g.append(value)
            new_b = jnp.stack([sum(_C_ROWS[j][k] * g[j] for j in range(k, 7)) for k in range(7)])
            # Convergence picks the number of passes: not differentiated (adjoint.py).
            new_error = lax.stop_gradient(jnp.max(jnp.abs(new_b[6] - b[6])) / jnp.max(jnp.abs(a_nodes[6])))
            return new_b, new_error, error, iterations + 1, a_nodes[6]

        def cond(carry):
            _, error, error_last, iterations, _ = carry
            converged = error < PREDICTOR_CORRECTOR_TOLERANCE
            stalled = (iterations > 2) & (error_last <= error)
            return ~converged & ~stalled & (iterations < MAX_ITERATIONS)

        big = jnp.asarray(1e300 if dtype == jnp.float64 else 1e30, dtype)
        carry = (b, big, jnp.asarray(2.0, dtype), jnp.zeros((), jnp.int32), a0)
        b, _, _, iterations, a_last = corrector_loop(cond, body, carry)
        return b, iterations, a_last

    def step_control(b, h, x, v, a0, a_last):
        """Next step size from this step's polynomial; ``h / SAFETY_FACTOR`` when undefined."""
        if adaptive_mode == "prs23":
            # PRS23 (Pham, Rein & Spiegel 2024; REBOUND's adaptive_mode 2): per body the
            # timescale tau**2 = 2 |a|**2 / (|a'|**2 + |a| |a''|) from the acceleration, jerk
            # and snap at the end of the step (in units of the step), and
            # dt = (7! epsilon)**(1/7) min_i tau_i (the factor makes epsilon = 1e-9 mean what it
            # means in RS15's criterion). Bodies with no acceleration at the start are skipped.
            a_end = a0 + sum(b[k] for k in range(7))
            jerk = sum((k + 1) * b[k] for k in range(7))
            snap = sum((k + 1) * k * b[k] for k in range(1, 7))
            y2, y3, y4 = (jnp.sum(q * q, axis=1) for q in (a_end, jerk, snap))
            timescale2 = 2 * y2 / (y3 + jnp.sqrt(y4 * y2))
            usable = (jnp.sum(a0 * a0, axis=1) > 0) & jnp.isfinite(timescale2) & (timescale2 > 0)
            smallest = jnp.min(jnp.where(usable, timescale2, jnp.inf))
            found = jnp.isfinite(smallest)
            factor = (epsilon * 5040.0) ** (1.0 / 7.0)
            return jnp.where(found, jnp.sqrt(jnp.where(found, smallest, 1.0)) * h * factor, h / SAFETY_FACTOR)
        # RS15 sec. 3.2, global form: error = max|b6| / max|a|, skipping bodies whose motion
        # over the step is below round-off (REBOUND's adaptive_mode 1 does the same).
        moving = jnp.sum(v * v, axis=1) * h * h > 1e-16 * jnp.sum(x * x, axis=1)
        max_b6 = jnp.max(jnp.where(moving[:, None], jnp.abs(b[6]), 0.0))
        max_a = jnp.max(jnp.where(moving[:, None], jnp.abs(a_last), 0.0))
        error = max_b6 / max_a
        usable = jnp.isfinite(error) & (error > 0)
        return jnp.where(usable, h * (epsilon / jnp.where(usable, error, 1.0)) ** (1.0 / 7.0), h / SAFETY_FACTOR)

    def body(carry):
        (x, x_low, v, v_low, t, t_low, a0, dr0, b_last, e_last, dt_last, h_free, index,
         accepted, rejected, iterations_total, saved_x, saved_v, e0, max_de, failed) = carry
        target = save_times[index]
        to_target = (target - t) - t_low
        lands = h_free >= to_target
        h = jnp.where(lands, to_target, h_free)
        b_guess, e_guess = _predict_b(b_last, e_last, jnp.where(dt_last > 0, h / dt_last, 2 * NO_PREDICTION_RATIO))
        b, iterations, a_last = predictor_corrector(x, x_low, v, a0, dr0, b_guess, h)
        # Step-size control is not differentiated (nbody_core/integrate/adjoint.py).
        h_new = step_control(*lax.stop_gradient((b, h, x, v, a0, a_last)))
        reject = h_new < SAFETY_FACTOR * h
        h_new = jnp.minimum(h_new, h / SAFETY_FACTOR)

        # The end of the step (RS15 eq. 9-10 at s = 1), added with compensated summation.
        increment_x = h * v + h * h * (a0 / 2 + sum(float(_X_WEIGHTS[k]) * b[k] for k in range(7)))
        increment_v = h * (a0 + sum(float(_V_WEIGHTS[k]) * b[k] for k in range(7)))
        new_x, new_x_low = _two_sum_add(x, x_low, increment_x)
        new_v, new_v_low = _two_sum_add(v, v_low, increment_v)
        new_t, new_t_low = _two_sum_add(t, t_low, h)
        new_t, new_t_low = jnp.where(lands, target, new_t), jnp.where(lands, 0.0, new_t_low)
        finite = jnp.all(jnp.isfinite(new_x)) & jnp.all(jnp.isfinite(new_v)) & jnp.isfinite(h_new)
        ok = ~reject & finite
        new_dr0 = separations(new_x, new_x_low)
        if pairwise:
            new_a0 = pair_acceleration(new_dr0, jnp.zeros_like(new_x))
        else:
            anchor = jnp.argmax(jnp.sum(a0 * a0, axis=1))  # as in predictor_corrector
            new_a0 = acceleration((new_x - new_x[anchor]) + (new_x_low - new_x_low[anchor]))
        new_de = jnp.abs(energy(new_dr0, new_v) - e0)

        pick = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
        x, x_low, v, v_low = pick(new_x, x), pick(new_x_low, x_low), pick(new_v, v), pick(new_v_low, v_low)
        t, t_low, a0, dr0 = pick(new_t, t), pick(new_t_low, t_low), pick(new_a0, a0), pick(new_dr0, dr0)
        b_last, e_last, dt_last = pick(b, b_last), pick(e_guess, e_last), pick(h, dt_last)
        max_de = pick(jnp.maximum(max_de, new_de), max_de)
        # A step shortened to land on a save time does not shrink the free step size.
        h_free = jnp.where(ok & lands, jnp.maximum(h_free, h_new), h_new)
        saved = ok & lands
        saved_x = saved_x.at[index].set(jnp.where(saved, x, saved_x[index]))
        saved_v = saved_v.at[index].set(jnp.where(saved, v, saved_v[index]))
        index = index + saved.astype(index.dtype)
        return (x, x_low, v, v_low, t, t_low, a0, dr0, b_last, e_last, dt_last, h_free, index,
                accepted + ok.astype(jnp.int32), rejected + (~ok).astype(jnp.int32),
                iterations_total + iterations, saved_x, saved_v, e0, max_de, ~finite)

    def cond(max_steps):
        def going_on(carry):
            h_free, index, accepted, rejected, failed = carry[11], carry[12], carry[13], carry[14], carry[20]
            return ((index <= num_saves) & (accepted + rejected < max_steps) & (h_free > 0)
                    & jnp.isfinite(h_free) & ~failed)
        return going_on

    return separations, pair_acceleration, acceleration, energy, body, cond


@partial(jax.jit, static_argnames=_STATIC)
def _ias15_start(state, save_times, params, epsilon, initial_dt, **static):
    """The loop's carry at ``save_times[0]`` (see :func:`_ias15_steps`)."""
    dtype = state.position.dtype
    num_saves = save_times.shape[0] - 1
    separations, pair_acceleration, acceleration, energy, _, _ = _kernels(
        state.mass, save_times, params, epsilon, **static)
    pairwise = static["pairwise"]
    x0, v0 = state.position, state.velocity
    dr0 = separations(x0, jnp.zeros_like(x0))
    a0 = pair_acceleration(dr0, jnp.zeros_like(x0)) if pairwise else acceleration(x0)
    # First step: a hundredth of the shortest sqrt(|x_i| / |a_i|) over bodies away from the origin
    # and accelerated, at most one save interval; a poor guess only costs rejected steps.
    r2, a2 = jnp.sum(x0 * x0, axis=1), jnp.sum(a0 * a0, axis=1)
    usable = (r2 > 0) & (a2 > 0)
    timescale = jnp.min(jnp.where(usable, (r2 / jnp.where(usable, a2, 1.0)) ** 0.25, jnp.inf))
    h0 = jnp.minimum(1e-2 * timescale, save_times[1] - save_times[0]).astype(dtype)
    h0 = lax.stop_gradient(jnp.where(initial_dt > 0, initial_dt, h0))  # not differentiated (adjoint.py)
    saved_x = jnp.zeros((num_saves + 1,) + x0.shape, dtype).at[0].set(x0)
    saved_v = jnp.zeros((num_saves + 1,) + v0.shape, dtype).at[0].set(v0)
    zero = jnp.zeros((), dtype)
    count = jnp.zeros((), jnp.int32)
    coefficients = jnp.zeros((7,) + x0.shape, dtype)
    carry = (x0, jnp.zeros_like(x0), v0, jnp.zeros_like(v0), save_times[0], zero, a0, dr0, coefficients,
             coefficients, zero, h0, jnp.ones((), jnp.int32), count, count, count, saved_x, saved_v,
             energy(dr0, v0), zero, jnp.zeros((), bool))
    return carry


@partial(jax.jit, static_argnames=_STATIC)
def _ias15_steps(carry, mass, save_times, params, epsilon, max_steps, **static):
    """Go on from ``carry`` (:func:`_ias15_start` or a previous call) until every save time is
    reached or ``max_steps`` steps (accepted + rejected, counted over the whole run; traced:
    any cap reuses this compilation) were attempted. The carry is the loop's whole state, so
    calls that go on from each other give the same result as one."""
    *_, body, cond = _kernels(mass, save_times, params, epsilon, **static)
    return lax.while_loop(cond(max_steps), body, carry)


@partial(jax.jit, static_argnames=("potential",))
def _ias15_finish(carry, state, save_times, params, *, potential):
    """The :class:`Trajectory` of a finished loop and its counters."""
    mass = state.mass
    num_saves = save_times.shape[0] - 1
    (h_free, index, accepted, rejected, iterations, saved_x, saved_v, e0, max_de, failed) = carry[11:]
    # Snapshots never reached are NaN, so they cannot pass for data.
    reached = jnp.arange(num_saves + 1) < index
    saved_x = jnp.where(reached[:, None, None], saved_x, jnp.nan)
    saved_v = jnp.where(reached[:, None, None], saved_v, jnp.nan)
    states = ParticleState(saved_x, saved_v, jnp.broadcast_to(mass, saved_x.shape[:2]), save_times, state.units)
    quantities = jax.vmap(lambda s: conserved_quantities(s, params, potential))(states)
    trajectory = Trajectory(
        time=save_times, position=saved_x, velocity=saved_v, mass=mass, energy=quantities.energy,
        linear_momentum=quantities.linear_momentum, angular_momentum=quantities.angular_momentum,
        units=state.units,
    )
    return trajectory, (index, accepted, rejected, iterations, max_de / jnp.abs(e0), failed, h_free)


@partial(jax.jit, static_argnames=_STATIC + ("max_steps", "adjoint"))
def _ias15_traced(state, save_times, params, epsilon, initial_dt, *, max_steps, adjoint, **static):
    """The whole run as one pure function (under a JAX transformation), its loops chosen by
    ``adjoint`` (:func:`~nbody_core.integrate.adjoint.loop_of`)."""
    carry = _ias15_start(state, save_times, params, epsilon, initial_dt, **static)
    if adjoint == "direct":  # cond bounds the passes by MAX_ITERATIONS itself
        corrector_loop = partial(bounded_while_loop, max_steps=MAX_ITERATIONS)
    else:
        corrector_loop = lax.while_loop
    *_, body, cond = _kernels(state.mass, save_times, params, epsilon, corrector_loop=corrector_loop, **static)
    carry = loop_of(adjoint, max_steps)(cond(max_steps), body, carry)
    trajectory, counters = _ias15_finish(carry, state, save_times, params, potential=static["potential"])
    index, accepted, rejected, iterations, max_error, failed, next_dt = counters
    num_saves = save_times.shape[0] - 1
    code = result_code(reached_end=index > num_saves, steps_exhausted=accepted + rejected >= max_steps,
                       finite=~failed)
    error = jnp.where(code == int(RESULTS.successful), max_error, jnp.nan)
    stats = Stats(num_steps=accepted + rejected, num_accepted_steps=accepted, num_rejected_steps=rejected,
                  num_saves_reached=index - 1, next_dt=next_dt, max_steps=max_steps, iterations=iterations)
    return Solution(trajectory._replace(max_relative_energy_error=error.astype(save_times.dtype)), stats, code)


def solve_ias15(
    state: ParticleState,
    *,
    save_times: np.ndarray,
    params: PhysicsParams,
    acceleration: Acceleration,
    max_steps: int,
    dt: float | None = None,
    chunks: int = 1,
    on_chunk: Callable[[int, Trajectory], None] | None = None,
    steps_per_call: int | None = None,
    epsilon: float = EPSILON,
    adaptive_mode: str = "global",
    adjoint: str = "direct",
) -> Solution:
    """Integrate through ``save_times`` with IAS15 (see the module docstring; the ``ias15``
    solver: :func:`nbody_core.solve` validates the common options first).

    Steps are shortened to land exactly on each save time; the free step size is kept. The
    run is one compiled call whatever ``chunks`` says, unless ``steps_per_call`` bounds the
    steps of a call: then each call goes on from the loop's whole state (the carry), so the
    result is bit-identical to one call. ``on_chunk(saves_done, piece)`` follows each call:
    ``piece`` is empty but after the last call, where it holds every snapshot when the run
    succeeded. ``save_times`` are traced: new times of the same count do not recompile.

    Args:
        state: initial :class:`ParticleState` (float64: IAS15's tolerances assume it).
        save_times: ``[k + 1]`` float64 times, ``state.time`` first, strictly increasing.
        params: validated :class:`PhysicsParams` (traced).
        acceleration: the :class:`~nbody_core.physics.forces.Acceleration` record (unused for
            Newtonian gravity up to :data:`PAIRWISE_MAX_BODIES` bodies, which takes forces from
            compensated pair separations).
        max_steps: cap on attempted steps (accepted + rejected); snapshots not reached are NaN.
        dt: first step to try (default: 1 % of ``min_i sqrt(|x_i| / |a_i|)``, at most one
            save interval); a step too long is rejected and redone shorter.
        steps_per_call: at most this many attempted steps per compiled call (None: no bound;
            traced, any value reuses the compilation).
        epsilon: RS15's step-size parameter (1e-9: error at machine precision).
        adaptive_mode: step-size criterion: ``"global"`` (RS15 sec. 3.2, ``max|b6| / max|a|``;
            REBOUND's ``adaptive_mode = 1``) or ``"prs23"`` (Pham, Rein & Spiegel 2024, from
            each body's acceleration, jerk and snap; REBOUND's default ``adaptive_mode = 2``):
            on the Pythagorean problem 5378 steps instead of 12561 at the same epsilon,
            |dE/E| ~ 1e-13 both.
        adjoint: under a JAX transformation (a traced state, params or ``dt``), the loops
            the run is one pure function of: ``"direct"`` (every transformation) or
            ``"forward"`` (no reverse mode; stops at the end under ``vmap``); see
            :mod:`nbody_core.integrate.adjoint`. Unused otherwise.

    Returns:
        A :class:`Solution`: the trajectory's ``max_relative_energy_error`` is taken over every
        accepted step (NaN unless the run reached its end); ``stats.iterations`` counts the
        predictor-corrector passes (each costs 7 force evaluations, made as one batch). Under
        a transformation the stats and the result code are traced arrays.

    Raises:
        ValueError: for a bad ``epsilon``, ``adaptive_mode`` or ``adjoint``.
    """
    epsilon = check_positive_number("epsilon", epsilon)
    if adaptive_mode not in ADAPTIVE_MODES:
        raise ValueError(f"adaptive_mode must be one of {ADAPTIVE_MODES}, got {adaptive_mode!r}")
    if adjoint not in ADJOINTS:
        raise ValueError(f"adjoint must be one of {ADJOINTS}, got {adjoint!r}")
    dtype = state.position.dtype
    potential = acceleration.potential
    params = PhysicsParams(*(jnp.asarray(p, dtype) for p in params))
    pairwise = bool(potential.pair_energy is NEWTONIAN.pair_energy and state.position.shape[0] <= PAIRWISE_MAX_BODIES)
    static = dict(acceleration_fn=acceleration, potential=potential, pairwise=pairwise, adaptive_mode=adaptive_mode)
    state = state._replace(time=jnp.asarray(state.time, dtype))
    times, epsilon = jnp.asarray(save_times, dtype), jnp.asarray(epsilon, dtype)
    num_saves = len(save_times) - 1
    initial_dt = jnp.asarray(0.0 if dt is None else dt, dtype)
    if is_traced(state, params, dt):
        solution = _ias15_traced(state, times, params, epsilon, initial_dt, max_steps=max_steps, adjoint=adjoint,
                                 **static)
        return solution._replace(stats=solution.stats._replace(max_steps=max_steps))
    carry = _ias15_start(state, times, params, epsilon, initial_dt, **static)
    attempted = 0
    while True:  # calls of at most steps_per_call steps, each going on from the last
        cap = max_steps if steps_per_call is None else min(max_steps, attempted + steps_per_call)
        carry = _ias15_steps(carry, state.mass, times, params, epsilon, np.asarray(cap, np.int32), **static)
        h_free, index, accepted, rejected = (np.asarray(c) for c in carry[11:15])
        attempted = int(accepted) + int(rejected)
        going_on = (int(index) <= num_saves and attempted < max_steps and float(h_free) > 0
                    and math.isfinite(float(h_free)) and not bool(carry[20]))
        if not going_on:
            break
        if on_chunk is not None:
            on_chunk(int(index) - 1, empty_piece(state))
    trajectory, counters = _ias15_finish(carry, state, times, params, potential=potential)
    index, accepted, rejected, iterations, max_error, failed, next_dt = (np.asarray(c) for c in counters)
    index, accepted, rejected = int(index), int(accepted), int(rejected)
    if index > num_saves:
        result = RESULTS.successful
    elif accepted + rejected >= max_steps:
        result = RESULTS.max_steps_reached
    elif bool(failed):
        result = RESULTS.nonfinite
    else:
        result = RESULTS.step_size_underflow
    error = float(max_error) if result is RESULTS.successful else float("nan")
    trajectory = trajectory._replace(max_relative_energy_error=jnp.asarray(error, dtype))
    if on_chunk is not None:  # the last call's piece: every snapshot once the run succeeded
        on_chunk(index - 1, trajectory if result is RESULTS.successful else empty_piece(state))
    stats = Stats(
        num_steps=accepted + rejected, num_accepted_steps=accepted, num_rejected_steps=rejected,
        num_saves_reached=index - 1, next_dt=float(next_dt), max_steps=max_steps, iterations=int(iterations),
    )
    return Solution(trajectory, stats, result)
