from convtui.terminal_text import inert, one_line


def test_escape_sequences_become_visible() -> None:
    hostile = "a\x1b]52;c;ZXZpbA==\x07b\x1b[31mc\rd\x00e\x9bf\u2028g"
    shown = inert(hostile)
    assert shown == "a␛]52;c;ZXZpbA==\\x07b␛[31mc\\x0dd\\x00e\\x9bf\\u2028g"
    assert all(ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F for c in shown)


def test_newlines_and_tabs_survive_unless_flattened() -> None:
    assert inert("a\nb\tc") == "a\nb\tc"
    assert one_line("a\nb\tc\r\nd") == "a b c d"
    assert one_line("x" * 10, width=5) == "xxxx…"
