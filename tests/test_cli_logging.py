"""What the CLI shows of the library's logging: each autoc line once, even after a dependency
calls logging.basicConfig() on import (ONNX Runtime's quantisation tools do)."""
import logging
import subprocess
import sys

PROBE = """
import logging
from autoc.cli import configure_logging
configure_logging()
import onnxruntime.quantization.matmul_nbits_quantizer  # runs logging.basicConfig(level=INFO)
logging.getLogger("autoc.latency.device").info("profile ready")
logging.getLogger("autoc.search").warning("careful")
logging.getLogger("somelib").warning("theirs")
logging.getLogger("somelib").info("not shown")
"""


def test_each_library_line_shows_once_whatever_a_dependency_configures():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["profile ready", "autoc: careful", "somelib: theirs"]
