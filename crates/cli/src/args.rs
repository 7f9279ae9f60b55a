//! Command-line definitions (clap derive). Conventions follow kubectl: `-f` takes files
//! or directories and repeats, `-o` picks table, json or yaml.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "bulkhead",
    version,
    about = "Micro-segmentation for containers: identity-based policy you can analyze, test and explain",
    after_help = "Exit codes: 0 success; 1 a negative answer (lint errors, failing tests, \
                  denied with --exit-code, changes with --exit-code); 2 usage error; 3 invalid input files."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub remote: crate::remote::RemoteArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Analyze policy offline: reachability matrix, diff, blast radius, resolution size.
    #[command(subcommand)]
    Analyze(Analyze),
    /// Explain the verdict for one connection, in plain words.
    Explain(ExplainArgs),
    /// Work with policy documents.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Run PolicyTest assertions (for CI pipelines).
    Test(TestArgs),
    /// Real test topologies from YAML: up, probe every pair for real, status, exec, down.
    #[command(subcommand)]
    Lab(crate::lab::LabCmd),
    /// Run the node agent: program nftables from inventory and policy files, cut
    /// forbidden connections, record flows.
    Agent(crate::agent::AgentArgs),
    /// Show the agent's flow records (filters, table or JSON lines, --follow).
    Flows(crate::flows::FlowsArgs),
    /// Show what the L7 proxy reported: refused protocols and requests, with the rule
    /// and a packet capture (--all: every connection).
    Events(crate::events::EventsArgs),
    /// Offline deep packet inspection: protocol detection on captures, sensors on payloads.
    #[command(subcommand)]
    Dpi(crate::dpi::DpiCmd),
    /// Propose a label-based policy from recorded flows, with its coverage and a diff
    /// against the current policy.
    Learn(crate::learn::LearnArgs),
    /// Groups: set a group's mode (Discover, Monitor, Protect) in its YAML file.
    #[command(subcommand)]
    Group(crate::learn::GroupCmd),
    /// Quarantine a workload (nothing in or out) or release it; list quarantined ones.
    #[command(subcommand)]
    Quarantine(crate::quarantine::QuarantineCmd),
    /// Serve the REST API (token auth, TLS), its OpenAPI document and Prometheus
    /// /metrics over policy files and agents' state directories.
    Serve(crate::serve::ServeArgs),
}

#[derive(Subcommand, Debug)]
pub enum Analyze {
    /// Reachability of every ordered pair of distinct workloads for a set of probes.
    Matrix(MatrixArgs),
    /// Which pairs and ports a policy change newly allows or denies.
    Diff(DiffArgs),
    /// What a compromised workload can reach, directly and transitively.
    BlastRadius(BlastArgs),
    /// Size of the resolved policy (identities, selectors, entries), optionally with
    /// every workload scaled to N replicas to show it does not grow with replicas.
    Resolve(ResolveArgs),
    /// Replay recorded flows against a proposed policy: what would be newly denied or
    /// allowed, by rule and by workload.
    Replay(crate::learn::ReplayArgs),
    /// PCI-DSS segmentation report: what policy lets cross the cardholder data
    /// environment's boundary (proved over every port) and what flows crossed it.
    Pci(crate::pci::PciArgs),
}

#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Find selectors matching nothing, shadowed/redundant rules, conflicts, unused
    /// groups and duplicate names.
    Lint(LintArgs),
}

#[derive(Args, Debug, Clone)]
pub struct Input {
    /// Inventory and policy: a YAML file, a directory of them, or - for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR")]
    pub files: Vec<PathBuf>,
    /// Read directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Take the inventory (Namespaces, Pods, Nodes, controllers) from here instead, and
    /// only policy from `-f`: e.g. a lab's or a cluster's live inventory with addresses
    /// (`/run/bulkhead/labs/NAME/inventory.yaml`), against the policy in a repository.
    #[arg(long, value_name = "FILE|DIR")]
    pub inventory: Vec<PathBuf>,
}

