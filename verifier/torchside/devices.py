"""Where and how the torch side runs: dtypes, devices, and torch.compile backends."""

from __future__ import annotations

import os

import torch

from ..errors import DeviceUnavailable

# every dtype name of dtypes.FLOATS and dtypes.COMPLEX as torch's dtype (a test ties the names)
DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "complex128": torch.complex128, "complex64": torch.complex64}


def compile_backend(name: str) -> str:
    """The torch.compile backend to use: 'auto' is inductor where a C++ compiler is found (inductor's CPU code needs
    one), else aot_eager (AOTAutograd's traced forward and backward graphs, run eagerly)."""
    if name != "auto":
        return name
    import shutil

    compilers = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
    return "inductor" if any(c and shutil.which(c) for c in compilers) else "aot_eager"




def check_device(device: str) -> None:
    """DeviceUnavailable unless torch can run on the device here."""
    if not device.startswith("cuda"):
        return
    import torch

    built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    if not torch.cuda.is_available():
        raise DeviceUnavailable(f"device {device}: CUDA is not available on this machine (torch {torch.__version__}, "
                                f"{built}); run on a machine with a GPU, or without --device / device:")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise DeviceUnavailable(f"device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
