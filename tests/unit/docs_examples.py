"""Load the code of a docs page so tests run exactly what the docs show."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def python_block(page: str, index: int = 0) -> types.ModuleType:
    """The ``index``-th ```python block of ``docs/<page>``, executed as a module."""
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    module = types.ModuleType(f"docs_{page.replace('.', '_')}_{index}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(blocks[index], f"docs/{page}", "exec"), module.__dict__)
    return module
