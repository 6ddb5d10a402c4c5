"""The solar system as a class sees it (issue 28 item 3): at the view it opens with, each inner
planet is drawn at least 20 px from the Sun, on a laptop screen and on a projector; "to scale"
puts them back within a few pixels of it; dragging on the log scale lands where the pointer
is."""

import math

import pytest

SCENE = "window.nbodyScenes['simulate-scene']"
INNER = {1: "Mercury", 2: "Venus", 3: "Earth-Moon", 4: "Mars"}  # body order: Sun first (presets)
# Issue 28: "each inner planet >= 20 px from the Sun at the default view". To scale, at the
# fitted extent of 1.25 x Neptune's 30 AU, Mercury (0.39 AU) is ~3 px from the Sun at 1280x720.
MIN_SEPARATION_PX = 20


def _separations(page) -> dict[str, float]:
    pixels = page.evaluate(f"() => [0, 1, 2, 3, 4].map(i => {SCENE}.bodyPixel(i, 0))")
    sun = pixels[0]
    return {name: math.dist(pixels[i], sun) for i, name in INNER.items()}


def _settle(page):
    # Two animation frames: the scene redraws (and re-projects) on the next frame after a change.
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


@pytest.mark.parametrize("viewport", [(1280, 720), (1920, 1080)], ids=["1280x720", "1920x1080"])
def test_inner_planets_are_drawn_apart_from_the_sun_and_to_scale_on_demand(page, open_app, ui, viewport):
    page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
    open_app("?preset=solar_system")
    ui.wait_for_scene_bodies(page, 9)
    _settle(page)
    separations = _separations(page)
    page.screenshot(path=str(ui.results_dir / f"solar-system-{viewport[0]}x{viewport[1]}.png"))
    print("pixels from the Sun, log scale:", {name: round(px) for name, px in separations.items()})
    assert min(separations.values()) >= MIN_SEPARATION_PX, separations
    # The caption says the drawing is not to scale; the link written back carries it.
    assert page.evaluate(f"() => {SCENE}.distanceScale()") == "log"
    page.wait_for_function("() => new URLSearchParams(location.search).get('distances') === 'log'")

    # "to scale": the inner planets crowd the Sun again (what the class saw before).
    page.get_by_role("button", name="to scale").click()
    page.wait_for_function(f"() => {SCENE}.distanceScale() === 'linear'")
    _settle(page)
    crowded = _separations(page)
    print("pixels from the Sun, to scale:", {name: round(px) for name, px in crowded.items()})
    assert crowded["Mercury"] < 10, crowded
    assert all(crowded[name] < separations[name] for name in INNER.values()), (crowded, separations)
    page.wait_for_function("() => new URLSearchParams(location.search).get('distances') === 'linear'")


def test_a_link_to_scale_wins_over_the_presets_default_and_other_presets_open_to_scale(page, open_app, ui):
    open_app("?preset=solar_system&distances=linear")
    ui.wait_for_scene_bodies(page, 9)
    assert page.evaluate(f"() => {SCENE}.distanceScale()") == "linear"
    open_app("?preset=figure_eight")
    ui.wait_for_scene_bodies(page, 3)
    assert page.evaluate(f"() => {SCENE}.distanceScale()") == "linear"


@pytest.mark.parametrize("view", ["3d", "xy"])
def test_the_world_point_under_a_body_is_the_body_on_the_log_scale(page, open_app, ui, view):
    """The editor drags through unproject(): it must invert the log scale, or a dragged planet
    would jump (a point at pixel p maps back to the body drawn there)."""
    open_app(f"?preset=solar_system&view={view}")
    ui.wait_for_scene_bodies(page, 9)
    _settle(page)
    for i in range(9):
        x, y = page.evaluate(f"(i) => {SCENE}.bodyPixel(i, 0)", i)
        world = page.evaluate(f"([x, y, i]) => {SCENE}.worldAt(x, y, 0, i)", [x, y, i])
        body = page.evaluate(f"(i) => {SCENE}.positions()[i]", i)
        # Positions are float32 in the page (relative 6e-8); the inverse adds a few roundings
        # of float64 arithmetic: 1e-5 of Neptune's 30 AU is far below a pixel (~0.1 AU).
        assert math.dist(world, body) <= 1e-5 * 30, (i, world, body)
