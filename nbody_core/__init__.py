"""nbody_core: a differentiable, jitted N-body engine in pure JAX.

float64 is the default, so importing this package turns on ``jax_enable_x64``; pass
float32 states (``cast_state(state, jnp.float32)``) to compute in single precision.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from .adaptive import simulate_adaptive as simulate_adaptive  # noqa: E402
from .diagnostics import (  # noqa: E402
    angular_momentum as angular_momentum,
    center_of_mass as center_of_mass,
    center_of_mass_velocity as center_of_mass_velocity,
    kinetic_energy as kinetic_energy,
    linear_momentum as linear_momentum,
    potential_energy as potential_energy,
    relative_energy_error as relative_energy_error,
    to_center_of_mass_frame as to_center_of_mass_frame,
    total_energy as total_energy,
    virial_ratio as virial_ratio,
)
from .forces import (  # noqa: E402
    FORCE_METHODS as FORCE_METHODS,
    acceleration_analytic as acceleration_analytic,
    acceleration_autodiff as acceleration_autodiff,
    acceleration_function as acceleration_function,
    forces_analytic as forces_analytic,
    forces_autodiff as forces_autodiff,
)
from .initial_conditions import (  # noqa: E402
    solar_system_names as solar_system_names,
    FIGURE_EIGHT_PERIOD as FIGURE_EIGHT_PERIOD,
    MAX_BODIES as MAX_BODIES,
    PRESETS as PRESETS,
    Preset as Preset,
    cold_collapse as cold_collapse,
    figure_eight as figure_eight,
    get_preset as get_preset,
    kepler as kepler,
    kepler_period as kepler_period,
    plummer as plummer,
    pythagorean as pythagorean,
    rotating_disk as rotating_disk,
    solar_system as solar_system,
)
from .integrators import INTEGRATORS as INTEGRATORS, get_integrator as get_integrator  # noqa: E402
from .potentials import (  # noqa: E402
    NEWTONIAN as NEWTONIAN,
    POTENTIALS as POTENTIALS,
    POWER_LAW as POWER_LAW,
    YUKAWA as YUKAWA,
    PairPotential as PairPotential,
    pair_potential as pair_potential,
)
from .simulate import (  # noqa: E402
    ConservedQuantities as ConservedQuantities,
    Trajectory as Trajectory,
    advance as advance,
    conserved_quantities as conserved_quantities,
    first_nonfinite_index as first_nonfinite_index,
    simulate as simulate,
    steps_for_duration as steps_for_duration,
)
from .state import (  # noqa: E402
    ParticleState as ParticleState,
    PhysicsParams as PhysicsParams,
    cast_state as cast_state,
    make_state as make_state,
)
from .units import UNIT_SYSTEMS as UNIT_SYSTEMS, UnitSystem as UnitSystem, convert as convert  # noqa: E402

__version__ = "0.1.0"
