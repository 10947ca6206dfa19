"""Functions run inside interpreters by tests/test_pep734.py (importable by
reference there; keep the imports light, see helpers/__init__.py)."""


def whences():
    """(whence of the current interpreter, whence of main), seen from here."""
    import manygil
    return manygil.get_current().whence, manygil.get_main().whence


def call_through_pickle(data, source):
    """Unpickle an Interpreter handle here and eval source in it."""
    import pickle
    return pickle.loads(data).call(eval, source)


def put_through_pickle(data, value):
    """Unpickle a Queue handle here and put value on it."""
    import pickle
    pickle.loads(data).put(value)


def put_by_id(qid, value):
    import manygil
    manygil.Queue(qid).put(value)


def main_names():
    """The names in this interpreter's __main__."""
    import sys
    return list(vars(sys.modules["__main__"]))


def main_running():
    import manygil
    return manygil.get_main().is_running()
