import io
import os
import signal
import threading

import pytest

from gdtools.cli.interrupt import stop_on_interrupt


def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)


def test_the_first_ctrl_c_asks_to_stop_and_the_second_aborts():
    before = signal.getsignal(signal.SIGINT)
    err = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        with stop_on_interrupt("dream", saving="the dream so far", file=err) as stop:
            assert not stop.requested and not stop.now()
            ctrl_c()
            assert stop.requested and not stop.honoured
            assert stop.now() and stop.honoured
            assert "stopping after this step and saving the dream so far" in err.getvalue()
            ctrl_c()
            pytest.fail("the second Ctrl-C did not abort")
    assert signal.getsignal(signal.SIGINT) is before


def test_a_request_not_acted_on_is_not_honoured_and_the_handler_comes_back():
    before = signal.getsignal(signal.SIGINT)
    with stop_on_interrupt("dream", file=io.StringIO()) as stop:
        ctrl_c()
    assert stop.requested and not stop.honoured
    assert signal.getsignal(signal.SIGINT) is before


def test_outside_the_main_thread_it_changes_nothing():
    seen = {}

    def work():
        with stop_on_interrupt("dream") as stop:
            seen["handler"] = signal.getsignal(signal.SIGINT)
            seen["stop"] = stop.now()

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == {"handler": before, "stop": False}
