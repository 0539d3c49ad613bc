"""The house rules of the layout, checked by importing: components/ never pulls in Prefect,
flows/ or deploy/; what the service imports comes from the packages its bento declares."""
import subprocess
import sys

from tests.conftest import REPO

# Everything the BentoML service (deploy/service.py) calls into from components/.
SERVICE_CODE = """
import tempfile
from pathlib import Path
from PIL import Image                                   # deploy/service.py encodes PNGs
from pydantic import Field                              # ... and validates requests
from components.models import FAMILIES, build_model
from components.models.io import load_checkpoint, save_checkpoint
from components.data.images import to_uint8
from components.monitoring.features import image_features, text_features
from components.serving import engine, slot             # ... and batches, loads and swaps
with tempfile.TemporaryDirectory() as tmp:
    for family in FAMILIES:
        save_checkpoint(build_model(family, {}), {}, Path(tmp) / family)
        load_checkpoint(Path(tmp) / family)
text_features("a", "b")
"""


def _imported(code: str) -> set[str]:
    """Top-level names of the modules `code` leaves in sys.modules (in a fresh interpreter)."""
    out = subprocess.run([sys.executable, "-c", "import sys\n" + code + "\nprint(' '.join(sorted({n.split('.')[0] "
                          "for n in sys.modules})))"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(out.stdout.split())


def test_components_never_import_prefect_flows_or_deploy():
    code = ("import pkgutil, importlib, components\n"
            "for m in pkgutil.walk_packages(components.__path__, 'components.'):\n"
            "    importlib.import_module(m.name)")
    assert not {"prefect", "flows", "deploy"} & _imported(code)


def test_the_service_imports_only_what_its_bento_declares():
    from importlib.metadata import packages_distributions

    from components.registry import SERVICE_PACKAGES

    # torch and pydantic are declared; whatever importing them loads comes with them
    ours = (_imported(SERVICE_CODE) - _imported("import torch\nfrom pydantic import Field") - set(sys.stdlib_module_names)
            - {"components"})
    owners = packages_distributions()
    needed = {dist.lower() for name in ours if not name.startswith("_") for dist in owners.get(name, [name])}
    assert needed, "the service code imported nothing beyond torch: the probe is broken"
    assert needed <= {p.lower() for p in SERVICE_PACKAGES}, needed - {p.lower() for p in SERVICE_PACKAGES}
