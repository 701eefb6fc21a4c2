//! `shop`: the e-commerce backend. Configuration comes from the environment (see API.md);
//! a bad value stops start-up with one line naming the variable and exit code 2.
//!
//! `shop` serves; `shop migrate` applies the embedded PostgreSQL migrations to `DATABASE_URL`
//! and exits (serving applies them too).

use bootstrap::{Application, Config, telemetry};
use std::process::ExitCode;

/// Exit code for a configuration or start-up error.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    telemetry::init(config.log_format, "info", std::io::stdout);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = std::env::args().nth(1);
    match command.as_deref() {
        None | Some("serve") => runtime.block_on(serve(config)),
        Some("migrate") => runtime.block_on(migrate(config)),
        Some(other) => {
            eprintln!("error: unknown command {other:?} (known: serve, migrate)");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

async fn migrate(config: Config) -> ExitCode {
    let Some(url) = config.database_url else {
        eprintln!("error: DATABASE_URL: must be set for `shop migrate`");
        return ExitCode::from(EXIT_CONFIG);
    };
    match bootstrap::wiring::migrate(url.expose()).await {
        Ok(applied) => {
            println!("{} migration(s) applied", applied.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if app.admin_token_generated() {
        // Shown once, on stdout, for the operator; never logged.
        println!("ADMIN_TOKEN (generated, shown once): {}", app.admin_token());
    }
    tracing::info!(port = app.port(), "shop listening");
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: server failed: {e}");
            ExitCode::FAILURE
        }
    }
}
