//! The `airlock` command: daemon and CLI. The commands live in `cli/`, one module each.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use airlock::scrub::Scrubber;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // CLI commands behave like other Unix tools when their output pipe closes (`| head`):
    // exit quietly instead of panicking on EPIPE. The daemon keeps Rust's default (ignored).
    #[cfg(unix)]
    if !matches!(cli.command, Command::Serve(_)) {
        // SAFETY: called before any other thread exists; restores the default disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let scrubber = Scrubber::new();
    // `check` and `conformance` report their own outcome; their load log would only repeat it.
    // The CLI commands print their own results: only the daemon logs at info by default.
    // A level given on the command line (or AIRLOCK_LOG) is always honoured.
    let level = match (&cli.log_level, &cli.command) {
        (Some(level), _) => level.as_str(),
        (None, Command::Check(_) | Command::Conformance(_) | Command::Config(_)) => "off",
        (None, Command::Serve(_)) => "info",
        (None, _) => "warn",
    };
    airlock::logging::init(level, cli.log_json, scrubber.clone());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(cli.command.run(scrubber.clone())) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", scrubber.scrub(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
