"""The documentation holds together: relative links and their anchors resolve, the README stays a front door
(<= 10 KB), every `make` target it names exists, and the sweeps page lists every sweep."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

README_LIMIT = 10_240  # bytes
PAGES = sorted([ROOT / "README.md", ROOT / "sweeps" / "README.md", *(ROOT / "docs").rglob("*.md")])
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target), ![alt](target)
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.M)  # [label]: target
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
MAKE = re.compile(r"\bmake\s+([a-z][\w-]*)")


def prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code (links there are examples, not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def code(text: str) -> str:
    """Only the fenced code blocks and inline code of ``text``."""
    return "\n".join(m.group(0) for m in (*FENCE.finditer(text), *INLINE_CODE.finditer(FENCE.sub("", text))))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (``-`` and ``_`` kept), spaces to ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor GitHub gives the headings of ``page`` (a repeated heading gets ``-1``, ``-2``, ...)."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        base = slug(heading)
        n = counts.get(base, 0)
        counts[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def relative_links(page: Path) -> list[str]:
    """The relative targets of the Markdown links and images of ``page`` (URLs and mail links left out)."""
    text = prose(page.read_text())
    targets = LINK.findall(text) + REFERENCE.findall(text)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path) if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_docs_exist_and_readme_links_every_page():
    pages = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")}
    linked = {t.partition("#")[0] for t in relative_links(ROOT / "README.md")}
    assert pages and not pages - linked, f"README.md does not link {sorted(pages - linked)}"


def test_readme_is_a_front_door():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; keep it <= {README_LIMIT} and move detail to docs/"


def test_every_make_target_named_in_the_readme_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z0-9_-]+):(?!=)", makefile, re.M))
    named = set(MAKE.findall(code((ROOT / "README.md").read_text())))
    assert named and not named - targets, f"README.md names make targets the Makefile lacks: {sorted(named - targets)}"


def test_sweeps_page_lists_every_sweep():
    text = (ROOT / "docs" / "sweeps.md").read_text()
    sweeps = sorted(p.stem for p in (ROOT / "sweeps").glob("*.yaml"))
    assert sweeps and all(f"`{name}`" in text for name in sweeps), "docs/sweeps.md lacks a sweep file of sweeps/"


def test_the_readme_python_example_runs_on_the_toy_world(monkeypatch, capsys, tmp_path):
    """The README's Python API example, exactly as written, from another directory than the checkout."""
    block = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md has a Python example"
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "README.md", "exec"), {})  # noqa: S102 -- the project's own README
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("toy/") for line in lines)
    assert all(int(line.split()[1]) >= 1 for line in lines)  # every toy crop ran some reverse steps


def test_the_own_data_python_example_runs_on_a_folder_of_images(tmp_path, capsys):
    """docs/own_data.md's Python example (at most 15 lines), on two photos of scikit-image in a temporary folder."""
    from PIL import Image
    from skimage import data

    block = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "own_data.md").read_text(), re.S)
    assert block and len(block.group(1).strip().splitlines()) <= 15
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(data, name)()).convert("RGB").save(tmp_path / f"{name}.png")
    code = block.group(1).replace("/tmp/own/images", str(tmp_path))
    exec(compile(code, "docs/own_data.md", "exec"), {})  # noqa: S102 -- the project's own docs
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["/" + tmp_path.name + "/astronaut", "/" + tmp_path.name + "/coffee"]
    assert all(float(line.split()[2]) > 15 and 0 < float(line.split()[3]) <= 1 for line in lines)


def _section(page, title):
    text = (ROOT / page).read_text()
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_the_samples_csv_table_lists_every_column_in_order():
    from flashdiff.records import SAMPLE_COLUMNS

    table = re.findall(r"^\| `(\w+)` \|", _section("docs/outputs.md", "`samples.csv`"), re.M)
    assert tuple(table) == SAMPLE_COLUMNS


def test_every_summary_key_is_documented(tmp_path):
    """summarise() on a small folder with two draws per image and a budget plan: every key it writes is named."""
    import json

    from PIL import Image

    from flashdiff.evaluate import summarise
    from flashdiff.metrics import MetricSettings
    from flashdiff.records import SAMPLE_COLUMNS, append_samples, image_name

    rows = [dict.fromkeys(SAMPLE_COLUMNS, 1) | {"index": k // 2, "draw": k % 2, "image_id": "i", "psnr": 20.0}
            for k in range(4)]
    for k in range(2):
        for folder, name in (("clean", f"{k:05d}.png"), ("images", image_name(k, 0)), ("images", image_name(k, 1))):
            (tmp_path / folder).mkdir(exist_ok=True)
            Image.new("RGB", (8, 8), (40 * k + len(name), 90, 90)).save(tmp_path / folder / name)
    append_samples(tmp_path / "samples.csv", rows)
    (tmp_path / "plan.json").write_text(json.dumps({"alpha": 1.0}))
    keys = summarise(tmp_path, {"method": "m"}, MetricSettings(lpips=False, fid=False)).keys()
    text = _section("docs/outputs.md", "`summary.json`")
    assert not [k for k in keys if f"`{k}`" not in text]


def test_the_readme_config_table_and_methods_list_every_option():
    readme = _section("README.md", "Config groups")
    methods = (ROOT / "docs" / "methods.md").read_text()
    for group in ("dataset", "operator", "model", "solver", "adapter", "logger", "paths"):
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{group}` |"))
        wild = re.findall(r"`(\w+)_\*`", row)
        missing = [p.stem for p in (ROOT / "conf" / group).glob("*.yaml") if f"`{p.stem}`" not in row
                   and not any(p.stem.startswith(w + "_") for w in wild)]
        assert not missing, f"README's `{group}` row lacks {missing}"
    for group in ("solver", "adapter"):
        missing = [p.stem for p in (ROOT / "conf" / group).glob("*.yaml") if f"`{p.stem}`" not in methods]
        assert not missing, f"docs/methods.md lacks the {group} options {missing}"
