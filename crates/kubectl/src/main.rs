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
    /// STATE, SIGNATURE, AGE; oldest first, newest last.
    List {
        /// List crashes of every namespace.
        #[arg(short = 'A', long, conflicts_with = "namespace")]
        all_namespaces: bool,
        /// Only crashes of this pod.
        #[arg(long, value_name = "POD")]
        pod: Option<String>,
        /// Group crashes by signature: SIGNATURE, COUNT, FIRST, LAST, NEWEST, TOP FRAME.
        #[arg(long, conflicts_with = "pod")]
        group: bool,
    },
    /// Shows one crash: metadata, the symbolized backtrace, analysis limits, log tail.
    Info {
        /// Name of the Coredump.
        name: String,
    },
    /// Fetches the core and, by build ID, its executable and libraries, then starts gdb.
    Debug {
        /// Name of the Coredump.
        name: String,
        /// Where to put the core, the sysroot and the gdb script (default NAME-debug).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The debugger to run.
        #[arg(long, default_value = "gdb", value_name = "PROGRAM")]
        gdb: String,
        /// Prepare everything and print the gdb command instead of running it.
        #[arg(long)]
        no_exec: bool,
        /// Extra arguments for gdb (after `--`), e.g. `-- -batch -ex bt`.
        #[arg(last = true)]
        gdb_args: Vec<String>,
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
        /// Bytes per Range request of a core download.
        #[arg(long, value_name = "BYTES", hide = true)]
        piece: Option<u64>,
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
            group,
        } => {
            let ns = (!all_namespaces).then_some(namespace.as_str());
            let now = time::OffsetDateTime::now_utc();
            let text = if group {
                commands::list_grouped(client, ns).await?
            } else {
                commands::list(client, ns, pod.as_deref(), now).await?
            };
            stdout
                .write_all(text.as_bytes())
                .context("writing to stdout")?;
        }
        Command::Info { name } => {
            let text = commands::info(client, &namespace, &name).await?;
            stdout
                .write_all(text.as_bytes())
                .context("writing to stdout")?;
        }
        Command::Debug {
            name,
            dir,
            gdb,
            no_exec,
            gdb_args,
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(format!("{name}-debug")));
            let progress = std::io::stderr().is_terminal();
            let prepared = commands::debug(client, &namespace, &name, &dir, progress).await?;
            for m in &prepared.fetched {
                eprintln!("fetched {m}");
            }
            for m in &prepared.missing {
                eprintln!("missing {m}");
            }
            if prepared.executable.is_none() {
                eprintln!("warning: the executable is missing; gdb opens the core without it");
            }
            let mut cmd = std::process::Command::new(&gdb);
            cmd.arg("-nx")
                .arg("-x")
                .arg(&prepared.gdbinit)
                .args(&gdb_args);
            if no_exec {
                println!("{cmd:?}");
            } else {
                stdout.flush().context("writing to stdout")?;
                let status = cmd
                    .status()
                    .with_context(|| format!("starting {gdb} (is it installed?)"))?;
                if !status.success() {
                    anyhow::bail!("{gdb} exited with {status}");
                }
            }
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
            piece,
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
                    commands::download_core(
                        client,
                        &namespace,
                        &name,
                        output.as_deref(),
                        progress,
                        piece,
                    )
                    .await?
                }
                (None, None) => anyhow::bail!("download needs a NAME or --pod POD"),
            };
            let check = if done.sha256_checked {
                ", SHA-256 verified"
            } else {
                ""
            };
            if let Some(at) = done.resumed_at {
                eprintln!("resumed an interrupted download at byte {at}");
            }
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
