"""An object carrying a big buffer, pickled with an out-of-band PickleBuffer
and rebuilt on the buffer it is given (no copy on the receiving side)."""
from pickle import PickleBuffer


class Blob:
    def __init__(self, data):
        self.data = memoryview(data)

    def __reduce_ex__(self, protocol):
        if protocol < 5:
            return (Blob, (bytes(self.data),))
        return (Blob, (PickleBuffer(self.data),))
