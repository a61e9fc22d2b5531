//! `phalanx`: one binary for every Phalanx task.

mod aggregate;
#[cfg(feature = "testing")]
mod bench;
#[cfg(feature = "testing")]
mod chaos;
mod dashboard;
mod decision;
#[cfg(feature = "testing")]
mod demo;
mod federated;
mod hooks;
mod init;
mod keygen;
mod mcp;
mod memory;
mod operator;
mod ops;
mod reconfig;
#[cfg(feature = "testing")]
mod sim;
mod up;

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
    /// Create a cluster: agent keys, genesis.toml and one node.toml per agent.
    Init(init::InitArgs),
    /// Generate an agent key (PKCS#8 PEM, readable by `openssl pkey`).
    Keygen(keygen::KeygenArgs),
    /// Run one agent.
    Node(ops::NodeArgs),
    /// Start every agent of a cluster folder as its own process.
    Up(up::UpArgs),
    /// Stop the agents started by `up`.
    Down(up::DownArgs),
    /// Sign and submit one transfer; accepted on f+1 matching signed replies.
    Submit(ops::SubmitArgs),
    #[cfg(feature = "testing")]
    /// Submit many transfers and report throughput and latency.
    Bench(bench::BenchArgs),
    /// List the agents with role, status and public key.
    Agents(ops::ReadArgs),
    /// Each agent's view, primary, executed seq, checkpoint and state digest.
    Status(ops::ReadArgs),
    /// Cluster health, with state digests compared across agents.
    Health(ops::ReadArgs),
    /// Open the live dashboard of a running cluster (every agent serves one at /dashboard).
    Dashboard(dashboard::DashboardArgs),
    /// Store and retrieve values in the replicated shared memory.
    #[command(subcommand)]
    Memory(memory::MemoryCommand),
    /// Decisions the agents vote on: open, vote, show (checked by f+1 agents and a proof), list.
    #[command(subcommand)]
    Decision(decision::DecisionCommand),
    /// A Model Context Protocol server on stdio: the cluster as tools for an agent runtime,
    /// signing with one agent's key.
    Mcp(mcp::McpArgs),
    /// Run hooks (commands or webhooks, from hooks.toml) on committed events: malicious-detected,
    /// quarantined, reconfiguration, decision-opened, decision-decided, and view changes.
    Hooks(hooks::HooksArgs),
    #[cfg(feature = "testing")]
    /// Run the reference scenario on real processes and check every claim.
    Demo(demo::DemoArgs),
    /// The detection log (from committed state): who was caught, how, with what evidence.
    DetectionLog(operator::DetectionLogArgs),
    /// Testing clusters only: make an agent misbehave (operator-signed).
    InjectFault(operator::InjectFaultArgs),
    /// Force a new primary (operator-signed; enters the normal view-change path).
    ViewChange(operator::ViewChangeArgs),
    /// Manage agents that join by reconfiguration.
    #[command(subcommand)]
    Agent(reconfig::AgentCommand),
    /// Replace members (operator-signed); takes effect at the next checkpoint as a new epoch.
    UpdateQuorum(reconfig::UpdateQuorumArgs),
    #[cfg(feature = "testing")]
    /// A real cluster under load while seeded faults kill, pause, partition and corrupt it; then check the history.
    Chaos(chaos::ChaosArgs),
    #[cfg(feature = "testing")]
    /// Run seeded deterministic simulations with Byzantine agents and network faults.
    Sim(sim::SimArgs),
    /// Robust aggregation of vectors read as JSON on stdin: {"vectors": [[...], ...]}.
    Aggregate(aggregate::AggregateArgs),
    /// The Byzantine vector an attack sends against honest vectors read as JSON on stdin.
    Attack(aggregate::AttackArgs),
    /// Federated learning experiment: agents train a digits classifier with robust aggregation.
    Federated(federated::FederatedArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init(a) => init::run(a),
        Command::Keygen(a) => keygen::run(a),
        Command::Node(a) => ops::node(a),
        Command::Up(a) => up::up(a),
        Command::Down(a) => up::down(a),
        Command::Submit(a) => ops::submit(a),
        #[cfg(feature = "testing")]
        Command::Bench(a) => bench::bench(a),
        Command::Agents(a) => ops::agents(a),
        Command::Status(a) => ops::status(a),
        Command::Health(a) => ops::health(a),
        Command::Dashboard(a) => dashboard::run(a),
        Command::Memory(c) => memory::run(c),
        Command::Decision(c) => decision::run(c),
        Command::Mcp(a) => mcp::run(a),
        Command::Hooks(a) => hooks::run(a),
        #[cfg(feature = "testing")]
        Command::Sim(a) => sim::run(a),
        #[cfg(feature = "testing")]
        Command::Chaos(a) => chaos::run(a),
        #[cfg(feature = "testing")]
        Command::Demo(a) => demo::run(a),
        Command::DetectionLog(a) => operator::detection_log(a),
        Command::InjectFault(a) => operator::inject_fault(a),
        Command::ViewChange(a) => operator::view_change(a),
        Command::Agent(c) => reconfig::agent(c),
        Command::UpdateQuorum(a) => reconfig::update_quorum(a),
        Command::Aggregate(a) => aggregate::aggregate(a),
        Command::Attack(a) => aggregate::attack(a),
        Command::Federated(a) => federated::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
