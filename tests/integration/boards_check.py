#!/usr/bin/env python3
"""boards_check.py - checks that a board's config fragment works as shipped.

The image recipes append boards/<name>/board.conf to firmware/coverd.conf. This test
does the same, runs `coverd -n -c <merged>` (check the config and print it normalised)
and requires exit status 0 and every key the board sets to come out with the board's
value. So a board file with an unknown key, a bad value, or a key the shipped config
already sets (coverd refuses duplicates) fails here rather than on a device.

Usage: boards_check.py SHIPPED_CONF BOARD_CONF -- COVERD [ARGS...]
(COVERD may be preceded by an emulator such as qemu-aarch64 -L SYSROOT.)
"""
import os
import subprocess
import sys
import tempfile


def parse_ini(text):
    """Returns {(section, key): value} for an INI text with whole-line # and ; comments."""
    out = {}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if "=" not in line:
            raise ValueError("not a key = value line: %r" % raw)
        key, value = line.split("=", 1)
        out[(section, key.strip())] = value.strip()
    return out


def main():
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        sys.exit(__doc__)
    shipped, board = sys.argv[1:3]
    coverd = sys.argv[4:]
    with open(shipped, encoding="utf-8") as f:
        shipped_text = f.read()
    with open(board, encoding="utf-8") as f:
        board_text = f.read()
    wanted = parse_ini(board_text)
    if not wanted:
        sys.exit("FAIL: %s sets no key" % board)

    with tempfile.TemporaryDirectory() as tmp:
        merged = os.path.join(tmp, "coverd.conf")
        with open(merged, "w", encoding="utf-8") as f:
            f.write(shipped_text)
            if shipped_text and not shipped_text.endswith("\n"):
                f.write("\n")
            f.write(board_text)
        res = subprocess.run(coverd + ["-n", "-c", merged], capture_output=True, text=True,
                             timeout=60)
    if res.returncode != 0:
        sys.exit("FAIL: coverd -n exited %d for %s appended to %s\nstdout:\n%s\nstderr:\n%s"
                 % (res.returncode, board, shipped, res.stdout, res.stderr))
    try:
        got = parse_ini(res.stdout)
    except ValueError as e:
        sys.exit("FAIL: coverd -n printed something that is not INI: %s\n%s" % (e, res.stdout))

    bad = []
    for (section, key), value in sorted(wanted.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        if (section, key) not in got:
            bad.append("[%s] %s: missing from coverd -n output" % (section, key))
        elif got[(section, key)] != value:
            bad.append("[%s] %s: board sets %r, coverd -n prints %r"
                       % (section, key, value, got[(section, key)]))
    if bad:
        sys.exit("FAIL: %s\n  %s\n(board values must be written in normalised form)\n"
                 "coverd -n output:\n%s" % (board, "\n  ".join(bad), res.stdout))
    print("ok: %s: %d keys applied" % (os.path.relpath(board), len(wanted)))


if __name__ == "__main__":
    main()
