#!/usr/bin/env python3
"""Regenerates the command transcripts in README.md and docs/*.md from the current binary.

A transcript is a fenced block whose lines start with `$ ` (a command, continued on indented
lines while a `{ ... }` group is open) followed by what it printed. Every command of one file
runs in order in one scratch folder (so a tour's files carry from step to step), in one bash,
with the repository's `samples/` linked in and the freshly built `pc-qualify` first on PATH;
what each printed replaces the lines under it. Blocks that start a background process (`&`)
or name the real service are left alone. Timings and ids change from run to run: review the
diff, keep it when only those changed.

Usage, from the repository root:  scripts/transcripts.py [FILE ...]   (default: README.md and
docs/*.md; builds the release binary first, or takes the one in PCQ_BIN_DIR)
"""
import glob
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = "@@pc-qualify-transcript-end@@"
# Log lines start with a timestamp, which the docs show as `...` (it changes every run).
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\S+Z ")


def blocks(lines):
    """(start, end) line ranges of fenced blocks whose first line is a command."""
    at = 0
    while at < len(lines):
        if lines[at].startswith("```") and at + 1 < len(lines) and lines[at + 1].startswith("$ "):
            end = at + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            yield at + 1, end
            at = end
        at += 1


def commands(body):
    """The block's commands, each with the index of its first line."""
    found, at = [], 0
    while at < len(body):
        if body[at].startswith("$ "):
            text, first = body[at][2:], at
            while text.count("{") > text.count("}") and at + 1 < len(body):
                at += 1
                text += "\n" + body[at]
            found.append((first, at, text))
        at += 1
    return found


def runnable(text):
    return "&" not in text.replace("&&", "") and "export PC_" not in text


def regenerate(path, binary_dir):
    lines = open(path, encoding="utf-8").read().split("\n")
    todo = [(s, e) for s, e in blocks(lines) if all(runnable(c) for *_, c in commands(lines[s:e]))]
    if not todo:
        return False
    with tempfile.TemporaryDirectory() as scratch:
        os.symlink(os.path.join(ROOT, "samples"), os.path.join(scratch, "samples"))
        script = []
        for start, end in todo:
            for *_, text in commands(lines[start:end]):
                script.append(f"{text}\n__s=$?; echo {MARK}; (exit $__s)")
        env = dict(os.environ, PATH=binary_dir + os.pathsep + os.environ["PATH"])
        env.pop("RUST_LOG", None)
        run = subprocess.run(["bash", "-c", "\n".join(script)], cwd=scratch, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=600)
        outputs = run.stdout.split(MARK + "\n")
    # Replace from the last block up, so earlier line numbers stay valid.
    pieces = iter(outputs)
    new_blocks = []
    for start, end in todo:
        body, out = lines[start:end], []
        for first, last, _ in commands(body):
            out.extend(body[first:last + 1])
            printed = next(pieces, "").rstrip("\n")
            out.extend(TIMESTAMP.sub("... ", l) for l in printed.split("\n") if printed)
        new_blocks.append((start, end, out))
    for start, end, out in reversed(new_blocks):
        lines[start:end] = out
    text = "\n".join(lines)
    changed = text != open(path, encoding="utf-8").read()
    if changed:
        open(path, "w", encoding="utf-8").write(text)
    return changed


def main():
    binary_dir = os.environ.get("PCQ_BIN_DIR")
    if not binary_dir:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        binary_dir = os.path.join(target, "release")
    files = sys.argv[1:] or [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    for path in files:
        if regenerate(path, binary_dir):
            print(f"regenerated {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
