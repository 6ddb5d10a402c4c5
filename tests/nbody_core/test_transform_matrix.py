"""The JAX contract on every force method: force method x transformation x integrator.

Each registered force method, through ``simulate`` with a symplectic (leapfrog) and a
non-symplectic (explicit Euler) fixed-step integrator, under ``grad``, ``jacfwd``, ``jacrev``, ``jvp``,
``hessian`` and ``vmap``, all inside one ``jit`` per combination (so ``jit`` is in every
cell and each combination compiles once), on the figure-eight (N = 3, 10 steps):

* equals the ``analytic`` reference to round-off (``ROUND_OFF``),
* equals central finite differences (``FD_TOL``),
* and is finite everywhere (a NaN fails it, as a silent NaN did in issue 22).

The adaptive integrators (dopri8, IAS15) have their own matrix:
tests/nbody_core/test_adaptive_transforms.py.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nbody_core as nb
from nbody_core.infer.inference import make_problem
from nbody_core.physics.forces import FORCE_METHODS

STEPS, DT = 10, 0.01
# Round-off: the kernels sum the same n = 3 terms in different orders, ~n * 2**-52 ~ 7e-16
# relative per force evaluation; 10 steps of a smooth, non-chaotic stretch of the orbit (t =
# 0.1) and one or two derivatives grow it by at most a few hundred, so 1e-12 relative to the
# largest entry leaves a margin while a wrong term (an O(1) or O(h) difference) fails.
ROUND_OFF = 1e-12
# Central differences: error h**2 / 6 * |f'''| + 2**-52 * |f| / h. With h = 1e-4 and the
# third derivatives of a 0.1-time-unit flow map of order 1-10 (|f| ~ 1), that is
# <= 1e-8 * 10 / 6 + 2e-12 ~ 2e-8; 1e-6 relative to the largest entry is that bound times 50,
# far below an O(1) error in a derivative rule.
FD_STEP = 1e-4
FD_TOL = 1e-6
# A symplectic and a non-symplectic fixed-step integrator. Explicit Euler, not RK4: one
# force evaluation per step like leapfrog, so a cell compiles in a third of RK4's time (the
# matrix must stay fast); the derivative rules under test are the kernels', not the stepper's.
FIXED_STEP = ("leapfrog", "euler")
METHODS = FORCE_METHODS.names()

# Compiled for compile speed, not run speed (each cell compiles once and runs once): XLA:CPU's
# LLVM backend at -O0 cuts the matrix's compile time; results equal to round-off.
FAST_COMPILE = {"xla_backend_optimization_level": 0}

STATE = None


def _state():
    global STATE
    if STATE is None:
        STATE = nb.figure_eight()
    return STATE


def _transforms(method, integrator, *, with_fd_hessian=False):
    """One jitted function: every transformation of the final positions in the velocities."""
    state = _state()
    weights = _weights()

    def final(velocity):
        trajectory = nb.simulate(state._replace(velocity=velocity), dt=DT, num_steps=STEPS,
                                 save_every=STEPS, integrator=integrator, forces=method)
        return trajectory.position[-1]

    def loss(velocity):
        return jnp.sum(weights * final(velocity) ** 2)

    def fd(fn, velocity):
        """Central differences of ``fn`` along every velocity component, one vmapped batch."""
        basis = jnp.eye(velocity.size).reshape((velocity.size,) + velocity.shape) * FD_STEP
        plus = jax.vmap(lambda e: fn(velocity + e))(basis)
        minus = jax.vmap(lambda e: fn(velocity - e))(basis)
        return jnp.moveaxis((plus - minus) / (2 * FD_STEP), 0, -1).reshape(
            fn(velocity).shape + velocity.shape)

    @partial(jax.jit, compiler_options=FAST_COMPILE)
    def run(velocity, tangent, batch):
        out = {
            "value": final(velocity),
            "grad": jax.grad(loss)(velocity),
            "jacfwd": jax.jacfwd(final)(velocity),
            "jacrev": jax.jacrev(final)(velocity),
            "jvp": jax.jvp(final, (velocity,), (tangent,))[1],
            "hessian": jax.hessian(loss)(velocity),
            "vmap": jax.vmap(final)(batch),
            "fd_jacobian": fd(final, velocity),
        }
        if with_fd_hessian:  # the reference's; every method equals it to round-off
            out["fd_hessian"] = fd(jax.grad(loss), velocity)
        return out

    tangent = jnp.cos(jnp.arange(state.velocity.size, dtype=state.velocity.dtype)).reshape(
        state.velocity.shape)
    batch = jnp.stack([state.velocity, 1.01 * state.velocity])
    return run(state.velocity, tangent, batch), tangent, batch


def _weights():
    shape = _state().position.shape
    return jnp.linspace(-1.0, 1.0, np.prod(shape)).reshape(shape)


_REFERENCE = {}


def _reference(integrator):
    if integrator not in _REFERENCE:
        _REFERENCE[integrator] = _transforms("analytic", integrator, with_fd_hessian=True)[0]
    return _REFERENCE[integrator]


def _close(actual, expected, rtol, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale, err_msg=what)


@pytest.mark.parametrize("integrator", FIXED_STEP)
@pytest.mark.parametrize("method", METHODS)
def test_every_transformation_of_every_force_method(method, integrator):
    out, tangent, batch = _transforms(method, integrator)
    for name, value in out.items():
        assert np.isfinite(np.asarray(value)).all(), f"{method}/{integrator}: {name} has a NaN or inf"
    reference = _reference(integrator)
    for name in ("value", "grad", "jacfwd", "jacrev", "jvp", "hessian", "vmap"):
        _close(out[name], reference[name], ROUND_OFF, f"{method}/{integrator}: {name} vs analytic")
    # The modes agree with each other and with finite differences.
    jacobian = out["jacfwd"]
    _close(out["jacrev"], jacobian, ROUND_OFF, f"{method}/{integrator}: jacrev vs jacfwd")
    _close(out["jvp"], jnp.tensordot(jacobian, tangent, axes=2), ROUND_OFF,
           f"{method}/{integrator}: jvp vs jacfwd . tangent")
    _close(jacobian, out["fd_jacobian"], FD_TOL, f"{method}/{integrator}: jacobian vs FD")
    _close(reference["hessian"], reference["fd_hessian"], FD_TOL, f"{integrator}: hessian vs FD")
    _close(out["grad"], jnp.einsum("ij...,ij->...", out["jacrev"], 2 * _weights() * out["value"]),
           ROUND_OFF, f"{method}/{integrator}: grad vs jacrev (chain rule)")
    _close(out["vmap"][0], out["value"], ROUND_OFF, f"{method}/{integrator}: vmap member 0")


def test_inference_log_density_forward_mode_and_hessian():
    # The triple masses on the default forces ("auto"; tiled_custom_vjp on a CPU): a Laplace
    # approximation needs jacfwd / hessian of the log density. Short and coarse, to be fast.
    problem = make_problem("triple", num_obs=2, t_end=0.1, dt=0.025)
    theta = jnp.asarray(problem.truth) + 0.05  # off the truth: a non-zero gradient
    logdensity = problem.logdensity_fn
    grad = jax.jit(jax.grad(logdensity))
    _close(jax.jit(jax.jacfwd(logdensity))(theta), grad(theta), ROUND_OFF, "jacfwd vs grad")
    hessian = jax.jit(jax.hessian(logdensity))(theta)
    assert np.isfinite(np.asarray(hessian)).all()
    _close(hessian, hessian.T, ROUND_OFF, "hessian symmetric")
    # Central differences of the gradient (FD_TOL's derivation, log masses of order 1).
    basis = np.eye(theta.size) * FD_STEP
    fd = np.stack([(grad(theta + e) - grad(theta - e)) / (2 * FD_STEP) for e in basis], axis=-1)
    _close(hessian, fd, FD_TOL, "hessian vs central differences of the gradient")


def test_pallas_hessian_through_a_simulation():
    # jax.hessian (forward over reverse) through a simulation with forces="pallas", not only
    # through the kernel (tests/nbody_core/test_kernels.py): with the kernel a custom_jvp, JAX's
    # partial evaluation inlined its primal inside jacrev's scan and the outer jvp reached the
    # pallas_call's own jvp, which raised inside JAX; as a primitive with its own rule it works.
    # Two steps: the cell above compiles ten, this checks both orders in a fraction of that.
    state = _state()

    def loss(velocity, method):
        trajectory = nb.simulate(state._replace(velocity=velocity), dt=DT, num_steps=2, save_every=2,
                                 forces=method)
        return jnp.sum(_weights() * trajectory.position[-1] ** 2)

    reference = jax.hessian(loss)(state.velocity, "analytic")
    for order, hessian in {"forward over reverse": jax.hessian,
                           "reverse over forward": lambda f: jax.jacrev(jax.jacfwd(f))}.items():
        _close(hessian(loss)(state.velocity, "pallas"), reference, ROUND_OFF, f"pallas: {order}")
