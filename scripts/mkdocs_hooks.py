"""MkDocs hooks: pages generated from the repository at build time.

- ``benchmarks.md``: every ``benchmarks/results/*.md`` table (each written by its benchmark with
  the load average it ran at), under the title each table starts with.
- ``lessons.md``: every lesson file (steps, captions, questions, reveals), as the Lessons tab
  shows them.
- ``changelog.md``: CHANGELOG.md.

A page names what it includes with a marker line (``<!-- generated: benchmarks -->``); the
hook replaces the marker, so the page's own introduction stays in docs/.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _benchmarks() -> str:
    parts = []
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.md")):
        text = path.read_text(encoding="utf-8").strip()
        # Each results table starts with its own "# Title": demote it under this page's title.
        lines = [("#" + line) if line.startswith("#") else line for line in text.splitlines()]
        parts.append("\n".join(lines) + f"\n\n*Source: `benchmarks/results/{path.name}`*\n")
    return "\n\n".join(parts)


def _lesson_files() -> list[Path]:
    return sorted((ROOT / "app" / "lessons").glob("*.toml"))  # package data of nbody_explorer


def _lessons() -> str:
    parts = []
    for path in _lesson_files():
        lesson = tomllib.loads(path.read_text(encoding="utf-8"))
        lines = [f"## {lesson['title']}", "", lesson.get("summary", ""), ""]
        for number, step in enumerate(lesson.get("steps", []), start=1):
            lines.append(f"{number}. **{step.get('caption', '')}**")
            if step.get("question"):
                lines.append(f"    - *Question:* {step['question']}")
            if step.get("reveal"):
                lines.append(f"    - *Answer:* {step['reveal']}")
            settings = step.get("settings")
            if settings:
                shown = ", ".join(f"`{key} = {value}`" for key, value in settings.items())
                lines.append(f"    - *Settings:* {shown}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _changelog() -> str:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.startswith("# "))


GENERATORS = {"benchmarks": _benchmarks, "lessons": _lessons, "changelog": _changelog}


def on_files(files, config):
    """The repository's screenshots (assets/*.png, regenerated from the real app by
    scripts/screenshot.py) are served at ``assets/`` without a copy in docs/."""
    from mkdocs.structure.files import File

    for path in sorted((ROOT / "assets").glob("*.png")):
        files.append(File.generated(config, f"assets/{path.name}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs' hook signature
    for name, generate in GENERATORS.items():
        marker = f"<!-- generated: {name} -->"
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    return markdown
