//! The MedEx server: `cargo run --example server`.
//!
//! Configuration comes from `MEDEX_*` environment variables and an optional `.env` (see the
//! README). `--create-admin EMAIL` creates an admin account (password from
//! `MEDEX_ADMIN_PASSWORD`, or read from standard input) and exits. `--rotate-custody-key`
//! replaces the custody key kept in the data directory, keeping the old public key listed, and
//! exits; the new key signs from the next start.

use std::io::BufRead as _;

use anyhow::{Context as _, bail};
use medex::server::Server;
use medex::settings::{LogFormat, Settings, VARIABLES};

fn init_logs(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match settings.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "MedEx server\n\nUsage: server [--create-admin EMAIL | --rotate-custody-key]\n\nEnvironment:"
        );
        for (name, default, meaning) in VARIABLES {
            println!("  {name:<30} {meaning} (default: {default})");
        }
        return Ok(());
    }
    let settings = Settings::from_env().context("invalid configuration")?;
    init_logs(&settings);

    if let Some(position) = args.iter().position(|a| a == "--create-admin") {
        let Some(email) = args.get(position + 1) else {
            bail!("--create-admin needs an e-mail address")
        };
        let password = match std::env::var("MEDEX_ADMIN_PASSWORD") {
            Ok(password) => password,
            Err(_) => {
                eprintln!("password for {email} (one line on standard input):");
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_owned()
            }
        };
        let admin = medex::server::create_admin(settings, email, &password).await?;
        println!("created admin {} ({})", admin.email, admin.id);
        return Ok(());
    }

    if args.iter().any(|a| a == "--rotate-custody-key") {
        let rotation = medex::server::rotate_custody_key(&settings.data_dir)?;
        println!(
            "custody key {} replaced by {}; restart the server to sign with it (records signed \
             by {} still verify)",
            rotation.former_key_id, rotation.key_id, rotation.former_key_id
        );
        return Ok(());
    }

    let running = Server::new(settings).start().await?;
    let addr = running.local_addr();
    println!("MedEx is running:");
    println!("  API     http://{addr}/api");
    println!("  Docs    http://{addr}/docs");
    println!("  Health  http://{addr}/api/health");
    println!("  Metrics http://{addr}/metrics");
    running.wait_for_signal().await?;
    println!("MedEx stopped cleanly.");
    Ok(())
}
