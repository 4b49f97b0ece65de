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


def test_sigterm_asks_to_stop_as_ctrl_c_does_and_a_second_one_terminates():
    from gdtools.cli.interrupt import Terminated, terminate_as_interrupt

    before = {name: signal.getsignal(getattr(signal, name)) for name in ("SIGINT", "SIGTERM", "SIGHUP")}
    err = io.StringIO()
    with pytest.raises(Terminated) as raised:
        with stop_on_interrupt("dream", saving="the dream so far", file=err) as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.requested and stop.now() and stop.exit_code == 128 + signal.SIGTERM
            assert "SIGTERM: stopping after this step and saving the dream so far" in err.getvalue()
            os.kill(os.getpid(), signal.SIGTERM)
            pytest.fail("the second SIGTERM did not abort")
    assert raised.value.signum == signal.SIGTERM
    assert {name: signal.getsignal(getattr(signal, name)) for name in before} == before
    # the CLI's own handler (every command: SIGTERM as an interrupt) comes back after the block
    with terminate_as_interrupt():
        outer = signal.getsignal(signal.SIGTERM)
        with stop_on_interrupt("dream", file=io.StringIO()):
            assert signal.getsignal(signal.SIGTERM) is not outer
        assert signal.getsignal(signal.SIGTERM) is outer
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            threading.Event().wait(1.0)  # the handler runs between bytecodes
    assert {name: signal.getsignal(getattr(signal, name)) for name in before} == before
