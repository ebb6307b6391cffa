"""A bus process loads what it uses: the CEL engine without its command line, no signing library
without a signing key, no HTTP server without the intake (bus/routing/cel_core.py; bench/README.md,
"Less memory per bus process"). And the conditions give the same answers on the public path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bus.routing.cel_core import PUBLIC_PATH_ENV

ROOT = Path(__file__).resolve().parents[2]

#: what a process that imports the bus (and starts a router or deliverer) must not have loaded
NOT_LOADED = ("cel.cli", "prompt_toolkit", "typer", "cryptography", "uvicorn", "starlette")

# in a fresh interpreter: import the bus and the route table, load the shipped routes, evaluate
# conditions, report which modules are loaded and what the conditions said
_PROBE = r"""
import json, sys
import bus.app
from bus.routing.conditions import evaluate
from bus.routing import cel_core
engine = cel_core.engine()
answers = []
for source, variables in [("age >= 65 && reason == 'X'", {"age": 70, "reason": "X"}),
                          ("age >= 65 && reason == 'X'", {"age": 64, "reason": "X"}),
                          ("size(name) > 2 || has(m.k)", {"name": "ab", "m": {"k": 1}})]:
    program = engine.compile(source)
    context = engine.Context()
    for name, value in variables.items():
        context.add_variable(name, value)
    answers.append(evaluate(program, context))
print(json.dumps({"loaded": sorted(m for m in sys.modules), "engine": engine.__name__, "answers": answers}))
"""


def _probe(**env: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env}, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_bus_process_loads_the_cel_extension_alone_and_no_signing_library_or_http_server() -> None:
    result = _probe(**{PUBLIC_PATH_ENV: ""})
    loaded = set(result["loaded"])  # type: ignore[call-overload]
    assert result["engine"] == "cel.cel"
    assert "cel" not in loaded, "the cel package's __init__ ran (it imports its command line)"
    assert not [m for m in NOT_LOADED if m in loaded]
    assert result["answers"] == [True, False, True]


def test_the_public_path_imports_the_package_and_gives_the_same_answers() -> None:
    result = _probe(**{PUBLIC_PATH_ENV: "1"})
    loaded = set(result["loaded"])  # type: ignore[call-overload]
    assert result["engine"] == "cel"
    assert "cel.cli" in loaded
    assert result["answers"] == [True, False, True]


def test_importing_the_package_after_the_extension_reuses_it() -> None:
    script = ("from bus.routing import cel_core; core = cel_core.engine(); import cel; "
              "assert cel.compile is core.compile and cel.Context is core.Context; "
              "assert cel_core.engine() is cel; print('ok')")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, PUBLIC_PATH_ENV: ""}, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_signing_still_signs_and_verifies_with_its_library_loaded_where_a_key_is_used(tmp_path: Path) -> None:
    from bus.audit.chain import Head
    from bus.audit.signing import CheckpointSigner, CheckpointVerifier, generate_key_file

    public, key_id = generate_key_file(tmp_path / "k.pem")
    signer = CheckpointSigner.from_pem((tmp_path / "k.pem").read_bytes())
    checkpoint = signer.sign(Head(3, "ab" * 32))
    verifier = CheckpointVerifier.from_pems([public.read_bytes()])
    assert signer.key_id == key_id and verifier.key_ids == [key_id]
    assert verifier.problem(checkpoint) is None
    forged = checkpoint.__class__(checkpoint.seq, "cd" * 32, checkpoint.signed_at, key_id, checkpoint.signature)
    assert "does not verify" in (verifier.problem(forged) or "")
