"""Regenerate neurontools/_proto from proto/ (run after editing a .proto file).

protoc names modules after the proto package path (neurontools/v1/...); we flatten them into
neurontools/_proto and rewrite the one cross-module import so the package stays importable.
`python scripts/gen_proto.py --check` exits 1 if the committed modules are stale.
"""

import pathlib
import re
import sys
import tempfile

from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "neurontools" / "_proto"


def generate() -> dict[str, str]:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{PROTO_ROOT}", f"--python_out={tmp}", f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}", *protos]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        files = {}
        for path in sorted(pathlib.Path(tmp).rglob("*.py*")):
            text = path.read_text()
            text = re.sub(r"^from neurontools\.v1 import", "from neurontools._proto import", text,
                          flags=re.M)
            files[path.name] = text
        return files


def main() -> int:
    files = generate()
    if "--check" in sys.argv:
        stale = [name for name, text in files.items()
                 if not (OUT / name).exists() or (OUT / name).read_text() != text]
        if stale:
            print("stale generated modules:", ", ".join(stale), file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text)
    init = OUT / "__init__.py"
    if not init.exists():
        init.write_text('"""Generated gRPC modules (scripts/gen_proto.py); do not edit."""\n')
    return 0


if __name__ == "__main__":
    sys.exit(main())
