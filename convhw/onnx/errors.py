"""The one error an ONNX import raises for a model it cannot reproduce exactly."""

__all__ = ["UnsupportedModelError"]


class UnsupportedModelError(ValueError):
    """A model, node, attribute or tensor that convhw refuses rather than approximates.

    The message is one line naming the node (or tensor), its op and what is supported.
    """

    @classmethod
    def at(cls, node, problem):
        """An error about ``node``: ``node 'NAME' (Op): problem``."""
        return cls(f"node {node_label(node)} ({node.op_type}): {problem}")


def node_label(node):
    """A node's name in quotes, or its first output's when it has no name."""
    return repr(node.name) if node.name else f"producing {node.output[0]!r}"
