//! `kubectl-coredump`: the thin binary kubectl runs for `kubectl coredump ...`. It parses
//! kubectl-style flags and calls `coredump_kubectl`; errors are printed with their context and
//! exit with status 1.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use coredump_kubectl::{ConnectOptions, Format, commands, connect};

/// Lists, shows and downloads crash records and core dumps (coredump.fujitsu.com).
#[derive(Debug, Parser)]
#[command(name = "kubectl coredump", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Flags every subcommand takes, named as kubectl names them.
#[derive(Debug, Args)]
struct Global {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    context: Option<String>,
    /// Namespace (default: the context's, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    namespace: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lists crashes: NAMESPACE (with -A), NAME, POD, CONTAINER, SIGNAL, EXECUTABLE, SIZE,
    /// STATE, AGE; oldest first, newest last.
    List {
        /// List crashes of every namespace.
        #[arg(short = 'A', long, conflicts_with = "namespace")]
        all_namespaces: bool,
        /// Only crashes of this pod.
        #[arg(long, value_name = "POD")]
        pod: Option<String>,
    },
    /// Prints one Coredump object.
    Get {
        /// Name of the Coredump.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Yaml)]
        output: OutputFormat,
    },
    /// Downloads a core (NAME) or a pod's dump archive (--pod), verified before it is kept.
    Download {
        /// Name of the Coredump whose core to download.
        #[arg(required_unless_present = "pod", conflicts_with = "pod")]
        name: Option<String>,
        /// Download the tar.gz of every core of this pod (its CoredumpEndpoint's dump).
        #[arg(long, value_name = "POD")]
        pod: Option<String>,
        /// With --pod: only this container's cores.
        #[arg(long, value_name = "NAME", requires = "pod")]
        container: Option<String>,
        /// Output file (default NAME.core, or POD-coredump.tar.gz with --pod).
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    Yaml,
    Json,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Ctrl-C drops the command's future, so a half download's temporary file is removed.
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(cli) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, leaving out a cause whose text the message already contains (our
/// errors and kube-rs's embed their source's text).
fn describe(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Download {
        pod: None,
        container: Some(_),
        ..
    } = &cli.command
    {
        anyhow::bail!("--container only applies with --pod POD");
    }
    let conn = connect(&ConnectOptions {
        kubeconfig: cli.global.kubeconfig.clone(),
        context: cli.global.context.clone(),
    })
    .await?;
    let namespace = cli
        .global
        .namespace
        .clone()
        .unwrap_or_else(|| conn.default_namespace.clone());
    let client = &conn.client;
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::List {
            all_namespaces,
            pod,
        } => {
            let ns = (!all_namespaces).then_some(namespace.as_str());
            let now = time::OffsetDateTime::now_utc();
            let text = commands::list(client, ns, pod.as_deref(), now).await?;
            stdout
                .write_all(text.as_bytes())
                .context("writing to stdout")?;
        }
        Command::Get { name, output } => {
            let format = match output {
                OutputFormat::Yaml => Format::Yaml,
                OutputFormat::Json => Format::Json,
            };
            let text = commands::get(client, &namespace, &name, format).await?;
            stdout
                .write_all(text.as_bytes())
                .context("writing to stdout")?;
        }
        Command::Download {
            name,
            pod,
            container,
            output,
        } => {
            let progress = std::io::stderr().is_terminal();
            let done = match (name, pod) {
                (_, Some(pod)) => {
                    commands::download_dump(
                        client,
                        &namespace,
                        &pod,
                        container.as_deref(),
                        output.as_deref(),
                        progress,
                    )
                    .await?
                }
                (Some(name), None) => {
                    commands::download_core(client, &namespace, &name, output.as_deref(), progress)
                        .await?
                }
                (None, None) => anyhow::bail!("download needs a NAME or --pod POD"),
            };
            let check = if done.sha256_checked {
                ", SHA-256 verified"
            } else {
                ""
            };
            eprintln!(
                "wrote {} ({} bytes{check})",
                done.path.display(),
                done.bytes
            );
        }
    }
    stdout.flush().context("writing to stdout")?;
    Ok(())
}
