"""nbody_core: a differentiable, jitted N-body engine in pure JAX.

States are float64 by default, which JAX computes only in its 64-bit mode: call
:func:`enable_float64` once, before computing (``import nbody_core as nb; nb.enable_float64()``).
Importing this package changes no setting; without the call, asking for a float64 state
raises a ``RuntimeError`` that names the fix (JAX would otherwise silently make it float32).
Pass float32 states (``make_state(..., dtype=jnp.float32)``, ``cast_state(state,
jnp.float32)``) to compute in single precision, with or without it.

The public names below load their module on first use (PEP 562), so ``import nbody_core``
and the JAX-free parts (the preset registry, units, provenance, :func:`enable_float64`: what
``nbody presets`` needs) do not pay for importing JAX.
"""

import importlib as _importlib
import importlib.util as _importlib_util
import pkgutil as _pkgutil
import sys as _sys
import types as _types

from .provenance import DISTRIBUTION as _DISTRIBUTION, package_version as _package_version
from .provenance import provenance as provenance  # (JAX-free; the function, not the module)

#: The installed distribution's version (``"0+unknown"`` when running from a source tree
#: that was never installed).
__version__ = _package_version(_DISTRIBUTION)
if __version__ == "not installed":
    __version__ = "0+unknown"

# Public name -> the module that defines it.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "integrate.solve": (
        "solve",
    ),
    "integrate.solution": (
        "RESULTS", "Solution", "Stats",
    ),
    "integrate.deprecated": (
        "simulate_adaptive",
    ),
    "physics.diagnostics": (
        "angular_momentum", "center_of_mass", "center_of_mass_velocity",
        "kinetic_energy", "linear_momentum", "potential_energy",
        "relative_energy_error", "to_center_of_mass_frame", "total_energy",
        "virial_ratio"
    ),
    "physics.forces": (
        "FORCE_METHODS", "acceleration_analytic", "acceleration_autodiff",
        "acceleration_function", "forces_analytic", "forces_autodiff"
    ),
    "systems.initial_conditions": (
        "cold_collapse", "figure_eight", "kepler", "kepler_period", "plummer",
        "pythagorean", "rotating_disk", "solar_system", "solar_system_names",
        "example_initial_conditions"
    ),
    "integrate.integrators": (
        "INTEGRATORS", "Integrator", "get_integrator", "register_integrator"
    ),
    "physics.precision": (
        "enable_float64", "float64_enabled"
    ),
    "physics.potentials": (
        "NEWTONIAN", "POTENTIALS", "POWER_LAW", "YUKAWA", "PairPotential",
        "pair_potential"
    ),
    "systems.presets": (
        "FIGURE_EIGHT_PERIOD", "MAX_BODIES", "PRESETS", "ICParameter", "Preset",
        "get_preset"
    ),
    "provenance": (
        "provenance",
    ),
    "integrate.simulate": (
        "advance", "simulate"
    ),
    "integrate.trajectory": (
        "ConservedQuantities", "Trajectory", "conserved_quantities", "first_nonfinite_index"
    ),
    "integrate.options": (
        "steps_for_duration",
    ),
    "physics.state": (
        "ParticleState", "PhysicsParams", "cast_state", "make_state", "resolve_params"
    ),
    "physics.units": (
        "UNIT_SYSTEMS", "UnitSystem", "convert"
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [*_MODULE_OF, "__version__"]


class _Package(_types.ModuleType):
    """The package module: the import system binds each submodule as an attribute of its
    package on first import; public functions named like their module (``simulate``,
    ``provenance``) stay the functions, as ``from .simulate import simulate`` made them."""

    def __setattr__(self, name, value):
        if name in _MODULE_OF and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name in _MODULE_OF:
        value = getattr(_importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    elif not name.startswith("_") and _importlib_util.find_spec(f"{__name__}.{name}") is not None:
        value = _importlib.import_module(f".{name}", __name__)  # a submodule, e.g. nb.ensembles
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *(module.name for module in _pkgutil.iter_modules(__path__))})
