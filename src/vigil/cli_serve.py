"""``vigil serve`` and ``vigil config check`` (registered on the main app in vigil.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

config_app = typer.Typer(help="The `vigil serve` configuration file.", no_args_is_help=True)
err = Console(stderr=True)
out = Console()


def serve(
    config: Annotated[Path | None, typer.Option("--config", help="vigil.yaml (docs/serve.md).")
                      ] = None,
    listen: Annotated[str | None, typer.Option(help="HOST:PORT (overrides the config).")] = None,
    store: Annotated[Path | None, typer.Option(help="Store directory (overrides the config).")
                     ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the service: remote-write in, continuous scoring, API, /metrics, Alertmanager.

    Without --config: one tenant ('default', or the X-Scope-OrgID header), no auth."""
    import logging

    import uvicorn

    from vigil.serve.app import create_app
    from vigil.serve.config import ConfigError, ServeConfig, load_config, validate_config

    try:
        cfg = load_config(config) if config else ServeConfig()
        overrides = {k: v for k, v in (("listen", listen), ("store", store)) if v is not None}
        if overrides:
            cfg = validate_config({**cfg.model_dump(exclude_unset=True), **overrides},
                                  str(config or "command line"))
    except ConfigError as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, port = cfg.host_port
    app = create_app(cfg)
    err.print(f"vigil serving on http://{host}:{port} (store {cfg.store}, WAL {cfg.wal_path}, "
              f"auth {'on' if cfg.auth_enabled else 'off'}); OpenAPI at /docs")
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower(),
                timeout_graceful_shutdown=30)


@config_app.command("check")
def config_check(path: Annotated[Path, typer.Argument(help="The YAML file to check.")]) -> None:
    """Validate a config file offline, exactly as `vigil serve` does at start."""
    from vigil.serve.config import ConfigError, load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    out.print(f"{path}: OK ({len(cfg.tenants)} tenant(s), auth "
              f"{'on' if cfg.auth_enabled else 'off'}, {len(cfg.readers)} reader(s), "
              f"alertmanager {'on' if cfg.alertmanager else 'off'})", highlight=False,
              soft_wrap=True)
