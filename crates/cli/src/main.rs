//! `phalanx`: one binary for every Phalanx task.

mod keygen;
mod sim;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "phalanx", version, about = "Byzantine-fault-tolerant coordination for agent swarms")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run seeded deterministic simulations with Byzantine agents and network faults.
    Sim(sim::SimArgs),
    /// Generate an agent key (PKCS#8 PEM, readable by `openssl pkey`).
    Keygen(keygen::KeygenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(a) => sim::run(a),
        Command::Keygen(a) => keygen::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
