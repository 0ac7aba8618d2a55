"""predict_output.read_ahead: the same items in order, errors raised where they are read."""

import itertools
import threading
import traceback

import pytest

from musicrec_cli.runner.predict_output import read_ahead


def test_items_arrive_in_order_from_another_thread():
    makers = []

    def items():
        for i in range(50):
            makers.append(threading.current_thread())
            yield i

    assert list(read_ahead(items(), size=3)) == list(range(50))
    assert threading.main_thread() not in makers


def test_an_error_in_the_items_is_raised_to_the_reader_with_its_traceback():
    def items():
        yield 1
        yield 2
        msg = "bad block 3"
        raise ValueError(msg)

    ahead = read_ahead(items())
    assert [next(ahead), next(ahead)] == [1, 2]
    with pytest.raises(ValueError, match="bad block 3") as info:
        next(ahead)
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "items" in frames  # where it was raised, not only where it was read


def _alive_read_ahead_threads():
    return [t for t in threading.enumerate() if t.name == "musicrec-read-ahead"]


def test_the_thread_is_joined_when_the_reader_stops():
    made = itertools.count()

    def endless():
        while True:
            yield next(made)

    before = len(_alive_read_ahead_threads())
    ahead = read_ahead(endless(), size=2)
    assert [next(ahead) for _ in range(5)] == [0, 1, 2, 3, 4]
    ahead.close()
    assert len(_alive_read_ahead_threads()) == before  # joined by close(), no wait
    assert next(made) <= 5 + 2 + 2  # read, queued and the one in hand: not endless
