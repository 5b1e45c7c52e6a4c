//! The `airlock` command: daemon and CLI. The commands live in the library's `cli/`, one
//! module each.

fn main() -> std::process::ExitCode {
    airlock::cli::main()
}
