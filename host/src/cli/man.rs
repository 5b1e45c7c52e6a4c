//! `airlock man`: the manual page (roff), generated from the command line's own definition
//! (clap_mangen), so it never drifts from the commands, like `airlock completions`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, CommandFactory};
use clap_mangen::Man;

#[derive(Args)]
pub struct ManArgs {
    /// Write airlock.1 and one page per subcommand (airlock-serve.1, airlock-secrets-set.1, ...)
    /// into DIR instead of printing airlock.1; `man -l DIR/airlock.1` reads one.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// What clap has no place for, appended to airlock(1): the environment the host reads outside
/// of the flags' own `env` (docs/configuration.md, docs/security.md) and the README's exit codes.
const EXTRA_SECTIONS: &str = r#".SH ENVIRONMENT
.TP
\fBAIRLOCK_CONFIG\fR
the configuration file (\fB\-\-config\fR; default airlock.toml)
.TP
\fBAIRLOCK_LISTEN\fR, \fBAIRLOCK_DATA_DIR\fR
override [server] listen and data_dir of the configuration
.TP
\fBAIRLOCK_LOG\fR, \fBAIRLOCK_LOG_JSON\fR
the log filter and JSON log lines (\fB\-\-log\-level\fR, \fB\-\-log\-json\fR)
.TP
\fBAIRLOCK_MASTER_KEY\fR
the vault's master key (64 hex digits or base64 of 32 bytes)
.TP
\fBAIRLOCK_MASTER_KEY_FILE\fR
a file holding the master key, readable by its owner only (systemd \fBLoadCredential=\fR); without either, data_dir/master.key is used, created on first use
.TP
\fBAIRLOCK_TOKEN\fR
the API token of \fBairlock mcp\fR
.TP
\fBOTEL_EXPORTER_OTLP_ENDPOINT\fR, \fBOTEL_EXPORTER_OTLP_TRACES_ENDPOINT\fR, \fBOTEL_SERVICE_NAME\fR
where \fBserve\fR exports its spans over OTLP/HTTP and under which service name (override [telemetry]); \fBOTEL_SDK_DISABLED\fR=true turns export off
.TP
\fBAIRLOCK_SIGN_PASSWORD\fR
the password of an encrypted signing key (\fBairlock sign\fR)
.SH "EXIT STATUS"
.TP
\fB0\fR
done
.TP
\fB1\fR
the command or what it ran failed (an invocation error, a failed sync, an approved action that failed, \fBconfig check\fR findings)
.TP
\fB2\fR
usage error (unknown flag, missing argument)
.TP
\fB3\fR\-\fB7\fR
what \fBaudit verify\fR found: 3 chain broken, 4 truncated, 5 rewritten, 6 checkpoint missing, 7 synced data whose audit rows are missing
.TP
\fB10\fR
\fBinvoke\fR queued a write action for approval: nothing ran yet
"#;

impl ManArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        // Built once so that subcommands carry their full names (`airlock-serve`) and the
        // global flags; `help` is clap's own and has no page.
        let mut cmd = super::Cli::command().disable_help_subcommand(true);
        cmd.build();
        match self.out_dir {
            None => {
                let mut out = std::io::stdout().lock();
                render_main(&cmd, &mut out)?;
                out.flush()?;
            }
            Some(dir) => {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let file = dir.join("airlock.1");
                let mut out = std::fs::File::create(&file)
                    .with_context(|| format!("cannot write {}", file.display()))?;
                render_main(&cmd, &mut out)?;
                for sub in cmd.get_subcommands() {
                    write_pages(sub, &dir)?;
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn render_main(cmd: &clap::Command, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    Man::new(cmd.clone()).render(out)?;
    out.write_all(EXTRA_SECTIONS.as_bytes())?;
    Ok(())
}

/// The page of `cmd` and of each of its subcommands, recursively.
fn write_pages(cmd: &clap::Command, dir: &Path) -> anyhow::Result<()> {
    if cmd.is_hide_set() {
        return Ok(());
    }
    Man::new(cmd.clone())
        .generate_to(dir)
        .with_context(|| format!("cannot write a page into {}", dir.display()))?;
    for sub in cmd.get_subcommands() {
        write_pages(sub, dir)?;
    }
    Ok(())
}
