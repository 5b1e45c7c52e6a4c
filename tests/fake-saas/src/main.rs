//! `fake-saas`: run the upstream fakes as standalone servers (`fake_saas::cli`).

fn main() -> std::process::ExitCode {
    fake_saas::cli::main()
}
