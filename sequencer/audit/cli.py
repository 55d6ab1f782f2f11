"""`optrollup audit export|verify` (docs/compliance.md, "Audit export").

    optrollup audit export --data-dir D [--config C] --from F --to T --keystore K
                           [--password-file P | --password-env VAR] --out FILE
    optrollup audit verify FILE (--data-dir D [--config C] | --sequencer URL)

`export` opens the node's data dir (LevelDB allows one process: stop the node or copy the dir
first). `verify` exits 0 when the file verifies, 1 naming the first bad line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sequencer.core.audit import AuditError
from sequencer.keys import load_key, refuse_raw_key_option


def _source(args: argparse.Namespace):  # noqa: ANN202
    from sequencer.audit.sources import DataDirSource, HttpSource

    if args.data_dir:
        return DataDirSource(args.data_dir, args.config)
    return HttpSource(args.sequencer)


def _export(args: argparse.Namespace) -> int:
    from sequencer.audit.export import export, keystore_signer
    from sequencer.audit.sources import DataDirSource

    key = load_key(args.keystore, password_file=args.password_file, password_env=args.password_env,
                   prompt="operator keystore password: " if sys.stdin.isatty() else None)
    signer, sign = keystore_signer(key)
    src = DataDirSource(args.data_dir, args.config)
    try:
        data = export(src, args.from_block, args.to_block, signer, sign)
    finally:
        src.close()
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    lines = data.count(b"\n")
    print(f"wrote {out}: blocks {args.from_block}-{args.to_block}, {lines} lines, signed by the "
          "operator")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from sequencer.audit.verify import verify

    data = Path(args.file).read_bytes()
    src = _source(args)
    try:
        rep = verify(data, src)
    except AuditError as exc:
        print(f"{args.file}: INVALID at line {exc.line}: {exc.reason}", file=sys.stderr)
        return 1
    finally:
        src.close()
    how = ("records re-executed against the input log" if rep.reexecuted
           else "records checked in form only (no input log at this source)")
    print(f"{args.file}: OK: blocks {rep.first}-{rep.last} replay to the chain's, {rep.records} "
          f"records, {rep.lines} lines signed by the operator; {how}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001
    p = sub.add_parser("audit", help="export and verify signed, hash-chained audit trails")
    asub = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    e = asub.add_parser("export", help="input-log records and blocks of a block range, signed")
    e.add_argument("--data-dir", required=True, help="the node's data dir (node stopped)")
    e.add_argument("--config", help="node config JSON (default: DIR/node.json or DIR/../node.json)")
    e.add_argument("--from", dest="from_block", type=int, required=True, help="first block")
    e.add_argument("--to", dest="to_block", type=int, required=True, help="last block")
    e.add_argument("--keystore", required=True, help="the operator key (keystore or pkcs11: URI)")
    e.add_argument("--password-file")
    e.add_argument("--password-env")
    e.add_argument("--out", required=True, help="the file to write")
    refuse_raw_key_option(e)
    e.set_defaults(func=_export)
    v = asub.add_parser("verify", help="check an audit file against a chain")
    v.add_argument("file")
    src = v.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-dir", help="a node's data dir: blocks and input log (node stopped)")
    src.add_argument("--sequencer", help="a sequencer's HTTP API URL: blocks only")
    v.add_argument("--config", help="node config JSON with --data-dir")
    v.set_defaults(func=_verify)
