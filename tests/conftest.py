"""Suite-wide settings.

One torch thread for every test. Several tests compare two fits bit for bit
(a refit against a full fit, a round trip against the original), and the
``"auto"`` thread policy picks the number of threads from the machine's load
at the instant of each call: two fits on a busy CI machine could run with
different numbers of threads, and a different reduction order changes the
last bits. ``tests/test_threads.py`` sets its own numbers per test.
"""

import torch


def pytest_configure(config):
    torch.set_num_threads(1)
