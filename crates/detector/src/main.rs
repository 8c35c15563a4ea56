//! `coredump-detector`: one binary, one role per subcommand. `handle` is dispatched before any
//! argument parsing or runtime start: it is the kernel's crash-path target and must stay tiny,
//! synchronous and unable to fail on its own command line.
#![deny(missing_docs)]

mod analyze;
mod api;
mod offline;
mod standalone;

use std::ffi::OsString;

use clap::{Parser, Subcommand};

/// Catches every process crash, keeps the core safely, serves it through the Kubernetes API.
#[derive(Debug, Parser)]
#[command(name = "coredump-detector", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The kernel's core_pattern pipe target (installed by `standalone` or `agent`; not for
    /// interactive use): `handle %P %I %s %t %u %g %d %h %e %E %f`.
    Handle {
        /// Kernel specifiers.
        #[arg(num_args = 0.., allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Everything on one machine: capture every crash, store it, serve it to kubectl.
    /// Needs root (it sets kernel.core_pattern and restores it on exit).
    Standalone(standalone::StandaloneArgs),
    /// Lists captured crashes from a data directory.
    List(offline::ListArgs),
    /// Writes the decompressed core of one crash to a file.
    Export(offline::ExportArgs),
    /// Analyses one core file (raw or seekable zstd) with the binaries a data directory keeps
    /// by build ID: prints the backtrace JSON, and the time taken and peak RSS on stderr.
    Analyze(analyze::AnalyzeArgs),
    /// The aggregated API server of a cluster install (behind kube-apiserver's APIService):
    /// metadata in etcd (--etcd-servers) or embedded, cores under --local-path.
    Apiserver(coredump_apiserver::cli::ApiserverArgs),
    /// Writes DIR/coredump.yaml: every Kubernetes object of a cluster install, with fresh
    /// certificates (what the seed's deploy.sh did). Then: kubectl create -f DIR/coredump.yaml.
    Deploy(coredump_deploy::DeployArgs),
    /// The node agent of a cluster install (DaemonSet, privileged): installs the handler,
    /// sets core_pattern (restored on SIGTERM), records every crash of the node's pods as a
    /// Coredump with an Event on the pod.
    Agent(coredump_agent::Args),
    /// The garbage collector of a cluster install: deletes the cores and records of pods and
    /// namespaces gone longer than --gc-threshold, and optionally by age and size.
    Gc(coredump_gc::Args),
}

fn main() -> std::process::ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "handle") {
        let exe = std::env::current_exe().unwrap_or_else(|_| argv[0].clone().into());
        let code = coredump_capture::handler::main(&argv[2..], &exe);
        return std::process::ExitCode::from(code as u8);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Handle { .. } => unreachable_handle(),
        Command::Standalone(args) => standalone::run(args),
        Command::List(args) => offline::list(args),
        Command::Export(args) => offline::export(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Deploy(args) => coredump_deploy::run(args),
        Command::Apiserver(args) => apiserver(args),
        Command::Agent(args) => {
            init_tracing();
            coredump_agent::run(args)
        }
        Command::Gc(args) => {
            init_tracing();
            coredump_gc::run(args)
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coredump-detector: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `handle` is dispatched before clap; reaching here means argv[1] was not literally `handle`.
fn unreachable_handle() -> anyhow::Result<()> {
    anyhow::bail!("`handle` must be the first argument")
}

/// Runs the `apiserver` role until SIGINT or SIGTERM.
fn apiserver(args: coredump_apiserver::cli::ApiserverArgs) -> anyhow::Result<()> {
    init_tracing();
    coredump_common::server_runtime()?.block_on(coredump_apiserver::cli::run(
        args,
        coredump_common::shutdown_signal("stop the API server with SIGKILL"),
    ))
}

/// Sets up logging for long-running roles (not for `handle`, which logs to the kernel log).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command line the generated manifest gives our image is one this binary accepts:
    /// a flag renamed on one side only would otherwise surface as a crash-looping pod.
    #[test]
    fn every_manifest_command_line_parses() {
        let opts = coredump_deploy::DeployOptions::new("ops", "dumps");
        let certs = coredump_deploy::generate_certs("ops", "dumps").expect("certificates");
        let yaml = coredump_deploy::render(&opts, &certs).expect("manifest");
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml).expect("YAML");
        let mut roles = Vec::new();
        for doc in &docs {
            let containers = doc["spec"]["template"]["spec"]["containers"].as_array();
            for c in containers.into_iter().flatten() {
                if c["image"] != opts.image.as_str() {
                    continue; // etcd
                }
                let args: Vec<String> = serde_json::from_value(c["args"].clone()).expect("args");
                let from_env = env_as_flags(&args[0], &c["env"]);
                let argv = std::iter::once("coredump-detector".to_string())
                    .chain(args.clone())
                    .chain(from_env);
                if let Err(e) = Cli::try_parse_from(argv) {
                    panic!("{} refuses {args:?}:\n{e}", doc["metadata"]["name"]);
                }
                roles.push(args[0].clone());
            }
        }
        roles.sort();
        assert_eq!(roles, ["agent", "apiserver", "gc"]);
    }

    /// The container's environment variables that `role` reads (clap `env = ...`), as the
    /// flags they stand for; a `valueFrom` (downward API) gets a placeholder value.
    fn env_as_flags(role: &str, env: &serde_json::Value) -> Vec<String> {
        use clap::CommandFactory;
        let cli = Cli::command();
        let sub = cli.find_subcommand(role).expect("role subcommand");
        let mut flags = Vec::new();
        for var in env.as_array().into_iter().flatten() {
            let name = var["name"].as_str().expect("env name");
            let value = var["value"].as_str().unwrap_or("from-downward-api");
            let arg = sub
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == name));
            if let Some(long) = arg.and_then(|a| a.get_long()) {
                flags.push(format!("--{long}={value}"));
            }
        }
        flags
    }
}