impl Input {
    pub fn load(&self) -> anyhow::Result<bulkhead_policy::spec::Bundle> {
        // Not required by clap: with --server the files are the server's.
        if self.files.is_empty() {
            clap::Error::raw(
                clap::error::ErrorKind::MissingRequiredArgument,
                "the following required argument was not provided: --filename <FILE|DIR> (or ask a server with --server URL)\n",
            )
            .exit();
        }
        crate::load_split(&self.files, &self.inventory, self.recursive)
    }
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

#[derive(Args, Debug, Clone, Copy)]
pub struct Output {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum FamilyArg {
    #[default]
    Ipv4,
    Ipv6,
}

#[derive(Args, Debug)]
pub struct Probes {
    /// A probe: TCP/80, UDP/53, SCTP/80, ICMP, ICMP/8/0, ICMPv6. Repeatable.
    /// Default: TCP/80, TCP/81, UDP/53, SCTP/80.
    #[arg(long = "probe", value_name = "PROTO/PORT", value_parser = service_arg)]
    pub probes: Vec<String>,
    /// Address family of pod-to-pod connections (matters for CIDR peers only).
    #[arg(long, value_enum, default_value_t = FamilyArg::Ipv4)]
    pub family: FamilyArg,
}

#[derive(Args, Debug)]
pub struct MatrixArgs {
    #[command(flatten)]
    pub input: Input,
    #[command(flatten)]
    pub probes: Probes,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The current inventory and policy (file or directory). Repeatable.
    #[arg(long, value_name = "FILE|DIR", required = true)]
    pub old: Vec<PathBuf>,
    /// The proposed inventory and policy (file or directory). Repeatable.
    #[arg(long, value_name = "FILE|DIR", required = true)]
    pub new: Vec<PathBuf>,
    #[arg(short = 'R', long)]
    pub recursive: bool,
    #[command(flatten)]
    pub probes: Probes,
    /// Exit with 1 when anything changes.
    #[arg(long)]
    pub exit_code: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct BlastArgs {
    /// The compromised workload: NAMESPACE/NAME or a unique NAME.
    pub workload: String,
    #[command(flatten)]
    pub input: Input,
    #[command(flatten)]
    pub probes: Probes,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct ResolveArgs {
    #[command(flatten)]
    pub input: Input,
    /// Replace every workload with N replicas of it (same labels). Repeatable: one row each.
    #[arg(long = "scale", value_name = "N", default_values_t = [1usize])]
    pub scale: Vec<usize>,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Source: NAMESPACE/NAME, a unique NAME, an IP address.
    pub src: String,
    /// Destination: NAMESPACE/NAME, a unique NAME, an IP address or a DNS name.
    pub dst: String,
    /// What is opened: TCP/80, UDP/53, SCTP/80, ICMP, ICMP/8/0.
    #[arg(value_parser = service_arg)]
    pub service: String,
    #[command(flatten)]
    pub input: Input,
    /// An L7 request, e.g. "http GET /api", "redis FLUSHALL", "postgresql DROP TABLE t",
    /// "dns example.com", or just the protocol ("redis").
    #[arg(long, value_parser = request_arg)]
    pub request: Option<String>,
    /// Exit with 1 when the connection is denied.
    #[arg(long)]
    pub exit_code: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct LintArgs {
    #[command(flatten)]
    pub input: Input,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Files or directories with PolicyTest documents (besides any found with -f).
    #[arg(value_name = "TESTFILE")]
    pub tests: Vec<PathBuf>,
    #[command(flatten)]
    pub input: Input,
    #[command(flatten)]
    pub output: Output,
}

/// Value parsers that check an argument as the command line is read, so a malformed one
/// is a usage error (exit 2) before any file is read; each keeps the value as written.
pub fn service_arg(s: &str) -> Result<String, String> {
    s.parse::<bulkhead_model::L4>().map(|_| s.to_string())
}

pub fn request_arg(s: &str) -> Result<String, String> {
    bulkhead_policy::l7::parse_request(s).map(|_| s.to_string())
}

pub fn duration_arg(s: &str) -> Result<String, String> {
    humantime::parse_duration(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("{e}: expected a duration such as 30m, 24h or 7d"))
}
