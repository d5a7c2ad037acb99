"""grpo/gguf_metadata.py reads a GGUF header it wrote itself, and names the file when one is not GGUF or
is cut short (its agreement with gguf's GGUFReader on a real export: tests/test_export.py)."""

import pytest

from grpo.gguf_metadata import GGUFMetadataError, read_gguf_metadata


def small_gguf(path):
    import gguf

    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_block_count(2)
    writer.add_token_list(["<pad>", "▁hello", "é"])
    writer.add_token_scores([0.0, -1.5, -2.25])
    writer.add_chat_template("{{ messages }}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return path


def test_reads_the_pairs_a_gguf_writer_wrote(tmp_path):
    metadata = read_gguf_metadata(small_gguf(tmp_path / "small.gguf"))
    assert metadata["general.architecture"] == "gemma3"
    assert metadata["gemma3.block_count"] == 2
    assert metadata["tokenizer.ggml.tokens"] == ["<pad>", "▁hello", "é"]
    assert metadata["tokenizer.ggml.scores"] == [0.0, -1.5, -2.25]
    assert metadata["tokenizer.chat_template"] == "{{ messages }}"


@pytest.mark.parametrize("damage", ["empty", "not gguf", "cut short"])
def test_a_file_that_is_not_gguf_or_is_cut_short_is_named(tmp_path, damage):
    path = small_gguf(tmp_path / "small.gguf")
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "not gguf": b"PK\x03\x04" + data[4:], "cut short": data[:-10]}[damage])
    with pytest.raises(GGUFMetadataError, match="small.gguf"):
        read_gguf_metadata(path)
