"""Child-process script: RSS growth over interpreter create/close cycles.

Usage: python rss_cycles.py {manygil|raw} WARMUP CYCLES
Prints the RSS growth in bytes between the end of the warm-up and the end of
the measured cycles.  ``raw`` uses CPython's private subinterpreter module
directly (isolated config, own GIL) as a baseline for what CPython itself
leaks; prints ``unavailable`` if there is no such module.
"""
import sys

CODE = "x = [i for i in range(100)]"


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found")


def manygil_cycle():
    import manygil
    it = manygil.create()
    it.exec(CODE)
    it.close()


def raw_cycle_factory():
    try:
        import _interpreters as mod  # 3.13+

        def cycle():
            i = mod.create(mod.new_config("isolated"))
            mod.exec(i, CODE)
            mod.destroy(i)
    except ImportError:
        try:
            import _xxsubinterpreters as mod  # 3.12
        except ImportError:
            return None

        def cycle():
            i = mod.create(isolated=True)
            mod.run_string(i, CODE)
            mod.destroy(i)
    return cycle


def main():
    kind, warmup, cycles = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cycle = manygil_cycle if kind == "manygil" else raw_cycle_factory()
    if cycle is None:
        print("unavailable")
        return
    for _ in range(warmup):
        cycle()
    before = rss_bytes()
    for _ in range(cycles):
        cycle()
    print(rss_bytes() - before)


if __name__ == "__main__":
    main()
