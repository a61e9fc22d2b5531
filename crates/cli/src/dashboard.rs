//! `phalanx dashboard`: finds an agent of the cluster that answers and opens its live dashboard
//! (`/dashboard`, served by every node) in the system's browser, or prints where it is.

use clap::Args;
use phalanx_client::Cluster;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

#[derive(Args)]
pub struct DashboardArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    /// The agent whose dashboard to open (default: the first that answers).
    #[arg(long)]
    agent: Option<String>,
    /// Print the address only; do not start a browser.
    #[arg(long)]
    no_open: bool,
}

pub fn run(a: DashboardArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    let candidates: Vec<usize> = match &a.agent {
        Some(name) => vec![
            (cluster.agents.iter().position(|m| m.name == *name))
                .ok_or_else(|| format!("no agent {name:?} in {}", a.dir.display()))?,
        ],
        None => (0..cluster.n()).collect(),
    };
    let Some(i) = candidates.into_iter().find(|&i| cluster.get(i, "/v1/status").is_ok()) else {
        return Err(format!(
            "no agent of {} answers; start the cluster with `phalanx up --dir {}`",
            a.dir.display(),
            a.dir.display()
        ));
    };
    let url = cluster.url(i, "/dashboard");
    println!("{}'s dashboard: {url}", cluster.agents[i].name);
    println!("(every agent serves its own; metrics for Prometheus are at {})", cluster.url(i, "/metrics"));
    if !a.no_open {
        // $BROWSER first (the usual override), then the desktop's opener.
        let opener =
            std::env::var("BROWSER").ok().into_iter().chain(["xdg-open".to_string(), "open".to_string()]);
        let opened = opener.into_iter().any(|cmd| {
            Command::new(&cmd).arg(&url).stdout(Stdio::null()).stderr(Stdio::null()).spawn().is_ok()
        });
        if !opened {
            println!("no browser to start here; open the address above in one");
        }
    }
    Ok(ExitCode::SUCCESS)
}
