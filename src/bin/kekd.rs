//! `kekd`: the daemon. Thin: parse arguments, load settings, set up logging,
//! hand over to `kekd::daemon`.
//!
//! Exit codes: 0 clean stop (SIGTERM/SIGINT) or valid config; 1 invalid
//! configuration or a start-up failure; 2 bad command line.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use kekd::config::{LogFormat, Settings};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// The most threads the runtime's blocking pool starts (see `main`).
const BLOCKING_THREADS: usize = 32;

/// Shown by `--help` and in the man page.
const AFTER_HELP: &str =
    "Signals: SIGUSR1 Change Key Now (systemctl kill -s USR1 kekd, or kekctl rotate); \
SIGHUP reload the configuration, all or nothing (systemctl reload kekd); SIGTERM, SIGINT \
finish an in-flight rotation, then exit.

Exit codes: 0 clean stop, or check-config found the file valid; 1 invalid configuration or \
a start-up failure (named on stderr); 2 bad command line.

Files: /etc/kekd/kekd.toml (configuration, see kekd.toml(5); /usr/share/kekd/ has the \
commented examples), /var/lib/kekd/kekd.redb (the key history), /var/lib/kekd/audit.jsonl (the \
audit trail), /run/kekd/kekd.sock (the API socket; see kekctl(1)).

Documentation: /usr/share/doc/kekd/ (README.md, docs/).";

#[derive(Parser)]
#[command(
    name = "kekd",
    version = kekd::fips::VERSION,
    about = "Rotates key-encryption key pairs; private keys sealed under your KMS key",
    after_long_help = AFTER_HELP
)]
struct Cli {
    /// Configuration file.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/kekd/kekd.toml",
        conflicts_with = "dev"
    )]
    config: PathBuf,
    /// Development mode: local key provider, state and socket under --state-dir. No AWS needed.
    #[arg(long)]
    dev: bool,
    /// State directory for --dev.
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".kekd-dev",
        requires = "dev"
    )]
    state_dir: PathBuf,
    /// Log format (overrides the config file).
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration file and exit (0 valid, 1 invalid).
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// The man pages (kekd.8, kekd-check-config.8, kekd.toml.5) into DIR,
    /// for packaging.
    #[command(hide = true)]
    Manpage {
        /// Where to write it.
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Plain,
    Json,
}

fn main() -> ExitCode {
    // Crash points for the crash tests (FAILPOINTS); absent in normal builds.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let cli = Cli::parse();
    if let Some(Command::Manpage { dir }) = &cli.command {
        return match manpages(dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kekd: writing the man page into {}: {e}", dir.display());
                ExitCode::from(1)
            }
        };
    }
    if let Some(Command::CheckConfig { file }) = &cli.command {
        let loaded = Settings::load(file).map(|s| {
            let usable = kekd::config::state_dir_usable(s.state_dir());
            (s, usable)
        });
        return match loaded {
            Ok((_, Err(problem))) => {
                eprintln!(
                    "kekd: {}: valid, but not usable by the user this check runs as: {problem} (run check-config as kekd's user: sudo -u kekd kekd check-config FILE)",
                    file.display()
                );
                ExitCode::from(1)
            }
            Ok((s, Ok(()))) => {
                // A closed stdout (`| head`) is not an error.
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}: valid", file.display());
                for (name, value) in s.describe() {
                    let _ = writeln!(out, "  {name:<16} {value}");
                }
                for w in s.warnings() {
                    let _ = writeln!(out, "warning: {w}");
                }
                if s.uses_kms() {
                    let _ = writeln!(
                        out,
                        "note: only KMS can tell whether the key exists, is symmetric and enabled, and kekd may use it: kekctl test --config {}",
                        file.display()
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kekd: invalid configuration: {e}");
                ExitCode::from(1)
            }
        };
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kekd: {}", kekd::report::one_line(e.chain()));
            ExitCode::from(1)
        }
    }
}

/// kekd is a system daemon: section 8, one page per visible subcommand (as
/// `clap_mangen::generate_to` does for section 1).
fn manpages(dir: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    for page in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        clap_mangen::Man::new(page.clone())
            .section("8")
            .generate_to(dir)?;
    }
    kekd::manpages::write(cmd, "8", &kekd::manpages::KEKD, dir)?;
    kekd::manpages::write_config_page(dir)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (mut settings, config_path) = if cli.dev {
        let dir = std::path::absolute(&cli.state_dir)
            .with_context(|| format!("state directory {}", cli.state_dir.display()))?;
        (Settings::dev(&dir).context("--dev settings")?, None)
    } else {
        let settings = Settings::load(&cli.config).context("invalid configuration")?;
        (settings, Some(cli.config.clone()))
    };
    if let Some(f) = cli.log_format {
        settings.set_log_format(match f {
            LogFormatArg::Plain => LogFormat::Plain,
            LogFormatArg::Json => LogFormat::Json,
        });
    }
    init_logging(&settings);

    // Store, audit and key-generation work runs on the blocking pool. At
    // tokio's default of 512 threads, 10,000 organizations starting at once
    // started 512 threads, for work that one redb file and two cores do no
    // faster; what does not fit waits its turn in the pool's queue.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let daemon = kekd::daemon::Daemon::start(settings, config_path)
            .await
            .context("start-up failed")?;
        if cli.dev {
            let sock = daemon.socket_path().display().to_string();
            println!(
                "kekd --dev: local key provider, state in {}",
                cli.state_dir.display()
            );
            println!("socket: {sock}");
            // The hint names the kekctl beside this kekd: the installed one,
            // or the one cargo built.
            let kekctl = std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|d| d.join("kekctl")))
                .filter(|p| p.exists())
                .map_or_else(|| "kekctl".to_string(), |p| p.display().to_string());
            println!("try:    {kekctl} --socket {sock} status");
        }
        daemon.run().await.context("serving")
    })
}

/// Plain lines by default; under journald (JOURNAL_STREAM set) without
/// timestamps, which journald adds itself, and with `<N>` syslog priority
/// prefixes so journald records each line's level. `RUST_LOG` overrides the
/// level.
fn init_logging(settings: &Settings) {
    use tracing_subscriber::EnvFilter;
    let log = settings.log();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    // A log that cannot be written (full disk, file size limit) is dropped:
    // the default reports it with eprintln!, which panics when stderr is
    // the file that cannot be written — and takes the task logging with it.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Plain if std::env::var_os("JOURNAL_STREAM").is_some() => builder
            .with_ansi(false)
            .event_format(SyslogPriority(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_ansi(false),
            ))
            .init(),
        // Colours only for a person at a terminal, never into a file.
        LogFormat::Plain => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

/// Prefixes each line with its syslog priority (`<3>` error … `<7>` debug),
/// which journald's stdout/stderr stream parses (SyslogLevelPrefix=).
struct SyslogPriority<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for SyslogPriority<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}
