"""What a bridge loads before its first call: the optional heavy libraries (botocore for
Bedrock, OpenTelemetry for traces) wait until a call or a setting needs them."""

import subprocess
import sys


def test_the_app_loads_no_botocore_and_no_opentelemetry() -> None:
    script = (
        "import sys\n"
        "from proxy.config.settings import Settings\n"
        "from proxy.edge.app import create_app\n"
        "create_app(Settings(upstream_url='demo:'))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = done.stdout
    assert "'proxy'" in loaded  # the check sees the app's own modules
    assert "botocore" not in loaded and "opentelemetry" not in loaded, loaded
