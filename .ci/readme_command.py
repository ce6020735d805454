"""Print command N (1 or 2) of the README's Quick start bash block, so CI runs exactly it."""

import re
import sys
from pathlib import Path

text = Path(__file__).resolve().parent.parent.joinpath("README.md").read_text(encoding="utf-8")
block = re.search(
    r"^##+\s*Quick ?start.*?```(?:bash|sh|shell|console)?\n(.*?)```", text, re.S | re.M
)
if block is None:
    sys.exit("README.md has no '## Quick start' bash block")
commands = [
    line
    for line in block.group(1).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]
if len(commands) != 2:
    sys.exit(f"README.md Quick start must hold exactly two commands, found {len(commands)}")
print(commands[int(sys.argv[1]) - 1])
