"""Test helper, put on PYTHONPATH: sends this process a signal at a chosen point of a real CLI run.

``DIMENSIONX_TEST_SIGNAL=SIGTERM`` and ``DIMENSIONX_TEST_SIGNAL_AT`` name the point:
``torch`` (while that module is being imported) or ``module:Class.method`` / ``module:function``
(when it is first called, once its module has been imported; ``DIMENSIONX_TEST_SIGNAL_CALL=N``: when it is
called the Nth time).
"""

import importlib.abc
import os
import signal
import sys

SIGNAL = os.environ.get("DIMENSIONX_TEST_SIGNAL")
AT = os.environ.get("DIMENSIONX_TEST_SIGNAL_AT", "")
CALL = int(os.environ.get("DIMENSIONX_TEST_SIGNAL_CALL", "1"))


def _fire():
    os.kill(os.getpid(), getattr(signal, SIGNAL))


def _wrap(module):
    owner_path, _, name = AT.partition(":")[2].rpartition(".")
    owner = module
    for part in filter(None, owner_path.split(".")):
        owner = getattr(owner, part)
    original = getattr(owner, name)

    calls = []

    def fire_then_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == CALL:
            _fire()
        return original(*args, **kwargs)

    setattr(owner, name, fire_then_call)


class _Trigger(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        module_name = AT.partition(":")[0]
        if fullname != module_name:
            return None
        sys.meta_path.remove(self)
        if ":" not in AT:
            _fire()  # the signal arrives while the module is being imported
            return None
        spec = importlib.util.find_spec(fullname)
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_then_wrap(module):
            exec_module(module)
            _wrap(module)

        loader.exec_module = exec_then_wrap
        return spec


if SIGNAL and AT:
    import importlib.util

    sys.meta_path.insert(0, _Trigger())
