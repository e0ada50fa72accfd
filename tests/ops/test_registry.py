"""Every op named in ``squeezeprompt.ops.OP_NAMES`` is registered in torch.ops.squeezeprompt."""

from __future__ import annotations

import torch

import squeezeprompt
from squeezeprompt.ops import OP_NAMES


def test_torch_ops_lists_every_op_name():
    listed = set(dir(torch.ops.squeezeprompt))
    missing = [name for name in OP_NAMES if name not in listed]
    assert not missing, f"torch.ops.squeezeprompt lacks {missing}"
    assert len(set(OP_NAMES)) == len(OP_NAMES) == 10


def test_every_op_has_a_cpu_kernel_and_a_fake_kernel():
    for name in OP_NAMES:
        qualname = f"squeezeprompt::{name}"
        assert torch._C._dispatch_has_kernel_for_dispatch_key(qualname, "CPU"), name
        # register_fake installs the Meta kernel that FakeTensorMode and compile use.
        assert torch._C._dispatch_has_kernel_for_dispatch_key(qualname, "Meta"), name


def test_package_exports_the_op_names():
    assert squeezeprompt.ops.OP_NAMES is OP_NAMES
