"""desktop/webengine_env.py: QtWebEngine's environment for each caller (the app, the attention CLI, the
self-test), with or without a display, as root or not."""

from __future__ import annotations

import sys

import pytest

from desktop import webengine_env
from desktop.webengine_env import prepare_webengine

VARS = ("QT_QPA_PLATFORM", "QTWEBENGINE_CHROMIUM_FLAGS", "QTWEBENGINE_DISABLE_SANDBOX", "DISPLAY", "WAYLAND_DISPLAY")


@pytest.fixture
def env(monkeypatch):
    """A clean environment on Linux, not root; returns a setter for the display, the platform and root."""
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(webengine_env, "running_as_root", lambda: False)

    def setup(display: bool = False, platform: str = "linux", root: bool = False) -> None:
        if display:
            monkeypatch.setenv("DISPLAY", ":0")
        monkeypatch.setattr(sys, "platform", platform)
        monkeypatch.setattr(webengine_env, "running_as_root", lambda: root)

    return setup


def test_the_app_only_turns_the_sandbox_off_as_root(env):
    env(root=False)
    assert prepare_webengine() == {}
    env(root=True)
    assert prepare_webengine() == {"QTWEBENGINE_DISABLE_SANDBOX": "1"}  # no display: still no offscreen


def test_the_self_test_goes_offscreen_on_a_linux_without_display(env):
    import os

    env(root=True)
    assert prepare_webengine(offscreen="linux", disable_gpu="offscreen") == {
        "QT_QPA_PLATFORM": "offscreen", "QTWEBENGINE_CHROMIUM_FLAGS": "--disable-gpu", "QTWEBENGINE_DISABLE_SANDBOX": "1"}
    assert os.environ["QT_QPA_PLATFORM"] == "offscreen"


def test_the_self_test_keeps_a_display_and_windows_as_they_are(env):
    env(display=True)
    assert prepare_webengine(offscreen="linux", disable_gpu="offscreen") == {}
    env(platform="win32")
    assert prepare_webengine(offscreen="linux", disable_gpu="offscreen") == {}


def test_the_attention_cli_renders_offscreen_without_a_display_on_any_platform(env):
    env(platform="win32")
    assert prepare_webengine(offscreen="any", disable_gpu="always") == {
        "QT_QPA_PLATFORM": "offscreen", "QTWEBENGINE_CHROMIUM_FLAGS": "--disable-gpu"}


def test_the_attention_cli_disables_the_gpu_even_with_a_display(env):
    env(display=True)
    assert prepare_webengine(offscreen="any", disable_gpu="always") == {"QTWEBENGINE_CHROMIUM_FLAGS": "--disable-gpu"}


def test_values_already_set_are_kept(env, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox --disable-gpu")
    assert prepare_webengine(offscreen="linux", disable_gpu="offscreen") == {
        "QT_QPA_PLATFORM": "xcb", "QTWEBENGINE_CHROMIUM_FLAGS": "--no-sandbox --disable-gpu"}
