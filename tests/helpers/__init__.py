"""Support code for the manygil test suite.

Keep this package import-light: ``helpers.remote`` is imported *inside*
subinterpreters, so nothing here may import pytest, hypothesis or any module
that pulls in ``hashlib`` (CPython 3.12.1 aborts at exit when ``hashlib`` was
imported in an isolated subinterpreter).
"""
