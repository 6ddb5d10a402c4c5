"""The one registry type: every registry of the library is a Registry, with one wording."""

import importlib
import inspect
import pkgutil
import re

import pytest

import nbody_core
from nbody_core.ensembles import member, sweeps
from nbody_core.infer import inference
from nbody_core.integrate import integrators
from nbody_core.physics import forces, potentials, state, units
from nbody_core.registry import Registry
from nbody_core.systems import presets

#: (registry, what its records are called, the public lookup that callers use).
REGISTRIES = {
    "INTEGRATORS": (integrators.INTEGRATORS, "integrator", integrators.get_integrator),
    "PRESETS": (presets.PRESETS, "preset", presets.get_preset),
    "FORCE_METHODS": (forces.FORCE_METHODS, "force method", forces.get_force_method),
    "POTENTIALS": (potentials.POTENTIALS, "potential", potentials.get_potential),
    "UNIT_SYSTEMS": (units.UNIT_SYSTEMS, "unit system", units.get_unit_system),
    "DIMENSIONS": (units.DIMENSIONS, "dimension", units.NBODY.label),
    "DTYPES": (state.DTYPES, "dtype", state.get_dtype),
    "PROBLEMS": (inference.PROBLEMS, "problem", lambda name: inference.make_problem(name)),
    "PARAMETER_SETS": (inference.PARAMETER_SETS, "parameter set",
                       lambda name: inference.make_problem("triple", params=name)),
    "SUMMARIES": (member.SUMMARIES, "summary", member.SUMMARIES.get),
    "SWEEPABLE_PARAMETERS": (sweeps.SWEEPABLE_PARAMETERS, "sweep parameter", lambda name: sweeps.parse_sweep(f"{name}=1:2")),
    "IC_PARAMETERS": (sweeps.IC_PARAMETERS, "initial-condition parameter", sweeps.IC_PARAMETERS.get),
}


def _module_registries() -> dict[int, str]:
    """Every module-level Registry of the library (any module, imported here), by identity:
    ``{id(registry): "module.NAME"}`` (a re-export is the same registry)."""
    found = {}
    for info in pkgutil.walk_packages(nbody_core.__path__, "nbody_core."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, Registry):
                found.setdefault(id(value), f"{info.name}.{name}")
    return found


def test_every_registry_of_the_library_is_listed_here_and_is_a_registry():
    found = _module_registries()
    listed = {id(registry) for registry, _, _ in REGISTRIES.values()}
    assert set(found) == listed, ("a registry was added or removed: list it in REGISTRIES",
                                  sorted(found[i] for i in set(found) - listed))
    for registry, kind, _ in REGISTRIES.values():
        assert registry.kind == kind and len(registry) > 0 and registry.names() == tuple(registry)
    # The flat API serves the same objects.
    for name in ("INTEGRATORS", "PRESETS", "FORCE_METHODS", "POTENTIALS", "UNIT_SYSTEMS"):
        assert getattr(nbody_core, name) is REGISTRIES[name][0]


@pytest.mark.parametrize("name", list(REGISTRIES))
def test_an_unknown_name_gets_the_same_wording_everywhere(name):
    registry, kind, lookup = REGISTRIES[name]
    expected = f"unknown {kind} 'warp'; choose one of {sorted(registry)}"
    assert registry.unknown_message("warp") == expected
    with pytest.raises(ValueError) as raised:
        lookup("warp")
    assert str(raised.value) == expected


def test_every_get_function_of_the_library_is_a_registry_lookup():
    """``get_*`` functions (found by name in every module) answer an unknown name with the
    registry wording, so none keeps its own dictionary and message."""
    getters = set()
    for info in pkgutil.walk_packages(nbody_core.__path__, "nbody_core."):
        module = importlib.import_module(info.name)
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("get_") and function.__module__ == info.name:
                getters.add(function)
    assert {g.__name__ for g in getters} >= {"get_integrator", "get_preset", "get_force_method", "get_potential",
                                             "get_unit_system", "get_dtype"}
    for getter in getters:
        with pytest.raises(ValueError, match=r"^unknown [a-z -]+ 'warp'; choose one of \['"):
            getter("warp")


def test_register_refuses_duplicates_wrong_types_and_empty_names():
    registry = Registry("colour", {"red": (1, 0, 0)}, record_type=tuple)
    registry.register("green", (0, 1, 0))
    assert registry.names() == ("red", "green") and registry.get("green") == (0, 1, 0)
    with pytest.raises(ValueError, match=re.escape("a colour named 'red' is already registered (pass replace=True)")):
        registry.register("red", (1, 0, 0))
    with pytest.raises(TypeError, match="a colour must be a tuple, got str"):
        registry.register("blue", "#0000ff")
    with pytest.raises(ValueError, match="a colour needs a non-empty string name, got ''"):
        registry.register("", (0, 0, 1))
    registry.register("red", (0.9, 0, 0), replace=True)
    assert registry["red"] == (0.9, 0, 0) and registry.where(lambda rgb: rgb[1] == 1) == ("green",)
    assert registry.unregister("green") == (0, 1, 0) and "green" not in registry
    with pytest.raises(TypeError):
        registry["blue"] = (0, 0, 1)  # read-only: records go in through register


def test_the_library_registries_refuse_duplicates_and_wrong_types():
    leapfrog = integrators.INTEGRATORS["leapfrog"]
    with pytest.raises(ValueError, match="an integrator named 'leapfrog' is already registered"):
        integrators.register_integrator(leapfrog)
    with pytest.raises(TypeError, match="an integrator must be an Integrator, got dict"):
        integrators.register_integrator({"name": "x"})
    with pytest.raises(ValueError, match="adaptive integrator 'half' needs a solver"):
        integrators.register_integrator(leapfrog._replace(name="half", adaptive=True))
    with pytest.raises(ValueError, match="a force method named 'analytic' is already registered"):
        forces.register_force_method(forces.FORCE_METHODS["analytic"])
    with pytest.raises(TypeError, match="a preset must be a Preset, got str"):
        presets.PRESETS.register("galaxy", "a galaxy")
    # A record passes through its own lookup (callers may hold records, not names).
    assert integrators.get_integrator(leapfrog) is leapfrog
    assert potentials.get_potential(potentials.NEWTONIAN) is potentials.NEWTONIAN
