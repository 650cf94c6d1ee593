"""``vigil ledger verify|show|replay|export-key`` and ``vigil explain`` (registered on the main
app in vigil.cli)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

ledger_app = typer.Typer(help="The decision ledger: verify, show, replay, export the key.",
                         no_args_is_help=True)
out = Console()
err = Console(stderr=True)

StoreOpt = Annotated[
    Path,
    typer.Option("--store", help="Store directory (default ./vigil-data, or $VIGIL_STORE).",
                 default_factory=lambda: Path(os.environ.get("VIGIL_STORE") or "./vigil-data"),
                 show_default=False),
]
TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant id.")]


def _store(path: Path) -> Any:
    from vigil.store import Store

    return Store(path)


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(2)


@ledger_app.command("verify")
def verify(
    store: StoreOpt,
    tenant: Annotated[str | None, typer.Option("--tenant", help="One tenant (default: all).")
                      ] = None,
    public_key: Annotated[Path | None, typer.Option(
        "--public-key", help="PEM public key to verify with (default: the store's own).")] =
    None,
    fmt: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
) -> None:
    """Check every link of the hash chain and every checkpoint signature; name the first
    broken record.  Exit 1 when anything is wrong."""
    from vigil.ledger.chain import verify as run_verify
    from vigil.ledger.keys import load_public_key

    st = _store(store)
    key = load_public_key(public_key) if public_key is not None else None
    tenants = [tenant] if tenant else st.tenants()
    reports = [run_verify(st, t, key) for t in tenants]
    if fmt == "json":
        print(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        for r in reports:
            if r.ok:
                out.print(f"tenant {r.tenant}: OK, {r.records:,} records, {r.checkpoints:,} "
                          f"signed checkpoints (key {r.key_id})", markup=False)
            else:
                out.print(f"tenant {r.tenant}: BROKEN at {r.problems[0].text()}",
                          markup=False, highlight=False)
                for p in r.problems[1:10]:
                    out.print(f"  also: {p.text()}", markup=False, highlight=False)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@ledger_app.command("show")
def show(
    decision_id: Annotated[str, typer.Argument(help="Decision id (dec-...), prefix or seq.")],
    store: StoreOpt,
    tenant: TenantOpt = "default",
) -> None:
    """Print one decision record (JSON) and the checkpoint that signs it."""
    from vigil.ledger.api import decision

    try:
        print(json.dumps(decision(_store(store), tenant, decision_id), indent=2,
                         ensure_ascii=False))
    except KeyError as exc:
        raise _fail(str(exc.args[0])) from None


@ledger_app.command("replay")
def replay(
    store: StoreOpt,
    decision_id: Annotated[str | None, typer.Argument(
        help="Decision id (dec-...), prefix or seq; --all for every decision.")] = None,
    tenant: TenantOpt = "default",
    every: Annotated[bool, typer.Option("--all", help="Replay every decision.")] = False,
) -> None:
    """Reload a decision's inputs from the store and re-run the recorded model version;
    report match or mismatch (exit 1 unless every replay matches)."""
    from vigil.ledger.replay import replay_many

    if (decision_id is None) == (not every):
        raise _fail("give a decision id or --all")
    try:
        results = replay_many(_store(store), tenant, None if every else [decision_id or ""])
    except KeyError as exc:
        raise _fail(str(exc.args[0])) from None
    counts: dict[str, int] = {}
    for res in results:
        counts[res["status"]] = counts.get(res["status"], 0) + 1
        if not every or res["status"] not in ("match", "not replayable"):
            out.print(f"{res['id']} {res['kind']} {res.get('subject', '')}: "
                      f"{res['status'].upper()}", markup=False, highlight=False)
            for m in res["messages"]:
                out.print(f"  {m}", markup=False, highlight=False)
    if every:
        out.print(", ".join(f"{v:,} {k}" for k, v in sorted(counts.items()))
                  + f" of {len(results):,} decisions", markup=False)
    if any(r["status"] not in ("match", "not replayable") for r in results):
        raise typer.Exit(1)


@ledger_app.command("export-key")
def export_key(
    store: StoreOpt,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the PEM here.")] = None,
) -> None:
    """Print (or write) the ledger's public key (PEM), made on first use if missing."""
    from vigil.ledger.keys import key_id, load_or_create_key, public_pem

    key = load_or_create_key(store).public_key()
    pem = public_pem(key).decode("ascii")
    if out_file is None:
        print(pem, end="")
    else:
        out_file.write_text(pem)
        out.print(f"wrote {out_file} (key {key_id(key)})", markup=False)


def explain(
    insight_id: Annotated[str, typer.Argument(help="Insight id (a unique prefix works).")],
    store: StoreOpt,
    tenant: TenantOpt = "default",
    fmt: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
) -> None:
    """Show the work behind an insight: data windows, expected bands, scores, thresholds and
    guards, the events considered and why the top one ranked first, the recommendation rule
    and its evidence (all from signed ledger records)."""
    from vigil.ledger.explain import explain as run_explain
    from vigil.ledger.explain import render

    try:
        ex = run_explain(_store(store), tenant, insight_id)
    except KeyError as exc:
        raise _fail(str(exc.args[0])) from None
    if fmt == "json":
        print(json.dumps(ex, indent=2, ensure_ascii=False))
    else:
        print(render(ex))
