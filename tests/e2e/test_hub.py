"""End-to-end on a real JupyterHub: DummyAuthenticator, SimpleLocalProcessSpawner and the
npm configurable-http-proxy on 127.0.0.1, a hub API token (``JUPYTERHUB_API_TOKEN``).

``ipymirror --existing http://127.0.0.1:PORT/user/alice/`` joins the kernel of alice's
notebook (through the hub's proxy, authenticated by the hub's token), and ``share``
over it gives a ticket with which a viewer, holding no token, watches.  Needs
``jupyterhub`` (the test extra) and ``configurable-http-proxy`` (npm) -- it fails,
saying which is missing, rather than skip.
"""

from __future__ import annotations

import re

import pytest
from hub_helpers import hub_available, start_hub
from server_helpers import LabPeer, RunningServer
from test_server_cli import share_and_watch
from test_server_e2e import PROMPT, env


@pytest.fixture
def hub(tmp_path, jupyter_dirs):
    missing = hub_available()
    assert not missing, missing
    running = start_hub(tmp_path / "hub")
    yield running
    running.stop()


@pytest.mark.timeout(240)
def test_join_and_share_a_kernel_on_jupyterhub(hub, terminal, ipymirror_argv, tmp_path):
    url = hub.start_server("alice")
    assert url == f"{hub.url}user/alice/"
    nb = hub.api(
        "POST",
        "user/alice/api/sessions",
        {"path": "lesson.ipynb", "type": "notebook", "kernel": {"name": "python3"}},
    )
    kid = nb["kernel"]["id"]
    proxied = RunningServer(hub.proc, hub.port, "/user/alice/", hub.token, hub.root, hub.log)
    bob = LabPeer(proxied, kid, "lab-bob")
    try:
        term = terminal(
            ipymirror_argv("--existing", url, "--name", "me"),
            env=env(JUPYTERHUB_API_TOKEN=hub.token, JUPYTER_TOKEN=None),
            cols=200,
        )
        term.wait_for(
            f"joined the python kernel (ipython) of {url}api/kernels/{kid} (the only "
            "kernel on the server (python3, notebook lesson.ipynb))",
            timeout=60,
        )
        term.wait_for(PROMPT)
        assert hub.token not in term.text()
        bob.run("print('hello from the hub')")
        term.wait_for(re.compile(r"lab-bob·\w{4}[^\n]*\n[^\n]*\n[^\n]*hello from the hub"))
        term.send("print(6 * 7)\r")
        bob.wait_iopub(lambda m: m["msg_type"] == "stream" and m["content"]["text"] == "42\n")
        share_and_watch(
            url,
            hub.token,
            bob,
            terminal,
            ipymirror_argv,
            tmp_path,
            token_env="JUPYTERHUB_API_TOKEN",
        )
    finally:
        bob.close()
