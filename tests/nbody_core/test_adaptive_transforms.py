"""The JAX contract on the adaptive integrators: {dopri8, ias15} x {grad, jacfwd, jacrev, jvp,
hessian, vmap, jit} through ``solve`` (nbody_core/integrate/adjoint.py).

On the figure-eight to t = 0.3 (12-20 adaptive steps), every transformation, in one ``jit`` per
integrator, equals central finite differences (``FD_TOL``) and the others (``ROUND_OFF``), and
is finite everywhere (a NaN fails it). ``vmap`` over initial states whose runs take different
numbers of steps equals the runs one by one.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nbody_core as nb
from nbody_core.integrate.adjoint import CHECKPOINT_STEPS

T_END = 0.3
# Two chunks of the checkpointed loop (the run itself takes < 64 steps), so the outer scan, the
# skipped chunk and the rematerialized one are all exercised.
MAX_STEPS = 2 * CHECKPOINT_STEPS
OPTIONS = {"dopri8": {"rtol": 1e-12, "atol": 1e-12}, "ias15": {}}
# Round-off: the modes compute the same derivative of the same computed map (step sizes held
# fixed) in different orders: ~2**-52 per operation over a few hundred operations on a
# non-chaotic stretch of the orbit, grown by at most a few hundred by the flow's Jacobian:
# 1e-12 relative to the largest entry (the fixed-step matrix's bound, same derivation).
ROUND_OFF = 1e-12
# Central differences of the SOLVER with FD_STEP = 1e-5: truncation h**2 / 6 |f'''| ~ 2e-10
# (|f'''| <~ 10 on this stretch) + round-off 2**-52 |f| / h ~ 2e-11; and the solver's steps move
# with the input while the derivative holds them fixed (step-size control is not
# differentiated), which differs by the local error's dependence on the step: the per-step
# tolerance (1e-12 dopri8; ~1e-15 ias15) times its sensitivity, <~ 1e-10 over 20 steps. Sum
# ~3e-10; FD_TOL = 1e-7 relative is that bound times ~300, still 1e6 below an O(1) error in a
# derivative (measured: 3e-11 dopri8, 7e-12 ias15).
FD_STEP = 1e-5
FD_TOL = 1e-7
FAST_COMPILE = {"xla_backend_optimization_level": 0}  # compiled once, run once: see test_transform_matrix


def _final(integrator, velocity, adjoint="direct"):
    state = nb.figure_eight()
    solution = nb.solve(state._replace(velocity=velocity), t_end=T_END, integrator=integrator, num_saves=1,
                        forces="analytic", max_steps=MAX_STEPS, adjoint=adjoint, **OPTIONS[integrator])
    return solution.trajectory.position[-1]


def _weights(shape):
    return jnp.linspace(-1.0, 1.0, int(np.prod(shape))).reshape(shape)


def _fd(fn, x):
    """Central differences of ``fn`` along every component of ``x`` (a host loop: ``fn`` is
    compiled once)."""
    basis = np.eye(x.size).reshape((x.size,) + x.shape) * FD_STEP
    columns = [(np.asarray(fn(x + e)) - np.asarray(fn(x - e))) / (2 * FD_STEP) for e in basis]
    return np.moveaxis(np.stack(columns), 0, -1).reshape(np.shape(fn(x)) + x.shape)


def _close(actual, expected, rtol, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * np.max(np.abs(expected)), err_msg=what)


@pytest.mark.slow
@pytest.mark.parametrize("integrator", ["dopri8", "ias15"])
def test_every_transformation_of_the_adaptive_integrators(integrator):
    velocity = nb.figure_eight().velocity
    weights = _weights(velocity.shape)
    final = partial(_final, integrator)

    def loss(v):
        return jnp.sum(weights * final(v) ** 2)

    tangent = jnp.cos(jnp.arange(velocity.size, dtype=velocity.dtype)).reshape(velocity.shape)
    # jit in every cell. The value and the gradient are compiled once each and also give the
    # finite differences (host loops over the perturbed inputs: no second copy to compile).
    value_fn = jax.jit(final, compiler_options=FAST_COMPILE)
    grad_fn = jax.jit(jax.grad(loss), compiler_options=FAST_COMPILE)

    @partial(jax.jit, compiler_options=FAST_COMPILE)
    def modes(v):
        return {
            "jacfwd": jax.jacfwd(final)(v),
            "jacrev": jax.jacrev(final)(v),
            "jvp": jax.jvp(final, (v,), (tangent,))[1],
            "hessian": jax.hessian(loss)(v),
            "jacfwd_forward_adjoint": jax.jacfwd(partial(_final, integrator, adjoint="forward"))(v),
        }

    out = {"value": value_fn(velocity), "grad": grad_fn(velocity), **modes(velocity),
           "fd_jacobian": _fd(value_fn, velocity), "fd_hessian": _fd(grad_fn, velocity)}
    for name, value in out.items():
        assert np.isfinite(np.asarray(value)).all(), f"{integrator}: {name} has a NaN or inf"
    eager = nb.solve(nb.figure_eight(), t_end=T_END, integrator=integrator, num_saves=1, forces="analytic",
                     **OPTIONS[integrator])
    assert eager.stats.num_steps < CHECKPOINT_STEPS  # the run ends in the first chunk
    _close(out["value"], eager.trajectory.position[-1], ROUND_OFF, f"{integrator}: jit vs eager")
    jacobian = out["jacfwd"]
    _close(out["jacrev"], jacobian, ROUND_OFF, f"{integrator}: jacrev vs jacfwd")
    _close(out["jacfwd_forward_adjoint"], jacobian, ROUND_OFF, f"{integrator}: forward vs direct adjoint")
    _close(out["jvp"], jnp.tensordot(jacobian, tangent, axes=2), ROUND_OFF, f"{integrator}: jvp vs jacfwd")
    _close(out["grad"], jnp.einsum("ij...,ij->...", jacobian, 2 * weights * out["value"]), ROUND_OFF,
           f"{integrator}: grad vs jacobian (chain rule)")
    _close(jacobian, out["fd_jacobian"], FD_TOL, f"{integrator}: jacobian vs FD")
    hessian = out["hessian"].reshape(velocity.size, velocity.size)
    _close(hessian, hessian.T, ROUND_OFF, f"{integrator}: hessian symmetric")
    _close(out["hessian"], out["fd_hessian"], FD_TOL, f"{integrator}: hessian vs FD of grad")
    # The derivative is not trivially zero (a wrong rule that drops the flow would pass the rest).
    assert np.max(np.abs(np.asarray(jacobian))) > 0.1


@pytest.mark.parametrize("integrator", ["dopri8", "ias15"])
def test_vmap_over_initial_states_of_different_step_counts(integrator):
    base = nb.figure_eight()
    scales = (1.0, 1.15)  # faster starts: more steps to the same end time
    eager = [nb.solve(base._replace(velocity=s * base.velocity), t_end=T_END, integrator=integrator, num_saves=2,
                      forces="analytic", **OPTIONS[integrator]) for s in scales]
    assert eager[0].stats.num_steps != eager[1].stats.num_steps  # else this test would test nothing

    @partial(jax.jit, compiler_options=FAST_COMPILE)
    def batched(velocities):
        def one(v):
            solution = nb.solve(base._replace(velocity=v), t_end=T_END, integrator=integrator, num_saves=2,
                                forces="analytic", max_steps=MAX_STEPS, **OPTIONS[integrator])
            return solution.trajectory.position, solution.stats.num_steps, solution.result
        return jax.vmap(one)(velocities)

    positions, steps, results = batched(jnp.stack([s * base.velocity for s in scales]))
    for member, solution in enumerate(eager):
        _close(positions[member], solution.trajectory.position, ROUND_OFF, f"{integrator}: vmap member {member}")
        assert int(steps[member]) == solution.stats.num_steps
        assert nb.RESULTS(int(results[member])) is nb.RESULTS.successful


@pytest.mark.parametrize("integrator", ["dopri8", "ias15"])
def test_a_traced_run_out_of_steps_says_so(integrator):
    # max_steps under a transformation: the run stops, its code says why, unreached snapshots are NaN.
    state = nb.figure_eight()
    solution = jax.jit(lambda v: nb.solve(state._replace(velocity=v), t_end=T_END, integrator=integrator,
                                          num_saves=1, forces="analytic", max_steps=3))(state.velocity)
    assert nb.RESULTS(int(solution.result)) is nb.RESULTS.max_steps_reached
    assert np.isnan(np.asarray(solution.trajectory.position[-1])).all()
    assert np.isfinite(np.asarray(solution.trajectory.position[0])).all()


def test_the_deprecated_simulate_adaptive_under_jit():
    # It refused transformations like solve (issue 22 names it); traced, its stats dict holds
    # traced counts and a message that says how to read the code.
    state = nb.figure_eight()
    messages = []

    def final(v):
        trajectory, stats = nb.simulate_adaptive(state._replace(velocity=v), t_end=T_END, num_saves=1,
                                                 integrator="ias15", forces="analytic", max_steps=MAX_STEPS)
        messages.append(stats["message"])
        return trajectory.position[-1], stats["accepted_steps"]

    with pytest.warns(DeprecationWarning):
        position, accepted = jax.jit(final)(state.velocity)
    eager = nb.solve(state, t_end=T_END, integrator="ias15", num_saves=1, forces="analytic")
    _close(position, eager.trajectory.position[-1], ROUND_OFF, "simulate_adaptive under jit vs eager solve")
    assert int(accepted) == eager.stats.num_accepted_steps
    assert messages == ["the result code is traced: RESULTS(int(result)).message once it is computed"]


def test_what_a_traced_adaptive_run_cannot_take_is_refused_in_words():
    state = nb.figure_eight()
    with pytest.raises(ValueError, match="on_chunk or steps_per_call"):
        jax.jit(lambda v: nb.solve(state._replace(velocity=v), t_end=T_END, integrator="ias15",
                                   steps_per_call=10).trajectory.position)(state.velocity)
    with pytest.raises(ValueError, match="adjoint must be one of"):
        nb.solve(state, t_end=T_END, integrator="dopri8", adjoint="backsolve")
