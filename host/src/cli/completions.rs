//! `airlock completions SHELL`: the shell completion script, generated from the command line's
//! own definition (clap_complete), so it never drifts from the commands.

use std::process::ExitCode;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

#[derive(Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

impl CompletionsArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let mut cmd = super::Cli::command();
        clap_complete::generate(self.shell, &mut cmd, "airlock", &mut std::io::stdout());
        Ok(ExitCode::SUCCESS)
    }
}
