"""The pane text of segments that finish out of order (pure Python: no Qt)."""

from desktop.document_view import PLACEHOLDER, DocumentView


def test_each_segment_goes_to_its_place():
    view = DocumentView([" ", "\n", ""])
    assert view.text() == f"{PLACEHOLDER} {PLACEHOLDER}\n{PLACEHOLDER}"
    text = view.text()
    for index, piece in ((2, "C"), (0, "A"), (2, "c"), (1, "B"), (0, "a")):
        offset, remove, new = view.add(index, piece)
        text = text[:offset] + new + text[offset + remove:]  # what the window does to its document
        assert text == view.text()
    assert text == "Aa B\nCc"
    assert view.start_of(2) == len("Aa B\n")
