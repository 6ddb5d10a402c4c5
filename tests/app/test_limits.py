"""The cost model of a click (nbody_explorer.limits): estimates, the refusal in words, the budget."""

from __future__ import annotations

import pytest

from nbody_explorer import limits
from nbody_explorer.limits import (
    GRADIENT_COST_FACTOR,
    SECONDS_PER_PAIR_STEP,
    STEP_OVERHEAD_PAIRS,
    check_cost,
    ensemble_cpu_seconds,
    inference_cpu_seconds,
    limits_from_environment,
    simulation_cpu_seconds,
)
from nbody_explorer.runtime.scheduler import queue_text
from nbody_explorer.state.ensembles import EnsemblesState
from nbody_explorer.state.inference import InferenceState, simulation_steps


def test_simulation_cost_is_pairs_times_steps_times_the_measured_constant():
    assert simulation_cpu_seconds(num_bodies=64, num_steps=1000) == pytest.approx(
        1000 * (64**2 + STEP_OVERHEAD_PAIRS) * SECONDS_PER_PAIR_STEP
    )
    # Yoshida-4 evaluates forces three times a step.
    assert simulation_cpu_seconds(num_bodies=64, num_steps=1000, force_evaluations=3) == pytest.approx(
        3 * simulation_cpu_seconds(num_bodies=64, num_steps=1000)
    )
    # Measured (see app/limits.py): 1.5e-5 CPU s per member-step at N = 64, 4.2e-4 at 256;
    # the model stays within a factor 2 of every measured size.
    for n, measured in ((4, 2.6e-7), (8, 8.5e-7), (32, 3.6e-6), (64, 1.5e-5), (128, 6.0e-5), (256, 4.2e-4)):
        assert measured / 2 <= simulation_cpu_seconds(num_bodies=n, num_steps=1) <= measured * 2, n


def test_ensemble_cost_sums_every_member_and_the_loop_baseline():
    one = simulation_cpu_seconds(num_bodies=32, num_steps=200)
    assert ensemble_cpu_seconds(num_bodies=32, member_steps=[200] * 10) == pytest.approx(10 * one)
    assert ensemble_cpu_seconds(num_bodies=32, member_steps=[100, 200], loop_members=2) == pytest.approx(
        simulation_cpu_seconds(num_bodies=32, num_steps=300 + 2 * 200)
    )


def test_inference_cost_counts_gradients():
    # 2 chains x 10 transitions x (L + 1 = 6) gradients, each a differentiated 100-step run.
    expected = 2 * 10 * 6 * GRADIENT_COST_FACTOR * simulation_cpu_seconds(num_bodies=3, num_steps=100)
    assert inference_cpu_seconds(num_chains=2, num_transitions=10, leapfrog_steps=5, num_bodies=3,
                                 simulation_steps=100) == pytest.approx(expected)
    # Measured 7.4e-5 to 9.4e-5 CPU s per gradient of the triple problem (100 steps, N = 3).
    per_gradient = GRADIENT_COST_FACTOR * simulation_cpu_seconds(num_bodies=3, num_steps=100)
    assert 7.4e-5 / 2 <= per_gradient <= 9.4e-5 * 2


def test_refusal_says_how_much_and_what_to_reduce():
    budget = limits.LIMITS.max_click_cpu_seconds
    assert check_cost(budget * 0.5, what="This ensemble", reduce="the members") == budget * 0.5
    with pytest.raises(ValueError) as error:
        check_cost(budget * 40, what="This ensemble", reduce="the members or steps")
    text = str(error.value)
    assert text.startswith("This ensemble would need about")
    assert f"{budget} s one click may use" in text
    assert "reduce the members or steps until it is about 40 times smaller" in text
    assert "NBODY_MAX_CLICK_CPU_SECONDS" in text
    assert "3 min" in check_message(budget * 36)  # durations in minutes past two minutes


def check_message(seconds: float) -> str:
    with pytest.raises(ValueError) as error:
        check_cost(seconds, what="It", reduce="it", limits=limits.Limits(max_click_cpu_seconds=5))
    return str(error.value)


def test_budget_comes_from_the_environment():
    assert limits_from_environment({"NBODY_MAX_CLICK_CPU_SECONDS": "60"}).max_click_cpu_seconds == 60
    with pytest.raises(ValueError, match="NBODY_MAX_CLICK_CPU_SECONDS"):
        limits_from_environment({"NBODY_MAX_CLICK_CPU_SECONDS": "0"})


def test_the_default_runs_fit_and_runs_at_the_caps_are_refused_in_words():
    ensemble = EnsemblesState()
    assert ensemble.cost_seconds(ensemble.build_spec()) < limits.LIMITS.max_click_cpu_seconds
    ensemble.param.update(num_members=1024, num_bodies=512)
    assert ensemble.prepare() is None
    assert "This ensemble would need about" in ensemble.error
    assert "reduce the members or steps, or the bodies" in ensemble.error

    inference = InferenceState()
    assert inference.cost_seconds() < limits.LIMITS.max_click_cpu_seconds
    inference.param.update(num_chains=8, num_warmup=2000, num_samples=5000, leapfrog_steps=100)
    with pytest.raises(ValueError, match="reduce the chains, warm-up, samples or leapfrog steps"):
        inference.start()
    assert not inference.running


def test_simulation_steps_of_an_inference_problem():
    # triple: t_end 2.0, dt 0.02 -> 100 steps, 10 per observation with 10 observations.
    assert simulation_steps("triple", 10) == 100
    assert simulation_steps("triple", 3) == 3 * 34  # a whole number of steps per observation


def test_queue_text_in_words():
    assert queue_text(0) == ""
    assert queue_text(1).startswith("waiting: you are next")
    assert queue_text(3).startswith("waiting: 2 ahead of you")


def test_heavy_transitions_are_drawn_in_smaller_pieces():
    # 8 chains x (L + 1 = 101) gradients of ~8.8e-5 s: ~0.07 s of CPU per transition, so a
    # live-update chunk of 100 transitions (7 s) is cut to PIECE_SECONDS (3 transitions).
    from nbody_explorer.state.inference import PIECE_SECONDS

    state = InferenceState(num_chains=8, leapfrog_steps=100, chunk_size=100, auto_step_size=False, num_warmup=0,
                           num_samples=30)
    run = state.start()
    per_transition = state.cost_seconds() / 30
    assert run.chunk_size == run.warmup_block == int(PIECE_SECONDS // per_transition) == 3
    assert InferenceState().start().chunk_size == 5  # the default chunk is already small


def test_the_emulator_refuses_a_generated_ensemble_over_the_budget():
    from nbody_explorer.state.emulator import EmulatorState

    state = EmulatorState()
    state.generate_spec()  # the default sweep fits (~0.2 s)
    state.param.update(gen_members=1024, gen_bodies=128, gen_steps=2000)
    with pytest.raises(ValueError, match="This ensemble would need about .* reduce the members or steps"):
        state.generate_spec()
