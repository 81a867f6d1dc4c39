"""Markdown export writes images as files next to the .md and links them (as nbconvert does)."""

from __future__ import annotations

import base64
import io
import re

from PIL import Image
from recording_support import cell_messages, write_recording

from ipymirror.cli import main


def png(colour: str, size=(30, 20)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def display(data: dict) -> tuple[str, dict]:
    return ("display_data", {"data": data, "metadata": {}})


def recording(tmp_path, name: str = "my session.ipym"):
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>'
    n = [0]
    msgs = cell_messages("print(1)", [("stream", {"name": "stdout", "text": "1\n"})], 1, n=n)
    msgs += cell_messages(
        "plot()",
        [
            ("stream", {"name": "stdout", "text": "before\n"}),
            display({"image/png": png("red"), "text/plain": "<Figure>"}),
            ("stream", {"name": "stdout", "text": "after\n"}),
            (
                "execute_result",
                {"data": {"image/png": png("blue")}, "metadata": {}, "execution_count": 2},
            ),
            display({"image/svg+xml": svg}),
            display({"image/png": "!!not base64!!"}),
        ],
        2,
        n=n,
    )
    return write_recording(tmp_path / name, [(i * 0.01, m) for i, m in enumerate(msgs)])


def test_images_are_files_next_to_the_markdown(tmp_path, capsys):
    path = recording(tmp_path)
    assert main(["export", str(path), "--to", "markdown"]) == 0
    assert "and 3 images in my session_files/" in capsys.readouterr().out
    text = (tmp_path / "my session.md").read_text()
    links = re.findall(r"!\[(image/[a-z+]+)\]\(([^)]+)\)", text)
    assert links == [
        ("image/png", "my%20session_files/output_1_1.png"),
        ("image/png", "my%20session_files/output_1_3.png"),
        ("image/svg+xml", "my%20session_files/output_1_4.svg"),
    ]
    folder = tmp_path / "my session_files"
    assert sorted(p.name for p in folder.iterdir()) == [
        "output_1_1.png",
        "output_1_3.png",
        "output_1_4.svg",
    ]
    assert Image.open(folder / "output_1_1.png").getpixel((0, 0)) == (255, 0, 0)
    assert Image.open(folder / "output_1_3.png").getpixel((0, 0)) == (0, 0, 255)
    # order kept: text before, the image, text after; a bad image stays its placeholder
    assert text.index("before") < text.index("output_1_1.png") < text.index("after")
    assert re.search(r"```\n\[image/png \d+ B\]\n```", text.split("output_1_4.svg")[1])


def test_markdown_to_stdout_keeps_placeholders(tmp_path, capsys):
    path = recording(tmp_path, "s.ipym")
    assert main(["export", str(path), "--to", "markdown", "-o", "-"]) == 0
    out = capsys.readouterr().out
    assert "[image/png 30×20" in out and "![" not in out
    assert not (tmp_path / "s_files").exists()
