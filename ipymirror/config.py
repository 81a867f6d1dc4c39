"""Settings the Jupyter way: config files, ``--Class.trait=value``, environment.

traitlets does the work, as in every Jupyter application: :class:`MirrorApp`
(a ``JupyterApp`` named ``jupyter-mirror``) finds ``jupyter_mirror_config.py``
or ``.json`` in the Jupyter config path (``jupyter --paths``), and the two
configurable classes below hold every setting:

* :class:`Mirror`: what every command shares (your name, colours, timeouts,
  which kernel to start and how to reach one).
* :class:`MirrorConsole`: the prompt (editing mode, exit confirmation, pager…).

Precedence, strongest first: a command-line option (``--name`` or
``--Mirror.name=…``), then the environment (``IPYMIRROR_NAME``, ``NO_COLOR``),
then the config file, then the built-in default.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

from jupyter_core.application import JupyterApp
from traitlets import Bool, CaselessStrEnum, Float, Integer, TraitError, Unicode, validate
from traitlets.config import Config, Configurable
from traitlets.config.loader import ConfigFileNotFound, KVArgParseConfigLoader

from ipymirror import __version__
from ipymirror.errors import ExitStatus, MirrorError

__all__ = [
    "Mirror",
    "MirrorApp",
    "MirrorConsole",
    "Settings",
    "fill_from_settings",
    "load_settings",
    "split_trait_args",
]

COLOR_SCHEMES = ("Linux", "LightBG", "NoColor")
IMAGE_CHOICES = ("auto", "kitty", "iterm", "sixel", "blocks", "off")


class Mirror(Configurable):
    """Settings every ipymirror command shares."""

    name = Unicode(
        "", help="How peers see you (IPYMIRROR_NAME overrides it; empty: your login name)."
    ).tag(config=True)

    colors = CaselessStrEnum(
        COLOR_SCHEMES,
        default_value="Linux",
        help="Colour scheme, as IPython's: Linux (dark background), LightBG (light "
        "background) or NoColor. NO_COLOR in the environment means NoColor.",
    ).tag(config=True)

    timeout = Float(10.0, help="Seconds to wait for the kernel to answer.").tag(config=True)

    @validate("timeout")
    def _valid_timeout(self, proposal: Any) -> float:
        return positive(proposal["value"], "Mirror.timeout")

    kernel = Unicode("python3", help="Kernelspec to start when not joining one.").tag(config=True)
    ssh = Unicode("", help="Tunnel to the kernel through this ssh server.").tag(config=True)
    sshkey = Unicode("", help="Private key file for the ssh tunnel.").tag(config=True)
    ip = Unicode(
        "",
        help="Address of the kernel's ports: where a started kernel listens "
        "(default 127.0.0.1), or the host of a joined one (overrides its file's).",
    ).tag(config=True)
    images = CaselessStrEnum(
        IMAGE_CHOICES,
        default_value="auto",
        help="How peers' images are drawn: auto (detect the terminal: kitty, iTerm2, "
        "sixel, else Unicode half-blocks; half-blocks inside tmux/screen), one of those "
        "protocols, or off (a placeholder line).",
    ).tag(config=True)
    image_rows = Integer(20, min=1, help="Terminal rows an image takes at most.").tag(config=True)


class MirrorConsole(Configurable):
    """Settings of your own prompt (the console)."""

    confirm_exit = Bool(
        True,
        help="Ask before Ctrl-D shuts down a kernel you started while others use it.",
    ).tag(config=True)
    editing_mode = CaselessStrEnum(
        ("emacs", "vi"), default_value="emacs", help="Key bindings of the prompt."
    ).tag(config=True)
    simple_prompt = Bool(
        None,
        allow_none=True,
        help="A plain line reader with no escape sequences (for Emacs shells, pipes). "
        "Default: on when TERM=dumb or stdin is not a terminal.",
    ).tag(config=True)
    banner = Bool(False, help="Show the kernel's whole banner on joining, not one line.").tag(
        config=True
    )
    pager = Unicode(
        "",
        help="Command that shows long help pages (e.g. 'less -R'). Empty: the built-in "
        "pager (arrows, PgUp/PgDn, / search, q leaves).",
    ).tag(config=True)
    highlight_matching_brackets = Bool(
        True, help="Highlight the bracket matching the cursor's."
    ).tag(config=True)
    auto_suggest = Bool(
        True, help="Suggest the rest of the line from history, fish-style (Right accepts)."
    ).tag(config=True)


class MirrorApp(JupyterApp):
    """Finds and loads the config files; ``--help-all`` and ``--generate-config``."""

    name = "jupyter-mirror"  # the config file is jupyter_mirror_config.py / .json
    version = __version__
    description = "ipymirror: a terminal console for a shared Jupyter kernel."
    raise_config_file_errors = True

    classes = [Mirror, MirrorConsole]  # noqa: RUF012 - traitlets reads it as is


def positive(value: Any, what: str) -> float:
    """A finite number > 0, or a TraitError naming ``what``."""
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise TraitError(f"{what} must be a finite number > 0, not {value!r}")
    return number


def split_trait_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate ``--Class.trait=value`` (and ``--Class.trait value``) from the rest."""
    traits: list[str] = []
    rest: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        key = arg[2:].split("=", 1)[0]
        if arg.startswith("--") and "." in key and key.split(".")[0][:1].isupper():
            traits.append(arg)
            if "=" not in arg and i + 1 < len(items):
                traits.append(items[i + 1])
                i += 1
        else:
            rest.append(arg)
        i += 1
    return traits, rest


