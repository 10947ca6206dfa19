"""The UDFs of bench/duckdb_udf.py (importable: manygil sends them by reference)."""
import threading


def identity(x):
    return x


def work_1us(x):
    """About 1 us of pure Python per row (CPython 3.13, this machine)."""
    t = x
    for i in range(18):
        t = (t * 31 + i) & 0xFFFFF
    return t


def work_10us(x):
    """About 10 us of pure Python per row."""
    t = x
    for i in range(165):
        t = (t * 31 + i) & 0xFFFFF
    return t


def string_udf(s):
    return s.upper()[::-1]


def thread_token(_x):
    return threading.get_ident()
