"""Make a loadable DuckDB extension from a shared library (run by meson).

    python scripts/duckdb_footer.py LIBRARY OUTPUT DUCKDB_EXTENSION_H EXT_VERSION

Writes OUTPUT = LIBRARY followed by DuckDB's 534-byte extension metadata
footer, which DuckDB reads before it opens the library:

  22 bytes  a WebAssembly custom-section header: 0x00, the section length
            531 as LEB128 (0x93 0x04), the name length 16, "duckdb_signature",
            the payload length 512 as LEB128 (0x80 0x04)
  8 x 32    fields, NUL-padded, stored last-first: field 1 the magic "4",
            2 the platform ("linux_amd64"), 3 the C API version ("v1.5.6"),
            4 the extension's version, 5 the ABI type "C_STRUCT", 6-8 empty
  256       the signature: zeros (unsigned; DuckDB loads it only with
            allow_unsigned_extensions)

The C API version is the one duckdb_extension.h compiles against (its
DUCKDB_EXTENSION_API_VERSION_* defaults), so footer and code cannot disagree.
"""
import platform
import re
import shutil
import sys


def capi_version(header):
    text = open(header, encoding="utf-8").read()
    parts = []
    for part in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(rf"#define DUCKDB_EXTENSION_API_VERSION_{part} (\d+)", text)
        if m is None:
            raise SystemExit(f"{header}: no DUCKDB_EXTENSION_API_VERSION_{part}")
        parts.append(m.group(1))
    return "v" + ".".join(parts)


def duckdb_platform():
    """DuckDB's name for this platform (DuckDB::Platform())."""
    system = {"Linux": "linux", "Darwin": "osx", "Windows": "windows"}.get(platform.system())
    machine = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64",
               "arm64": "arm64"}.get(platform.machine())
    if system is None or machine is None:
        raise SystemExit(f"no DuckDB platform name for {platform.system()} {platform.machine()}")
    return f"{system}_{machine}"


def field(text):
    raw = text.encode()
    if len(raw) > 32:
        raise SystemExit(f"metadata field {text!r} is longer than 32 bytes")
    return raw.ljust(32, b"\0")


def footer(plat, capi, ext_version):
    head = b"\x00" + bytes([0x93, 0x04, 16]) + b"duckdb_signature" + bytes([0x80, 0x04])
    fields = [field("4"), field(plat), field(capi), field(ext_version), field("C_STRUCT"),
              field(""), field(""), field("")]
    out = head + b"".join(reversed(fields)) + b"\0" * 256
    assert len(out) == 534, len(out)
    return out


def main(argv):
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    lib, out, header, ext_version = argv[1:]
    shutil.copyfile(lib, out)
    with open(out, "ab") as f:
        f.write(footer(duckdb_platform(), capi_version(header), ext_version))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
