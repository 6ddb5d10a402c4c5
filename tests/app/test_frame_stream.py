"""Flow control of the streamed live view without a server: chunks ahead, acknowledgements,
played frames handed over once, and rewinding the run to a played frame."""

from __future__ import annotations

import numpy as np
import pytest

from nbody_explorer.state.frame_stream import CHUNK_S, CHUNKS_AHEAD, FrameStream, SentFrame
from nbody_explorer.state.simulate import SimulationState


def _frames(first: int, count: int, generation: int = 1) -> list[SentFrame]:
    return [SentFrame(first + k, generation, 0.1 * (first + k), np.full((2, 3), first + k), np.zeros((2, 3)),
                      history=f"h{first + k}") for k in range(count)]


def test_a_chunk_holds_the_frames_of_its_playback_time_and_at_least_one():
    stream = FrameStream()
    assert stream.chunk_frames(60) == 9 and stream.chunk_frames(30) == 5  # ceil(rate x 0.15 s)
    assert stream.chunk_frames(1) == 1
    assert 0.1 <= CHUNK_S <= 0.25  # the design's 100-250 ms of playback per message
    with pytest.raises(ValueError, match="chunks_ahead"):
        FrameStream(chunks_ahead=0)


def test_the_server_stops_computing_when_far_enough_ahead_and_goes_on_as_frames_are_played():
    stream = FrameStream()
    stream.restart(run_id=4, index=10)
    chunk = stream.chunk_frames(60)
    sent = 10
    while stream.frames_wanted(60):
        count = stream.frames_wanted(60)
        assert count == chunk
        stream.sent(_frames(sent + 1, count))
        sent += count
    assert stream.ahead == CHUNKS_AHEAD * chunk == sent - 10  # bounded: a page that plays nothing gets no more
    assert stream.acknowledge(4, 10 + chunk)  # one chunk played
    assert stream.frames_wanted(60) == chunk and stream.ahead == (CHUNKS_AHEAD - 1) * chunk


def test_acknowledgements_of_another_run_an_older_stream_or_unsent_frames_say_nothing():
    stream = FrameStream()
    stream.restart(run_id=2, index=5)
    stream.sent(_frames(6, 4))
    assert not stream.acknowledge(1, 7)  # the previous run
    assert not stream.acknowledge(2, 5)  # the frame the stream started from: nothing new
    assert not stream.acknowledge(2, 10)  # never sent
    assert stream.acknowledge(2, 8) and stream.played == 8
    assert not stream.acknowledge(2, 7)  # late: the browser is past it
    stream.restart(run_id=2, index=11)  # a single frame shown (Pause): a new stream
    assert not stream.acknowledge(2, 9)  # an acknowledgement sent before that frame arrived
    with pytest.raises(ValueError, match="continues the stream"):
        stream.sent(_frames(13, 1))


def test_played_frames_are_handed_over_once_in_order_and_earlier_ones_forgotten():
    stream = FrameStream()
    stream.restart(run_id=1, index=0, frame=_frames(0, 1)[0])
    stream.sent(_frames(1, 6))
    assert stream.take_played() == []
    stream.acknowledge(1, 3)
    assert [frame.history for frame in stream.take_played()] == ["h1", "h2", "h3"]
    assert stream.take_played() == []
    assert stream.played_frame().index == 3 and len(stream) == 4  # frame 3 (to rewind to) and 4-6
    stream.acknowledge(1, 6)
    assert [frame.index for frame in stream.take_played()] == [4, 5, 6]


def test_rewinding_makes_the_played_frame_current_again_and_forgets_the_frames_after_it():
    state = SimulationState(preset="figure_eight", steps_per_frame=5)
    state.prepare()
    for _ in range(2):
        state.step_frame()
    point = state.saved_point()
    played = state.position.copy(), state.velocity.copy(), state.time, state.steps_taken
    history = len(state.history.time)
    for _ in range(3):  # computed ahead, never played
        state.step_frame()
    assert state.time > played[2]
    assert state.rewind(point)
    np.testing.assert_array_equal(state.position, played[0])
    np.testing.assert_array_equal(state.velocity, played[1])
    assert (state.time, state.steps_taken, len(state.history.time)) == (played[2], played[3], history)
    np.testing.assert_array_equal(np.asarray(state.current.position), played[0])  # full precision, exact
    state.step_frame()  # continues from the played frame: the same frame as computed the first time
    again = state.position.copy()
    assert state.rewind(point) and state.step_frame() is not None
    np.testing.assert_array_equal(state.position, again)
    state.reset()
    assert not state.rewind(point)  # a point of the previous run changes nothing


def test_a_frame_being_computed_when_the_run_is_rewound_is_not_committed():
    state = SimulationState(preset="figure_eight")
    state.prepare()
    point = state.saved_point()
    rewound = []

    def cancelled() -> bool:  # polled by step_frame; Pause rewinds the run meanwhile
        if not rewound:
            rewound.append(state.rewind(point))
        return False

    assert state.step_frame(cancelled=cancelled) is None and rewound == [True]
    assert state.frames_taken == point.frames_taken and state.time == point.time
