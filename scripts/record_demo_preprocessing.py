"""Write the preprocessing record into the bundled demo models' cards; the weights stay byte-identical.

The demo models were trained on the built-in phantoms before cards carried a ``preprocessing``
record. This adds the record of their phantom data (``phantom_preprocessing``): the kind's window,
its fixed isotropic spacing and, for brain MRI, the phantoms' foreground percentiles that real
T1 scans are matched to. The tensors are copied as stored (float16), so the content hash, a
hash of the tensors only, does not change; it is checked before the file is replaced.

    python scripts/record_demo_preprocessing.py [resources/models/demo-*.safetensors]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.atomic import atomic_write  # noqa: E402
from engine.checkpoints import tensor_hash  # noqa: E402
from engine.data.phantoms import phantom_preprocessing  # noqa: E402


def record(path: Path) -> None:
    with safe_open(str(path), "pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    card = json.loads(metadata["model_card"])
    if tensor_hash(tensors) != card["content_hash"]:
        raise SystemExit(f"{path}: the weights do not match the card's content hash; not touching it")
    kind = card["training"]["data"]["kind"]
    card["preprocessing"] = phantom_preprocessing(kind, card["resolution"]).to_dict()
    metadata["model_card"] = json.dumps(card, indent=1, sort_keys=False)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    print(f"{path.name}: {kind}, {json.dumps(card['preprocessing'])}")


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]] or sorted((ROOT / "resources" / "models").glob("demo-*.safetensors"))
    for path in paths:
        record(path)


if __name__ == "__main__":
    main()
