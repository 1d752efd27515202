"""``convhw kernels``: list the named kernels and their coefficients."""

from ..kernels import NAMED_KERNELS

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    return subparsers.add_parser("kernels", help="list the named kernels",
                                 description="The names --kernel accepts, with coefficients.")


def run(args):
    for name, kernel in NAMED_KERNELS.items():
        rows = "; ".join(",".join(str(v) for v in row) for row in kernel.tolist())
        print(f"{name:16} {kernel.shape[0]}x{kernel.shape[1]}  sum {int(kernel.sum()):4}  {rows}")
    return 0
