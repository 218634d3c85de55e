"""MkDocs hooks: the repository's README.md and CHANGELOG.md become pages of the site, and the files
the pages link outside docs/ (the studies' figures under models/) are copied into it.

The pages link as files do on GitHub (`serving.md`, `../README.md`, `../models/.../sweep.png`,
and from README.md `docs/serving.md`), so they read the same there and here; these hooks map those
links onto the site. Nothing here imports kerasdrop: `make docs` needs only the `docs` extra.
"""

from __future__ import annotations

import pathlib
import posixpath
import re

from mkdocs.structure.files import File

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Repository files that are pages of the site, and the page each becomes.
PAGES_FROM_ROOT = {"README.md": "index.md", "CHANGELOG.md": "changelog.md"}
# A Markdown link or image target: ](target) or ](target#anchor), not a URL and not an anchor alone.
LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|#)([^)\s#]+)(#[^)\s]*)?\)")


def _repository_path(target: str, page_in_root: bool) -> str | None:
    """The path from the repository's root that `target` names, or None when it is inside docs/."""
    path = posixpath.normpath(target if page_in_root else posixpath.join("docs", target))
    if path.startswith("docs/") or path.startswith(".."):
        return None
    return path


def _site_target(target: str, page_in_root: bool) -> str:
    path = posixpath.normpath(target if page_in_root else posixpath.join("docs", target))
    if path.startswith("docs/"):
        return path[len("docs/") :]
    return PAGES_FROM_ROOT.get(path, path)


def on_files(files, config):
    for source, page in PAGES_FROM_ROOT.items():
        files.append(File.generated(config, page, abs_src_path=str(ROOT / source)))
    wanted: set[str] = set()
    pages = [(ROOT / source, True) for source in PAGES_FROM_ROOT]
    pages += [(path, False) for path in (ROOT / "docs").glob("*.md")]
    for path, in_root in pages:
        for target, _anchor in LINK.findall(path.read_text()):
            repository_path = _repository_path(target, in_root)
            if (
                repository_path
                and repository_path not in PAGES_FROM_ROOT
                and (ROOT / repository_path).is_file()
            ):
                wanted.add(repository_path)
    for repository_path in sorted(wanted):
        files.append(File.generated(config, repository_path, abs_src_path=str(ROOT / repository_path)))
    return files


def on_page_markdown(markdown, page, config, files):
    in_root = page.file.src_uri in PAGES_FROM_ROOT.values()

    def relink(match: re.Match) -> str:
        return f"]({_site_target(match.group(1), in_root)}{match.group(2) or ''})"

    return LINK.sub(relink, markdown)
