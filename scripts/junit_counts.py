"""Sum up test results for scripts/test.sh.

junit_counts.py JOB.xml JOB.ctests   one job's counts: "P passed, F failed, S skipped (C tests P/F)"
junit_counts.py --total LOGDIR       every job's together, as the closing line "N passed, N failed, N skipped"
"""
import glob
import os
import re
import sys
import xml.etree.ElementTree as ET


def pytest_counts(path):
    """(passed, failed, skipped) of a pytest JUnit report; failed counts
    errors too; a missing or unreadable report is one failure."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return 0, 1, 0
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    tests = failed = skipped = 0
    for s in suites:
        tests += int(s.get("tests", 0))
        failed += int(s.get("failures", 0)) + int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
    return tests - failed - skipped, failed, skipped


def ctest_counts(path):
    try:
        with open(path) as f:
            m = re.search(r"(\d+) passed, (\d+) failed", f.read())
    except OSError:
        m = None
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def main(argv):
    if argv[:1] == ["--total"]:
        p = f = s = 0
        for xml in glob.glob(os.path.join(argv[1], "*.xml")):
            a, b, c = pytest_counts(xml)
            p, f, s = p + a, f + b, s + c
        for ct in glob.glob(os.path.join(argv[1], "*.ctests")):
            a, b = ctest_counts(ct)
            p, f = p + a, f + b
        print(f"{p} passed, {f} failed, {s} skipped")
        return 0
    xml, ct = argv
    cp, cf = ctest_counts(ct)
    if os.path.exists(xml):
        p, f, s = pytest_counts(xml)
        print(f"{p} passed, {f} failed, {s} skipped (C tests {cp}/{cp + cf})")
    else:
        print(f"C tests {cp} passed, {cf} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
