"""Small helpers shared by the benchmarks (no manygil import here)."""


def raw_create_close():
    """One create/destroy of an isolated interpreter with CPython's private
    module (the baseline for what CPython itself costs per interpreter), or
    None when the module is missing."""
    try:
        import _interpreters  # 3.13+
        return lambda: _interpreters.destroy(
            _interpreters.create(_interpreters.new_config("isolated")))
    except ImportError:
        pass
    try:
        import _xxsubinterpreters  # 3.12
        return lambda: _xxsubinterpreters.destroy(_xxsubinterpreters.create(isolated=True))
    except ImportError:
        return None
