"""Where the TCSS is found, in a checkout and in an installed wheel; the theme file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import megatui
from megatui.ui import paths, themes

REPO = Path(__file__).resolve().parents[1]


def make_layout(root: Path, *, installed: bool, checkout: bool) -> Path:
    package = root / "megatui"
    (package / "ui").mkdir(parents=True)
    if installed:
        (package / "styles").mkdir()
        (package / "styles" / "app.tcss").write_text("/* installed */")
    if checkout:
        (root / "styles").mkdir()
        (root / "styles" / "app.tcss").write_text("/* checkout */")
    return package


def test_checkout_layout(tmp_path: Path) -> None:
    package = make_layout(tmp_path, installed=False, checkout=True)
    assert paths.find_styles_dir(package) == tmp_path / "styles"


def test_installed_layout_wins(tmp_path: Path) -> None:
    package = make_layout(tmp_path, installed=True, checkout=True)
    assert paths.find_styles_dir(package) == package / "styles"


def test_missing_styles_name_every_place(tmp_path: Path) -> None:
    package = make_layout(tmp_path, installed=False, checkout=False)
    with pytest.raises(FileNotFoundError) as caught:
        paths.find_styles_dir(package)
    assert str(package / "styles") in str(caught.value)
    assert str(tmp_path / "styles") in str(caught.value)


def test_this_checkout_resolves() -> None:
    sheet = paths.stylesheet()
    assert sheet.is_file()
    assert sheet.parent in paths.style_candidates(Path(megatui.__file__).resolve().parent)


def test_wheel_puts_styles_where_the_resolver_looks() -> None:
    # The resolver's first candidate must be what the wheel's force-include creates.
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include["styles"] == "megatui/styles"
    assert paths.style_candidates(Path("megatui"))[0] == Path(include["styles"])


def test_theme_store_round_trip(tmp_path: Path) -> None:
    store = tmp_path / "state" / "theme"
    assert themes.load_theme(store) is None
    themes.save_theme(store, "nord")
    assert themes.load_theme(store) == "nord"
    assert not list(store.parent.glob("*.tmp"))


def test_theme_store_tolerates_garbage(tmp_path: Path) -> None:
    store = tmp_path / "theme"
    store.write_bytes(b"\xff\xfe")
    assert themes.load_theme(store) is None
    store.write_text("  ansi \n")
    assert themes.load_theme(store) == "ansi-dark"
    assert themes.load_theme(None) is None