class Settings:
    """The configured :class:`Mirror` and :class:`MirrorConsole`, and where they came from."""

    def __init__(self, app: MirrorApp) -> None:
        self.app = app
        self.mirror = Mirror(parent=app)
        self.console = MirrorConsole(parent=app)
        if os.environ.get("NO_COLOR") and not _set_on_command_line(app, "Mirror", "colors"):
            self.mirror.colors = "NoColor"
        name = os.environ.get("IPYMIRROR_NAME")
        if name and not _set_on_command_line(app, "Mirror", "name"):
            self.mirror.name = name

    @property
    def loaded_files(self) -> list[str]:
        return list(self.app.loaded_config_files)


def _set_on_command_line(app: MirrorApp, section: str, trait: str) -> bool:
    return trait in app.cli_config.get(section, {})


def load_settings(trait_args: Sequence[str], config_file: str | None = None) -> Settings:
    """Load config files, then ``--Class.trait`` arguments on top.

    A bad file or value is a :class:`MirrorError` (usage) naming it, never a traceback.
    """
    app = MirrorApp()
    app.log.setLevel(logging.ERROR)  # our own errors say what went wrong
    try:
        cli = KVArgParseConfigLoader(list(trait_args), log=app.log).load_config()
    except Exception as exc:  # traitlets' argparse errors
        raise MirrorError(f"bad config option: {exc}", ExitStatus.USAGE) from None
    app.cli_config = Config(cli)
    if config_file:
        app.config_file = config_file
        if not os.path.isfile(config_file):
            raise MirrorError(f"config file not found: {config_file}", ExitStatus.USAGE)
    try:
        app.load_config_file()
    except ConfigFileNotFound:
        pass
    except Exception as exc:
        raise MirrorError(f"cannot load config file: {exc}", ExitStatus.USAGE) from None
    app.update_config(cli)
    try:
        return Settings(app)
    except (TraitError, ValueError) as exc:
        raise MirrorError(f"bad setting: {exc}", ExitStatus.USAGE) from None


#: Options whose value, when not given, comes from the settings (config / env).
_FROM_SETTINGS: dict[str, tuple[str, str]] = {
    "name": ("mirror", "name"),
    "timeout": ("mirror", "timeout"),
    "kernel": ("mirror", "kernel"),
    "ssh": ("mirror", "ssh"),
    "sshkey": ("mirror", "sshkey"),
    "ip": ("mirror", "ip"),
    "images": ("mirror", "images"),
    "image_rows": ("mirror", "image_rows"),
    "confirm_exit": ("console", "confirm_exit"),
    "editing_mode": ("console", "editing_mode"),
    "simple_prompt": ("console", "simple_prompt"),
    "banner": ("console", "banner"),
    "pager": ("console", "pager"),
    "auto_suggest": ("console", "auto_suggest"),
    "highlight_matching_brackets": ("console", "highlight_matching_brackets"),
}

#: Defaults of the options that have no setting behind them.
_DEFAULTS: dict[str, Any] = {
    "existing": None,
    "debug": False,
    "no_color": False,
    "colors": None,
    "record": None,
    "log_level": None,
}


def fill_from_settings(options: Any, settings: Settings) -> None:
    """Give every option the command line left unset its value from ``settings``."""
    for key, value in _DEFAULTS.items():
        if not hasattr(options, key):
            setattr(options, key, value)
    for key, (part, trait) in _FROM_SETTINGS.items():
        if not hasattr(options, key):
            setattr(options, key, getattr(getattr(settings, part), trait))
    if options.colors is None:
        options.colors = "NoColor" if options.no_color else settings.mirror.colors
    options.colors = {"linux": "Linux", "lightbg": "LightBG", "nocolor": "NoColor"}.get(
        options.colors.lower(), options.colors
    )
    options.no_color = options.colors == "NoColor"
    options.name = options.name or None
    options.ssh = options.ssh or None
    if options.pager == "$PAGER":
        options.pager = os.environ.get("PAGER") or "less -R"
    options.settings = settings


def help_all() -> str:
    """Every configurable trait with its help, as ``jupyter … --help-all`` lists them."""
    parts = [
        "Every setting can go in jupyter_mirror_config.py (c.Class.trait = value) or",
        "jupyter_mirror_config.json in the Jupyter config path (`jupyter --paths`),",
        "or on the command line as --Class.trait=value.",
        "",
    ]
    for cls in (Mirror, MirrorConsole):
        parts.append(cls.class_get_help())
    return "\n".join(parts)


def generate_config(overwrite: bool) -> str:
    """Write a commented default config file; returns its path."""
    app = MirrorApp()
    path = os.path.join(app.config_dir, app.config_file_name + ".py")
    if os.path.exists(path) and not overwrite:
        raise MirrorError(f"{path} exists; add -y to overwrite it", ExitStatus.USAGE)
    text = app.generate_config_file()
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise MirrorError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
