"""Stop signals: raised in the main thread, never lost when Python swallows the first raise."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import default_stop_signals


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=60, check=False, preexec_fn=default_stop_signals)


def test_a_raise_swallowed_where_python_ignores_exceptions_is_raised_again_by_check() -> None:
    """The handler's raise can land in a finalizer or an at-fork hook, where Python prints
    "Exception ignored" and goes on; the next check() raises it again."""
    done = _run('''
        import os, signal
        from xdptest import signals

        class Swallow:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(100_000):
                    pass  # the handler runs in here, and its exception is ignored

        with signals.terminate_like_interrupt():
            Swallow()
            print("still running")
            try:
                signals.check()
            except signals.Terminated as exc:
                print("raised again:", exc)
    ''')
    assert "still running\nraised again: terminated by SIGTERM" in done.stdout, done
    assert "Exception ignored" in done.stderr


def test_once_taken_a_second_signal_does_not_cut_the_cleanup_short() -> None:
    done = _run('''
        import os, signal, time
        from xdptest import signals

        with signals.terminate_like_interrupt():
            try:
                os.kill(os.getpid(), signal.SIGHUP)
                time.sleep(5)
            except signals.Terminated as exc:
                signals.taken(exc)
                os.kill(os.getpid(), signal.SIGTERM)  # during cleanup: ignored
                time.sleep(0.1)
                signals.check()  # taken: nothing to raise again
                print("cleaned up after", exc)
    ''')
    assert done.returncode == 0 and "cleaned up after terminated by SIGHUP" in done.stdout, done
