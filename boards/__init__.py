"""One module per board: ``python -m boards.<board> build [options]`` (see docs/boards.md)."""
